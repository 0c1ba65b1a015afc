"""The web console at /console: server-rendered pages, every asset served by the bus.

Government networks have no internet, so there is no CDN: the templates are Jinja2 with
autoescaping (whatever a sender wrote in a subject is shown as text, never as markup),
one stylesheet and one small script under /console/static. A strict
Content-Security-Policy allows nothing else.

Sessions: an HttpOnly, SameSite=Strict cookie (Secure when the bus serves TLS or
``console_secure_cookies`` says so) holding a random token; each POST carries the
session's CSRF token (the login form a pre-session one), compared in constant time.
Every action goes through :mod:`bus.console.actions` with ``console:<user>`` as actor.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.staticfiles import StaticFiles

from bus import errors
from bus.api import read_capped
from bus.app import Bus
from bus.console import actions, i18n, users, views
from bus.console.pages import (
    _HEADERS,
    COOKIE,
    EXPLAIN_MAX,
    HERE,
    LANG_COOKIE,
    LOGIN_BODY_CAP,
    LOGIN_COOKIE,
    Console,
    _RedirectError,
    safe_next,
)
from bus.store.queries import list_deliveries

__all__ = ["COOKIE", "EXPLAIN_MAX", "HERE", "LANG_COOKIE", "LOGIN_BODY_CAP", "LOGIN_COOKIE",
           "Console", "console_router", "explain_packet", "mount_static", "safe_next"]




def console_router(bus: Bus) -> APIRouter:
    console = Console(bus)
    router = APIRouter(include_in_schema=False)
    store = bus.store

    async def guarded(request: Request, work: Callable[[], Awaitable[Response]],
                      session: users.Session | None = None) -> Response:
        try:
            return await work()
        except _RedirectError as redirect:
            return RedirectResponse(redirect.to, status_code=303, headers=_HEADERS)
        except errors.LgspError as exc:
            return console.error(request, exc, session)

    async def authed(request: Request,
                     work: Callable[[users.Session], Awaitable[Response]]) -> Response:
        try:
            session = await run_in_threadpool(console.session, request)
        except _RedirectError as redirect:
            return RedirectResponse(redirect.to, status_code=303, headers=_HEADERS)
        return await guarded(request, lambda: work(session), session)

    @router.get("/console")
    async def home() -> Response:
        return RedirectResponse("/console/documents", status_code=303)

    @router.get("/console/lang/{lang}")
    async def switch_language(lang: str, next: str | None = None) -> Response:
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(LANG_COOKIE, i18n.language(lang), max_age=365 * 86400,
                            samesite="strict", secure=console.secure, httponly=True)
        return response

    @router.get("/console/login")
    async def login_form(request: Request, next: str | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        response = console.render(request, "login.html", login_csrf=token,
                                  next=safe_next(next), failure=None)
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True,
                            samesite="strict", secure=console.secure, path="/console")
        return response

    @router.post("/console/login")
    async def login(request: Request) -> Response:
        try:
            raw = await read_capped(request, LOGIN_BODY_CAP)
        except errors.LgspError as exc:
            return console.error(request, exc, None)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        name, password = form.get("user", ""), form.get("password", "")
        target = safe_next(form.get("next"))
        cookie_token = request.cookies.get(LOGIN_COOKIE) or ""
        given = form.get("csrf", "")
        if not cookie_token or not hmac.compare_digest(cookie_token, given):
            return console.render(request, "error.html", 403, None, key="csrf", message=None)
        client = request.client.host if request.client else "?"
        try:
            console.throttle.check(name, client)
            session = await run_in_threadpool(users.login, store, name, password)
        except errors.TooManyRequests:
            failure = "login_throttled"
        except errors.Unauthenticated:
            console.throttle.failed(name, client)
            failure = "login_failed"
        else:
            console.throttle.succeeded(name, client)
            response = RedirectResponse(target, status_code=303, headers=_HEADERS)
            response.set_cookie(console.cookie, session.token, max_age=int(users.SESSION_S),
                                httponly=True, samesite="strict", secure=console.secure,
                                path="/")
            response.delete_cookie(LOGIN_COOKIE, path="/console")
            return response
        token = secrets.token_urlsafe(24)
        page = console.render(request, "login.html", 401, login_csrf=token, next=target,
                              failure=failure)
        page.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True,
                        samesite="strict", secure=console.secure, path="/console")
        return page

    @router.post("/console/logout")
    async def logout(request: Request) -> Response:
        async def work(session: users.Session) -> Response:
            console.check_csrf(session, await request.form())
            await run_in_threadpool(users.logout, store, session.token)
            response = RedirectResponse("/console/login", status_code=303, headers=_HEADERS)
            response.delete_cookie(console.cookie, path="/")
            return response
        return await authed(request, work)

    @router.get("/console/documents")
    async def documents(request: Request) -> Response:
        async def work(session: users.Session) -> Response:
            p = request.query_params
            query = views.Search(**{k: p.get(k, "")[:200] for k in (
                "document_id", "code", "sender", "recipient", "words", "since", "until",
                "state", "cursor")})
            page = await run_in_threadpool(views.search, store.engine, query,
                                           console.viewer(session.user), bus.settings.zone)
            return console.render(request, "documents.html", session=session, search=query,
                                  page=page)
        return await authed(request, work)

    @router.get("/console/documents/{doc_id}")
    async def document(request: Request, doc_id: str) -> Response:
        async def work(session: users.Session) -> Response:
            found = await run_in_threadpool(views.journey, store, doc_id[:64],
                                            console.viewer(session.user))
            return console.render(request, "document.html", session=session, j=found,
                                  d=found.detail)
        return await authed(request, work)

    @router.get("/console/queues")
    async def queues(request: Request) -> Response:
        async def work(session: users.Session) -> Response:
            console.require_province(session)
            destination = request.query_params.get("destination") or None

            def read() -> tuple[Any, Any, bool]:
                return (views.queues(store),
                        list_deliveries(store.engine, state="parked",
                                        destination=destination, limit=200),
                        actions.stop_switch(store))
            queue_rows, parked, stopped = await run_in_threadpool(read)
            return console.render(request, "queues.html", session=session, queues=queue_rows,
                                  parked=parked, stopped=stopped, now=time.time(),
                                  destination=destination or "")
        return await authed(request, work)

    @router.post("/console/actions")
    async def act(request: Request) -> Response:
        async def work(session: users.Session) -> Response:
            form = await request.form()
            console.check_csrf(session, form)
            console.require_operator(session)
            ids = [str(v) for v in form.getlist("ids")]
            action, reason = str(form.get("action") or ""), str(form.get("reason") or "")
            actor = f"console:{session.user.name}"
            if len(ids) == 1:
                try:
                    outcome = await run_in_threadpool(
                        actions.act, store, action, ids[0], actor=actor, reason=reason,
                        via="console", tally=console.tally)
                    result = actions.BulkResult(done=[outcome])
                except (errors.NotFound, errors.StateConflict) as exc:
                    result = actions.BulkResult(refused=[(ids[0], exc)])
            else:
                result = await run_in_threadpool(
                    actions.act_many, store, action, ids, actor=actor, reason=reason,
                    via="console", tally=console.tally)
            return console.render(request, "result.html", session=session, result=result,
                                  action=action, next=safe_next(str(form.get("next") or "")))
        return await authed(request, work)

    @router.post("/console/bulk-stop")
    async def bulk_stop(request: Request) -> Response:
        async def work(session: users.Session) -> Response:
            form = await request.form()
            console.check_csrf(session, form)
            console.require_operator(session)
            await run_in_threadpool(actions.set_stop_switch, store, form.get("on") == "1",
                                    actor=f"console:{session.user.name}")
            return RedirectResponse(safe_next(str(form.get("next") or "/console/queues")),
                                    status_code=303, headers=_HEADERS)
        return await authed(request, work)

    def state_context() -> dict[str, Any]:
        from bus.api.rest import readiness

        ok, checks = readiness(bus)
        config = bus.reloader.current()
        return {"ready": ok, "checks": checks, "loaded_at": config.loaded_at,
                "failures": bus.reloader.failures, "last_refusal": bus.reloader.last_refusal,
                "development": bus.credentials.development,
                "destinations": sorted(config.table.destinations)}

    @router.get("/console/state")
    async def state(request: Request) -> Response:
        async def work(session: users.Session) -> Response:
            console.require_province(session)
            context = await run_in_threadpool(state_context)
            return console.render(request, "state.html", session=session, explained=None,
                                  **context)
        return await authed(request, work)

    @router.post("/console/explain")
    async def explain(request: Request) -> Response:
        async def work(session: users.Session) -> Response:
            console.require_province(session)
            form = await request.form(max_files=1, max_fields=4, max_part_size=EXPLAIN_MAX)
            console.check_csrf(session, form)
            upload = form.get("packet")
            data = await upload.read(EXPLAIN_MAX + 1) if isinstance(upload, UploadFile) \
                else b""
            lines = await run_in_threadpool(explain_packet, bus, data)
            context = await run_in_threadpool(state_context)
            return console.render(request, "state.html", session=session, explained=lines,
                                  **context)
        return await authed(request, work)

    return router


def explain_packet(bus: Bus, data: bytes) -> list[str]:
    """``lgsp routes explain`` on an uploaded packet, against the configuration in force."""
    from bus.edxml import read_packet
    from bus.ingress import facts_of
    from bus.routing.routes import explain

    if not data:
        return ["InvalidRequest: choose an edXML file"]
    if len(data) > EXPLAIN_MAX:
        return [f"PayloadTooLarge: at most {EXPLAIN_MAX} bytes"]
    try:
        packet = read_packet(data).packet
    except errors.LgspError as exc:
        return [str(exc)]
    config = bus.reloader.current()
    return explain(facts_of(packet), config.table, config.directory)


def mount_static(app: Any) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

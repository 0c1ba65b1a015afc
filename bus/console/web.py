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
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.staticfiles import StaticFiles

from bus import errors
from bus.api import read_capped
from bus.app import Bus
from bus.console import actions, i18n, users, views
from bus.store.queries import Viewer, list_deliveries
from bus.store.tables import STATES

HERE: Final = Path(__file__).parent
COOKIE: Final = "lgsp_console"
LOGIN_COOKIE: Final = "lgsp_login"
LANG_COOKIE: Final = "lgsp_lang"
EXPLAIN_MAX: Final = 20 * 1024 * 1024
LOGIN_BODY_CAP: Final = 8 * 1024
"""Before a login nobody is known: the form is read only up to this."""
_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def _when(epoch: float | None, zone: Any) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S")


def _show(value: Any) -> str:
    """An event detail's value as a clerk reads it: lists joined, nested values as JSON."""
    if isinstance(value, list | tuple):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


class _RedirectError(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


def safe_next(value: str | None) -> str:
    """Only the console's own pages: an open redirect would send a clerk elsewhere."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console/documents"


class Console:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.throttle = users.LoginThrottle()
        self.tally = actions.tally_on(bus.metrics.registry)
        configured = bus.settings.console_secure_cookies
        self.secure = bool(bus.settings.tls_certfile) if configured is None else configured
        self.cookie = ("__Host-" + COOKIE) if self.secure else COOKIE

    # -- plumbing ---------------------------------------------------------------------
    def lang(self, request: Request) -> str:
        return i18n.language(request.cookies.get(LANG_COOKIE))

    def render(self, request: Request, template: str, status: int = 200,
               session: users.Session | None = None, **context: Any) -> HTMLResponse:
        lang = self.lang(request)
        zone = self.bus.settings.zone

        def t(key: str) -> str:
            return i18n.translate(key, lang)

        def label(action: str) -> str:
            return t("ev_" + action) if i18n.known("ev_" + action) else action

        body = _env.get_template(template).render(
            t=t, label=label, lang=lang, session=session, when=lambda e: _when(e, zone),
            when_iso=lambda s: _when(datetime.fromisoformat(s).timestamp(), zone), age=_age,
            show=_show,
            size=_size, path=request.url.path,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method == "GET" else "/console/documents",
            urlencode=urlencode, states=STATES, **context)
        return HTMLResponse(body, status_code=status, headers=_HEADERS)

    def session(self, request: Request) -> users.Session:
        found = users.session(self.bus.store, request.cookies.get(self.cookie))
        if found is None:
            raise _RedirectError("/console/login?" + urlencode({"next": safe_next(
                request.url.path + ("?" + request.url.query if request.url.query else ""))}))
        return found

    def viewer(self, user: users.User) -> Viewer:
        if user.role == "officer" and user.system:
            hosted = self.bus.reloader.current().directory.hosted_by(user.system)
            return Viewer(system=user.system, hosted=hosted)
        return Viewer(system="console", operator=True)

    @staticmethod
    def check_csrf(session: users.Session, form: FormData) -> None:
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(given, session.csrf):
            raise errors.NotPermitted("csrf")

    @staticmethod
    def require_operator(session: users.Session) -> None:
        if not session.user.may_act:
            raise errors.NotPermitted("forbidden")

    @staticmethod
    def require_province(session: users.Session) -> None:
        if session.user.role == "officer":
            raise errors.NotPermitted("forbidden")

    def error(self, request: Request, exc: errors.LgspError,
              session: users.Session | None) -> HTMLResponse:
        if isinstance(exc, errors.NotPermitted):
            key = "csrf" if exc.message == "csrf" else "forbidden"
            return self.render(request, "error.html", 403, session, message=None, key=key)
        if isinstance(exc, errors.NotFound):
            return self.render(request, "error.html", 404, session, message=None,
                               key="not_found")
        return self.render(request, "error.html", exc.http_status if exc.http_status < 500
                           else 500, session, key="bad_request",
                           message=f"{exc.code}: {exc.message}")


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

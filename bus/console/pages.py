"""The console's page plumbing behind :func:`bus.console.web.console_router`: cookies and
security headers, the one Jinja2 environment, the display filters, and :class:`Console`
(rendering, sessions, CSRF, rights, error pages).

:mod:`bus.console.web` re-exports the public names.
"""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from bus import errors
from bus.app import Bus
from bus.console import actions, i18n, users
from bus.store.queries import Viewer
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

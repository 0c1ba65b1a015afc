"""The operator console and operators' actions (issue 14).

:mod:`bus.console.actions` — resend, park, cancel: one code path for the REST API
(:mod:`bus.console.api`), ``lgsp deliveries`` (:mod:`bus.console.cli`) and the web
console (:mod:`bus.console.web`, pages read through :mod:`bus.console.views`).
:mod:`bus.console.users` — local users, Argon2id passwords, sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.app import Bus


def mount_console(app: Any, bus: Bus) -> None:
    """The action endpoints, the console's pages and its static files on ``app``."""
    from bus.console.api import actions_router
    from bus.console.web import console_router, mount_static

    app.include_router(actions_router(bus))
    app.include_router(console_router(bus))
    mount_static(app)

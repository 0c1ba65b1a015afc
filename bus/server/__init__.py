"""The bus's HTTP server: uvicorn with connection limits, TLS and proxy trust.

``lgsp serve`` builds it with :func:`build_server`; tests use the same function on a
socket of their own, so what they measure is what production runs.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.types import ASGIApp

from bus.server.limits import ServerLimits, raise_fd_limit
from bus.server.protocol import protocol_for
from bus.server.proxy import ProxiedClientCert
from bus.server.tls import CLIENT_CERT_KEY, uvicorn_tls
from bus.settings import Settings

__all__ = ["CLIENT_CERT_KEY", "ServerLimits", "build_server", "raise_fd_limit"]


def build_server(app: ASGIApp, settings: Settings, *, bind: bool = True,
                 **config: Any) -> uvicorn.Server:
    """A uvicorn server running ``app`` under the settings' limits.

    The descriptor limit is raised first because the default connection cap is derived
    from it. With ``bind=False`` the caller passes its own sockets to ``run()``."""
    fd_limit = raise_fd_limit()
    limits = ServerLimits.from_settings(settings, fd_limit=fd_limit)
    options: dict[str, Any] = {
        "log_config": None, "access_log": False, "ws": "none",
        "timeout_keep_alive": max(1, round(limits.keep_alive_s)),
        # X-Forwarded-For names the client only when a trusted proxy sent it; uvicorn's
        # default would believe any local process, and the console's per-address login
        # throttle would then count what the caller claims to be.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or "",
        **uvicorn_tls(settings), **config,
    }
    if bind:
        options.update(host=settings.host, port=settings.port)
    wrapped = ProxiedClientCert(app, settings.trusted_proxies)
    return uvicorn.Server(uvicorn.Config(wrapped, http=protocol_for(limits), **options))

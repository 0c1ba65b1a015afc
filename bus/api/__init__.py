"""The bus's HTTP doors (REST in :mod:`bus.api.rest`, SOAP 1.1 in :mod:`bus.api.soap`).

What both doors must do identically lives here: the body cap enforced while the bytes
arrive (a 150 MB cap is worthless if the whole upload is buffered first), counting
refusals that happen before :meth:`bus.app.Bus.submit` sees the packet, who is calling
(:func:`identify`, :func:`admit`: certificate or API key, then the system's rate, all
before a byte of the body is read), deciding what a caller may see, and the per-request
context (request id, logs, the last-resort 500).
Build the application with :func:`bus.api.rest.create_app`.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Mapping
from typing import Final

import structlog
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus import errors
from bus.app import Bus
from bus.auth import fingerprint_hex
from bus.store.queries import Viewer

API_KEY_HEADER: Final = "X-API-Key"
REQUEST_ID_HEADER: Final = "X-Request-Id"
CLIENT_CERT_EXTENSION: Final = "lgsp.client_cert"
"""``scope["extensions"][CLIENT_CERT_EXTENSION] = {"sha256": hex, "subject": str}``, set by
the HTTP server only for a certificate it verified (TLS, or a trusted proxy's headers)."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_PROBES: Final = frozenset({"/healthz", "/readyz", "/metrics"})

log = structlog.get_logger("lgsp.api")


def operators(bus: Bus) -> frozenset[str]:
    """Systems allowed to see every document; an attribute the Bus may grow, empty until then."""
    found: frozenset[str] = frozenset(getattr(bus, "operator_systems", ()))
    return found


def client_certificate(source: HTTPConnection | Scope) -> str | None:
    """SHA-256 (hex) of the verified client certificate of this request, if any."""
    scope = source.scope if isinstance(source, HTTPConnection) else source
    extensions = scope.get("extensions")
    cert = extensions.get(CLIENT_CERT_EXTENSION) if isinstance(extensions, Mapping) else None
    value = cert.get("sha256") if isinstance(cert, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return fingerprint_hex(value)
    except ValueError:
        return None


def identify(bus: Bus, source: HTTPConnection | Scope, api_key: str | None) -> str:
    """The calling system, or Unauthenticated: every door's one way of deciding it.

    A verified client certificate bound to a system names the caller (a key sent along
    must be that system's); otherwise the API key, unless its system requires a
    certificate. Reads headers and scope only, never the body.
    """
    system = bus.credentials.identify(api_key, certificate=client_certificate(source))
    structlog.contextvars.bind_contextvars(system=system)
    return system


def check_rate(bus: Bus, system: str) -> None:
    """TooManyRequests (``details['retry_after']`` seconds) when ``system`` is over its rate.

    For doors that authenticate in their own way (the /vxp facade's signatures): call it
    once per request, after the caller is verified, so nobody spends another's budget.
    """
    bus.rate_limiter.check(system, bus.credentials.rate_for(system))


def admit(bus: Bus, source: HTTPConnection | Scope, api_key: str | None) -> str:
    """:func:`identify`, then :func:`check_rate`: call it before reading the body."""
    system = identify(bus, source, api_key)
    check_rate(bus, system)
    return system


def viewer_for(bus: Bus, system: str) -> Viewer:
    directory = bus.reloader.current().directory
    return Viewer(system=system, hosted=directory.hosted_by(system),
                  operator=system in operators(bus))


def count_refusal(bus: Bus, exc: errors.LgspError, channel: str) -> None:
    """For refusals raised at the door, before ``Bus.submit`` (which counts its own)."""
    bus.metrics.refused.labels(exc.code, channel).inc()
    bus.evidence.refused(exc, channel)


def too_large(size: int | str, cap: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"the request body is {size} bytes; this bus accepts at most {cap} bytes per "
        "request", details={"limit": cap})


def check_declared_length(request: Request, cap: int) -> None:
    """A Content-Length that is not a number, or is over ``cap``, refused before a byte."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise errors.InvalidRequest("Content-Length is not a number of bytes")
        if int(declared) > cap:
            raise too_large(int(declared), cap)


async def read_capped(request: Request, cap: int) -> bytes:
    """The whole body, refusing as soon as it is known to exceed ``cap``.

    A declared Content-Length over the cap is refused without reading a byte; a chunked
    (or lying) body is refused as soon as the running total passes the cap, so memory
    never holds more than ``cap`` plus one network chunk.
    """
    check_declared_length(request, cap)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise too_large(f"more than {cap}", cap)
        chunks.append(chunk)
    return b"".join(chunks)


class RequestContext:
    """Request id, one access-log line per request, and the 500 nobody else produced.

    Runs inside FastAPI's exception handlers, so only exceptions no handler claimed get
    here: the traceback goes to the log with the request id, the caller gets the id and
    nothing else, and the exception is not re-raised (the server would print it again,
    outside structlog).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                given = value.decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.monotonic()
        status = {"code": 0}

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, tagged_send)
        except ClientDisconnect:
            # A client that hung up (or that the server cut off for stalling) hears nothing.
            log.info("request.abandoned", method=scope.get("method"), path=scope.get("path"))
        except Exception as exc:
            log.error("request.failed", method=scope.get("method"), path=scope.get("path"),
                      error=type(exc).__name__, traceback=traceback.format_exc())
            if status["code"]:
                raise
            await self._internal_error(tagged_send, request_id)
        finally:
            emit = log.debug if scope.get("path") in _PROBES else log.info
            emit("request", method=scope.get("method"), path=scope.get("path"),
                 status=status["code"], ms=round((time.monotonic() - started) * 1000, 1))
            structlog.contextvars.clear_contextvars()

    @staticmethod
    async def _internal_error(send: Send, request_id: str) -> None:
        body = (b'{"code":"InternalError","message":"the bus failed unexpectedly; a '
                b'submission may be retried safely; quote the request id","request_id":"'
                + request_id.encode() + b'"}')
        await send({"type": "http.response.start", "status": 500,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

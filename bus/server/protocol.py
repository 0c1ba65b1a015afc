"""uvicorn's httptools protocol with the limits a public door needs.

Stock uvicorn times out only a kept-alive connection between requests: a connection that
never sends, or sends its headers or body a byte at a time, or announces more body than
it sends, is held forever, and headers have no size limit. This subclass adds, per
connection:

* a header deadline from the connection's opening (or a kept-alive request's first byte)
  to the end of the headers; silent connections are closed, stalled ones get 408;
* a cap on request-line-plus-headers bytes, checked as bytes arrive, so a 200 MB header
  costs 32 KiB of buffering and one 431, not a minute of parsing;
* a body idle deadline, reset by every body byte and suspended while the application
  itself holds reading back (flow control), so only a silent client is cut off;
* a send deadline: a client that stops reading its answer for as long as the body idle
  deadline (the transport's buffer stays full) is disconnected;
* a connection cap: past it, the request is answered 503 TooManyConnections and the
  connection closed, instead of the process running out of descriptors silently;
* coded JSON (SDK-shaped under /vxp) for framing errors instead of uvicorn's plain text.

Refusals made before the application are written here and followed by a short lingering
close (the rest of the client's bytes read and dropped), so the client reads the answer
rather than a TCP reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from asyncio import TimerHandle
from typing import Any, ClassVar, Final, cast

import httptools
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from bus import errors
from bus.server import limits as lim
from bus.server.tls import CLIENT_CERT_KEY, verified_client_cert


class LimitedHttpProtocol(HttpToolsProtocol):
    """One connection; ``limits`` is set on the subclass :func:`protocol_for` makes."""

    limits: ClassVar[lim.ServerLimits]

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.timeout_keep_alive = self.limits.keep_alive_s  # type: ignore[assignment]
        self._in_head = True
        self._in_body = False
        self._head_bytes = 0
        self._head = bytearray()
        self._head_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._send_timer: TimerHandle | None = None
        self._refused = False
        self._client_cert: dict[str, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._client_cert = verified_client_cert(transport)
        if len(self.connections) > self.limits.max_connections:
            lim.log.warning("server.connection_cap", connections=len(self.connections),
                            cap=self.limits.max_connections)
            self.app = _over_cap
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
            room = self.limits.max_header_bytes - len(self._head)
            if room > 0:
                self._head += data[:room]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # WebSocket is off: the request was dispatched as plain HTTP, as stock does
        except httptools.HttpParserError as exc:
            self._refuse_framing(str(exc))
            return
        # Timers are armed only for what is still due after this segment: a request that
        # arrives whole (nearly all of them) costs no timer at all.
        if self._in_head:
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(self._too_large(), lim.request_path(self.url, bytes(self._head)),
                             linger=True)
            elif self._head_timer is None and self._head_bytes:
                self._head_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                        self._head_late)
        elif self._in_body:
            self._arm_body_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        self._head_bytes = 0
        self._head.clear()
        if self._client_cert is not None:
            extensions = cast(dict[str, Any], self.scope.setdefault("extensions", {}))
            extensions[CLIENT_CERT_KEY] = dict(self._client_cert)
        app = self.app
        if size > self.limits.max_header_bytes:
            self.app = _refusal_app(self._too_large())
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        _answer_in_one_write(self.cycle)
        self._in_body = True

    def on_message_complete(self) -> None:
        self._in_body = False
        self._cancel_body_timer()
        super().on_message_complete()
        self._in_head = True

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.body_idle_timeout_s,
                                                    self._send_late)

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().resume_writing()

    def _send_late(self) -> None:
        self._send_timer = None
        lim.log.info("server.send_stalled", seconds=self.limits.body_idle_timeout_s)
        # A reset, not a close: the kernel would otherwise go on trickling the unsent
        # megabytes to the stalled reader for minutes after the descriptor is gone.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _too_large(self) -> errors.HeadersTooLarge:
        return errors.HeadersTooLarge(
            f"the request line and headers exceed {self.limits.max_header_bytes} bytes; "
            "send large values in the body")

    def _head_late(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing() or not self._in_head:
            return
        if self._head_bytes == 0:
            self.transport.close()
            return
        self._refuse(errors.RequestTimeout(
            f"the request headers did not arrive within {self.limits.header_timeout_s:g} s"),
            lim.request_path(self.url, bytes(self._head)), status=408)

    def _body_late(self) -> None:
        self._body_timer = None
        if self._refused or self.transport.is_closing() or not self._in_body:
            return
        if self.flow.read_paused:
            self._arm_body_timer()
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()
            return
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(errors.RequestTimeout(
            f"the request body stopped arriving: nothing for "
            f"{self.limits.body_idle_timeout_s:g} s before the announced length was sent"),
            self.scope["raw_path"] if self.scope else b"", status=408)

    def _refuse_framing(self, reason: str) -> None:
        path = lim.request_path(self.url, bytes(self._head))
        exc, vxp_code = lim.framing_error(reason, path)
        lim.log.info("server.framing_error", reason=reason, path=path.decode("latin-1")[:200])
        self._refuse(exc, path, vxp_code=vxp_code, linger=True)

    def _refuse(self, exc: errors.LgspError, path: bytes, *, status: int | None = None,
                vxp_code: str | None = None, linger: bool = False) -> None:
        """Writes the coded answer and ends the connection; later bytes are dropped.

        A request read before the refused bytes (pipelined) may still be in the
        application: its answer is dropped, as for a client that went away, or, if it had
        begun, the connection is closed rather than two answers interleaved."""
        self._refused = True
        self._cancel_timers()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        body = lim.refusal_body(exc, path, vxp_code=vxp_code)
        self.transport.write(lim.raw_response(status or exc.http_status, body,
                                              lim.refusal_headers(exc, path, vxp_code=vxp_code)))
        if not linger:
            self.transport.close()
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(self.limits.linger_s, self.transport.close)

    def _arm_body_timer(self) -> None:
        self._cancel_body_timer()
        self._body_timer = self.loop.call_later(self.limits.body_idle_timeout_s,
                                                self._body_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None


_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_JOIN_BELOW: Final = 64 * 1024
"""A first body part up to this size goes out joined to the head; a larger one after it,
rather than copied to join it."""


class _HeldHead:
    """The transport as one response cycle sees it: the response head is held back until
    the first body part, and both go out in one write.

    Stock uvicorn writes the head and the body separately: two send() calls per answer,
    each of which, on loopback, also runs the client's side of TCP, and two segments.
    Everything but the head passes straight through (``100 Continue`` too); the head is
    written on its own when the body part is large, when the answer has no body (HEAD)
    and before the connection is closed."""

    __slots__ = ("_held", "_transport", "holding")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self.holding = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.holding and self._held is None and data != _CONTINUE:
            self._held = bytes(data)
            return
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _JOIN_BELOW:
                self._transport.write(held + bytes(data))
                return
            self._transport.write(held)
        self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _answer_in_one_write(cycle: RequestResponseCycle | None) -> None:
    """Routes ``cycle``'s writes through :class:`_HeldHead`: the head is held while
    ``http.response.start`` is sent and goes out with the first body part."""
    if cycle is None or isinstance(cycle.transport, _HeldHead):
        return
    held = _HeldHead(cycle.transport)
    send = cycle.send

    async def send_once(message: Any) -> None:
        start = message["type"] == "http.response.start"
        held.holding = start
        try:
            await send(message)
        finally:
            held.holding = False
            if not start:
                held.flush()

    cycle.transport = held  # type: ignore[assignment]
    cycle.send = send_once  # type: ignore[method-assign]


def _refusal_app(exc: errors.LgspError) -> Any:
    async def refuse(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        path: bytes = scope.get("raw_path", b"") or b""  # type: ignore[assignment]
        body = lim.refusal_body(exc, path)
        await send({"type": "http.response.start", "status": exc.http_status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode("ascii")),
                                (b"connection", b"close"), *lim.refusal_headers(exc, path),
                                *([(b"retry-after", b"2")] if exc.http_status == 503 else [])]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    return refuse


_over_cap = _refusal_app(errors.TooManyConnections(
    "the bus has reached its connection limit; retry in a few seconds"))


def protocol_for(server_limits: lim.ServerLimits) -> type[LimitedHttpProtocol]:
    """A protocol class bound to these limits, for ``uvicorn.Config(http=...)``."""
    return type("BusHttpProtocol", (LimitedHttpProtocol,), {"limits": server_limits})

"""What one client may hold of the server, and the coded answers when it holds too much.

Every refusal written below the application (framing errors, oversized headers, stalled
clients, the connection cap) carries the same ``{"code", "message"}`` body as the REST
door, or, under ``/vxp``, the axis SDK's ``{"status", "ErrorCode", "ErrorDesc"}``: the
vendor's Java SDK blanks any answer missing one of those three keys, so a plain-text 400
would reach the clerk as an empty error.
"""

from __future__ import annotations

import http
import json
import re
import resource
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

import structlog

from bus import errors
from bus.settings import Settings

log = structlog.get_logger("lgsp.server")

VXP_PREFIX: Final = b"/vxp"
VXP_MALFORMED: Final = "MalformedRequest"
VXP_DOWNLOAD: Final = b"downloadEdoc"
_UNSAFE_HEADER_TEXT: Final = re.compile(r"[^\x20-\x7e]")
NON_ASCII_HEADER: Final = (
    "a request header value holds a control byte: header values must be ASCII "
    "(percent-encode non-ASCII values). The axis SDK writes each character's low 8 bits, "
    "so a value such as 'Đ' (U+0110) arrives as the control byte 0x10.")


@dataclass(frozen=True)
class ServerLimits:
    max_header_bytes: int
    header_timeout_s: float
    body_idle_timeout_s: float
    keep_alive_s: float
    max_connections: int
    linger_s: float = 2.0
    """How long a refused client may go on sending (discarded) before the close, so the
    refusal is read instead of lost to a TCP reset."""

    @classmethod
    def from_settings(cls, settings: Settings, *, fd_limit: int | None = None) -> ServerLimits:
        connections = settings.max_connections
        if connections <= 0:
            soft = fd_limit if fd_limit is not None else resource.getrlimit(
                resource.RLIMIT_NOFILE)[0]
            connections = max(16, soft - settings.fd_reserve)
        return cls(max_header_bytes=settings.max_header_bytes,
                   header_timeout_s=settings.header_timeout_s,
                   body_idle_timeout_s=settings.body_idle_timeout_s,
                   keep_alive_s=settings.keep_alive_s, max_connections=connections)


def raise_fd_limit() -> int:
    """Lifts the soft descriptor limit to the hard one and returns the soft limit now in
    force: distributions start services at 1,024, which a thousand idle clients exhaust."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("server.fd_limit_unchanged", soft=soft, hard=hard, error=str(exc))
    return int(soft)


def is_vxp(path: bytes) -> bool:
    return path == VXP_PREFIX or path.startswith(VXP_PREFIX + b"/") \
        or path.startswith(VXP_PREFIX + b"?")


def is_vxp_download(path: bytes) -> bool:
    """downloadEdoc, as the facade reads its path (slashes collapsed, percent-decoded)."""
    if not is_vxp(path):
        return False
    operation = re.sub(rb"/+", b"/", unquote_to_bytes(path[len(VXP_PREFIX):])).strip(b"/")
    return operation == VXP_DOWNLOAD


def refusal_headers(exc: errors.LgspError, path: bytes, *,
                    vxp_code: str | None = None) -> list[tuple[bytes, bytes]]:
    """For downloadEdoc, the code and reason, since its refusals have an empty body."""
    if not is_vxp_download(path):
        return []
    reason = _UNSAFE_HEADER_TEXT.sub("?", exc.message)[:1000]
    return [(b"X-Lgsp-Error-Code", (vxp_code or exc.code).encode("ascii")),
            (b"X-Lgsp-Error", reason.encode("ascii"))]


def refusal_body(exc: errors.LgspError, path: bytes, *,
                 vxp_code: str | None = None) -> bytes:
    """The JSON a refused client reads; ASCII only, as the SDK decodes some answers so.
    Empty for downloadEdoc: the SDK saves whatever body it gets there as the document."""
    if is_vxp_download(path):
        return b""
    if is_vxp(path):
        answer = {"status": "FAIL", "ErrorCode": vxp_code or exc.code, "ErrorDesc": exc.message}
    else:
        answer = {"code": exc.code, "message": exc.message}
    return json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def raw_response(status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
                 ) -> bytes:
    """A complete HTTP/1.1 answer that ends the connection, for refusals made before (or
    instead of) the application."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}".encode("ascii"),
             b"content-type: application/json",
             b"content-length: " + str(len(body)).encode("ascii"),
             b"connection: close"]
    lines.extend(name + b": " + value for name, value in extra or [])
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def framing_error(reason: str, path: bytes) -> tuple[errors.LgspError, str | None]:
    """The refusal for a request the HTTP parser could not read, and its SDK code."""
    if "header value" in reason:
        message = NON_ASCII_HEADER
    else:
        message = (f"the request is not valid HTTP/1.1 ({reason.rstrip('.')}); check the "
                   "request line, header names and Content-Length")
    return errors.InvalidRequest(message), VXP_MALFORMED


def request_path(url: bytes, head: bytes) -> bytes:
    """The path of a request whose parsing may have failed half-way."""
    target = url
    if not target:
        first = head.split(b"\r\n", 1)[0].split(b" ")
        target = first[1] if len(first) > 1 else b""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        target = b"/" + rest.split(b"/", 1)[1] if b"/" in rest else b"/"
    return target.split(b"?", 1)[0]

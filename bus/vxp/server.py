"""The server side: authenticating a signed request and refusing it with a VXP error."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from bus.vxp.answers import fail_answer
from bus.vxp.wire import (
    _HASH_HEADER,
    _SIGN_HEADER,
    _SIGN_KEYS,
    AXIS_TZ,
    DEFAULT_SKEW_S,
    HEADER_PREFIX,
    ErrorCode,
    _unpadded_hmac,
    decode_to,
    hash_file,
    hash_header,
    parse_timestamp,
    strip_crlf,
)


class VxpError(Exception):
    """A request the axis refuses; ``answer()`` is the FAIL body to send back."""

    code: ClassVar[ErrorCode] = ErrorCode.MALFORMED_REQUEST
    http_status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def answer(self) -> dict[str, Any]:
        return fail_answer(self.code, self.message)


class MalformedRequest(VxpError):  # noqa: N818 - named as its ErrorCode
    """A required header is missing or unreadable (including the timestamp)."""


class UnknownSystem(VxpError):  # noqa: N818 - named as its ErrorCode
    code = ErrorCode.UNKNOWN_SYSTEM
    http_status = 401


class BadSignature(VxpError):  # noqa: N818 - named as its ErrorCode
    code = ErrorCode.BAD_SIGNATURE
    http_status = 401


class HeaderMismatch(VxpError):  # noqa: N818 - named as its ErrorCode
    """A header differs from the value the signature covers: tampering or a broken client."""

    code = ErrorCode.HEADER_MISMATCH
    http_status = 401


class ClockSkew(VxpError):  # noqa: N818 - named as its ErrorCode
    """Kept apart from authentication failures because the cure is NTP, not the secret."""

    code = ErrorCode.CLOCK_SKEW
    http_status = 401


class HashMismatch(VxpError):  # noqa: N818 - named as its ErrorCode
    code = ErrorCode.HASH_MISMATCH


class Replayed(VxpError):  # noqa: N818 - named as its ErrorCode
    """The same signed request twice within its window (bus.errors.Replayed's code)."""

    code = ErrorCode.REPLAYED
    http_status = 401


@dataclass(frozen=True)
class VerifiedRequest:
    """An authenticated request; ``params`` holds every ``XroadVnpt-*`` header by key."""

    system_id: str
    timestamp: datetime
    signed_keys: tuple[str, ...]
    params: dict[str, str]
    body: bytes
    packet: bytes
    spooled: Any = field(default=None, compare=False)
    """A large sendEdoc body spooled to disk as it arrived (``bus.api.bodies``), already
    checked against ``hash-file``: it is then the packet, and ``body``/``packet`` are
    empty."""

    def param(self, key: str) -> str | None:
        return self.params.get(key.lower())

    def recipients(self) -> list[str]:
        value = self.param("to")
        return decode_to(value) if value else []


def _lower(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name.lower(): value for name, value in items}


def _content_type_matches(signed: str, actual: dict[str, str]) -> bool:
    own = actual.get((HEADER_PREFIX + "Content-Type").lower())
    if own is not None:
        return own == signed
    real = actual.get("content-type", "")
    return real.split(";")[0].strip().lower() == signed.split(";")[0].strip().lower()


def non_ascii_header(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str | None:
    """The first ``XroadVnpt-*`` key whose value holds a byte ≥ 0x80, parameters before
    the signature headers; None when all are ASCII.

    The SDK writes each character's low 8 bits into the header but signs the UTF-8 text,
    so such a request can never verify: naming the key is the only useful answer.
    """
    found = [name for name, value in _lower(headers).items()
             if name.startswith(HEADER_PREFIX.lower()) and not value.isascii()]
    own = [n for n in found if n[len(HEADER_PREFIX):] not in (_SIGN_KEYS, _SIGN_HEADER,
                                                               _HASH_HEADER)]
    chosen = own or found
    return chosen[0][len(HEADER_PREFIX):] if chosen else None


def verify(headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes,
           secret_for: Callable[[str], str | None], *, now: datetime | None = None,
           skew_s: float = DEFAULT_SKEW_S, tz: tzinfo = AXIS_TZ,
           require_hash: bool = False) -> VerifiedRequest:
    """:func:`verify_headers` then :func:`check_body`: the whole request at once."""
    verified = verify_headers(headers, secret_for, now=now, skew_s=skew_s, tz=tz)
    return check_body(verified, body, require_hash=require_hash)


def verify_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]],
                   secret_for: Callable[[str], str | None], *, now: datetime | None = None,
                   skew_s: float = DEFAULT_SKEW_S, tz: tzinfo = AXIS_TZ) -> VerifiedRequest:
    """Authenticates one request from its headers alone, in the order that gives the
    clearest answer; the body is not needed, so a server can refuse before reading it.

    The HMAC is recomputed over the received ``sign-header`` string, never a
    re-serialisation; then every key it lists must equal the header actually sent,
    because the SDK's stale header map means the signature, not the operation, decides
    what is covered. The result has an empty body until :func:`check_body`.
    """
    actual = _lower(headers)

    def header(key: str) -> str:
        value = actual.get((HEADER_PREFIX + key).lower())
        if value is None:
            raise MalformedRequest(f"header {HEADER_PREFIX}{key} is missing")
        return value

    system_id = header("systemid").strip()
    keys = tuple(k.strip() for k in header(_SIGN_KEYS).split(";") if k.strip())
    sign_header = header(_SIGN_HEADER)
    presented = header(_HASH_HEADER).strip().lower()
    secret = secret_for(system_id)
    if secret is None:
        raise UnknownSystem(f"system {system_id!r} is not registered on this axis")
    expected = (hash_header(secret, sign_header), _unpadded_hmac(secret, sign_header))
    if not any(hmac.compare_digest(presented, candidate) for candidate in expected):
        raise BadSignature(f"{HEADER_PREFIX}hash-header does not match: the secret of "
                           f"system {system_id!r} differs")
    try:
        covered = json.loads(sign_header)
    except (ValueError, RecursionError):  # nested past the decoder's recursion limit
        raise MalformedRequest(f"{HEADER_PREFIX}sign-header is not JSON") from None
    if not isinstance(covered, dict):
        raise MalformedRequest(f"{HEADER_PREFIX}sign-header is not a JSON object")
    covered_lower = {str(k).lower(): v for k, v in covered.items()}
    for key in ("systemid", "timestamp"):
        if key not in {k.lower() for k in keys}:
            raise MalformedRequest(f"{HEADER_PREFIX}{key} is not among the signed headers")
    for key in keys:
        value = covered_lower.get((HEADER_PREFIX + key).lower())
        if not isinstance(value, str):
            raise MalformedRequest(f"signed key {key!r} has no string in sign-header")
        if key.lower() == "content-type":
            if not _content_type_matches(value, actual):
                raise HeaderMismatch("Content-Type differs from its signed value")
        elif actual.get((HEADER_PREFIX + key).lower()) != value:
            raise HeaderMismatch(f"header {HEADER_PREFIX}{key} differs from its signed value")
    stamp = header("timestamp")
    try:
        moment = parse_timestamp(stamp, tz)
    except ValueError as exc:
        raise MalformedRequest(str(exc)) from None
    offset = (moment - (now or datetime.now(UTC))).total_seconds()
    if abs(offset) > skew_s:
        raise ClockSkew(f"timestamp {stamp} is {offset:+.0f}s from the axis clock (allowed "
                        f"±{skew_s:.0f}s): synchronise the sending system's clock (NTP)")
    params = {name[len(HEADER_PREFIX):]: value for name, value in actual.items()
              if name.startswith(HEADER_PREFIX.lower())}
    return VerifiedRequest(system_id, moment, keys, params, b"", b"")


def check_body(verified: VerifiedRequest, body: bytes, *,
               require_hash: bool = False) -> VerifiedRequest:
    """The request with its body. ``require_hash`` is for sendEdoc: other operations may
    carry a stale ``hash-file`` of an earlier send, so it is checked only when asked for.
    The hash may cover the body or the body less its trailing CRLF (the SDK hashes the
    file). ``hash-file`` must be signed to count, or anyone could swap body and hash."""
    packet = strip_crlf(body)
    if require_hash:
        declared = verified.param("hash-file")
        if declared is None:
            raise MalformedRequest(f"header {HEADER_PREFIX}hash-file is missing")
        if "hash-file" not in {k.lower() for k in verified.signed_keys}:
            raise MalformedRequest(f"header {HEADER_PREFIX}hash-file is not among the signed "
                                   "headers (sign-header-key)")
        declared = declared.strip().lower()
        if hmac.compare_digest(declared, hash_file(body)):
            packet = body
        elif not hmac.compare_digest(declared, hash_file(packet)):
            raise HashMismatch(f"{HEADER_PREFIX}hash-file does not match the body")
    return replace(verified, body=body, packet=packet)

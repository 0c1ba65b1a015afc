"""The VXP wire protocol of the document axes (edxml.md §7, §7.1), with no I/O.

One module is shared by the national-axis client, its simulator and the bus's own
provincial-axis facade, so that the three can never disagree on a byte: systems that
embed the vendor SDK check nothing we do not also produce, and the real axis accepts
what the simulator accepts. Everything here is a pure function of its arguments (the
clock is a parameter), which is what lets the golden vectors in the tests pin it down.

Client side::

    creds = Credentials("000.00.00.H37", secret)
    request = send_edoc(creds, packet, sender="000.00.12.H37", recipients=["000.00.00.G22"])
    httpx.post(request.url(endpoint), headers=request.headers, content=request.body)
    answer = parse_answer(response.content)     # raises MalformedAnswer

Server side::

    try:
        verified = verify(headers, body, secrets.get)   # raises a VxpError subclass
    except VxpError as exc:
        reply(exc.answer())
    reply(ok_answer(DocId="..."))

Where §7.1 is silent the choices are marked *(assumed)* and are lenient when verifying.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

__all__ = [
    "AUTH_ERRORS", "AXIS_TZ", "AXIS_ZONE_NAME", "CONTENT_TYPE_EDOC", "CONTENT_TYPE_JSON",
    "DEFAULT_SKEW_S", "HEADER_PREFIX", "IDEMPOTENCY_KEY", "PROTOCOL_VERSION", "SERVICE_TYPE",
    "USER_AGENT",
    "AckStatus", "Agency", "Answer", "BadSignature", "ClockSkew", "Credentials",
    "ErrorCode", "HashMismatch", "HeaderMismatch", "MalformedAnswer", "MalformedRequest",
    "MessageType", "Operation", "ReceivedItem", "Replayed", "SentStatus", "SignedRequest",
    "UnknownSystem", "VerifiedRequest", "VxpError",
    "check_body", "count_receive", "decode_to", "delete_agency", "download_edoc",
    "edoc_body", "encode_answer", "encode_to", "fail_answer", "format_timestamp",
    "get_agencies_list", "get_agencies_list_qd20", "get_edoc", "get_received_edoc_list",
    "get_sent_edoc_list", "get_synchronize_unit", "hash_file", "hash_header",
    "non_ascii_header", "ok_answer", "parse_answer", "parse_timestamp", "register_agency",
    "send_edoc", "sign", "strip_crlf", "update_status", "verify", "verify_headers",
]

USER_AGENT: Final = "JAVASDKAgent/1.0.0 XRoad/VPCP"
PROTOCOL_VERSION: Final = "3.0.201608"
HEADER_PREFIX: Final = "XroadVnpt-"
SERVICE_TYPE: Final = "eDoc"
CONTENT_TYPE_EDOC: Final = "application/octet-stream"
CONTENT_TYPE_JSON: Final = "application/json"
DEFAULT_SKEW_S: Final = 300.0
#: The SDK formats its timestamp in the JVM's zone, with no marker; systems on the axes
#: run on Vietnam time (edxml.md §7.2). Anyone else must be registered with their zone.
AXIS_ZONE_NAME: Final = "Asia/Ho_Chi_Minh"
AXIS_TZ: Final[tzinfo] = ZoneInfo(AXIS_ZONE_NAME)
#: *(assumed, not in the SDK)* An extra signed key that lets an axis absorb a resend.
IDEMPOTENCY_KEY: Final = "idempotency-key"
CRLF: Final = b"\r\n"

_TIMESTAMP = re.compile(r"(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{4})")
_SIGN_KEYS = "sign-header-key"
_SIGN_HEADER = "sign-header"
_HASH_HEADER = "hash-header"


class Operation(StrEnum):
    SEND_EDOC = "sendEdoc"
    GET_RECEIVED_EDOC_LIST = "getReceivedEdocList"
    GET_EDOC = "getEdoc"
    UPDATE_STATUS = "updateStatus"
    GET_SENT_EDOC_LIST = "getSentEdocList"
    GET_AGENCIES_LIST = "getAgenciesList"
    REGISTER_AGENCY = "registerAgency"
    DELETE_AGENCY = "deleteAgency"
    DOWNLOAD_EDOC = "downloadEdoc"
    COUNT_RECEIVE_EDOC = "countReceiveEdoc"
    COUNT_RECEIVE_STATUS = "countReceiveStatus"
    GET_AGENCIES_LIST_QD20 = "getAgenciesListQD20"
    GET_SYNCHRONIZE_UNIT = "getSynchronizeUnit"

    @property
    def method(self) -> str:
        """The SDK GETs downloadEdoc and POSTs everything else (§7.2)."""
        return "GET" if self is Operation.DOWNLOAD_EDOC else "POST"


class MessageType(StrEnum):
    EDOC = "edoc"
    STATUS = "status"


class AckStatus(StrEnum):
    """What updateStatus tells the axis about a received item."""

    DONE = "done"
    FAIL = "fail"
    PROCESSING = "processing"


class ErrorCode(StrEnum):
    """``ErrorCode`` values this project answers; only "0" is confirmed *(others assumed)*."""

    OK = "0"
    MALFORMED_REQUEST = "MalformedRequest"
    UNKNOWN_SYSTEM = "UnknownSystem"
    BAD_SIGNATURE = "BadSignature"
    HEADER_MISMATCH = "HeaderMismatch"
    CLOCK_SKEW = "ClockSkew"
    HASH_MISMATCH = "HashMismatch"
    UNKNOWN_OPERATION = "UnknownOperation"
    REPLAYED = "Replayed"
    NOT_FOUND = "NotFound"
    REFUSED = "Refused"
    BUSY = "Busy"
    INTERNAL = "InternalError"


#: Codes that no resend can cure: the operator must fix system_id or the secret.
AUTH_ERRORS: Final = frozenset({ErrorCode.UNKNOWN_SYSTEM, ErrorCode.BAD_SIGNATURE,
                                ErrorCode.HEADER_MISMATCH})


# ---- primitives ------------------------------------------------------------------------

def format_timestamp(moment: datetime, tz: tzinfo = AXIS_TZ) -> str:
    """``ddMMyyyy'T'HHmmss`` then ``+`` and the milliseconds on four digits (not a zone)."""
    if moment.tzinfo is None:
        raise ValueError("timestamp needs an aware datetime")
    local = moment.astimezone(tz)
    return f"{local:%d%m%Y}T{local:%H%M%S}+{local.microsecond // 1000:04d}"


def parse_timestamp(text: str, tz: tzinfo = AXIS_TZ) -> datetime:
    """The instant a timestamp names, read in ``tz``; ValueError if it is not one."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"timestamp {text!r} is not ddMMyyyyTHHmmss+mmmm")
    day, month, year, hour, minute, second, millis = (int(g) for g in match.groups())
    if millis > 999:
        raise ValueError(f"timestamp {text!r} has {millis} milliseconds")
    return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=tz)


def hash_file(data: bytes) -> str:
    """SHA-256 as the SDK writes it: each byte in hex *without* zero padding (0x0d → d)."""
    return "".join(format(byte, "x") for byte in hashlib.sha256(data).digest())


def hash_header(secret: str, sign_header: str) -> str:
    """Lowercase hex HMAC-SHA256 keyed with the secret's UTF-8 bytes, never base64-decoded."""
    return hmac.new(secret.encode("utf-8"), sign_header.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def _unpadded_hmac(secret: str, sign_header: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), sign_header.encode("utf-8"),
                      hashlib.sha256).digest()
    return "".join(format(byte, "x") for byte in digest)


def encode_to(recipients: Iterable[str]) -> str:
    """A JSON string literal of a JSON array, quotes included: ``"[\\"A\\"]"``."""
    return json.dumps(json.dumps(list(recipients), separators=(",", ":")))


def decode_to(value: str) -> list[str]:
    """Recipients from ``to``; also takes a bare JSON array or a comma list, leniently."""
    text = value.strip()
    for _ in range(2):
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            break
        if isinstance(decoded, list):
            return [str(item).strip() for item in decoded if str(item).strip()]
        if not isinstance(decoded, str):
            break
        text = decoded.strip()
    return [part.strip() for part in text.strip("[]").split(",") if part.strip(' "')]


def edoc_body(packet: bytes) -> bytes:
    """The sendEdoc body as the SDK sends it: the file followed by CRLF."""
    return packet + CRLF


def strip_crlf(body: bytes) -> bytes:
    """The file inside a sendEdoc body: at most one trailing CRLF removed."""
    return body[:-2] if body.endswith(CRLF) else body


def _header_value(key: str, value: str) -> str:
    if not value.isascii() or any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"{HEADER_PREFIX}{key} must be printable ASCII: {value!r}")
    return value


# ---- client side ---------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    system_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SignedRequest:
    """One ready-to-send request; ``headers`` are in the order the SDK emits them."""

    operation: Operation
    headers: dict[str, str]
    body: bytes
    sign_header: str

    def url(self, endpoint: str) -> str:
        return f"{endpoint.rstrip('/')}/{self.operation.value}"

    @property
    def method(self) -> str:
        return self.operation.method


def sign(operation: Operation, creds: Credentials, params: Sequence[tuple[str, str]], *,
         body: bytes = b"", content_type: str = CONTENT_TYPE_JSON,
         now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """Signs ``systemid``, ``servicetype``, then ``params`` in order, ``timestamp`` and
    ``Content-Type``, which is the order the SDK adds them in (§7.1's example)."""
    moment = now or datetime.now(UTC)
    ordered: dict[str, str] = {"systemid": creds.system_id, "servicetype": SERVICE_TYPE}
    for key, value in params:
        ordered[key] = value
    ordered["timestamp"] = format_timestamp(moment, tz)
    ordered["Content-Type"] = content_type
    signed = {HEADER_PREFIX + key: _header_value(key, value) for key, value in ordered.items()}
    sign_header = json.dumps(signed, separators=(",", ":"))
    headers = {"User-Agent": USER_AGENT, f"{HEADER_PREFIX}version": PROTOCOL_VERSION}
    headers.update(signed)
    headers[HEADER_PREFIX + _SIGN_KEYS] = ";".join(ordered)
    headers[HEADER_PREFIX + _SIGN_HEADER] = sign_header
    headers[HEADER_PREFIX + _HASH_HEADER] = hash_header(creds.secret, sign_header)
    headers["Content-Type"] = content_type
    return SignedRequest(operation, headers, body, sign_header)


def send_edoc(creds: Credentials, packet: bytes, *, sender: str,
              recipients: Sequence[str] = (), message_type: MessageType = MessageType.EDOC,
              idempotency_key: str | None = None, now: datetime | None = None,
              tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """``to`` is sent for edocs only: a status travels to whom its ResponseFor names."""
    params = [("messagetype", message_type.value), ("hash-file", hash_file(packet)),
              ("from", sender)]
    if message_type is MessageType.EDOC:
        params.append(("to", encode_to(recipients)))
    if idempotency_key is not None:
        params.append((IDEMPOTENCY_KEY, idempotency_key))
    return sign(Operation.SEND_EDOC, creds, params, body=edoc_body(packet),
                content_type=CONTENT_TYPE_EDOC, now=now, tz=tz)


def get_received_edoc_list(creds: Credentials, message_type: MessageType, *,
                           now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_RECEIVED_EDOC_LIST, creds, [("messagetype", message_type.value)],
                now=now, tz=tz)


def get_edoc(creds: Credentials, doc_id: str, *, now: datetime | None = None,
             tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_EDOC, creds, [("docId", doc_id)], body=b"{}", now=now, tz=tz)


def update_status(creds: Credentials, doc_id: str, status: AckStatus, *,
                  now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.UPDATE_STATUS, creds, [("docId", doc_id), ("status", status.value)],
                body=b"{}", now=now, tz=tz)


def get_sent_edoc_list(creds: Credentials, doc_id: str, *, now: datetime | None = None,
                       tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_SENT_EDOC_LIST, creds, [("docId", doc_id)], now=now, tz=tz)


def get_agencies_list(creds: Credentials, *, now: datetime | None = None,
                      tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_AGENCIES_LIST, creds, [], now=now, tz=tz)


def download_edoc(creds: Credentials, doc_id: str, file_path: str = "", *,
                  now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """GET, no body; ``filePath`` is the caller's own folder, signed but meaningless here."""
    return sign(Operation.DOWNLOAD_EDOC, creds, [("docId", doc_id), ("filePath", file_path)],
                now=now, tz=tz)


def count_receive(creds: Credentials, message_type: MessageType, *,
                  now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """countReceiveEdoc or countReceiveStatus, by ``message_type``; body ``{}``."""
    operation = Operation.COUNT_RECEIVE_EDOC if message_type is MessageType.EDOC \
        else Operation.COUNT_RECEIVE_STATUS
    return sign(operation, creds, [("messagetype", message_type.value)], body=b"{}",
                now=now, tz=tz)


def get_agencies_list_qd20(creds: Credentials, *, now: datetime | None = None,
                           tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_AGENCIES_LIST_QD20, creds, [], now=now, tz=tz)


def get_synchronize_unit(creds: Credentials, *, since: str | None = None,
                         now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """``since`` *(assumed name)*: only units changed at or after that moment."""
    params = [("since", since)] if since is not None else []
    return sign(Operation.GET_SYNCHRONIZE_UNIT, creds, params, now=now, tz=tz)


def register_agency(creds: Credentials, agency: Agency, *, now: datetime | None = None,
                    tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """The agency travels as the (unsigned) JSON body, as the SDK sends it verbatim."""
    body = json.dumps(agency.to_json(), ensure_ascii=False, separators=(",", ":"))
    return sign(Operation.REGISTER_AGENCY, creds, [], body=body.encode("utf-8"), now=now,
                tz=tz)


def delete_agency(creds: Credentials, code: str, *, now: datetime | None = None,
                  tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.DELETE_AGENCY, creds, [("code", code)], body=b"{}", now=now, tz=tz)


# ---- server side ---------------------------------------------------------------------

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


# ---- answers -------------------------------------------------------------------------

def ok_answer(desc: str = "Success", **fields: Any) -> dict[str, Any]:
    return {"status": "OK", "ErrorCode": ErrorCode.OK.value, "ErrorDesc": desc, **fields}


def fail_answer(code: str, desc: str, **fields: Any) -> dict[str, Any]:
    return {"status": "FAIL", "ErrorCode": str(code), "ErrorDesc": desc, **fields}


def encode_answer(answer: Mapping[str, Any]) -> bytes:
    # ASCII only: the vendor SDK decodes some answers as US-ASCII.
    return json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class MalformedAnswer(ValueError):  # noqa: N818 - reads as the condition
    """The axis answered something that is not a VXP answer (proxy page, truncation)."""


@dataclass(frozen=True)
class Answer:
    ok: bool
    code: str
    desc: str
    fields: dict[str, Any]

    @property
    def doc_id(self) -> str | None:
        value = self.fields.get("DocId", self.fields.get("docId"))
        return None if value in (None, "") else str(value)

    @property
    def data(self) -> Any:
        return self.fields.get("data")

    def items(self) -> list[dict[str, Any]]:
        """``data`` as a list of objects; MalformedAnswer when it is anything else."""
        data = self.data if self.data is not None else []
        if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
            raise MalformedAnswer("data is not a list of objects")
        return data


def parse_answer(raw: bytes) -> Answer:
    """An answer is OK only when ``status`` is OK *and* ErrorCode is "0" (or absent)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedAnswer(f"not JSON: {raw[:120]!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise MalformedAnswer(f"no status field: {raw[:120]!r}")
    status = body["status"].strip().upper()
    if status not in ("OK", "FAIL"):
        raise MalformedAnswer(f"status {body['status']!r} is neither OK nor FAIL")
    code = str(body.get("ErrorCode", "0" if status == "OK" else "")).strip()
    desc = str(body.get("ErrorDesc") or "")
    fields = {k: v for k, v in body.items() if k not in ("status", "ErrorCode", "ErrorDesc")}
    return Answer(status == "OK" and code == "0", code, desc, fields)


def _text(item: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = item.get(name)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value)
    return ""


@dataclass(frozen=True)
class ReceivedItem:
    """One pending item of getReceivedEdocList."""

    doc_id: str
    service_type: str
    message_type: str
    created_time: str
    updated_time: str
    sender: str
    to: str
    status: str
    status_desc: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ReceivedItem:
        doc_id = _text(item, "docId", "DocId")
        if not doc_id:
            raise MalformedAnswer("a received item has no docId")
        return cls(doc_id, _text(item, "serviceType"), _text(item, "messageType"),
                   _text(item, "created_time"), _text(item, "updated_time"),
                   _text(item, "from"), _text(item, "to"), _text(item, "status"),
                   _text(item, "status_desc"))

    def to_json(self) -> dict[str, str]:
        return {"docId": self.doc_id, "serviceType": self.service_type,
                "messageType": self.message_type, "created_time": self.created_time,
                "updated_time": self.updated_time, "from": self.sender, "to": self.to,
                "status": self.status, "status_desc": self.status_desc}


@dataclass(frozen=True)
class SentStatus:
    """One recipient's row of getSentEdocList *(field names assumed)*."""

    to: str
    send_status: str
    send_status_desc: str
    receive_status: str
    receive_status_desc: str
    created_time: str
    updated_time: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> SentStatus:
        return cls(_text(item, "to", "receiver", "code"), _text(item, "sendStatus"),
                   _text(item, "sendStatusDesc"), _text(item, "receiveStatus"),
                   _text(item, "receiveStatusDesc"), _text(item, "created_time"),
                   _text(item, "updated_time"))

    def to_json(self) -> dict[str, str]:
        return {"to": self.to, "sendStatus": self.send_status,
                "sendStatusDesc": self.send_status_desc, "receiveStatus": self.receive_status,
                "receiveStatusDesc": self.receive_status_desc,
                "created_time": self.created_time, "updated_time": self.updated_time}


@dataclass(frozen=True)
class Agency:
    """One row of getAgenciesList."""

    code: str
    name: str
    id: str = ""
    pid: str = ""
    mail: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Agency:
        code = _text(item, "code")
        if not code:
            raise MalformedAnswer("an agency has no code")
        return cls(code, _text(item, "name"), _text(item, "id"), _text(item, "pid"),
                   _text(item, "mail"))

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "pid": self.pid, "code": self.code, "name": self.name,
                "mail": self.mail}

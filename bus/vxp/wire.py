"""The VXP constants, enumerations and byte-level primitives both sides build on."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

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

"""The wire format of HCM Egov Framework 2.0 as this project assumes it (see README.md).

Both sides of the conversation live in this repository — the adapter and the simulator
that stands in for the platform in tests — so the few facts they must agree on (paths,
the envelope, the ``Authorization`` encoding) are written once here. What is *confirmed*
about the real platform is only edxml.md §8: the base64-of-JSON ``Authorization`` header
with five keys and the ``{StatusCode, Status, Description, ResultObject}`` envelope; the
paths and field names of ``ResultObject`` are this project's assumption.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ACK_PATH",
    "AUTH_KEYS",
    "DOCUMENTS_PATH",
    "OUTBOX_PATH",
    "STATUSES_PATH",
    "Credentials",
    "Envelope",
    "decode_authorization",
    "envelope_bytes",
    "parse_envelope",
    "result_field",
]

API_PREFIX: Final = "/api/v1/edxml"
DOCUMENTS_PATH: Final = f"{API_PREFIX}/documents"
STATUSES_PATH: Final = f"{API_PREFIX}/statuses"
OUTBOX_PATH: Final = f"{API_PREFIX}/outbox"
ACK_PATH: Final = f"{API_PREFIX}/outbox/{{id}}/ack"

# The order edxml.md §8 lists them in; JSON objects are unordered, but a fixed order makes
# the header byte-for-byte reproducible, which helps whoever compares captures.
AUTH_KEYS: Final = ("AppName", "AccessKey", "SecretKey", "PartnerCode", "PartnerCodeCus")

_FAILURE_WORDS: Final = frozenset({"false", "fail", "failed", "failure", "error", "ko", "0"})


@dataclass(frozen=True)
class Credentials:
    """The five values the platform identifies a partner by."""

    app_name: str
    access_key: str
    secret_key: str
    partner_code: str
    partner_code_cus: str

    def as_json(self) -> dict[str, str]:
        values = (self.app_name, self.access_key, self.secret_key, self.partner_code,
                  self.partner_code_cus)
        return dict(zip(AUTH_KEYS, values, strict=True))

    def header(self) -> str:
        """The ``Authorization`` value: base64 of compact UTF-8 JSON, with no scheme word,
        exactly as §8 describes it (neither ``Basic`` nor ``Bearer`` is mentioned)."""
        text = json.dumps(self.as_json(), ensure_ascii=False, separators=(",", ":"))
        return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_authorization(value: str | None) -> dict[str, Any] | None:
    """The JSON object inside an ``Authorization`` value, or None when it is not one.

    Strict on purpose (validated base64, an object, every key a string): the simulator
    uses it, and a lenient simulator would hide an adapter that encodes the header wrongly.
    """
    if not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        decoded = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(decoded, dict) or not all(isinstance(k, str) for k in decoded):
        return None
    return decoded


@dataclass(frozen=True)
class Envelope:
    """One answer of the platform; ``status_code`` is None when it is not a number."""

    status_code: int | None
    status: object
    description: str
    result: Any

    @property
    def ok(self) -> bool:
        """Success needs a 2xx StatusCode and a Status that does not say otherwise.

        Platforms of this family often answer HTTP 200 with the failure inside the
        envelope, so HTTP 2xx alone is not trusted.
        """
        if self.status_code is None or not 200 <= self.status_code < 300:
            return False
        if isinstance(self.status, bool):
            return self.status
        if isinstance(self.status, str):
            return self.status.strip().lower() not in _FAILURE_WORDS
        return True


def _lookup(body: dict[str, Any], key: str) -> Any:
    """Field names compared without case: .NET and JavaScript serialisers disagree on it."""
    if key in body:
        return body[key]
    lowered = key.lower()
    return next((v for k, v in body.items() if k.lower() == lowered), None)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_envelope(content: bytes) -> Envelope | None:
    """The envelope in a body, or None when the body is not one (HTML from a proxy, …)."""
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    code = _lookup(body, "StatusCode")
    if code is None:
        return None
    description = _lookup(body, "Description")
    return Envelope(status_code=_as_int(code), status=_lookup(body, "Status"),
                    description="" if description is None else str(description),
                    result=_lookup(body, "ResultObject"))


def result_field(result: object, *names: str) -> Any:
    """The first of ``names`` present in a ResultObject mapping (case-insensitively)."""
    if not isinstance(result, dict):
        return None
    for name in names:
        value = _lookup(result, name)
        if value is not None:
            return value
    return None


def envelope_bytes(status_code: int, description: str, result: Any = None) -> bytes:
    """The envelope the simulator answers with; Status is a boolean, as assumed."""
    body = {"StatusCode": status_code, "Status": 200 <= status_code < 300,
            "Description": description, "ResultObject": result}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")

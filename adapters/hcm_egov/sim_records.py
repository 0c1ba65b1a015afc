"""The simulated platform's records (stored effects, outbox items, calls, the failure
mode a test sets) and its JSON envelope answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from adapters.hcm_egov.protocol import envelope_bytes

ADMIN_PREFIX: Final = "/_simulator"
CUT_AFTER: Final = "X-Simulator-Cut-After"
"""Not sent: tells the HTTP handler to close the connection after that many bytes."""
_JSON: Final = "application/json; charset=utf-8"
Answer = tuple[int, bytes, str, dict[str, str]]


@dataclass(frozen=True)
class Received:
    """One stored document or status: an *effect*, made once per idempotency key."""

    reference: str
    key: str
    kind: str
    recipient: str | None
    sender: str
    document_id: str | None
    status_code: str | None
    sha256: str
    body: bytes
    at: float


@dataclass
class OutboxItem:
    """A packet a commune clerk sent, waiting for the bus; ``ack`` once it answered."""

    id: str
    packet: bytes
    kind: str | None
    sender: str | None
    document_id: str | None
    created_at: float
    ack: dict[str, Any] | None = None


@dataclass(frozen=True)
class Call:
    """One request as received (headers lower-cased) and the status it got."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class _Rules:
    mode: str = "ok"  # ok | fail | slow | garble | cut
    status: int = 503
    times: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    path_contains: str | None = None


def _envelope(status: int, description: str, result: Any = None,
              extra: dict[str, str] | None = None) -> Answer:
    return status, envelope_bytes(status, description, result), _JSON, dict(extra or {})

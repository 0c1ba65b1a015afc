"""What crosses the Store's boundary: deliveries to make, receipts, claims, event rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, NamedTuple


@dataclass(frozen=True)
class NewDelivery:
    recipient: str
    effective_recipient: str
    destination: str
    rule: str
    is_copy: bool = False


@dataclass(frozen=True)
class Accepted:
    """The outcome of :meth:`Store.accept`: the receipt and whether it already existed."""

    receipt: dict[str, Any]
    document: str
    deliveries: tuple[tuple[str, str], ...]
    existing: bool
    receipt_json: str = ""
    """``receipt`` as the JSON object text the store keeps, when the store has it: a door
    answers with it instead of encoding the receipt a second time."""


class Due(NamedTuple):
    """A pending delivery whose time has come."""

    id: str
    destination: str
    attempts: int


@dataclass(frozen=True)
class Claim:
    """A delivery a worker now holds the lease on."""

    id: str
    document: str
    recipient: str
    effective_recipient: str
    destination: str
    attempts: int
    kind: str
    sender: str
    document_id: str
    payload_sha256: str
    created_at: float
    payload: bytes | None = None


_CLAIM_FIELDS = tuple(f.name for f in fields(Claim) if f.name != "payload")


_DELIVERY_COLUMNS = ("id", "document", "recipient", "effective_recipient", "destination",
                     "rule", "is_copy", "state", "attempts", "next_attempt_at", "created_at",
                     "updated_at")
_EVENT_COLUMNS = ("at", "document", "delivery", "actor", "action", "digest", "detail")


def _event(actor: str, action: str, at: float, *, document: str | None = None,
           delivery: str | None = None, digest: str | None = None,
           detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"at": at, "document": document, "delivery": delivery, "actor": actor,
            "action": action, "digest": digest,
            "detail": json.dumps(detail, ensure_ascii=False) if detail else None}


def event_row(actor: str, action: str, at: float, *, document: str | None = None,
              delivery: str | None = None, digest: str | None = None,
              detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ``events`` row for :meth:`Store.accept`'s ``within`` hook (the one event format)."""
    return _event(actor, action, at, document=document, delivery=delivery, digest=digest,
                  detail=detail)


EVENT_COLUMNS = _EVENT_COLUMNS

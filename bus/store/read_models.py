"""What the read side answers with: the viewer, the response models and the parsed list query.

Kept apart from :mod:`bus.store.queries` (which re-exports every name) so the shapes the
doors serialise can be read without the SQL that fills them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel
from sqlalchemy.engine import Row

from bus.lifecycle.views import LinkView, RecipientView

MAX_LIMIT: Final = 500
DEFAULT_LIMIT: Final = 50

AnyRow = Row[*tuple[Any, ...]]
TransportState = Literal["pending", "queued", "delivering", "awaiting", "delivered", "refused",
                         "parked", "cancelled", "withdrawn"]
DocumentKind = Literal["edoc", "status"]


@dataclass(frozen=True)
class Viewer:
    """Who is asking; ``hosted`` comes from the directory in force at the time of the query."""

    system: str
    hosted: frozenset[str] = frozenset()
    operator: bool = False


class HistoryEntry(BaseModel):
    at: str
    action: str
    actor: str
    detail: dict[str, Any] | None = None


class DeliveryView(BaseModel):
    id: str
    recipient: str
    effective_recipient: str
    destination: str
    rule: str
    is_copy: bool
    state: TransportState
    attempts: int
    last_error: str | None = None
    receipt_reference: str | None = None
    delivered_at: str | None = None
    history: list[HistoryEntry]


class BusinessStatusView(BaseModel):
    code: str
    meaning: str
    organ_id: str
    reported_at: str | None = None
    received_at: str
    status_document: str | None = None


class DocumentDetail(BaseModel):
    id: str
    kind: DocumentKind
    sender: str
    system: str
    document_id: str
    code: str | None = None
    subject: str | None = None
    business: str | None = None
    status_code: str | None = None
    refers_to: str | None = None
    received_at: str
    history: list[HistoryEntry]
    deliveries: list[DeliveryView]
    business_statuses: list[BusinessStatusView]
    latest_statuses: list[BusinessStatusView]
    supersedes: list[LinkView] = []
    """The originals this revoke/update/replace document names (bus.lifecycle)."""
    superseded_by: list[LinkView] = []
    """Revoke/update/replace documents naming this one; ``withdrawn`` deliveries of it."""
    recipients: list[RecipientView] = []
    """Each recipient's delivery state, current business status, timeline, recall answer."""


class DeliverySummary(BaseModel):
    recipient: str
    effective_recipient: str
    destination: str
    state: TransportState


class DocumentSummary(BaseModel):
    id: str
    kind: DocumentKind
    sender: str
    document_id: str
    code: str | None = None
    subject: str | None = None
    refers_to: str | None = None
    received_at: str
    deliveries: list[DeliverySummary]


class DocumentPage(BaseModel):
    items: list[DocumentSummary]
    next_cursor: str | None = None


@dataclass(frozen=True)
class ListQuery:
    sender: str | None = None
    recipient: str | None = None
    state: str | None = None
    kind: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[float, str] | None = None

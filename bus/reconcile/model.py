"""What a reconciliation compares and what it keeps, independent of any one axis client.

The national axis adapter (or any other axis-like adapter) offers an :class:`AxisLedger`
through a ``ledger()`` method; the comparison in :mod:`bus.reconcile.engine` only speaks
these types, so the bus never imports an adapter package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from bus.adapter import Inbox


class Kind(StrEnum):
    """The four ways the bus's books and the axis' can disagree."""

    SENT_UNCONFIRMED = "sent_unconfirmed"
    """The bus delivered through the axis (it holds the axis DocId), the axis has no
    confirmation for that recipient, or reports the send failed."""
    CONFIRMED_UNKNOWN = "confirmed_unknown"
    """The axis confirms a send from this province that the bus has no delivery for."""
    RECEIVED_NOT_FETCHED = "received_not_fetched"
    """The axis holds a document for this province that the bus never recorded."""
    STATUS_MISSING = "status_missing"
    """The axis holds a status packet for this province that the bus never recorded."""
    RECIPIENT_REFUSED = "recipient_refused"
    """The axis confirms the send, but says the recipient's system refused the document
    (receiveStatus fail): the bus shows it delivered, the recipient does not have it."""


@dataclass(frozen=True)
class AxisSent:
    """One recipient row of the axis' confirmations (getSentEdocList)."""

    doc_id: str
    to: str
    send_status: str
    send_status_desc: str = ""
    receive_status: str = ""

    @property
    def failed(self) -> bool:
        return self.send_status.strip().lower() in FAILED_SEND

    @property
    def refused_by_recipient(self) -> bool:
        return self.receive_status.strip().lower() in FAILED_SEND


FAILED_SEND = frozenset({"fail", "failed", "error"})


@dataclass(frozen=True)
class AxisReceived:
    """One item the axis holds (or held) for this province (getReceivedEdocList)."""

    doc_id: str
    message_type: str
    sender: str
    status: str
    created_at: float | None = None
    """Epoch seconds of the axis' created_time, when it could be read."""


class AxisLedger(Protocol):
    """An axis client's view of what it sent and received, for one day."""

    def sent_on(self, day: date) -> list[AxisSent] | None:
        """Every confirmation row of documents this province sent that day; None when the
        axis cannot list by day (then only the bus's own sends are checked)."""

    def confirmations(self, doc_id: str) -> list[AxisSent] | None:
        """The rows of one sent docId; None when the axis does not know the docId."""

    def received_on(self, day: date) -> list[AxisReceived]:
        """Items the axis holds for this province, created that day (pending or not)."""

    def fetch(self, inbox: Inbox, doc_id: str) -> str:
        """Fetches one item through the ordinary inbound path (source dedup, acknowledge);
        returns the bus document id; raises Retry/Refuse or the bus's LgspError."""

    def close(self) -> None: ...


class MismatchView(BaseModel):
    kind: Kind
    destination: str
    axis_doc_id: str | None = None
    message_type: str | None = None
    document: str | None = None
    delivery: str | None = None
    organ_id: str | None = None
    detail: str
    action: str | None = None


class RunSummary(BaseModel):
    id: str
    day: str
    trigger: str
    actor: str
    state: str
    started_at: str
    finished_at: str | None = None
    counts: dict[str, int]
    mismatches: int
    notes: list[str] = []
    error: str | None = None


class RunDetail(RunSummary):
    items: list[MismatchView]


class RunPage(BaseModel):
    items: list[RunSummary]


COUNT_NAMES: tuple[str, ...] = (
    "sent", "confirmed", "sent_unconfirmed", "confirmed_unknown", "received",
    "recorded", "received_not_fetched", "status_missing", "refetched", "refused_at_fetch",
    "in_flight", "recipient_refused",
)


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNT_NAMES, 0)


def mismatch(kind: Kind, destination: str, detail: str, **fields: Any) -> MismatchView:
    return MismatchView(kind=kind, destination=destination, detail=detail, **fields)

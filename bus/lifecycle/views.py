"""The lifecycle as ``GET /api/v1/edocs/{id}`` shows it: links to what superseded a
document (or what it supersedes), and the business status of each recipient.

A business status row carries the code of the organisation that reported it, which may be
the code a document was addressed to or, after a merger, its successor; it is filed under
the recipient whose written or effective code it names. A row naming neither (an answer
recorded before the sender check existed) keeps its own entry, so nothing is hidden.
Ids of linked documents follow the read side's rule: shown only to a caller who may read
them (:func:`bus.store.queries.readable`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from bus.store.tables import deliveries, document_links, documents

ANSWERS = ("01", "02", "03", "04", "05", "06")
RECALL_ANSWERS = ("15", "16")


class LinkView(BaseModel):
    kind: str
    document: str | None = None
    """The other document's id; None when the caller may not read it."""
    document_id: str
    at: str
    withdrawn: int = 0
    unnamed_recipients: list[str] = []
    """Recipients of the original the superseding document does not address."""
    added_recipients: list[str] = []
    """Those a route's recall_follows_original added to the superseding document."""


class StatusStep(BaseModel):
    code: str
    meaning: str
    organ_id: str
    reported_at: str | None = None
    received_at: str


class RecipientView(BaseModel):
    """One recipient organisation of a document: where its copy is and what its clerk did."""

    recipient: str
    effective_recipient: str
    delivery_state: str
    business_status: str | None = None
    """The last code 01-06 it reported; None while it never answered."""
    business_meaning: str | None = None
    never_answered: bool
    recall: str | None = None
    """requested (13 sent to it), accepted (15), refused (16), or flagged: a recall of the
    document left this recipient out."""
    timeline: list[StatusStep]


class Lifecycle(BaseModel):
    supersedes: list[LinkView]
    superseded_by: list[LinkView]
    recipients: list[RecipientView]


def _links(conn: Connection, doc_id: str, *, original: bool,
           iso: Callable[[float | None], str | None]) -> list[tuple[str, LinkView]]:
    link, d = document_links.c, documents.c
    mine, other = (link.original, link.superseding) if original else \
        (link.superseding, link.original)
    rows = conn.execute(sa.select(link.kind, other.label("other"), d.document_id, link.at,
                                  link.withdrawn, link.unnamed, link.added)
                        .join(documents, d.id == other).where(mine == doc_id)
                        .order_by(link.at, link.id)).all()
    return [(r.other, LinkView(kind=r.kind, document=r.other, document_id=r.document_id,
                               at=iso(r.at) or "", withdrawn=r.withdrawn or 0,
                               unnamed_recipients=json.loads(r.unnamed or "[]"),
                               added_recipients=json.loads(r.added or "[]")))
            for r in rows]


def lifecycle_of(conn: Connection, doc_id: str, statuses: Sequence[Any],
                 readable: Callable[[Iterable[str]], set[str]],
                 iso: Callable[[float | None], str | None]) -> Lifecycle:
    """``statuses`` are the document's business statuses as the read side shows them
    (objects with code, meaning, organ_id, reported_at, received_at), oldest first."""
    down = _links(conn, doc_id, original=True, iso=iso)
    up = _links(conn, doc_id, original=False, iso=iso)
    shown = readable(other for other, _ in down + up)
    for other, link in down + up:
        if other not in shown:
            link.document = None
    flagged = {code for _, link in down for code in link.unnamed_recipients}
    dl = deliveries.c
    rows = conn.execute(sa.select(dl.recipient, dl.effective_recipient, dl.state)
                        .where(dl.document == doc_id, dl.is_copy.is_(False))
                        .order_by(dl.created_at, dl.recipient)).all()
    recipients: list[RecipientView] = []
    owner: dict[str, RecipientView] = {}
    for row in rows:
        if row.effective_recipient in owner:
            continue
        view = RecipientView(recipient=row.recipient, effective_recipient=row.effective_recipient,
                             delivery_state=row.state, never_answered=True, timeline=[],
                             recall="flagged" if row.effective_recipient in flagged else None)
        recipients.append(view)
        owner.setdefault(row.recipient, view)
        owner[row.effective_recipient] = view
    for status in statuses:
        found = owner.get(status.organ_id)
        if found is None:
            found = owner[status.organ_id] = RecipientView(
                recipient=status.organ_id, effective_recipient=status.organ_id,
                delivery_state="none", never_answered=True, timeline=[])
            recipients.append(found)
        view = found
        view.timeline.append(StatusStep(code=status.code, meaning=status.meaning,
                                        organ_id=status.organ_id,
                                        reported_at=status.reported_at,
                                        received_at=status.received_at))
        if status.code in ANSWERS:
            view.business_status, view.business_meaning = status.code, status.meaning
            view.never_answered = False
        elif status.code == "13":
            view.recall = "requested"
        elif status.code in RECALL_ANSWERS:
            view.recall = "accepted" if status.code == "15" else "refused"
    return Lifecycle(supersedes=[v for _, v in up], superseded_by=[v for _, v in down],
                     recipients=recipients)

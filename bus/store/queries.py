"""The read side: what a connected system may see of documents, and how it pages through them.

REST and SOAP answer status questions from here, so visibility is decided in exactly one
place: a system sees what it submitted and what was addressed to an organisation it hosts
(before or after successor resolution), an operator sees everything, and anything else
does not exist as far as the caller can tell (``NotFound``, never "forbidden", so that ids
cannot be probed). An id that links two documents (a status's ``refers_to``, a business
status's ``status_document``) is shown only to a caller who may read the other one too.
Plain SQLAlchemy Core on the tables of :mod:`bus.store`, for SQLite
and PostgreSQL alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bus import errors
from bus.edxml.model import STATUS_MEANINGS, TIMESTAMP_FORMAT
from bus.lifecycle.views import lifecycle_of
from bus.store.query_params import (
    decode_cursor,
    encode_cursor,
    iso,
    list_query,
    parse_time,
)
from bus.store.read_models import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AnyRow,
    BusinessStatusView,
    DeliverySummary,
    DeliveryView,
    DocumentDetail,
    DocumentKind,
    DocumentPage,
    DocumentSummary,
    HistoryEntry,
    ListQuery,
    TransportState,
    Viewer,
)
from bus.store.tables import (
    READ_ONLY,
    business_statuses,
    deliveries,
    documents,
    events,
)
from bus.store.window import (
    Walk,
    newest_delivered,
    newest_first,
    newest_visible,
    walk_visible,
    walks_for,
)

__all__ = [
    "DEFAULT_LIMIT", "MAX_LIMIT", "AnyRow", "BusinessStatusView", "DeliveryRow",
    "DeliverySummary", "DeliveryView", "DocumentDetail", "DocumentKind", "DocumentPage",
    "DocumentSummary", "HistoryEntry", "ListQuery", "TransportState", "Viewer",
    "addressed_by_probe", "addressed_to", "decode_cursor", "document_detail",
    "encode_cursor", "in_state", "iso",
    "latest_per_organ", "list_deliveries", "list_documents", "list_query", "parse_time",
    "readable", "visible_by_probe", "visible_in_window", "visible_to",
]


def visible_to(viewer: Viewer) -> sa.ColumnElement[bool]:
    """For known documents (one id, a page's links): each is probed through its own
    deliveries. A search uses :func:`visible_in_window` instead."""
    if viewer.operator:
        return sa.true()
    conditions: list[sa.ColumnElement[bool]] = [documents.c.system == viewer.system]
    if viewer.hosted:
        hosted = sorted(viewer.hosted)
        conditions.append(sa.exists().where(
            deliveries.c.document == documents.c.id,
            sa.or_(deliveries.c.recipient.in_(hosted),
                   deliveries.c.effective_recipient.in_(hosted))))
    return sa.or_(*conditions)


def visible_by_probe(viewer: Viewer) -> sa.ColumnElement[bool]:
    """:func:`visible_to` for a search that walks a filter's index newest first
    (:func:`bus.store.window.newest_delivered`): each document it passes is tested from
    ix_deliveries_document_recipients alone, and the walk stops at its page.

    A scalar subquery, not ``EXISTS``: PostgreSQL may run an ``EXISTS`` as a hash of
    every delivery to the system's organisations, built before the first row (30,000 of
    them a search, at a million documents), and SQLite reads a ``SELECT *``
    subquery's rows instead of the covering index.
    """
    if viewer.operator:
        return sa.true()
    conditions: list[sa.ColumnElement[bool]] = [documents.c.system == viewer.system]
    if viewer.hosted:
        hosted = sorted(viewer.hosted)
        conditions.append(sa.select(deliveries.c.document).where(
            deliveries.c.document == documents.c.id,
            sa.or_(deliveries.c.recipient.in_(hosted),
                   deliveries.c.effective_recipient.in_(hosted))).limit(1)
            .scalar_subquery().is_not(None))
    return sa.or_(*conditions)


def addressed_by_probe(organ: str) -> sa.ColumnElement[bool]:
    """:func:`addressed_to` tested per document from ix_deliveries_document_recipients,
    for a walk that passes few documents (bus.store.window.newest_visible)."""
    dl = deliveries.c
    return sa.select(dl.document).where(
        dl.document == documents.c.id,
        sa.or_(dl.recipient == organ, dl.effective_recipient == organ)).limit(1) \
        .scalar_subquery().is_not(None)


def visible_in_window(viewer: Viewer, since: float | None,
                      until: float | None = None) -> sa.ColumnElement[bool]:
    """:func:`visible_to` for a search of the documents received from ``since`` on (a
    window of :mod:`bus.store.window`): the system's documents through its index, those
    addressed to its organisations through the recipient indexes from ``since`` on."""
    if viewer.operator:
        return sa.true()
    conditions: list[sa.ColumnElement[bool]] = [documents.c.system == viewer.system]
    if viewer.hosted:
        conditions.append(addressed_to(sorted(viewer.hosted), since, until))
    return sa.or_(*conditions)


def _between(since: float | None, until: float | None) -> list[sa.ColumnElement[bool]]:
    """A delivery is created with its document, ``created_at`` equal to its
    ``received_at`` (tables.deliveries), so bounding the deliveries by the window of the
    documents loses nothing and keeps the subquery to the window's rows."""
    out = [] if since is None else [deliveries.c.created_at >= since]
    return out if until is None else [*out, deliveries.c.created_at <= until]


def addressed_to(organs: Sequence[str], since: float | None = None,
                 until: float | None = None) -> sa.ColumnElement[bool]:
    """Documents with a delivery to one of ``organs``, before or after successor resolution.

    An uncorrelated ``IN`` over the deliveries' recipient indexes, not a correlated
    ``EXISTS``: an organisation receives a small share of a province's mail, and the
    ``EXISTS`` made every search walk the documents newest first, probing each one's
    deliveries, until a page was found — all million of them for an organisation that
    received nothing (tests/bench/bench_scale.py; the plans are in the dbscale report).
    """
    dl = deliveries.c
    return documents.c.id.in_(sa.union(
        sa.select(dl.document).where(dl.recipient.in_(organs), *_between(since, until)),
        sa.select(dl.document).where(dl.effective_recipient.in_(organs),
                                     *_between(since, until))))


def in_state(state: str, since: float | None = None,
             until: float | None = None) -> sa.ColumnElement[bool]:
    """Documents with a delivery in ``state``.

    Every state but ``delivered`` holds a small, bounded share of the deliveries (work
    under way, and the failures an operator has to look at), so the documents are found
    through ``ix_deliveries_state``; the correlated ``EXISTS`` let SQLite probe each
    document against every parked delivery (quadratic). ``delivered`` is nearly every
    delivery: there the newest documents match at once and ``EXISTS`` stops early,
    where an ``IN`` would first collect millions of ids.
    """
    dl = deliveries.c
    if state == "delivered":
        return sa.exists().where(dl.document == documents.c.id, dl.state == state)
    return documents.c.id.in_(sa.select(dl.document).where(dl.state == state,
                                                             *_between(since, until)))


def _history(rows: Iterable[AnyRow]) -> list[HistoryEntry]:
    out = []
    for row in rows:
        detail: dict[str, Any] | None = None
        if row.detail:
            try:
                loaded = json.loads(row.detail)
            except ValueError:
                loaded = {"text": row.detail}
            detail = loaded if isinstance(loaded, dict) else {"value": loaded}
        out.append(HistoryEntry(at=iso(row.at) or "", action=row.action, actor=row.actor,
                                detail=detail))
    return out


def _reported(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT).isoformat()
    except ValueError:
        return value


def readable(conn: Connection, ids: Iterable[str | None], viewer: Viewer) -> set[str]:
    """Which of ``ids`` the viewer may read: an id links one document to another (a
    status to what it answers, a document to its statuses), and showing it to a system
    that may not read the other document would hand out what ``NotFound`` hides."""
    wanted = {i for i in ids if i}
    if not wanted or viewer.operator:
        return wanted
    return set(conn.execute(sa.select(documents.c.id).where(
        documents.c.id.in_(sorted(wanted)), visible_to(viewer))).scalars())


def _statuses(conn: Connection, doc_id: str, viewer: Viewer) -> list[BusinessStatusView]:
    bs = business_statuses.c
    rows = conn.execute(sa.select(bs.code, bs.organ_id, bs.reported_at, bs.received_at,
                                  bs.status_document)
                        .where(bs.document == doc_id).order_by(bs.received_at, bs.id)).all()
    shown = readable(conn, (r.status_document for r in rows), viewer)
    return [BusinessStatusView(code=r.code, meaning=STATUS_MEANINGS.get(r.code, "reserved"),
                               organ_id=r.organ_id, reported_at=_reported(r.reported_at),
                               received_at=iso(r.received_at) or "",
                               status_document=r.status_document
                               if r.status_document in shown else None) for r in rows]


def latest_per_organ(statuses: Sequence[BusinessStatusView]) -> list[BusinessStatusView]:
    """The last status each organisation reported, in the order they were received."""
    latest: dict[str, BusinessStatusView] = {}
    for status in statuses:
        latest.pop(status.organ_id, None)
        latest[status.organ_id] = status
    return list(latest.values())


def document_detail(engine: Engine, doc_id: str, viewer: Viewer) -> DocumentDetail:
    """Everything known about one document, or ``NotFound`` if it is not the viewer's."""
    d, dl, ev = documents.c, deliveries.c, events.c
    with engine.connect() as conn:
        doc = conn.execute(sa.select(documents).where(d.id == doc_id, visible_to(viewer))).first()
        if doc is None:
            raise errors.NotFound(f"no document {doc_id!r} is visible to system "
                                  f"'{viewer.system}'")
        rows = conn.execute(sa.select(deliveries).where(dl.document == doc_id)
                            .order_by(dl.created_at, dl.recipient, dl.destination)).all()
        trail = conn.execute(sa.select(ev.at, ev.action, ev.actor, ev.detail, ev.delivery)
                             .where(ev.document == doc_id).order_by(ev.at, ev.id)).all()
        statuses = _statuses(conn, doc_id, viewer)
        refers_to = doc.refers_to if doc.refers_to in readable(conn, [doc.refers_to],
                                                                viewer) else None
        life = lifecycle_of(conn, doc_id, statuses,
                            lambda ids: readable(conn, ids, viewer), iso)
    by_delivery: dict[str | None, list[AnyRow]] = {}
    for event in trail:
        by_delivery.setdefault(event.delivery, []).append(event)
    views = [DeliveryView(
        id=r.id, recipient=r.recipient, effective_recipient=r.effective_recipient,
        destination=r.destination, rule=r.rule, is_copy=bool(r.is_copy), state=r.state,
        attempts=r.attempts, last_error=r.last_error, receipt_reference=r.receipt_reference,
        delivered_at=iso(r.delivered_at), history=_history(by_delivery.get(r.id, [])),
    ) for r in rows]
    return DocumentDetail(
        id=doc.id, kind=doc.kind, sender=doc.sender, system=doc.system,
        document_id=doc.document_id, code=doc.code, subject=doc.subject,
        business=doc.business, status_code=doc.status_code, refers_to=refers_to,
        received_at=iso(doc.received_at) or "", history=_history(by_delivery.get(None, [])),
        deliveries=views, business_statuses=statuses, latest_statuses=latest_per_organ(statuses),
        supersedes=life.supersedes, superseded_by=life.superseded_by, recipients=life.recipients,
    )


def list_documents(engine: Engine, query: ListQuery, viewer: Viewer) -> DocumentPage:
    """Newest first; the cursor is the (received_at, id) of the last item, so pages never
    skip or repeat a document even when new ones arrive between requests."""
    d, dl = documents.c, deliveries.c

    # A sender, a recipient or a rare state drives the search through its own index,
    # visibility tested per document (bus.store.window): windows would widen to the whole
    # history when the system rarely sees such documents.
    walks: list[Walk] = []
    direct = False

    def conditions(since: float | None, until: float | None, joined: bool = False,
                   walked: bool = False) -> list[sa.ColumnElement[bool]]:
        """``walked``: the rows come from newest_visible, visible by construction."""
        where: list[sa.ColumnElement[bool]] = [] if walked else [
            visible_by_probe(viewer) if direct else visible_in_window(viewer, since, until)]
        if query.sender:
            where.append(d.sender == query.sender)
        if query.kind:
            where.append(d.kind == query.kind)
        if query.until is not None:
            where.append(d.received_at < query.until)
        if query.recipient and walked:
            where.append(addressed_by_probe(query.recipient))
        elif query.recipient and not joined:  # joined: newest_delivered walks them
            where.append(addressed_to([query.recipient], since, until))
        if query.state and not (joined and not query.recipient):
            where.append(in_state(query.state, since, until))
        if query.after is not None:
            stamp, last = query.after
            where.append(sa.or_(d.received_at < stamp,
                                sa.and_(d.received_at == stamp, d.id < last)))
        return where

    columns = (d.id, d.kind, d.sender, d.document_id, d.code, d.subject, d.refers_to,
               d.received_at)
    with engine.connect().execution_options(**READ_ONLY) as conn:
        before = query.after[0] if query.after else query.until
        walks = walks_for(conn, query.recipient, query.state, query.sender,
                          operator=viewer.operator, since=query.since, before=before)
        direct = bool(query.sender or walks)
        if direct and not viewer.operator and walk_visible(
                conn, viewer.system, sorted(viewer.hosted), walks=walks, sender=query.sender,
                since=query.since, before=before):
            rows = newest_visible(conn, columns, conditions(query.since, before, walked=True),
                                  viewer.system, sorted(viewer.hosted), limit=query.limit + 1,
                                  since=query.since, before=before)
        elif walks:
            rows = newest_delivered(conn, columns, conditions(query.since, before, True),
                                    walks, limit=query.limit + 1, since=query.since,
                                    before=before)
        else:
            rows = newest_first(conn, columns, conditions, limit=query.limit + 1,
                                since=query.since, before=before, windows=not direct)
        more = len(rows) > query.limit
        rows = rows[:query.limit]
        targets: dict[str, list[DeliverySummary]] = {r.id: [] for r in rows}
        if rows:
            for t in conn.execute(
                    sa.select(dl.document, dl.recipient, dl.effective_recipient,
                              dl.destination, dl.state)
                    .where(dl.document.in_(list(targets)))
                    .order_by(dl.created_at, dl.recipient, dl.destination)):
                targets[t.document].append(DeliverySummary(
                    recipient=t.recipient, effective_recipient=t.effective_recipient,
                    destination=t.destination, state=t.state))
        linked = readable(conn, (r.refers_to for r in rows), viewer)
    items = [DocumentSummary(id=r.id, kind=r.kind, sender=r.sender, document_id=r.document_id,
                             code=r.code, subject=r.subject,
                             refers_to=r.refers_to if r.refers_to in linked else None,
                             received_at=iso(r.received_at) or "", deliveries=targets[r.id])
             for r in rows]
    cursor = encode_cursor(rows[-1].received_at, rows[-1].id) if more and rows else None
    return DocumentPage(items=items, next_cursor=cursor)


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    document: str
    document_id: str
    sender: str
    recipient: str
    destination: str
    state: str
    attempts: int
    last_error: str | None
    updated_at: float


def list_deliveries(engine: Engine, *, state: str | None = None,
                    destination: str | None = None, limit: int = 50) -> list[DeliveryRow]:
    """Deliveries for an operator, least recently touched first: the stuck ones on top."""
    d, doc = deliveries, documents
    query = (sa.select(d.c.id, d.c.document, doc.c.document_id, doc.c.sender,
                       d.c.effective_recipient, d.c.destination, d.c.state, d.c.attempts,
                       d.c.last_error, d.c.updated_at)
             .join(doc, doc.c.id == d.c.document)
             .order_by(d.c.updated_at).limit(limit))
    if state:
        query = query.where(d.c.state == state)
    if destination:
        query = query.where(d.c.destination == destination)
    with engine.connect() as conn:
        return [DeliveryRow(id=r[0], document=r[1], document_id=r[2], sender=r[3],
                            recipient=r[4], destination=r[5], state=r[6], attempts=r[7],
                            last_error=r[8], updated_at=r[9]) for r in conn.execute(query)]

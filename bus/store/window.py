"""Newest-first pages that cost the same in a database of a million documents as in one
of a thousand.

A page of a search is the newest ``limit`` documents matching some filters. Asked of the
whole table, the database either walks the documents newest first testing each (fast
when most match, a walk through years of history when few do) or collects every
matching id and sorts them (fast when few match, slow for an organisation that received
a hundred thousand). :func:`newest_first` asks instead for the newest day, and widens the
window fourfold while the page is not full and older documents remain: every statement
is bounded by what arrived in its window, each filter's index is searched from the
window's start (``deliveries.created_at`` as well as ``documents.received_at``, see
:data:`bus.store.tables.deliveries`), and seven widenings cover five years.

Windows suit a filter that matches often (a page is found in the newest days). A sender,
a recipient or a state other than delivered is selective by itself, and for a connected
system it may be rarely among what the system may see: there no window fills the page
and the windows widen to the whole history. Such a search walks that filter's own index
newest first instead, one statement per index, and tests each document's visibility
from its deliveries' recipients (:func:`newest_delivered`, and :func:`newest_first` with
``windows=False`` on ``ix_documents_sender_received``): it reads the documents it
returns and those of the filter's it passes over. When the system may see fewer
documents than the filter matches (a commune's system searching the province's People's
Committee), it walks those instead (:func:`walk_visible`, :func:`newest_visible`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from bus.store.tables import deliveries, documents

FIRST_WINDOW_S: Final = 86400.0
WIDEN: Final = 4.0

Conditions = Callable[[float | None, float | None], list[sa.ColumnElement[bool]]]


def newest_first(conn: Connection, columns: Sequence[Any], conditions: Conditions, *,
                 limit: int, since: float | None = None, before: float | None = None,
                 windows: bool = True) -> list[Row[Any]]:
    """Up to ``limit`` rows of ``columns``, newest first, matching ``conditions``.

    ``conditions(start, end)`` gets the window (None: unbounded on that side; ``end``
    inclusive) and returns the filters, which must include the cursor's; ``since`` is the
    caller's own lower bound and ``before`` the cursor's received_at (or an until), where
    every window ends. ``windows=False`` when a filter's own index already narrows to a
    handful of rows (an exact DocumentId): one statement, no widening.
    """
    d = documents.c
    # Two scalar subqueries: SQLite reads min() or max() from the end of an index, but
    # both in one SELECT make it scan the whole index.
    bounds = conn.execute(sa.select(
        sa.select(sa.func.min(d.received_at)).scalar_subquery(),
        sa.select(sa.func.max(d.received_at)).scalar_subquery())).one()
    oldest, newest = bounds[0], bounds[1]
    if oldest is None:
        return []
    floor = max(oldest, since) if since is not None else oldest
    top = min(newest, before) if before is not None else newest
    span = FIRST_WINDOW_S if windows else float("inf")
    while True:
        start: float | None = top - span
        if start is None or start <= floor:
            start = since
        where = conditions(start, before)
        if start is not None:
            where = [*where, d.received_at >= start]
        rows = conn.execute(sa.select(*columns).where(*where)
                            .order_by(d.received_at.desc(), d.id.desc()).limit(limit)).all()
        if len(rows) >= limit or start is None or start == since:
            return list(rows)
        span *= WIDEN


def floor_of_newest(conn: Connection, count: int, *, before: float | None = None,
                    since: float | None = None) -> float | None:
    """The received_at below which a search of the ``count`` newest documents (up to
    ``before``) stops, or None when fewer remain than that (after ``since``).

    For a filter no index can serve (a partial code, "contains"): a window sized by
    documents, not by time, so its cost is the same in a quiet district as in the
    province's busiest year, and a search that finds nothing stops instead of folding
    every row of the history. One walk of ``count`` entries of ix_documents_received_at.
    """
    d = documents.c
    query = sa.select(d.received_at)
    if before is not None:
        query = query.where(d.received_at <= before)
    floor = conn.execute(query.order_by(d.received_at.desc()).offset(count).limit(1)).scalar()
    if floor is None or (since is not None and floor <= since):
        return None
    return float(floor)



Walk = Callable[[Any], list[sa.ColumnElement[bool]]]
"""The deliveries one walk of :func:`newest_delivered` follows, given the alias it walks."""


def to_organ(organ: str) -> list[Walk]:
    """The documents with a delivery to ``organ`` before or after successor resolution: its
    deliveries by recipient, then those resolved to it from another recipient (a partial
    index of the few resolved deliveries; re-walking ``effective_recipient`` would read
    every delivery again, as nearly all are addressed to whom they reach)."""
    return [lambda t: [t.c.recipient == organ],
            lambda t: [t.c.effective_recipient == organ,
                       t.c.effective_recipient != t.c.recipient]]


def in_state(state: str) -> list[Walk]:
    """The documents with a delivery in ``state`` (not ``delivered``: nearly all are)."""
    return [lambda t: [t.c.state == state]]


def newest_delivered(conn: Connection, columns: Sequence[Any],
                     where: Sequence[sa.ColumnElement[bool]], walks: Sequence[Walk], *,
                     limit: int, since: float | None = None,
                     before: float | None = None) -> list[Row[Any]]:
    """Up to ``limit`` rows of ``columns`` (which must hold documents.id and received_at),
    newest first, of the documents with a delivery one of ``walks`` finds that also match
    ``where`` (filters on documents, visibility included).

    Each walk goes down its index of deliveries newest first by ``created_at`` (equal to
    the document's received_at, see :data:`bus.store.tables.deliveries`), joined to the
    document, and stops at its page; the walks are merged here, and a document with
    several such deliveries comes once.
    """
    d = documents.c
    found: dict[str, Row[Any]] = {}
    for walk in walks:
        drive = deliveries.alias("drive")
        bounds = walk(drive)
        if since is not None:
            bounds.append(drive.c.created_at >= since)
        if before is not None:
            bounds.append(drive.c.created_at <= before)
        fetch = limit
        while True:
            rows = conn.execute(
                sa.select(*columns).select_from(drive.join(documents, d.id == drive.c.document))
                .where(*bounds, *where)
                .order_by(drive.c.created_at.desc(), d.id.desc()).limit(fetch)).all()
            if len(rows) < fetch or len({r.id for r in rows}) >= limit:
                break
            fetch *= 4  # a document with several such deliveries came more than once
        for row in rows:
            found.setdefault(row.id, row)
    ordered = sorted(found.values(), key=lambda r: (r.received_at, r.id), reverse=True)
    return ordered[:limit]


FEW_IN_STATE: Final = 2_000
"""On SQLite a connected system walks a state's deliveries only when fewer than this are in
it (in the searched span); more (parked, refused: a tail of the whole history), and the
windows find its page sooner than a walk testing each one's visibility (a system's
parked at a million documents: 24/47 ms p50/p99 against 44/77)."""


def walks_for(conn: Connection, recipient: str | None, state: str | None,
              sender: str | None, *, operator: bool, since: float | None = None,
              before: float | None = None) -> list[Walk]:
    """How a search with these filters is driven from the deliveries (empty: from the
    documents). A recipient first; a sender's own index is the better start when given;
    then a state other than delivered: always for an operator (the newest in the state
    are the page), for a system when few deliveries are in it (pending: only the last
    days'), which the windows would look for through the whole history."""
    if recipient:
        return to_organ(recipient)
    if not state or state == "delivered" or sender:
        return []
    walks = in_state(state)
    # PostgreSQL: the walk wins there whatever the state (a system's parked, at a
    # million documents: 61/77 ms against the windows' 110-140/255).
    if operator or conn.dialect.name == "postgresql" or _counted(
            conn, _walked(walks, since, before), FEW_IN_STATE) < FEW_IN_STATE:
        return walks
    return []


FEW_VISIBLE: Final = 5_000
"""A search walks what a connected system may see (:func:`newest_visible`) only when that
is fewer documents than this in the searched span (and than the filter matches)."""


def _span(column: Any, since: float | None, before: float | None) -> list[Any]:
    out = [] if since is None else [column >= since]
    return out if before is None else [*out, column <= before]


def _walked(walks: Sequence[Walk], since: float | None,
            before: float | None) -> list[sa.Select[Any]]:
    out = []
    for walk in walks:
        drive = deliveries.alias("drive")
        out.append(sa.select(drive.c.created_at).where(
            *walk(drive), *_span(drive.c.created_at, since, before)))
    return out


def _counted(conn: Connection, streams: Sequence[sa.Select[Any]], cap: int) -> int:
    """Rows of ``streams`` (index ranges), counted up to ``cap``."""
    total = 0
    for stream in streams:
        if total >= cap:
            break
        total += conn.execute(sa.select(sa.func.count()).select_from(
            stream.limit(cap - total).subquery())).scalar_one()
    return total


def walk_visible(conn: Connection, system: str, hosted: Sequence[str], *,
                 walks: Sequence[Walk], sender: str | None, since: float | None = None,
                 before: float | None = None) -> bool:
    """Whether a connected system's search should walk what the system may see rather
    than the filter (``walks``, or else the ``sender``'s documents): when the system may
    see under half as many documents in the span as the filter matches, and fewer than
    :data:`FEW_VISIBLE`. A big organisation searched by a small system (the province's
    People's Committee, by a commune's) costs what the system may see; both counts come
    from index ranges and stop at their cap."""
    d = documents.c
    stream = _walked(walks, since, before) if walks else [
        sa.select(d.received_at).where(d.sender == sender, *_span(d.received_at, since,
                                                                   before))]
    matched = _counted(conn, stream, FEW_VISIBLE)
    if matched < 2:
        return False
    own = sa.select(d.received_at).where(d.system == system,
                                         *_span(d.received_at, since, before))
    visible = _counted(conn, [own, *_walked(
        [w for organ in sorted(hosted) for w in to_organ(organ)], since, before)],
        matched // 2)
    return visible < matched // 2


def newest_visible(conn: Connection, columns: Sequence[Any],
                   where: Sequence[sa.ColumnElement[bool]], system: str,
                   hosted: Sequence[str], *, limit: int, since: float | None = None,
                   before: float | None = None) -> list[Row[Any]]:
    """:func:`newest_first` for a connected system that may see few documents
    (:func:`walk_visible`): its own documents through ix_documents_system_received and
    those addressed to its organisations through their deliveries, each walked newest
    first and merged, ``where`` (without visibility: every row walked is visible) tested
    on each. A sender or recipient such a system rarely sees costs what the system may
    see, however much that organisation sent or received."""
    d = documents.c
    # Driven from an alias on ix_documents_system_received, so that SQLite (which keeps
    # no statistics) does not walk a sender's index instead: the system's documents are
    # known to be few, a sender's may be a tenth of the history.
    own = documents.alias("own")
    bounds = [own.c.system == system]
    if since is not None:
        bounds.append(own.c.received_at >= since)
    if before is not None:
        bounds.append(own.c.received_at <= before)
    rows = list(conn.execute(
        sa.select(*columns).select_from(own.join(documents, d.id == own.c.id))
        .where(*bounds, *where).order_by(own.c.received_at.desc(), d.id.desc())
        .limit(limit)).all())
    walks = [w for organ in sorted(hosted) for w in to_organ(organ)]
    rows += newest_delivered(conn, columns, where, walks, limit=limit, since=since,
                             before=before)
    found = {row.id: row for row in rows}
    return sorted(found.values(), key=lambda r: (r.received_at, r.id), reverse=True)[:limit]

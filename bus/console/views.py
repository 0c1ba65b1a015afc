"""What the console reads: document search, a document's journey, queues, the parked list.

Visibility is :func:`bus.store.queries.visible_to`, the REST API's own rule, so an agency
officer sees exactly what their system sees through the API. The journey is assembled
from the generic ``events`` history (whoever wrote an event — the worker, an operator, a
recall — it shows up), the deliveries and the business statuses.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.edxml import Edoc, read_packet
from bus.store import Store, text_index
from bus.store.fold import fold
from bus.store.queries import (
    DocumentDetail,
    Viewer,
    addressed_by_probe,
    addressed_to,
    decode_cursor,
    document_detail,
    encode_cursor,
    in_state,
    readable,
    visible_by_probe,
    visible_in_window,
    visible_to,
)
from bus.store.tables import (
    READ_ONLY,
    STATES,
    business_statuses,
    deliveries,
    documents,
    events,
)
from bus.store.text_index import contains as _contains
from bus.store.window import (
    Walk,
    floor_of_newest,
    newest_delivered,
    newest_first,
    newest_visible,
    walk_visible,
    walks_for,
)

PAGE: Final = 25
ATTACHMENTS_READ_MAX: Final = 32 * 1024 * 1024
"""Attachments are listed by reading the stored packet; past this size a page view would
cost the server too much, and the page says so instead."""
_WORDS: Final = 8
CODE_SCAN: Final = 10_000
"""A partial code (no document has exactly that code) is looked for in this many of the
newest documents per page, newest first; the page then says how far back it looked, and
"next page" goes on from there (0.5–5 s at a million documents when it folded them all)."""
_CODE = re.compile(r"^\[([A-Za-z][A-Za-z0-9_.-]{0,40})\]")


@dataclass(frozen=True)
class Search:
    document_id: str = ""
    code: str = ""
    sender: str = ""
    recipient: str = ""
    words: str = ""
    since: str = ""
    until: str = ""
    state: str = ""
    cursor: str = ""

    def params(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v and k != "cursor"}


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    document_id: str
    code: str | None
    subject: str | None
    sender: str
    received_at: float
    states: list[tuple[str, str]]


@dataclass
class Page:
    rows: list[Row]
    next_cursor: str | None
    searched_to: float | None = None
    """A partial code's page: the documents received since this were searched; the next
    page goes on before it (see :data:`CODE_SCAN`)."""


_fold = fold
"""The subjects' and codes' fold on SQLite; the text index's triggers use the same."""


def _day(value: str, name: str, zone: ZoneInfo) -> float:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise errors.InvalidRequest(f"{name}: {value!r} is not a date such as 2026-12-06") \
            from None
    return datetime.combine(day, dtime(), zone).timestamp()


def search(engine: Engine, query: Search, viewer: Viewer, zone: ZoneInfo,
           limit: int = PAGE) -> Page:
    """Newest first, paged by (received_at, id) as the REST API pages."""
    d, dl = documents.c, deliveries.c
    sqlite = engine.dialect.name == "sqlite"
    if query.state and query.state not in STATES:
        raise errors.InvalidRequest(f"state: {query.state!r} is not a delivery state")
    low = _day(query.since, "from", zone) if query.since else None
    high = _day(query.until, "to", zone) + timedelta(days=1).total_seconds() \
        if query.until else None
    after = decode_cursor(query.cursor) if query.cursor else None

    code = query.code.strip()
    exact = sorted({code, code.upper()})
    document_id = query.document_id.strip()
    recipient, sender = query.recipient.strip(), query.sender.strip()
    # A sender, a recipient or a rare state drives the search through its own index,
    # visibility tested per document (bus.store.window): windows would widen to the whole
    # history when the system rarely sees such documents. Not with a DocumentId or a code:
    # their own index, or a partial code's bounded scan of the newest documents, is better.
    walks: list[Walk] = []
    driven = False
    # Words SQLite's text index matched exactly (a folded substring): not folded again.
    matched: set[str | None] = set()

    def conditions(since: float | None, until: float | None,
                   exact_code: bool = False, joined: bool = False,
                   walked: bool = False) -> list[sa.ColumnElement[bool]]:
        """Through the windows of bus.store.window, as the REST list searches;
        ``walked``: the rows come from newest_visible, visible by construction."""
        # A DocumentId or a full code names a handful of documents: each is probed, as a
        # point lookup.
        where: list[sa.ColumnElement[bool]] = [] if walked else [
            visible_to(viewer) if document_id or exact_code
            else visible_by_probe(viewer) if driven
            else visible_in_window(viewer, since, until)]
        if document_id:
            where.append(d.document_id == document_id)
        if code:
            where.append(d.code.in_(exact) if exact_code else _contains(d.code, code, sqlite))
        if sender:
            where.append(d.sender == sender)
        if recipient and walked:
            where.append(addressed_by_probe(recipient))
        elif recipient and not joined:  # joined: newest_delivered walks its deliveries
            where.append(addressed_to([recipient], since, until))
        for word in query.words.split()[:_WORDS]:
            if _fold(word) not in matched:
                where.append(_contains(d.subject, word, sqlite))
        if high is not None:
            where.append(d.received_at < high)
        if query.state and not (joined and not recipient):
            where.append(in_state(query.state, since, until))
        if after is not None:
            stamp, last = after
            where.append(sa.or_(d.received_at < stamp, sa.and_(d.received_at == stamp,
                                                               d.id < last)))
        return where

    columns = (d.id, d.kind, d.document_id, d.code, d.subject, d.sender, d.received_at)
    before = after[0] if after else high
    searched_to: float | None = None
    with engine.connect().execution_options(**READ_ONLY) as conn:
        if sqlite:
            conn.connection.driver_connection.create_function(  # type: ignore[union-attr]
                "lgsp_fold", 1, _fold, deterministic=True)
        found = []
        if code:  # a full code, through ix_documents_code_received
            found = newest_first(conn, columns, lambda s, u: conditions(s, u, True),
                                 limit=limit + 1, since=low, before=before, windows=False)
        # Words of the subject: their documents come from the text index, newest first,
        # each tested for visibility and the other filters; when a page needs too many
        # (a system that rarely sees such documents), the windows as before.
        text = None
        if sqlite and not (code or document_id) and text_index.indexed_words(
                query.words.split()[:_WORDS], sqlite):
            driven = True  # visibility tested per document
            words = query.words.split()[:_WORDS]
            matched = set(text_index.indexed_words(words, sqlite))
            text = text_index.newest(conn, columns, words, conditions(low, before),
                                     limit=limit + 1, everyone=viewer.operator, since=low,
                                     before=before)
            driven, matched = text is not None, set()
        if text is not None:
            found = text
        elif not found:
            if not (code or document_id):
                walks = walks_for(conn, recipient, query.state, sender,
                                  operator=viewer.operator, since=low, before=before)
                driven = bool(sender or walks)
            since = low
            if code and not document_id:  # a partial code: the newest CODE_SCAN documents
                searched_to = floor_of_newest(conn, CODE_SCAN, before=before, since=low)
                since = low if searched_to is None else searched_to
            # A window of CODE_SCAN documents is bounded already: one statement, which
            # stops at the page's last match (widening windows would re-read the newest).
            hosted = sorted(viewer.hosted)
            if driven and not viewer.operator and walk_visible(
                    conn, viewer.system, hosted, walks=walks, sender=sender, since=since,
                    before=before):
                found = newest_visible(conn, columns, conditions(since, before, walked=True),
                                       viewer.system, hosted, limit=limit + 1, since=since,
                                       before=before)
            elif walks:
                found = newest_delivered(conn, columns, conditions(since, before, joined=True),
                                         walks, limit=limit + 1, since=since, before=before)
            else:
                found = newest_first(conn, columns, conditions, limit=limit + 1,
                                     since=since, before=before,
                                     windows=not (document_id or driven)
                                     and searched_to is None)
        more = len(found) > limit
        found = found[:limit]
        states: dict[str, list[tuple[str, str]]] = {r.id: [] for r in found}
        if found:
            for t in conn.execute(sa.select(dl.document, dl.effective_recipient, dl.state)
                                  .where(dl.document.in_(list(states)))
                                  .order_by(dl.created_at, dl.recipient)):
                states[t.document].append((t.effective_recipient, t.state))
    rows = [Row(r.id, r.kind, r.document_id, r.code, r.subject, r.sender, r.received_at,
                states[r.id]) for r in found]
    if more:
        return Page(rows, encode_cursor(found[-1].received_at, found[-1].id))
    if searched_to is not None:  # older documents were not searched: go on from there
        return Page(rows, encode_cursor(searched_to, ""), searched_to)
    return Page(rows, None)


@dataclass(frozen=True)
class Step:
    at: float
    action: str
    actor: str
    delivery: str | None
    recipient: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class AttachmentInfo:
    name: str
    size: int
    format: str


@dataclass
class Journey:
    detail: DocumentDetail
    steps: list[Step]
    related: list[tuple[str, str, str]] = field(default_factory=list)
    """(id, kind, document_id) of visible documents that refer to this one."""
    attachments: list[AttachmentInfo] = field(default_factory=list)
    attachments_error: str | None = None


def _detail(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"text": raw}
    return value if isinstance(value, dict) else {"value": value}


def journey(store: Store, doc_id: str, viewer: Viewer) -> Journey:
    """The document as a timeline; NotFound when it is not the viewer's."""
    detail = document_detail(store.engine, doc_id, viewer)
    recipient_of = {d.id: d.effective_recipient for d in detail.deliveries}
    ev, bs, d = events.c, business_statuses.c, documents.c
    with store.engine.connect() as conn:
        trail = conn.execute(sa.select(ev.at, ev.action, ev.actor, ev.delivery, ev.detail)
                             .where(ev.document == doc_id).order_by(ev.at, ev.id)).all()
        statuses = conn.execute(sa.select(bs.received_at, bs.organ_id, bs.code,
                                          bs.status_document)
                                .where(bs.document == doc_id)
                                .order_by(bs.received_at, bs.id)).all()
        shown = readable(conn, (s.status_document for s in statuses), viewer)
        related = conn.execute(sa.select(d.id, d.kind, d.document_id)
                               .where(d.refers_to == doc_id, visible_to(viewer))
                               .order_by(d.received_at)).all()
        payload_sha, size = conn.execute(sa.select(d.payload_sha256, d.size)
                                         .where(d.id == doc_id)).one()
    steps = [Step(r.at, r.action, r.actor, r.delivery, recipient_of.get(r.delivery or ""),
                  _detail(r.detail)) for r in trail]
    steps += [Step(s.received_at, "business_status", s.organ_id, None, s.organ_id,
                   {"code": s.code,
                    "status_document": s.status_document if s.status_document in shown
                    else None}) for s in statuses]
    steps.sort(key=lambda s: s.at)
    result = Journey(detail, steps, [(r.id, r.kind, r.document_id) for r in related])
    if size > ATTACHMENTS_READ_MAX:
        result.attachments_error = f"> {ATTACHMENTS_READ_MAX // (1024 * 1024)} MiB"
    elif payload_sha:
        try:
            packet = read_packet(store.payload(payload_sha)).packet
        except errors.LgspError as exc:
            result.attachments_error = exc.code
        else:
            if isinstance(packet, Edoc):
                result.attachments = [AttachmentInfo(a.attachment_name, a.content.size,
                                                     a.format) for a in packet.attachments]
    return result


@dataclass(frozen=True)
class Queue:
    destination: str
    counts: dict[str, int]
    oldest_age_s: float | None
    failures: list[tuple[str, int]]


def failure_code(last_error: str) -> str:
    """``[Code] reason`` gives Code; otherwise the reason's first words, so equal causes
    group together however their details differ."""
    found = _CODE.match(last_error)
    if found:
        return found.group(1)
    text = last_error
    if text.startswith("gave up after "):
        text = text.split(": ", 1)[-1]
    head = text.split(":", 1)[0].strip()
    if 0 < len(head) <= 40:
        return head
    return " ".join(text.split()[:4])[:60]


def queues(store: Store) -> list[Queue]:
    """Per destination: deliveries by non-final state, the oldest one's age, and the
    failures of those not yet delivered grouped by :func:`failure_code`."""
    now = time.time()
    counts: dict[str, dict[str, int]] = {}
    oldest: dict[str, float] = {}
    for destination, state, count, created in store.depth():
        counts.setdefault(destination, {})[state] = count
        if created is not None and state != "parked":
            oldest[destination] = min(oldest.get(destination, created), created)
    dl = deliveries.c
    failures: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for r in conn.execute(sa.select(dl.destination, dl.last_error, sa.func.count())
                              .where(dl.last_error.is_not(None),
                                     dl.state.in_(("pending", "queued", "delivering",
                                                   "parked", "refused")))
                              .group_by(dl.destination, dl.last_error)):
            code = failure_code(str(r[1]))
            bucket = failures.setdefault(r[0], {})
            bucket[code] = bucket.get(code, 0) + int(r[2])
    names = sorted(set(counts) | set(failures))
    return [Queue(n, counts.get(n, {}),
                  now - oldest[n] if n in oldest else None,
                  sorted(failures.get(n, {}).items(), key=lambda kv: -kv[1]))
            for n in names]

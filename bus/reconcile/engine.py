"""One reconciliation run: the bus's books for a day against the national axis'.

For each destination whose adapter offers a ledger (the ``national_axis`` adapter):

1. every delivery the bus made through it that day (delivered, with the axis DocId as
   receipt reference) must be confirmed by the axis for that recipient (getSentEdocList):
   otherwise ``sent_unconfirmed``;
2. every confirmation the axis lists for this province's sends must match a delivery
   here: otherwise ``confirmed_unknown``;
3. every item the axis holds for this province must be in ``inbound_sources`` (what the
   poller recorded): otherwise ``received_not_fetched`` (documents) or ``status_missing``
   (status packets) — and it is fetched now, through the poller's own path, so the source
   dedup records it exactly once even if the poller takes it at the same moment.

Items the bus refused when it fetched them (acknowledged ``fail``) are counted, not listed:
they were answered. Pending items younger than ``grace_s`` are in flight, not missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog

from bus import errors, registry
from bus.adapter import Refuse, Retry
from bus.reconcile import runs
from bus.reconcile.model import (
    AxisLedger,
    AxisReceived,
    AxisSent,
    Kind,
    MismatchView,
    RunDetail,
    empty_counts,
    mismatch,
)
from bus.store import Store
from bus.store.tables import deliveries, documents, inbound_sources

if TYPE_CHECKING:
    from bus.app import Bus

log = structlog.get_logger("lgsp.reconcile")

_CHUNK = 500
_PENDING = frozenset({"initial", "processing", "pending", ""})
_REFUSED = frozenset({"fail", "failed"})


def day_bounds(day: date, zone: ZoneInfo) -> tuple[float, float]:
    """[start, end) of ``day`` in ``zone``, as epoch seconds."""
    start = datetime.combine(day, clock(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), clock(0), tzinfo=zone)
    return start.timestamp(), end.timestamp()


def ledgers(bus: Bus, only: str | None = None) -> Iterator[tuple[str, AxisLedger]]:
    """(destination, ledger) for each destination whose adapter can show its books."""
    table = bus.reloader.current().table
    for destination in table.destinations.values():
        if only is not None and destination.name != only:
            continue
        if not callable(getattr(registry.adapter_class(destination.adapter), "ledger", None)):
            continue
        adapter: Any = registry.build_adapter(destination, source=table.source)
        yield destination.name, adapter.ledger()


@dataclass
class _Books:
    """What one run gathers before it is written."""

    counts: dict[str, int] = field(default_factory=empty_counts)
    notes: list[str] = field(default_factory=list)
    found: list[MismatchView] = field(default_factory=list)


def run(bus: Bus, day: date, *, trigger: str, actor: str, grace_s: float = 600.0,
        destination: str | None = None) -> RunDetail:
    """Runs, keeps and returns one reconciliation; a failed run is kept with its reason."""
    engine = bus.store.engine
    run_id = runs.start_run(engine, day=day.isoformat(), trigger=trigger, actor=actor)
    books = _Books()
    error: str | None = None
    try:
        checked = 0
        for name, ledger in ledgers(bus, destination):
            checked += 1
            try:
                _Comparison(bus, run_id, name, ledger, day, grace_s, books).run()
            finally:
                ledger.close()
        if not checked:
            books.notes.append("no destination of routes.yaml is a national axis: nothing "
                               "to reconcile" if destination is None else
                               f"destination {destination!r} is not a national axis")
    except (Retry, Refuse) as exc:
        error = f"the axis could not be read: {exc.reason}"
    except errors.LgspError as exc:
        error = f"{exc.code}: {exc.message}"
    except Exception as exc:
        runs.finish_run(engine, run_id, counts=books.counts, notes=books.notes, mismatches=[],
                        error=f"internal error ({type(exc).__name__}); see the bus's log")
        log.exception("reconcile.crashed", run=run_id)
        raise
    runs.finish_run(engine, run_id, counts=books.counts, notes=books.notes,
                    mismatches=[] if error else books.found, error=error)
    log.info("reconcile.finished", run=run_id, day=day.isoformat(), trigger=trigger,
             mismatches=len(books.found), error=error, **books.counts)
    return runs.get_run(engine, run_id)


class _Comparison:
    def __init__(self, bus: Bus, run_id: str, name: str, ledger: AxisLedger, day: date,
                 grace_s: float, books: _Books) -> None:
        self.bus, self.run_id, self.name, self.ledger = bus, run_id, name, ledger
        self.day, self.grace_s, self.books = day, grace_s, books
        self.engine = bus.store.engine

    def _add(self, kind: Kind, detail: str, **fields: Any) -> None:
        self.books.counts[kind.value] += 1
        self.books.found.append(mismatch(kind, self.name, detail, **fields))

    def run(self) -> None:
        self._sent()
        self._received()

    # ---- what the bus sent ---------------------------------------------------------------

    def _sent(self) -> None:
        start, end = day_bounds(self.day, self.bus.settings.zone)
        d, doc = deliveries, documents
        with self.engine.connect() as conn:
            sent = conn.execute(
                sa.select(d.c.id, d.c.document, d.c.effective_recipient,
                          d.c.receipt_reference, doc.c.kind, doc.c.document_id)
                .join(doc, doc.c.id == d.c.document)
                .where(d.c.destination == self.name, d.c.state == "delivered",
                       d.c.delivered_at >= start, d.c.delivered_at < end,
                       d.c.receipt_reference.is_not(None))
                .order_by(d.c.delivered_at)).all()
        self.books.counts["sent"] += len(sent)
        listing = self.ledger.sent_on(self.day)
        seen: dict[str, list[AxisSent]] = {}
        for axis_row in listing or ():
            seen.setdefault(axis_row.doc_id, []).append(axis_row)
        if listing is None:
            self.books.notes.append(
                f"{self.name}: the axis does not list a day's sends; 'confirmed but unknown "
                "here' was checked only on the DocIds this bus holds")
        for row in sent:
            ref = str(row.receipt_reference)
            what = f" ({row.kind} {row.document_id})"
            if ref not in seen:
                rows = self.ledger.confirmations(ref)
                if rows is None:
                    self._add(Kind.SENT_UNCONFIRMED, f"the axis does not know DocId {ref}{what}",
                              axis_doc_id=ref, message_type=row.kind, document=row.document,
                              delivery=row.id, organ_id=row.effective_recipient)
                    continue
                seen[ref] = rows
            match = [r for r in seen[ref] if r.to == row.effective_recipient]
            if not match:
                self._add(Kind.SENT_UNCONFIRMED,
                          f"the axis confirms DocId {ref} without recipient "
                          f"{row.effective_recipient}{what}", axis_doc_id=ref,
                          message_type=row.kind, document=row.document, delivery=row.id,
                          organ_id=row.effective_recipient)
            elif match[0].failed:
                self._add(Kind.SENT_UNCONFIRMED,
                          f"the axis reports the send failed: sendStatus "
                          f"{match[0].send_status} {match[0].send_status_desc}".strip()
                          + what,
                          axis_doc_id=ref, message_type=row.kind, document=row.document,
                          delivery=row.id, organ_id=row.effective_recipient)
            else:
                self.books.counts["confirmed"] += 1
                if match[0].refused_by_recipient:
                    self._add(Kind.RECIPIENT_REFUSED,
                              f"the axis says {row.effective_recipient}'s system refused it "
                              f"(receiveStatus {match[0].receive_status}){what}",
                              axis_doc_id=ref, message_type=row.kind, document=row.document,
                              delivery=row.id, organ_id=row.effective_recipient)
        self._unknown(seen)

    def _unknown(self, seen: dict[str, list[AxisSent]]) -> None:
        known: dict[str, dict[str, str]] = {}
        d = deliveries
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(seen)):
                for row in conn.execute(sa.select(d.c.receipt_reference, d.c.effective_recipient,
                                                  d.c.document)
                                        .where(d.c.destination == self.name,
                                               d.c.receipt_reference.in_(chunk))):
                    known.setdefault(row.receipt_reference, {})[row.effective_recipient] = \
                        row.document
        for doc_id, rows in seen.items():
            here = known.get(doc_id)
            for axis_row in rows:
                if here is None:
                    self._add(Kind.CONFIRMED_UNKNOWN,
                              f"the axis confirms DocId {doc_id} to {axis_row.to} "
                              f"(sendStatus {axis_row.send_status}); no delivery here has "
                              "that DocId", axis_doc_id=doc_id, organ_id=axis_row.to)
                elif axis_row.to not in here:
                    self._add(Kind.CONFIRMED_UNKNOWN,
                              f"the axis confirms DocId {doc_id} to {axis_row.to}, a "
                              "recipient this bus did not send it to", axis_doc_id=doc_id,
                              organ_id=axis_row.to, document=next(iter(here.values())))

    # ---- what the axis handed the bus ----------------------------------------------------

    def _received(self) -> None:
        items = self.ledger.received_on(self.day)
        self.books.counts["received"] += len(items)
        recorded: set[str] = set()
        s = inbound_sources
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted({i.doc_id for i in items})):
                recorded.update(r[0] for r in conn.execute(
                    sa.select(s.c.source_id).where(s.c.source == self.name,
                                                   s.c.source_id.in_(chunk))))
        now = time.time()
        handled: set[str] = set()
        for item in items:
            if item.doc_id in handled:
                continue
            handled.add(item.doc_id)
            if item.doc_id in recorded:
                self.books.counts["recorded"] += 1
            elif item.status.lower() in _REFUSED:
                self.books.counts["refused_at_fetch"] += 1
            elif (item.status.lower() in _PENDING and item.created_at is not None
                  and now - item.created_at < self.grace_s):
                self.books.counts["in_flight"] += 1
            else:
                self._missing(item)

    def _source_recorded(self, doc_id: str) -> bool:
        s = inbound_sources
        with self.engine.connect() as conn:
            return conn.execute(sa.select(s.c.document).where(
                s.c.source == self.name, s.c.source_id == doc_id)).first() is not None

    def _missing(self, item: AxisReceived) -> None:
        from bus.delivery.pollers import BusInbox

        status = item.message_type == "status"
        kind = Kind.STATUS_MISSING if status else Kind.RECEIVED_NOT_FETCHED
        what = "a status packet" if status else "a document"
        detail = (f"the axis holds {what} from {item.sender or 'an unnamed sender'} "
                  f"(status {item.status or 'unknown'}) that this bus never recorded")
        document: str | None = None
        try:
            document = self.ledger.fetch(BusInbox(self.bus, self.name), item.doc_id)
        except errors.LgspError as exc:
            action = f"fetched, refused by the bus: {exc.code}: {exc.message}"
        except (Retry, Refuse) as exc:
            action = f"fetch failed, the next run tries again: {exc.reason}"
        else:
            if self._source_recorded(item.doc_id):
                action = f"fetched: recorded as document {document}"
            else:
                action = (f"fetched: the same packet is already document {document} (it "
                          "came by another door); the axis docId stays unlinked")
            self.books.counts["refetched"] += 1
            with self.bus.store.begin() as conn:
                Store.audit(conn, "reconcile", "reconciled", document=document,
                            detail={"run": self.run_id, "kind": kind.value,
                                    "destination": self.name, "axis_doc_id": item.doc_id})
        self._add(kind, detail, axis_doc_id=item.doc_id, message_type=item.message_type,
                  document=document, organ_id=item.sender or None, action=action)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

"""Deadlines per recipient delivery: fixed at acceptance, judged against business statuses.

Deadlines are computed once, when the bus accepts a document, and stored per delivery
(``delivery_deadlines``): a recipient is held to the calendar and rules in force when the
document reached the bus, and an administrator's later edit (a new day off, a stricter
rule) never silently rewrites history. Whether a stage was met is read from
``business_statuses`` each time, so nothing has to be updated when a status arrives.

A stage is met by its own status or any later one (06 also means 03 and 01 happened);
a refusal (02) or an accepted recall (15) closes every stage of that recipient. Statuses
count when reported by the recipient as addressed or as resolved (a successor code).
When 06, 02 or 15 arrives the row is marked settled: nothing more can fall due, so the
gauge's query reads open deliveries only and its cost does not grow with history.
Copies a route adds (the archive) and recalls (which ask for 15/16) get no deadlines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bus.edxml import Edoc, Packet, StatusPacket, read_packet
from bus.errors import LgspError
from bus.lifecycle.deadlines import STAGES, DeadlinePolicy, DocumentFacts
from bus.lifecycle.overdue_metrics import OverdueCollector
from bus.lifecycle.overdue_stages import (
    _DEADLINE_COLUMNS,
    CLOSING,
    MET,
    NEVER_SENT,
    SETTLING,
    Answer,
    DeliveryDeadlines,
    StageState,
    StageView,
    _answers,
    _open_past,
    _stages,
    log,
)
from bus.store import Accepted, Store
from bus.store.blobs import PayloadFiles
from bus.store.queries import Viewer, visible_to
from bus.store.statements import Transaction
from bus.store.tables import (
    READ_ONLY,
    deliveries,
    delivery_deadlines,
    documents,
)

__all__ = [
    "CLOSING", "MET", "NEVER_SENT", "SETTLING", "Answer", "DeadlineBook", "DeliveryDeadlines",
    "OverdueCollector", "StageState", "StageView",
]


class DeadlineBook:
    """Records deadlines at acceptance and answers what is overdue, for any clock."""

    def __init__(self, engine: Engine, policy: Callable[[], DeadlinePolicy | None], *,
                 clock: Callable[[], float] = time.time,
                 payload_files: PayloadFiles | None = None) -> None:
        """``payload_files``: where payloads kept outside rows are (bus.store.blobs), for
        :meth:`backfill` to read large packets again."""
        self.engine = engine
        self.payload_files = payload_files
        self.policy = policy
        self.clock = clock

    # ---- writing ---------------------------------------------------------------------

    def record(self, accepted: Accepted, packet: Packet) -> int:
        """Fixes the deadlines of a newly accepted document's recipient deliveries.

        Runs after the document's commit: a failure here is logged and never turns an
        accepted document into a refusal (the sender already owns a receipt).
        """
        if isinstance(packet, StatusPacket):
            if not accepted.existing and packet.status_code in SETTLING:
                self._settle(accepted.document, packet.sender)
            return 0
        if accepted.existing or packet.business_kind == "revoke":
            # A recall asks for 15/16, not for processing: nothing to register or complete.
            return 0
        try:
            policy = self.policy()
            if policy is None:
                return 0
            return self._record(policy, accepted.document, packet)
        except Exception as exc:  # the document is committed; never fail its sender
            log.error("deadlines.not_recorded", document=accepted.document, error=repr(exc))
            return 0

    def settle(self, accepted: Accepted, packet: Packet) -> None:
        """After a status's commit: what :meth:`record` does for statuses. An edoc's
        deadlines are written inside its accept transaction instead (:meth:`prepare`)."""
        if isinstance(packet, StatusPacket) and not accepted.existing \
                and packet.status_code in SETTLING:
            self._settle(accepted.document, packet.sender)

    def prepare(self, packet: Packet, destinations: Iterable[str]
                ) -> Callable[[Transaction, str, Sequence[Mapping[str, Any]]], None] | None:
        """The deadlines of a document about to be accepted, as a writer for its accept
        transaction (``Store.accept(with_deliveries=...)``): no second transaction and
        commit per document, and a duplicate that is rolled back records nothing.

        Computed here, before the transaction, one per destination: a failure is logged
        and the document is accepted without deadlines (``lgsp deadlines backfill``
        gives them later), never refused."""
        if not isinstance(packet, Edoc) or packet.business_kind == "revoke":
            return None
        try:
            policy = self.policy()
            if policy is None:
                return None
            start = self.clock()
            found = {destination: policy.deadlines(start, DocumentFacts(
                         document_type=packet.document_type.type, priority=packet.priority,
                         due_date=packet.due_date, destination=destination))
                     for destination in set(destinations)}
        except Exception as exc:  # the sender must never pay for the deadline policy
            log.error("deadlines.not_recorded", document_id=packet.document_id,
                      error=repr(exc))
            return None

        def write(tx: Transaction, document: str,
                  targets: Sequence[Mapping[str, Any]]) -> None:
            computed = time.time()
            rows = []
            for target in sorted(targets, key=lambda t: str(t["effective_recipient"])):
                deadline = found.get(target["destination"])
                if target["is_copy"] or deadline is None or (
                        deadline.rule is None
                        and all(v is None for v in deadline.due.values())):
                    continue
                rows.append({"delivery": target["id"], "document": document,
                             "rule": deadline.rule, "started_at": start,
                             "computed_at": computed,
                             "due_date": deadline.due_date.isoformat()
                             if deadline.due_date else None,
                             **{f"{stage}_due": deadline.due[stage] for stage in STAGES}})
            if rows:
                tx.insert(delivery_deadlines, _DEADLINE_COLUMNS, rows)

        return write

    def _settle(self, status_document: str, organ: str) -> None:
        """Marks the answered deliveries settled; only an optimisation of the gauge (the
        statuses stay the truth), so a failure is logged and nothing else."""
        dd, dl = delivery_deadlines.c, deliveries.c
        try:
            with self.engine.begin() as conn:
                original = conn.execute(sa.select(documents.c.refers_to).where(
                    documents.c.id == status_document)).scalar()
                if original is None:
                    return
                answered = sa.select(dl.id).where(
                    dl.document == original,
                    sa.or_(dl.recipient == organ, dl.effective_recipient == organ))
                conn.execute(delivery_deadlines.update()
                             .where(dd.document == original, dd.settled_at.is_(None),
                                    dd.delivery.in_(answered))
                             .values(settled_at=self.clock()))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("deadlines.not_settled", status=status_document, error=repr(exc))

    def backfill(self, *, since: float, limit: int = 1000) -> int:
        """Deadlines for recipient deliveries that have none: documents accepted before
        the bus computed deadlines (an upgrade), or whose recording failed after commit.
        The packet is read again from the stored bytes, and the clock starts when the bus
        accepted the document, as it would have then."""
        policy = self.policy()
        if policy is None:
            return 0
        d, dl, dd = documents.c, deliveries.c, delivery_deadlines.c
        missing = sa.exists().where(
            dl.document == d.id, dl.is_copy.is_(False),
            ~sa.exists().where(dd.delivery == dl.id))
        with self.engine.connect() as conn:
            todo = conn.execute(
                sa.select(d.id, d.payload_sha256, d.received_at)
                .where(d.kind == "edoc", d.received_at >= since,
                       sa.or_(d.business.is_(None), d.business != "revoke"), missing)
                .order_by(d.received_at, d.id).limit(limit)).all()
        done = 0
        store = Store(self.engine, self.payload_files)
        for doc in todo:
            try:
                data: bytes | None = store.payload(doc.payload_sha256)
            except LgspError:
                data = None
            try:
                packet = read_packet(bytes(data)).packet if data is not None else None
            except LgspError as exc:
                log.warning("deadlines.backfill_unreadable", document=doc.id, code=exc.code)
                continue
            if isinstance(packet, Edoc):
                done += self._record(policy, doc.id, packet, start=doc.received_at)
        return done

    def _record(self, policy: DeadlinePolicy, document: str, packet: Edoc, *,
                start: float | None = None) -> int:
        start = self.clock() if start is None else start
        dl, dd = deliveries.c, delivery_deadlines.c
        rows: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            targets = conn.execute(
                sa.select(dl.id, dl.effective_recipient, dl.destination)
                .outerjoin(delivery_deadlines, dd.delivery == dl.id)
                .where(dl.document == document, dl.is_copy.is_(False), dd.delivery.is_(None))
                .order_by(dl.effective_recipient)).all()
            for target in targets:
                facts = DocumentFacts(document_type=packet.document_type.type,
                                      priority=packet.priority, due_date=packet.due_date,
                                      destination=target.destination)
                found = policy.deadlines(start, facts)
                if found.rule is None and all(v is None for v in found.due.values()):
                    continue
                rows.append({"delivery": target.id, "document": document, "rule": found.rule,
                             "started_at": start, "computed_at": time.time(),
                             "due_date": found.due_date.isoformat() if found.due_date else None,
                             **{f"{stage}_due": found.due[stage] for stage in STAGES}})
            if rows:
                conn.execute(delivery_deadlines.insert(), rows)
        return len(rows)

    # ---- reading ---------------------------------------------------------------------

    def for_document(self, conn: Connection, document: str, *,
                     now: float | None = None) -> list[DeliveryDeadlines]:
        return self._views(conn, [delivery_deadlines.c.document == document], now=now)

    def overdue(self, viewer: Viewer, *, now: float | None = None, destination: str | None = None,
                stage: str | None = None, limit: int = 500) -> list[DeliveryDeadlines]:
        """Deliveries with at least one stage past due and unanswered, oldest deadline first."""
        at = self.clock() if now is None else now
        stages = [stage] if stage else list(STAGES)
        where = [delivery_deadlines.c.settled_at.is_(None),
                 deliveries.c.state.not_in(NEVER_SENT),
                 sa.or_(*(_open_past(s, at) for s in stages))]
        if not viewer.operator:
            # The read side's own rule, as a subquery of its own: inlined, its EXISTS on
            # deliveries would correlate with the deliveries joined here.
            where.append(delivery_deadlines.c.document.in_(
                sa.select(documents.c.id).where(visible_to(viewer)).correlate(None)))
        if destination:
            where.append(deliveries.c.destination == destination)
        with self.engine.connect() as conn:
            views = self._views(conn, where, now=at, limit=limit)
        return [v for v in views if v.overdue]

    def counts(self, *, now: float | None = None) -> list[tuple[str, str, int]]:
        """(destination, stage, overdue deliveries) from one aggregate query: what the
        gauge shows, cheap enough for every scrape (indexes on the due columns limit it to
        deliveries past a deadline)."""
        at = self.clock() if now is None else now
        dl = deliveries.c
        sums = [sa.func.sum(sa.case((_open_past(s, at), 1), else_=0)).label(s) for s in STAGES]
        past = sa.and_(delivery_deadlines.c.settled_at.is_(None),
                       dl.state.not_in(NEVER_SENT),
                       sa.or_(*(delivery_deadlines.c[f"{s}_due"] < at for s in STAGES)))
        query = (sa.select(dl.destination, *sums)
                 .select_from(delivery_deadlines.join(deliveries,
                                                      dl.id == delivery_deadlines.c.delivery))
                 .where(past).group_by(dl.destination))
        with self.engine.connect().execution_options(**READ_ONLY) as conn:
            rows = conn.execute(query).all()
        return [(row.destination, s, int(getattr(row, s) or 0)) for row in rows for s in STAGES]

    def _views(self, conn: Connection, where: Sequence[sa.ColumnElement[bool]], *,
               now: float | None, limit: int = 10_000) -> list[DeliveryDeadlines]:
        at = self.clock() if now is None else now
        dd, dl = delivery_deadlines.c, deliveries.c
        query = (sa.select(dd.delivery, dd.document, dd.rule, dd.due_date, dd.arrival_due,
                           dd.acceptance_due, dd.completion_due, dl.recipient,
                           dl.effective_recipient, dl.destination)
                 .select_from(delivery_deadlines.join(deliveries, dl.id == dd.delivery)
                              .join(documents, documents.c.id == dd.document))
                 .where(*where)
                 .order_by(sa.func.coalesce(dd.arrival_due, dd.acceptance_due,
                                            dd.completion_due), dd.delivery)
                 .limit(limit))
        rows = conn.execute(query).all()
        answers = _answers(conn, {r.document for r in rows})
        out = []
        for row in rows:
            said = [a for organ in {row.recipient, row.effective_recipient}
                    for a in answers.get((row.document, organ), [])]
            stages = list(_stages(row, said, at, self.policy()))
            out.append(DeliveryDeadlines(
                delivery=row.delivery, document=row.document, recipient=row.recipient,
                effective_recipient=row.effective_recipient, destination=row.destination,
                rule=row.rule, due_date=row.due_date, stages=stages,
                overdue=any(s.state == "overdue" for s in stages)))
        return out



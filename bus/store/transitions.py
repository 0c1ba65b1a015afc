"""Delivery state transitions after accept: due, queued, claim, finish, ack, sweep, requeue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
import structlog

from bus.store.core import StoreCore
from bus.store.rows import (
    _CLAIM_FIELDS,
    _EVENT_COLUMNS,
    Claim,
    Due,
    _event,
)
from bus.store.sql import (
    _claim,
    _claim_audited,
    _claimed,
    _due,
    _finish,
    _finish_audited,
    _mark_queued,
    _withdraw_recalled,
)
from bus.store.tables import (
    READ_ONLY,
    deliveries,
    events,
)

log = structlog.get_logger("lgsp.store")

_MAY_BE_WITHDRAWN = ("pending", "parked", "awaiting")
"""Outcomes after which a recalled document's delivery ends ``withdrawn``."""


def _claim_of(row: tuple[Any, ...]) -> Claim:
    data = row[-1]
    return Claim(**dict(zip(_CLAIM_FIELDS, row[:-1], strict=True)),
                 payload=bytes(data) if data is not None else None)


class Transitions(StoreCore):
    def due(self, *, limit: int = 100, now: float | None = None,
            destinations: Iterable[str] | None = None) -> list[Due]:
        """Pending deliveries whose time has come, oldest first."""
        now = now or time.time()
        if destinations is None:
            with self.statements.begin(write=False) as tx:
                return [Due(*r) for r in tx.all("due", _due, {"now": now, "limit": limit})]
        d = deliveries.c
        query = (sa.select(d.id, d.destination, d.attempts)
                 .where(d.state == "pending", d.next_attempt_at <= now,
                        d.destination.in_(list(destinations)))
                 .order_by(d.next_attempt_at).limit(limit))
        with self.engine.connect() as conn:
            return [Due(*r) for r in conn.execute(query)]

    def mark_queued(self, published: Iterable[tuple[str, int]]) -> int:
        """pending → queued for tasks the broker confirmed: (delivery, its attempts when
        it was published); returns how many moved.

        A row whose attempt count moved on since its publication was claimed from that
        very task and may already be pending again for a retry, with no task in flight;
        marking it queued would leave it waiting for the sweeper, so it is left alone.
        """
        pairs = [(delivery, attempts) for delivery, attempts in published]
        if not pairs:
            return 0
        dialect = self.statements.dialect
        values: dict[str, Any] = {"now": time.time()}
        if dialect == "postgresql":
            values.update(ids=[d for d, _ in pairs], attempts=[a for _, a in pairs])
        else:
            values["pairs"] = json.dumps(pairs)
        with self.statements.begin(alone=True) as tx:
            return tx.execute(("mark_queued", dialect), lambda: _mark_queued(dialect), values)

    def claim(self, delivery: str, *, lease_s: float, worker: str) -> Claim | None:
        """Takes the lease on a delivery, or None if it is terminal or leased elsewhere.

        The payload comes with the claim, in the same transaction, so an attempt costs
        the database one round of statements before the destination is called.
        """
        now = time.time()
        values = {"delivery": delivery, "now": now, "lease_until": now + lease_s}
        if self.statements.dialect == "postgresql":
            with self.statements.begin(alone=True) as tx:
                rows = tx.all("claim_audited", _claim_audited, values | {"actor": worker})
            return _claim_of(rows[0]) if rows else None
        with self.statements.begin() as tx:
            if not tx.execute("claim", _claim, values):
                return None
            row = tx.one("claimed", _claimed, {"delivery": delivery})
            if row is None:
                return None
            claim = _claim_of(row)
            tx.insert(events, _EVENT_COLUMNS, [_event(
                worker, "attempt", now, document=claim.document, delivery=delivery,
                detail={"attempt": claim.attempts})])
        return claim

    def finish(self, claim: Claim, state: str, *, worker: str, reason: str | None = None,
               reference: str | None = None, retry_at: float | None = None) -> bool:
        """Records the outcome of a claimed attempt; False when the lease was lost meanwhile."""
        now = time.time()
        values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": reason,
                                  "d_id": claim.id, "d_attempts": claim.attempts}
        if state == "delivered":
            values.update(delivered_at=now, receipt_reference=reference)
        if state == "awaiting":
            values["receipt_reference"] = reference
        if state == "pending":
            values["next_attempt_at"] = retry_at or now
        shape = tuple(sorted(values))
        if state not in _MAY_BE_WITHDRAWN and self.statements.dialect == "postgresql":
            event = _event(worker, state, now, document=claim.document, delivery=claim.id,
                           detail={"attempt": claim.attempts, "reason": reason,
                                   "reference": reference, "retry_at": retry_at})
            values.update((f"e_{column}", value) for column, value in event.items())
            del values["e_delivery"]
            with self.statements.begin(alone=True) as tx:
                done = tx.execute(("finish_audited", shape),
                                  lambda: _finish_audited(shape), values)
            return bool(done)
        with self.statements.begin() as tx:
            done = tx.execute(("finish", shape), lambda: _finish(shape), values)
            if done:
                action = "retry" if state == "pending" else state
                trail = [_event(
                    worker, action, now, document=claim.document, delivery=claim.id,
                    detail={"attempt": claim.attempts, "reason": reason,
                            "reference": reference, "retry_at": retry_at})]
                if state in _MAY_BE_WITHDRAWN and tx.execute(
                        "withdraw_recalled", _withdraw_recalled, {"delivery": claim.id}):
                    trail.append(_event(worker, "withdrawn", now, document=claim.document,
                                        delivery=claim.id,
                                        detail={"reason": "the document was recalled while "
                                                          "this attempt was under way"}))
                tx.insert(events, _EVENT_COLUMNS, trail)
        return bool(done)

    def acknowledge(self, delivery: str, *, ok: bool, actor: str,
                    reason: str | None = None) -> bool:
        """A mailbox system confirmed (or refused) a delivery it collected; idempotent."""
        now = time.time()
        state = "delivered" if ok else "refused"
        values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": reason}
        if ok:
            values["delivered_at"] = now
        with self.begin() as conn:
            row = conn.execute(sa.select(deliveries.c.document).where(
                deliveries.c.id == delivery)).first()
            if row is None:
                return False
            done = conn.execute(deliveries.update().where(
                deliveries.c.id == delivery, deliveries.c.state == "awaiting"
            ).values(**values)).rowcount
            if done:
                self.audit(conn, actor, "acknowledged" if ok else "refused",
                           document=row.document, delivery=delivery, at=now,
                           detail={"reason": reason} if reason else None)
        return bool(done)

    def sweep(self, *, queued_older_than_s: float, now: float | None = None) -> int:
        """Returns lost work to ``pending``: expired leases and long-unclaimed queued tasks.

        Every ten minutes it also removes orphan payload files (see
        :meth:`sweep_payload_files`); their count is not part of the answer."""
        if self.files is not None and time.monotonic() >= self._next_file_sweep:
            self._next_file_sweep = time.monotonic() + 600.0
            try:
                self.sweep_payload_files()
            except Exception:  # another node sweeping at once; the next round will do
                log.warning("store.payload_sweep_failed", exc_info=True)
        now = now or time.time()
        with self.begin() as conn:
            expired = conn.execute(deliveries.update().where(
                deliveries.c.state == "delivering", deliveries.c.lease_until < now
            ).values(state="pending", lease_until=None, updated_at=now,
                     last_error="worker lease expired")).rowcount
            stale = conn.execute(deliveries.update().where(
                deliveries.c.state == "queued",
                deliveries.c.updated_at < now - queued_older_than_s,
            ).values(state="pending", updated_at=now)).rowcount
        return int(expired or 0) + int(stale or 0)

    def depth(self) -> list[tuple[str, str, int, float | None]]:
        """(destination, state, count, oldest created_at) for every non-final state."""
        query = (sa.select(deliveries.c.destination, deliveries.c.state, sa.func.count(),
                           sa.func.min(deliveries.c.created_at))
                 .where(deliveries.c.state.in_(("pending", "queued", "delivering", "awaiting",
                                                "parked")))
                 .group_by(deliveries.c.destination, deliveries.c.state))
        with self.engine.connect().execution_options(**READ_ONLY) as conn:
            return [(r[0], r[1], int(r[2]), r[3]) for r in conn.execute(query)]

    def requeue(self, delivery: str, *, actor: str) -> bool:
        """Operator action: a parked (or refused) delivery goes round again from attempt 0."""
        now = time.time()
        with self.begin() as conn:
            row = conn.execute(sa.select(deliveries.c.document).where(
                deliveries.c.id == delivery,
                deliveries.c.state.in_(("parked", "refused")))).first()
            if row is None:
                return False
            conn.execute(deliveries.update().where(deliveries.c.id == delivery).values(
                state="pending", attempts=0, next_attempt_at=now, updated_at=now,
                last_error=None))
            self.audit(conn, actor, "requeued", document=row.document, delivery=delivery,
                       at=now)
        return True

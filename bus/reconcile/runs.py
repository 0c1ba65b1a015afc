"""Where reconciliation runs are kept, and the lease that elects one runner among processes.

A run row is written when a run starts (state ``running``) and completed with its counts
and mismatch rows in one transaction when it ends, so an operator never reads half a run
as a finished one. The lease is a row with an expiry: whoever updates it (or inserts it)
holds it; a holder that died loses it when ``until`` passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.reconcile.model import MismatchView, RunDetail, RunSummary, empty_counts
from bus.store.queries import iso
from bus.store.tables import new_id, reconcile_leases, reconcile_mismatches, reconcile_runs

MAX_RUNS = 500


def start_run(engine: Engine, *, day: str, trigger: str, actor: str) -> str:
    run = new_id()
    with engine.begin() as conn:
        conn.execute(reconcile_runs.insert().values(
            id=run, day=day, trigger=trigger, actor=actor, state="running",
            started_at=time.time(), counts=json.dumps(empty_counts())))
    return run


def finish_run(engine: Engine, run: str, *, counts: dict[str, int], notes: Sequence[str],
               mismatches: Sequence[MismatchView], error: str | None = None) -> None:
    with engine.begin() as conn:
        if mismatches:
            conn.execute(reconcile_mismatches.insert(), [
                {"run": run, **m.model_dump(mode="json")} for m in mismatches])
        conn.execute(reconcile_runs.update().where(reconcile_runs.c.id == run).values(
            state="failed" if error else "finished", finished_at=time.time(),
            counts=json.dumps(counts), notes=json.dumps(list(notes), ensure_ascii=False),
            error=error))


def _summary(row: Any, mismatches: int) -> RunSummary:
    return RunSummary(id=row.id, day=row.day, trigger=row.trigger, actor=row.actor,
                      state=row.state, started_at=iso(row.started_at) or "",
                      finished_at=iso(row.finished_at), counts=json.loads(row.counts),
                      mismatches=mismatches, notes=json.loads(row.notes or "[]"),
                      error=row.error)


def _counted() -> sa.Select[Any]:
    m = reconcile_mismatches
    found = (sa.select(m.c.run, sa.func.count().label("n")).group_by(m.c.run).subquery())
    return (sa.select(reconcile_runs, sa.func.coalesce(found.c.n, 0).label("n"))
            .outerjoin(found, found.c.run == reconcile_runs.c.id))


def list_runs(engine: Engine, *, day: str | None = None, limit: int = 50) -> list[RunSummary]:
    """Newest first."""
    query = _counted().order_by(reconcile_runs.c.started_at.desc()).limit(
        max(1, min(limit, MAX_RUNS)))
    if day:
        query = query.where(reconcile_runs.c.day == day)
    with engine.connect() as conn:
        return [_summary(row, int(row.n)) for row in conn.execute(query)]


def get_run(engine: Engine, run: str) -> RunDetail:
    with engine.connect() as conn:
        row = conn.execute(_counted().where(reconcile_runs.c.id == run)).first()
        if row is None:
            raise errors.NotFound(f"no reconciliation run {run!r}; `lgsp reconcile show` "
                                  "lists them")
        items = conn.execute(sa.select(reconcile_mismatches)
                             .where(reconcile_mismatches.c.run == run)
                             .order_by(reconcile_mismatches.c.id)).all()
    summary = _summary(row, len(items))
    return RunDetail(**summary.model_dump(), items=[
        MismatchView(kind=i.kind, destination=i.destination, axis_doc_id=i.axis_doc_id,
                     message_type=i.message_type, document=i.document, delivery=i.delivery,
                     organ_id=i.organ_id, detail=i.detail, action=i.action) for i in items])


def scheduled_done(engine: Engine, day: str) -> bool:
    """Whether the scheduled job already finished a run for ``day``."""
    with engine.connect() as conn:
        return conn.execute(sa.select(reconcile_runs.c.id).where(
            reconcile_runs.c.day == day, reconcile_runs.c.trigger == "schedule",
            reconcile_runs.c.state == "finished").limit(1)).first() is not None


def last_scheduled_attempt(engine: Engine, day: str) -> float | None:
    with engine.connect() as conn:
        found = conn.execute(sa.select(sa.func.max(reconcile_runs.c.started_at)).where(
            reconcile_runs.c.day == day, reconcile_runs.c.trigger == "schedule")).scalar()
    return None if found is None else float(found)


def acquire(engine: Engine, name: str, holder: str, ttl_s: float) -> bool:
    """Takes or renews the lease ``name`` for ``ttl_s``; False while another holds it."""
    now = time.time()
    lease = reconcile_leases
    try:
        with engine.begin() as conn:
            taken = conn.execute(lease.update().where(
                lease.c.name == name,
                sa.or_(lease.c.until < now, lease.c.holder == holder),
            ).values(holder=holder, until=now + ttl_s)).rowcount
            if taken:
                return True
            if conn.execute(sa.select(lease.c.name).where(lease.c.name == name)).first():
                return False
            conn.execute(lease.insert().values(name=name, holder=holder, until=now + ttl_s))
            return True
    except sa.exc.IntegrityError:
        return False


def release(engine: Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(reconcile_leases.update().where(
            reconcile_leases.c.name == name, reconcile_leases.c.holder == holder,
        ).values(until=0.0))

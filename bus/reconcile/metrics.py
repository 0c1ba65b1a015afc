"""Reconciliation gauges, read from the kept runs at scrape time.

Any process may have made the last run (the scheduled job's lease holder, an operator's
CLI), so a process-local gauge would be wrong; like the queue gauges of
:mod:`bus.metrics`, these are read from the database when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from bus.metrics import Metrics
from bus.reconcile.model import Kind
from bus.store.tables import reconcile_mismatches, reconcile_runs


class _ReconcileCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        found = GaugeMetricFamily(
            "lgsp_reconcile_mismatches",
            "Mismatches with the national axis found by the last finished reconciliation",
            labels=["kind"])
        finished = GaugeMetricFamily(
            "lgsp_reconcile_last_finished_timestamp_seconds",
            "When the last reconciliation with the national axis finished (absent: never)")
        failed = GaugeMetricFamily(
            "lgsp_reconcile_last_run_failed",
            "1 when the most recent reconciliation could not read the axis")
        r = reconcile_runs
        with self.engine.connect() as conn:
            last: Any = conn.execute(sa.select(r.c.id, r.c.finished_at)
                                     .where(r.c.state == "finished")
                                     .order_by(r.c.finished_at.desc()).limit(1)).first()
            latest = conn.execute(sa.select(r.c.state).where(r.c.state != "running")
                                  .order_by(r.c.started_at.desc()).limit(1)).scalar()
            counts: dict[str, int] = {}
            if last is not None:
                m = reconcile_mismatches
                counts = {str(kind): int(n) for kind, n in conn.execute(
                    sa.select(m.c.kind, sa.func.count()).where(m.c.run == last.id)
                    .group_by(m.c.kind))}
        for kind in Kind:
            found.add_metric([kind.value], counts.get(kind.value, 0))
        failed.add_metric([], 1.0 if latest == "failed" else 0.0)
        yield found
        yield failed
        if last is not None:
            finished.add_metric([], float(last.finished_at))
        yield finished  # declared even before the first run, with no sample


def watch(metrics: Metrics, engine: Engine) -> None:
    """Registers the gauges once per registry (an app may be built twice on one bus)."""
    if getattr(metrics, "_reconcile_watched", False):
        return
    metrics.registry.register(_ReconcileCollector(engine))
    metrics._reconcile_watched = True  # type: ignore[attr-defined]

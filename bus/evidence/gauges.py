"""Prometheus gauges of the chain, read from the database at scrape time: how far the
sealer is behind. A sealer that stopped (no serve or worker running, or every tick
failing) shows as an oldest unsealed event growing older; alert on it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from bus.store.tables import audit_seals, events


class ChainCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            with self.engine.connect() as conn:
                top = conn.execute(sa.select(audit_seals.c.number, audit_seals.c.last_id)
                                   .order_by(audit_seals.c.number.desc()).limit(1)).first()
                number, last = (int(top[0]), int(top[1])) if top else (0, 0)
                count, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(
                    events.c.at)).where(events.c.id > last)).one()
        except sa.exc.SQLAlchemyError:
            return
        yield GaugeMetricFamily("lgsp_audit_head_seal", "Number of the last audit seal",
                                value=number)
        yield GaugeMetricFamily("lgsp_audit_unsealed_events",
                                "Audit events not yet covered by a seal", value=int(count))
        yield GaugeMetricFamily(
            "lgsp_audit_oldest_unsealed_age_seconds",
            "Age of the oldest audit event not yet sealed (0 when all are)",
            value=max(0.0, time.time() - float(oldest)) if oldest is not None else 0.0)

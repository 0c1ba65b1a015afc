"""Prometheus gauges of the chain, read from the database at scrape time: how far the
sealer is behind. A sealer that stopped (no serve or worker running, or every tick
failing) shows as an oldest unsealed event growing older; alert on it.

Both are read through the events' primary key from the last seal on, and the count stops
at :data:`COUNTED`: a database upgraded from before the seals holds ten million unsealed
events until the sealer catches up, and counting them took 3 s of every scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from bus.store.tables import audit_seals, events

COUNTED: Final = 10_000
"""The unsealed-events gauge counts up to this many (an alert fires far below it)."""


class ChainCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            with self.engine.connect() as conn:
                top = conn.execute(sa.select(audit_seals.c.number, audit_seals.c.last_id)
                                   .order_by(audit_seals.c.number.desc()).limit(1)).first()
                number, last = (int(top[0]), int(top[1])) if top else (0, 0)
                # Events are written in id order: the oldest unsealed is the first one.
                unsealed = sa.select(events.c.id, events.c.at).where(events.c.id > last) \
                    .order_by(events.c.id)
                oldest = conn.execute(unsealed.with_only_columns(events.c.at).limit(1)) \
                    .scalar()
                count = conn.execute(sa.select(sa.func.count()).select_from(
                    unsealed.with_only_columns(events.c.id).limit(COUNTED).subquery())
                ).scalar_one()
        except sa.exc.SQLAlchemyError:
            return
        yield GaugeMetricFamily("lgsp_audit_head_seal", "Number of the last audit seal",
                                value=number)
        yield GaugeMetricFamily("lgsp_audit_unsealed_events",
                                f"Audit events not yet covered by a seal (counted up to "
                                f"{COUNTED})", value=int(count))
        yield GaugeMetricFamily(
            "lgsp_audit_oldest_unsealed_age_seconds",
            "Age of the oldest audit event not yet sealed (0 when all are)",
            value=max(0.0, time.time() - float(oldest)) if oldest is not None else 0.0)

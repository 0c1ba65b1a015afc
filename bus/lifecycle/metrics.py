"""Recall and withdrawal counters, read from the database at scrape time.

A process-local counter would count only the recalls that came through this process's
door and would restart at zero with it; the database knows them all, and two small
aggregate queries (the link table, and withdrawn rows found through the state index)
cost a scrape far less than a wrong figure costs an operator.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.engine import Engine

from bus.store.tables import deliveries, document_links


class LifecycleCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        recalls = CounterMetricFamily(
            "lgsp_recalls", "Revoke, update and replace documents linked to an original",
            labels=["kind"])
        withdrawn = CounterMetricFamily(
            "lgsp_deliveries_withdrawn",
            "Deliveries withdrawn because their document was revoked or replaced first")
        link, dl = document_links.c, deliveries.c
        with self.engine.connect() as conn:
            for kind, count in conn.execute(sa.select(link.kind, sa.func.count(
                    sa.distinct(link.superseding))).group_by(link.kind)):
                recalls.add_metric([kind], int(count))
            withdrawn.add_metric([], int(conn.execute(
                sa.select(sa.func.count()).select_from(deliveries)
                .where(dl.state == "withdrawn")).scalar_one()))
        yield recalls
        yield withdrawn


def watch(registry: CollectorRegistry, engine: Engine) -> None:
    registry.register(LifecycleCollector(engine))

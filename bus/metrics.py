"""Every Prometheus metric of the bus, on a registry the caller owns.

Names start with ``lgsp_``. Label sets are kept small and bounded (destination names
and refusal codes come from configuration and the error tree, never from packets), so a
hostile sender cannot blow up the time-series count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

DepthRow = tuple[str, str, int, float | None]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter("lgsp_documents_received", "Packets accepted at the door",
                                ["kind", "channel"], registry=r)
        self.refused = Counter("lgsp_documents_refused", "Packets refused at the door",
                               ["code", "channel"], registry=r)
        self.deliveries = Counter("lgsp_deliveries", "Delivery attempts by outcome",
                                  ["destination", "outcome"], registry=r)
        self.latency = Histogram(
            "lgsp_delivery_latency_seconds", "From acceptance to confirmed delivery",
            ["destination"], registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
                     3600, 21600, 86400))
        self.config_reloads = Counter("lgsp_config_reloads", "Routes/directory reloads",
                                      ["result"], registry=r)

    def watch(self, depth: Callable[[], Sequence[DepthRow]]) -> None:
        """Queue gauges read from the database at scrape time, the only place that knows.

        ``depth`` returns (destination, state, count, oldest created_at) for every
        non-delivered state; a process-local gauge would be wrong as soon as a second
        worker runs.
        """
        self.registry.register(_DepthCollector(depth))


class _DepthCollector(Collector):
    def __init__(self, depth: Callable[[], Sequence[DepthRow]]) -> None:
        self.depth = depth

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily("lgsp_queue_depth", "Deliveries not yet terminal, by state",
                                  labels=["destination", "state"])
        oldest = GaugeMetricFamily(
            "lgsp_oldest_undelivered_age_seconds",
            "Age of the oldest delivery neither delivered, refused nor parked",
            labels=["destination"])
        parked = GaugeMetricFamily("lgsp_parked_deliveries",
                                   "Deliveries waiting for an operator", labels=["destination"])
        now = time.time()
        ages: dict[str, float] = {}
        for destination, state, count, created in self.depth():
            if state == "parked":
                parked.add_metric([destination], count)
                continue
            queue.add_metric([destination, state], count)
            if created is not None:
                ages[destination] = max(ages.get(destination, 0.0), now - created)
        for destination, age in ages.items():
            oldest.add_metric([destination], age)
        yield queue
        yield oldest
        yield parked

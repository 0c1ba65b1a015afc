"""The overdue gauge, counted by :class:`bus.lifecycle.overdue.DeadlineBook`.

Re-exported by :mod:`bus.lifecycle.overdue`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.lifecycle.deadlines import STAGES
from bus.lifecycle.overdue_stages import log

if TYPE_CHECKING:
    from bus.lifecycle.overdue import DeadlineBook


class OverdueCollector(Collector):
    """``lgsp_deliveries_overdue{destination,stage}``, read from the database: overdue is
    a matter of the clock, so no event would ever update a gauge.

    The count costs one row per past-due unanswered deadline, which grows with history
    (1.6 s at 70,000 in a million-document database) while overdue changes on the scale
    of working hours. With ``max_age_s`` the scrape answers from the last count and a
    stale one is refreshed in the background; the first count starts with the process, so
    only a scrape that comes before it is done waits for it.
    """

    def __init__(self, book: DeadlineBook,
                 destinations: Callable[[], Iterable[str]] = tuple, *,
                 max_age_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.book = book
        self.destinations = destinations
        self.max_age_s = max_age_s
        self.clock = clock
        self._last: tuple[float, list[tuple[str, str, int]]] | None = None
        self._refreshing = threading.Lock()
        if max_age_s > 0:
            self._refreshing.acquire()
            threading.Thread(target=self._refresh, name="lgsp-overdue-count",
                             daemon=True).start()

    def _counts(self) -> list[tuple[str, str, int]]:
        if self.max_age_s > 0 and self._last is None:
            with self._refreshing:  # the first count, started with the process
                pass
        last = self._last
        if self.max_age_s <= 0 or last is None:
            rows = self.book.counts()
            self._last = (self.clock(), rows)
            return rows
        if self.clock() - last[0] >= self.max_age_s and self._refreshing.acquire(False):
            threading.Thread(target=self._refresh, name="lgsp-overdue-count",
                             daemon=True).start()
        return last[1]

    def _refresh(self) -> None:
        try:
            rows = self.book.counts()
            self._last = (self.clock(), rows)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("deadlines.metric_unavailable", error=repr(exc))
        finally:
            self._refreshing.release()

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "lgsp_deliveries_overdue",
            "Recipient deliveries past a working-day deadline without the answering status "
            "(stage arrival: 01, acceptance: 03, completion: 06)",
            labels=["destination", "stage"])
        try:
            rows = self._counts()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("deadlines.metric_unavailable", error=repr(exc))
            rows = []
        counted: dict[tuple[str, str], int] = {(d, s): n for d, s, n in rows}
        # Every configured destination has its series, 0 until something falls due, so a
        # dashboard panel and an alert see "none overdue" rather than "no data".
        for destination in self.destinations() if self.book.policy() is not None else ():
            for step in STAGES:
                counted.setdefault((destination, step), 0)
        for labels, count in sorted(counted.items()):
            gauge.add_metric(list(labels), count)
        yield gauge

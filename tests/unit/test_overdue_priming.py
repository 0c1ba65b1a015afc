"""The overdue gauge's first count starts with the process, not with the first scrape."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bus.lifecycle.calendar import WorkCalendar
from bus.lifecycle.deadlines import DeadlinePolicy
from bus.lifecycle.overdue import DeadlineBook, OverdueCollector
from bus.store.tables import create_engine, metadata


def test_the_first_count_is_under_way_before_any_scrape(tmp_path: Path) -> None:
    """At a million documents the count took 1.6–5.8 s, which the first scrape after a
    start waited for; Prometheus scrapes seconds later, when it is done."""
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    metadata.create_all(engine)
    book = DeadlineBook(engine, lambda: DeadlinePolicy(WorkCalendar(
        zone=ZoneInfo("Asia/Ho_Chi_Minh"))))
    counted = threading.Event()
    real = book.counts

    def counting(**kwargs: Any) -> list[tuple[str, str, int]]:
        rows = real(**kwargs)
        counted.set()
        return rows

    book.counts = counting  # type: ignore[method-assign]
    collector = OverdueCollector(book, lambda: ["hcm_egov"], max_age_s=30)
    assert counted.wait(5), "no count before the first scrape"
    started = time.monotonic()
    (gauge,) = collector.collect()
    assert time.monotonic() - started < 1.0 and len(gauge.samples) == 3
    engine.dispose()


def test_without_a_cache_nothing_is_counted_until_a_scrape(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    metadata.create_all(engine)
    book = DeadlineBook(engine, lambda: None)
    calls: list[int] = []
    book.counts = lambda **_kw: calls.append(1) or []  # type: ignore[method-assign]
    collector = OverdueCollector(book, max_age_s=0)
    time.sleep(0.2)
    assert not calls
    list(collector.collect())
    assert calls == [1]
    engine.dispose()

"""The daily reconciliation: the day it covers, one run among several processes, retries.

Two Bus objects on one database stand for two ``lgsp worker`` processes; the national
axis is the simulator, so each run really reads the axis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml

from adapters.national_axis.simulator import AxisSimulator
from bus import errors
from bus.app import Bus
from bus.reconcile import runs
from bus.reconcile.cli import parse_day
from bus.reconcile.schedule import LEASE, RETRY_S, ReconcileSchedule, due_day
from bus.settings import REPO_ROOT, load_settings
from bus.store.tables import reconcile_runs

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SYSTEM, SECRET = "00.37.W00", "schedule-secret"


def at(hour: int, minute: int = 0, day: date = date(2026, 12, 6)) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


def test_the_scheduled_day_is_yesterday_once_the_time_has_passed() -> None:
    assert due_day(at(1, 29), "01:30") == date(2026, 12, 4)
    assert due_day(at(1, 30), "01:30") == date(2026, 12, 5)
    assert due_day(at(23, 59), "01:30") == date(2026, 12, 5)


def test_reconcile_at_must_be_a_time_of_day_or_empty() -> None:
    assert load_settings(environ={}, reconcile_at="").reconcile_at == ""
    assert load_settings(environ={}, reconcile_at="07:05").reconcile_at == "07:05"
    for bad in ("25:00", "7:5", "noon"):
        with pytest.raises(errors.ConfigInvalid):
            load_settings(environ={}, reconcile_at=bad)


def test_cli_dates() -> None:
    today = date(2026, 12, 6)
    assert parse_day(None, today) == today
    assert parse_day("yesterday", today) == date(2026, 12, 5)
    assert parse_day("2026-11-30", today) == date(2026, 11, 30)
    with pytest.raises(errors.InvalidRequest):
        parse_day("30/11/2026", today)


@pytest.fixture
def axis() -> Iterator[AxisSimulator]:
    with AxisSimulator({SYSTEM: SECRET}) as sim:
        yield sim


def _routes(folder: Path, endpoint: str) -> Path:
    raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text("utf-8"))
    raw["destinations"]["national_axis"]["options"]["endpoint"] = endpoint
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "utf-8")
    return path


@pytest.fixture
def processes(tmp_path: Path, axis: AxisSimulator,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Bus]]:
    monkeypatch.setenv("LGSP_NATIONAL_AXIS_SECRET", SECRET)
    settings = load_settings(environ={}, data_dir=tmp_path / "var",
                             routes=_routes(tmp_path, axis.endpoint), reconcile_at="01:30")
    buses = [Bus(settings), Bus(settings)]
    yield buses
    for bus in buses:
        bus.close()


def scheduled(bus: Bus) -> list[tuple[str, str]]:
    with bus.store.engine.connect() as conn:
        return [(r.day, r.state) for r in conn.execute(
            sa.select(reconcile_runs.c.day, reconcile_runs.c.state)
            .where(reconcile_runs.c.trigger == "schedule"))]


def test_one_process_of_two_runs_the_day_once(processes: list[Bus]) -> None:
    now = datetime.now(ZONE).replace(hour=12)
    first, second = (ReconcileSchedule(bus, now=lambda: now) for bus in processes)
    yesterday = (now.date() - timedelta(days=1)).isoformat()
    engine = processes[0].store.engine

    assert runs.acquire(engine, LEASE, "another-host:1", 60.0)
    assert first.tick() is None and second.tick() is None
    assert scheduled(processes[0]) == []
    runs.release(engine, LEASE, "another-host:1")

    made: list[str | None] = []
    workers = [threading.Thread(target=lambda s=s: made.append(s.tick()))  # type: ignore[misc]
               for s in (first, second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len([m for m in made if m]) == 1
    assert scheduled(processes[0]) == [(yesterday, "finished")]
    assert first.tick() is None and second.tick() is None
    assert len(scheduled(processes[0])) == 1


def test_a_failed_scheduled_run_is_kept_and_tried_again_later(
        processes: list[Bus], axis: AxisSimulator) -> None:
    now = datetime.now(ZONE).replace(hour=12)
    schedule = ReconcileSchedule(processes[0], now=lambda: now)
    axis.down()
    failed = schedule.tick()
    assert failed is not None
    kept = runs.get_run(processes[0].store.engine, failed)
    assert kept.state == "failed" and kept.error and "axis" in kept.error
    axis.ok()
    assert schedule.tick() is None  # within RETRY_S of the failed attempt
    later = ReconcileSchedule(processes[1], now=lambda: now,
                              clock=lambda: time.time() + RETRY_S + 1)
    assert later.tick() is not None
    assert [state for _, state in scheduled(processes[0])].count("finished") == 1


def test_no_national_axis_no_scheduled_run(tmp_path: Path) -> None:
    raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text("utf-8"))
    raw["destinations"].pop("national_axis")
    raw["defaults"].pop("outside", None)
    raw["rules"] = [r for r in raw["rules"] if r.get("deliver_to") != "national_axis"]
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "utf-8")
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "var", routes=path))
    try:
        assert ReconcileSchedule(bus).tick() is None
        assert scheduled(bus) == []
    finally:
        bus.close()

"""Where each stage stands, judged from stored deadlines and business statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bus import cli
from bus.lifecycle.calendar import WorkCalendar
from bus.lifecycle.deadlines import DeadlinePolicy
from bus.lifecycle.overdue import DeadlineBook
from bus.store.queries import Viewer
from bus.store.tables import (
    business_statuses,
    create_engine,
    deliveries,
    delivery_deadlines,
    documents,
    metadata,
)

T0 = 1_780_000_000.0  # a Thursday morning in Vietnam, 2026-05-28
HOUR = 3600.0
OPERATOR = Viewer(system="op", operator=True)


@pytest.fixture
def book() -> DeadlineBook:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    policy = DeadlinePolicy(WorkCalendar(zone=ZoneInfo("Asia/Ho_Chi_Minh")))
    return DeadlineBook(engine, lambda: policy, clock=lambda: T0 + 100 * HOUR)


def _document(book: DeadlineBook, doc: str, said: list[tuple[str, float]]) -> None:
    row: dict[str, Any] = {"id": doc, "kind": "edoc", "sender": "000.00.12.H37",
                           "document_id": doc, "dedup_key": doc, "sha256": "0" * 64,
                           "payload_sha256": "0" * 64, "size": 1, "system": "eoffice",
                           "received_at": T0, "receipt": "{}"}
    with book.engine.begin() as conn:
        conn.execute(documents.insert(), [row])
        conn.execute(deliveries.insert(), [{
            "id": doc + "-d", "document": doc, "recipient": "000.00.33.H37",
            "effective_recipient": "000.00.31.H37", "destination": "hcm_egov", "rule": "r",
            "is_copy": False, "state": "delivered", "attempts": 1, "next_attempt_at": T0,
            "created_at": T0, "updated_at": T0}])
        conn.execute(delivery_deadlines.insert(), [{
            "delivery": doc + "-d", "document": doc, "rule": "normal", "started_at": T0,
            "arrival_due": T0 + HOUR, "acceptance_due": T0 + 10 * HOUR,
            "completion_due": T0 + 50 * HOUR, "computed_at": T0}])
        for code, at in said:
            conn.execute(business_statuses.insert(), [{
                "document": doc, "organ_id": "000.00.31.H37", "code": code, "received_at": at,
                "status_document": doc}])


def _states(book: DeadlineBook, doc: str) -> dict[str, str]:
    with book.engine.connect() as conn:
        (view,) = book.for_document(conn, doc)
    return {s.stage: s.state for s in view.stages}


def test_met_late_open_and_overdue(book: DeadlineBook) -> None:
    _document(book, "a", [("01", T0 + 0.5 * HOUR), ("03", T0 + 20 * HOUR)])
    assert _states(book, "a") == {"arrival": "met", "acceptance": "late",
                                  "completion": "overdue"}
    with book.engine.connect() as conn:
        (view,) = book.for_document(conn, "a", now=T0 + 30 * HOUR)
    assert {s.stage: s.state for s in view.stages}["completion"] == "open"
    assert not view.overdue


def test_a_later_status_meets_the_earlier_stages(book: DeadlineBook) -> None:
    _document(book, "b", [("06", T0 + 0.5 * HOUR)])
    assert set(_states(book, "b").values()) == {"met"}
    assert book.overdue(OPERATOR) == []


def test_a_refusal_closes_every_stage_and_counts_by_resolved_code(book: DeadlineBook) -> None:
    _document(book, "c", [("02", T0 + 2 * HOUR)])
    assert _states(book, "c") == {"arrival": "closed", "acceptance": "closed",
                                  "completion": "closed"}
    _document(book, "d", [])
    (late,) = book.overdue(OPERATOR)
    assert late.document == "d"
    assert sorted(book.counts()) == [("hcm_egov", "acceptance", 1), ("hcm_egov", "arrival", 1),
                                     ("hcm_egov", "completion", 1)]
    overdue = {s.stage: s.overdue_working_hours for s in late.stages}
    assert overdue["arrival"] is not None and overdue["arrival"] > 0


def test_check_command_names_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "calendar.yaml").write_text("version: 1\n", encoding="utf-8")
    (tmp_path / "deadlines.yaml").write_text(
        "version: 1\nrules:\n  - name: x\n    arrival: soon\n", encoding="utf-8")
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"calendar: {tmp_path / 'calendar.yaml'}\n"
                        f"deadlines: {tmp_path / 'deadlines.yaml'}\n", encoding="utf-8")
    assert cli.main(["deadlines", "check", "--config", str(settings)]) == 1
    out = capsys.readouterr().out
    assert "deadlines.yaml, line 4" in out and "1 problem(s)" in out
    (tmp_path / "deadlines.yaml").write_text(
        "version: 1\nrules:\n  - name: x\n    arrival: 2h\n", encoding="utf-8")
    assert cli.main(["deadlines", "check", "--config", str(settings)]) == 0
    assert "1 rule(s): x" in capsys.readouterr().out


def test_an_unreadable_database_does_not_break_the_scrape(book: DeadlineBook) -> None:
    from bus.lifecycle.overdue import OverdueCollector

    with book.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE delivery_deadlines"))
    (gauge,) = OverdueCollector(book).collect()
    assert gauge.samples == []


def test_routes_check_reports_the_files_reloaded_with_the_routes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bus.settings import REPO_ROOT

    for name in ("config/directory.yaml", "config/calendar.yaml", "routes.yaml"):
        (tmp_path / Path(name).name).write_bytes((REPO_ROOT / name).read_bytes())
    (tmp_path / "deadlines.yaml").write_text("version: 1\nrules:\n  - name: x\n"
                                             "    completion: tomorrow\n", encoding="utf-8")
    argv = ["routes", "check", "--routes", str(tmp_path / "routes.yaml"),
            "--directory", str(tmp_path / "directory.yaml")]
    assert cli.main(argv) == 1
    assert "deadlines.yaml, line 4" in capsys.readouterr().out


def test_a_stale_count_is_refreshed_in_the_background_not_in_the_scrape(
        tmp_path: Path) -> None:
    """At a million documents the count takes seconds; a scrape must not wait for it."""
    import threading
    import time

    from bus.lifecycle.overdue import OverdueCollector

    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")  # shared across threads
    metadata.create_all(engine)
    policy = DeadlinePolicy(WorkCalendar(zone=ZoneInfo("Asia/Ho_Chi_Minh")))
    book = DeadlineBook(engine, lambda: policy, clock=lambda: T0 + 100 * HOUR)

    calls: list[float] = []
    slow = threading.Event()
    real = book.counts

    def counting(**kwargs: Any) -> list[tuple[str, str, int]]:
        calls.append(time.monotonic())
        if len(calls) > 1:
            slow.wait(10)  # the background refresh takes long
        return real(**kwargs)

    book.counts = counting  # type: ignore[method-assign]
    now = [0.0]
    collector = OverdueCollector(book, lambda: ["hcm_egov"], max_age_s=30,
                                 clock=lambda: now[0])
    (gauge,) = collector.collect()
    assert len(calls) == 1 and len(gauge.samples) == 3  # the first scrape counts
    collector.collect()
    assert len(calls) == 1  # fresh: answered from the last count
    now[0] = 31.0
    started = time.monotonic()
    (gauge,) = collector.collect()
    collector.collect()
    assert time.monotonic() - started < 1.0 and len(gauge.samples) == 3
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 2  # one refresh, started by the stale scrape, however many scrapes
    slow.set()
    deadline = time.monotonic() + 5
    while collector._refreshing.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not collector._refreshing.locked() and collector._last is not None
    assert collector._last[0] == 31.0

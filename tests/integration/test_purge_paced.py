"""A paced purge (settings.purge_batch_ms, purge_max_slowdown) on a real database: its
batches follow the time they take and the delay a probe write meets beside them, it
removes all it should, keeps held documents, and each batch is recorded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.app import Bus
from bus.maintenance import holds, retention
from bus.maintenance.livelatency import LiveLatency
from bus.maintenance.probe import Meeting, write_probe
from bus.maintenance.retention import Policy, purge
from bus.settings import load_settings
from bus.store.tables import documents, events
from tests.cluster import fresh_database
from tests.retention_seed import seed_finished

POLICY = Policy.from_settings({"edoc": "3650d"})


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bus]:
    url = "" if request.param == "sqlite" else fresh_database(request.getfixturevalue("postgres"))
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "bus", database_url=url))
    yield bus
    bus.close()


class Clock:
    """Each batch seems to take ``per_batch`` seconds (read once before, once after)."""

    def __init__(self, per_batch: float) -> None:
        self.now, self.step = 0.0, per_batch

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _purged_batches(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return [len(json.loads(raw)["documents"]) for raw in conn.execute(
            sa.select(events.c.detail).where(events.c.action == "purged")
            .order_by(events.c.id)).scalars()]


def test_a_fast_database_gets_batches_doubling_up_to_the_most(bus: Bus) -> None:
    engine = bus.store.engine
    seed_finished(engine, 200)
    report = purge(engine, POLICY, actor="t", batch=64, batch_bytes=1 << 30, pause_s=0,
                   batch_ms=20, clock=Clock(0.0))
    assert report.documents == 200
    assert _purged_batches(engine) == [8, 16, 32, 64, 64, 16]


def test_a_slow_database_gets_batches_of_one_and_the_purge_still_finishes(bus: Bus) -> None:
    engine = bus.store.engine
    kept = seed_finished(engine, 30)[:3]
    for doc in kept:
        holds.add(engine, doc, reason="court case 12/2026", actor="t")
    report = purge(engine, POLICY, actor="t", batch=64, batch_bytes=1 << 30, pause_s=0,
                   batch_ms=20, clock=Clock(0.08))  # 4× the target, whatever the size
    assert report.documents == 27
    assert _purged_batches(engine) == [8, 2] + [1] * 17
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(documents.c.id)).scalars()) == set(kept)


def test_a_probe_write_waits_behind_a_batch_as_a_live_write_does(bus: Bus) -> None:
    engine = bus.store.engine
    probe = write_probe(engine)
    assert probe() < 5.0
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL's writers do not queue for one lock: the probe meets I/O
    with engine.begin():  # BEGIN IMMEDIATE: the write lock, as a purge batch holds it
        meeting = Meeting(probe)
        time.sleep(0.3)
    assert (meeting.result() or 0.0) >= 0.3


class ScriptedProbe:
    """Idle probes take 2 ms; one that meets a batch takes ``meeting_s``."""

    def __init__(self, meeting_s: float) -> None:
        self.meeting_s = meeting_s

    def __call__(self) -> float:
        return self.meeting_s if threading.current_thread().name == "lgsp-purge-probe" \
            else 0.002


def test_probes_delayed_by_the_batches_shrink_them_then_space_them_out(bus: Bus) -> None:
    engine = bus.store.engine
    seed_finished(engine, 30)
    pauses: list[float] = []
    report = purge(engine, POLICY, actor="t", batch=64, batch_bytes=1 << 30, pause_s=0,
                   batch_ms=100, max_slowdown=0.5, live_ms=10, probe=ScriptedProbe(0.05),
                   clock=Clock(0.02), sleep=pauses.append)  # 20 ms a batch
    assert report.documents == 30
    assert _purged_batches(engine) == [8, 2] + [1] * 20
    # probes meet a batch at most every 0.1 s of batch and pause time: the first judgement
    # waits for two of them, then each doubling for the next two
    assert pauses[:9] == pytest.approx([0.02] * 3 + [0.04] * 4 + [0.08] * 2)
    assert pauses[-1] == pytest.approx(0.02 * 200)  # one live write in 200 meets a batch
    assert pauses == sorted(pauses)


def test_probes_that_meet_no_delay_let_the_batches_grow(bus: Bus) -> None:
    engine = bus.store.engine
    seed_finished(engine, 200)
    report = purge(engine, POLICY, actor="t", batch=64, batch_bytes=1 << 30, pause_s=0,
                   batch_ms=100, max_slowdown=0.5, live_ms=10, probe=ScriptedProbe(0.003),
                   clock=Clock(0.001))
    assert report.documents == 200
    assert max(_purged_batches(engine)) == 64


class Said:
    """Stands for the module's logger: the suite's logging drops info lines."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **_: object) -> None:
        self.events.append(event)


def test_harm_never_holds_the_purge_below_its_floor_and_it_says_so_once(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = bus.store.engine
    seed_finished(engine, 30)
    pauses: list[float] = []
    said = Said()
    monkeypatch.setattr(retention, "log", said)
    report = purge(engine, POLICY, actor="t", batch=64, batch_bytes=1 << 30, pause_s=0,
                   batch_ms=100, max_slowdown=0.5, live_ms=10, min_docs_per_s=30,
                   probe=ScriptedProbe(0.05), clock=Clock(0.02), sleep=pauses.append)
    assert report.documents == 30
    assert report.floor_batches > 0
    assert report.documents / (0.02 * len(pauses) + sum(pauses)) >= 30
    assert pauses[-1] == pytest.approx(1 / 30 - 0.02)  # harm alone stretched it to 4 s
    assert said.events.count("purge.floor") == 1


def test_inside_serve_the_reference_is_the_processs_own_accept_p99(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "MEETING_GAP_S", 0.0)  # a probe beside every batch
    engine = bus.store.engine
    seed_finished(engine, 200)
    live = LiveLatency()
    for _ in range(200):
        live.record(0.040)  # a slow bus: 40 ms quietly
    report = purge(engine, POLICY, actor="t", batch=64, batch_bytes=1 << 30, pause_s=0,
                   batch_ms=100, max_slowdown=0.5, live_ms=10, live=live,
                   probe=ScriptedProbe(0.015), clock=Clock(0.001))
    assert report.documents == 200
    assert report.live_quiet_ms == pytest.approx(40.0)
    # 13 ms more than the idle probes: harm against the 10 ms floor, not against 40 ms
    assert max(_purged_batches(engine)) == 64

"""What makes a large migration fast without loosening it: the plan's parallel readers keep
the manifest's order, the lane reads ahead and writes its marks in batches, generated files
are cheap yet distinct, and the HCM Egov simulator can hold 100,000 effects."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.hcm_egov.simulator import HcmEgovSimulator
from bus.app import Bus
from bus.migrate import jobs, lane
from bus.migrate.generate import KB, GeneratedArchive
from bus.migrate.lane import Lane
from bus.migrate.source import LegacyRecord
from bus.settings import load_settings
from bus.store.tables import deliveries, migration_records

OWNER = "000.00.12.H37"


@pytest.fixture
def bus(tmp_path: Path) -> Bus:
    return Bus(load_settings(environ={}, data_dir=tmp_path))


def _planned(bus: Bus, archive: GeneratedArchive, readers: int) -> jobs.Job:
    job = jobs.create_job(bus.store.engine, archive, target="hcm_egov", owner=OWNER,
                          options={})
    return jobs.plan(bus.store.engine, job, archive, page_size=7, readers=readers)


def test_planning_reads_with_several_readers_and_keeps_the_listing_order(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = GeneratedArchive(24, sizes=(1 * KB, 2 * KB))
    threads: set[str] = set()
    original = GeneratedArchive.fetch

    def fetch(self: GeneratedArchive, record_id: str) -> LegacyRecord:
        threads.add(threading.current_thread().name)
        time.sleep(0.002 * (int(record_id[1:]) % 5))  # answers come back out of order
        return original(self, record_id)

    monkeypatch.setattr(GeneratedArchive, "fetch", fetch)
    parallel = _planned(bus, archive, readers=3)
    assert len([t for t in threads if t.startswith("migrate-plan")]) > 1
    alone = _planned(bus, archive, readers=1)
    assert parallel.manifest_sha256 == alone.manifest_sha256
    assert parallel.manifest == alone.manifest
    listed = [r.record_id for r in jobs.records(bus.store.engine, parallel.id)]
    assert listed == [f"R{n:07d}" for n in range(24)]


def test_the_lane_reads_the_next_record_while_it_commits_this_one(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = GeneratedArchive(6, sizes=(1 * KB, 2 * KB))
    job = _planned(bus, archive, readers=1)
    events: list[str] = []
    lock = threading.Lock()
    original_fetch = GeneratedArchive.fetch
    original_submit = lane.submit_packet

    def fetch(self: GeneratedArchive, record_id: str) -> LegacyRecord:
        with lock:
            events.append(f"read {record_id}")
        return original_fetch(self, record_id)

    def submit(*args: Any, **kwargs: Any) -> Any:
        if kwargs["key"].endswith("|0"):
            record = kwargs["key"].split("|")[-2]
            time.sleep(0.05)  # the commit takes a while: the next read happens meanwhile
            with lock:
                events.append(f"commit {record}")
        return original_submit(*args, **kwargs)

    monkeypatch.setattr(GeneratedArchive, "fetch", fetch)
    monkeypatch.setattr(lane, "submit_packet", submit)
    assert Lane(bus, job, archive, window=1000).run() == "finished"
    for n in range(5):
        assert events.index(f"read R{n + 1:07d}") < events.index(f"commit R{n:07d}")


def test_the_lane_writes_its_marks_in_batches_and_all_of_them_land(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = GeneratedArchive(40, sizes=(1 * KB, 2 * KB))
    job = _planned(bus, archive, readers=1)
    batches: list[int] = []
    original = jobs.mark_many

    def mark_many(engine: Any, job_id: str, marks: list[jobs.Mark]) -> None:
        batches.append(len(marks))
        original(engine, job_id, marks)

    monkeypatch.setattr(jobs, "mark_many", mark_many)
    assert Lane(bus, job, archive, window=1000).run() == "finished"
    assert sum(batches) == 40
    assert len(batches) < 20  # not one transaction per record
    assert jobs.counts_by_state(bus.store.engine, job.id) == {"submitted": 40}
    with bus.store.engine.connect() as conn:
        documents = conn.execute(sa.select(sa.func.count()).select_from(migration_records)
                                 .where(migration_records.c.document.is_not(None))).scalar()
        sent = conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar()
    assert documents == 40 and sent and sent >= 40


def test_generated_files_are_the_same_each_time_and_never_the_same_twice() -> None:
    archive = GeneratedArchive(50, sizes=(50 * KB, 500 * KB), spread="log")
    first = [archive.fetch(f"R{n:07d}") for n in range(50)]
    again = [archive.fetch(f"R{n:07d}") for n in range(50)]
    assert first == again
    files = [f for record in first for f in record.files]
    assert len({f.sha256 for f in files}) == len(files)
    assert all(50 * KB <= len(f.data) <= 500 * KB for f in files)
    # log-uniform: the median file is well under the uniform spread's 275 KB
    sizes = sorted(len(f.data) for f in files)
    assert sizes[len(sizes) // 2] < 250 * KB
    assert GeneratedArchive.from_spec(archive.spec()).fetch("R0000007") == first[7]


def test_the_platform_can_keep_digests_without_bodies() -> None:
    kept, lean = HcmEgovSimulator(), HcmEgovSimulator(keep_bodies=False)
    packet = _sample()
    for sim in (kept, lean):
        answer = sim._receive("edoc", {"idempotency-key": "k1"}, packet)
        assert answer[0] == 200
    assert kept.documents[0].body == packet and lean.documents[0].body == b""
    assert kept.documents[0].sha256 == lean.documents[0].sha256


def _sample() -> bytes:
    from datetime import date

    from bus.edxml import EdocBuilder, packet_bytes

    return packet_bytes(EdocBuilder("000.00.00.H37").to(OWNER).code("1", "UBND-VP")
                        .promulgated("Lạng Sơn", date(2024, 1, 2)).subject("V/v thử")
                        .signer("Nguyễn Văn An").document_id("sample-1")
                        .attach("a.pdf", b"%PDF-1.4\n").build())

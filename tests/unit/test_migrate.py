"""lgsp migrate's parts on their own: conversion and its mapping tables, the two folder
forms, the door's exactly-once key, the lane giving way, verify catching tampering."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.app import Bus
from bus.directory import load_directory
from bus.edxml import Edoc, StatusPacket, read_packet
from bus.migrate import jobs
from bus.migrate.convert import ConversionError, Converter
from bus.migrate.door import submit_packet
from bus.migrate.generate import KB, GeneratedArchive, write_folder
from bus.migrate.lane import Lane
from bus.migrate.source import FolderSource, HistoryEntry, LegacyFile, LegacyRecord
from bus.migrate.verify import verify
from bus.settings import REPO_ROOT, load_settings
from bus.store.tables import deliveries, documents, migration_records, payloads

OWNER = "000.00.12.H37"


def _record(**changes: object) -> LegacyRecord:
    base = LegacyRecord(
        record_id="A1", register="VBDEN", direction="incoming", number="15",
        notation="UBND-VP", issued=date(2020, 3, 2), received=date(2020, 3, 3),
        issuer="Văn phòng  Ủy ban nhân dân tỉnh LẠNG SƠN", recipients=(OWNER,),
        subject="V/v thử nghiệm", doc_type="Quyết định", signer="Lê Văn C",
        urgency="thượng khẩn", due=date(2020, 3, 20),
        history=(HistoryEntry("Đến", datetime(2020, 3, 3, 8, 0)),
                 HistoryEntry("vào sổ", datetime(2020, 3, 3, 9, 0), unit="Văn thư"),
                 HistoryEntry("phân công", datetime(2020, 3, 3, 10, 0), note="Giao P.KH"),
                 HistoryEntry("hoàn thành", datetime(2020, 3, 10, 16, 30))),
        files=(LegacyFile("qd.pdf", "application/pdf", b"%PDF-1.4\nabc"),))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def converter() -> Converter:
    return Converter(load_directory(REPO_ROOT / "config" / "directory.yaml"), OWNER)


def test_a_record_becomes_an_edoc_and_its_history_statuses(converter: Converter) -> None:
    out = converter.convert(_record())
    edoc = read_packet(out.edoc).packet
    assert isinstance(edoc, Edoc)
    assert edoc.sender == "000.00.00.H37"  # the name resolved through the directory
    assert [t.organ_id for t in edoc.to] == [OWNER]
    assert (edoc.document_type.type, edoc.priority, edoc.due_date) == (2, 2, date(2020, 3, 20))
    assert edoc.attachments[0].content.read() == b"%PDF-1.4\nabc"
    codes = []
    for data in out.statuses:
        status = read_packet(data).packet
        assert isinstance(status, StatusPacket)
        assert status.sender == OWNER and status.response_for.document_id == out.document_id
        codes.append(status.status_code)
    assert codes == ["01", "03", "04", "06"]
    assert converter.convert(_record()) == out  # the same record, the same bytes


def test_old_codes_follow_their_successor(converter: Converter) -> None:
    edoc = read_packet(converter.convert(_record(issuer="000.00.33.H37")).edoc).packet
    assert edoc.sender == "000.00.31.H37"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"confidentiality": "Mật"}, "classified"),
    ({"issuer": "Sở Không Tồn Tại"}, "not in the agency directory"),
    ({"doc_type": "Văn bản lạ"}, "Nghị định 30/2020"),
    ({"urgency": "rất gấp"}, "urgency"),
    ({"subject": " "}, "subject"),
    ({"files": ()}, "no file"),
    ({"history": (HistoryEntry("bình luận", datetime(2020, 3, 4)),)}, "no edXML status"),
    ({"direction": "outgoing", "issuer": OWNER,
      "history": (HistoryEntry("hoàn thành", datetime(2020, 3, 4)),)}, "outgoing record"),
    ({"direction": "outgoing"}, "not by the archive's owner"),
])
def test_what_cannot_be_converted_says_why(converter: Converter, changes: dict[str, object],
                                           reason: str) -> None:
    with pytest.raises(ConversionError) as caught:
        converter.convert(_record(**changes))
    assert reason in caught.value.reason


@pytest.mark.parametrize("csv_form", [False, True])
def test_folder_exports_read_back_the_archive(tmp_path: Path, csv_form: bool) -> None:
    archive = GeneratedArchive(9, sizes=(1 * KB, 2 * KB))
    write_folder(archive, tmp_path, csv_form=csv_form)
    folder = FolderSource(tmp_path)
    refs = [r for page in folder.pages(4) for r in page]
    assert [r.record_id for r in refs] == [f"R{n:07d}" for n in range(9)]
    for ref in refs:
        got, want = folder.fetch(ref.record_id), archive.fetch(ref.record_id)
        assert [f.data for f in got.files] == [f.data for f in want.files]
        assert dataclasses.replace(got, files=()) == dataclasses.replace(want, files=())
    folder.close()


@pytest.fixture
def bus(tmp_path: Path) -> Bus:
    return Bus(load_settings(environ={}, data_dir=tmp_path))


def _job(bus: Bus, archive: GeneratedArchive, target: str = "hcm_egov") -> jobs.Job:
    job = jobs.create_job(bus.store.engine, archive, target=target, owner=OWNER, options={})
    return jobs.plan(bus.store.engine, job, archive)


def test_the_same_record_key_is_committed_once(bus: Bus, converter: Converter) -> None:
    packet = converter.convert(_record()).edoc
    first = submit_packet(bus, packet, job="j", target="hcm_egov", owner=OWNER, key="k|A1|0")
    again = submit_packet(bus, packet, job="j2", target="hcm_egov", owner=OWNER, key="k|A1|0")
    assert not first.existing and again.existing and again.document == first.document
    with bus.store.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.destination, deliveries.c.recipient,
                                      deliveries.c.rule)).all()
    # One delivery, to the owner on the job's target: never to the document's addressees.
    assert [tuple(r) for r in rows] == [("hcm_egov", OWNER, "migration:j")]


def test_the_lane_waits_while_the_target_has_a_full_window(bus: Bus) -> None:
    archive = GeneratedArchive(10, sizes=(1 * KB, 2 * KB))
    lane = Lane(bus, _job(bus, archive), archive, window=3)
    thread = threading.Thread(target=lane.run, daemon=True)
    thread.start()
    time.sleep(1.5)
    counts = jobs.counts_by_state(bus.store.engine, lane.job.id)
    # Nothing delivers here, so the first three records' packets fill the window.
    assert counts.get("submitted", 0) + counts.get("rejected", 0) <= 3
    jobs.set_state(bus.store.engine, lane.job.id, "paused", only_from=("running",))
    with bus.store.begin() as conn:
        conn.execute(deliveries.update().values(state="delivered"))
    time.sleep(1.0)
    paused = jobs.counts_by_state(bus.store.engine, lane.job.id)
    assert paused.get("listed", 0) >= 7
    jobs.set_state(bus.store.engine, lane.job.id, "running", only_from=("paused",))
    deadline = time.monotonic() + 20
    while thread.is_alive() and time.monotonic() < deadline:
        with bus.store.begin() as conn:
            conn.execute(deliveries.update().values(state="delivered"))
        thread.join(0.1)
    assert not thread.is_alive()
    assert jobs.counts_by_state(bus.store.engine, lane.job.id).get("listed", 0) == 0


def test_verify_catches_a_changed_file_and_an_edited_manifest(bus: Bus) -> None:
    archive = GeneratedArchive(4, sizes=(1 * KB, 2 * KB))
    job = _job(bus, archive)
    Lane(bus, job, archive, window=1000).run()
    engine = bus.store.engine
    with bus.store.begin() as conn:
        conn.execute(deliveries.update().values(state="delivered"))
    assert verify(bus.store, job.id).ok
    first = next(jobs.records(engine, job.id))
    with bus.store.begin() as conn:
        digest = conn.execute(sa.select(documents.c.payload_sha256).where(
            documents.c.id == first.document)).scalar_one()
        data = conn.execute(sa.select(payloads.c.data).where(payloads.c.sha256 == digest)
                            ).scalar_one()
        edoc = read_packet(bytes(data)).packet
        assert isinstance(edoc, Edoc)
        name = edoc.attachments[0].attachment_name
        files = json.loads(first.files)
        files[0][1] = "0" * 64
        conn.execute(migration_records.update().where(
            migration_records.c.record_id == first.record_id).values(files=json.dumps(files)))
    result = verify(bus.store, job.id)
    assert not result.ok and not result.manifest_ok
    bad = [o for o in result.outcomes if o.outcome == "mismatched"]
    assert [o.record_id for o in bad] == [first.record_id] and name


def test_verify_reads_a_large_edoc_from_the_store_s_payload_files(bus: Bus) -> None:
    # A payload from payload_inline_below (256 KiB) is a file of the store, not a row:
    # verify must decode the files the target was given from there too.
    archive = GeneratedArchive(2, sizes=(300 * KB, 320 * KB))
    job = _job(bus, archive)
    Lane(bus, job, archive, window=1000).run()
    with bus.store.begin() as conn:
        conn.execute(deliveries.update().values(state="delivered"))
        in_rows = conn.execute(sa.select(sa.func.count()).select_from(payloads).where(
            payloads.c.sha256.in_(sa.select(documents.c.payload_sha256).where(
                documents.c.kind == "edoc")))).scalar_one()
    assert in_rows == 0
    result = verify(bus.store, job.id)
    assert result.ok, result.problems
    assert result.counts["acknowledged"] == 2


def test_live_deliveries_go_before_what_the_feeder_found() -> None:
    from bus.delivery.embedded import _Scheduler

    scheduler = _Scheduler(1)
    scheduler.offer([("migrated-1", "hcm_egov"), ("migrated-2", "hcm_egov")])
    scheduler.offer([("live", "hcm_egov")], urgent=True)
    assert scheduler.backlog("hcm_egov") == 3
    first = scheduler.take(1.0)
    assert first == ("live", "hcm_egov")
    scheduler.done(*first)
    assert scheduler.take(1.0) == ("migrated-1", "hcm_egov")


def test_planning_cut_short_continues_without_listing_a_record_twice(bus: Bus) -> None:
    archive = GeneratedArchive(25, sizes=(1 * KB, 2 * KB))

    class Dies(GeneratedArchive):
        def pages(self, page_size: int):  # type: ignore[no-untyped-def]
            for number, page in enumerate(super().pages(page_size)):
                if number == 2:
                    raise KeyboardInterrupt  # the process dies between two pages
                yield page

    job = jobs.create_job(bus.store.engine, archive, target="hcm_egov", owner=OWNER,
                          options={})
    with pytest.raises(KeyboardInterrupt):
        jobs.plan(bus.store.engine, job, Dies(25, sizes=(1 * KB, 2 * KB)), page_size=10)
    assert jobs.get_job(bus.store.engine, job.id).state == "planning"
    sealed = jobs.plan(bus.store.engine, jobs.get_job(bus.store.engine, job.id), archive,
                       page_size=10)
    assert sealed.state == "planned" and sealed.manifest is not None
    assert sealed.manifest["records"] == 25
    rows = list(jobs.records(bus.store.engine, job.id))
    assert [r.seq for r in rows] == list(range(25))
    assert [r.record_id for r in rows] == [f"R{n:07d}" for n in range(25)]

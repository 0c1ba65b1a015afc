"""The sample province's eOffice archive moved to VNPT-iOffice and to HCM Egov, end to end.

The archive is served by the eOffice simulator's archive service over SOAP; the bus runs
on the embedded default with its delivery threads (``adapters.demo.Province``); the
migration runs as ``lgsp migrate`` in a separate process, which the test kills with
SIGKILL at a random moment and then resumes. The target's simulator proves what it got:
every legacy record that converts arrives exactly once, its files byte-identical, its
processing history as status packets; ``verify`` passes and the report is produced.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from adapters.demo import Province
from adapters.eoffice.archive import ArchiveService
from bus.edxml import Edoc, read_packet
from bus.migrate.generate import KB, GeneratedArchive
from bus.settings import REPO_ROOT
from bus.store.tables import create_engine, events, migration_jobs, migration_records
from tests.servers import PostgresServer, RabbitMQServer

OWNER = "000.00.12.H37"
COUNT = 20


def _lgsp(province: Province, *args: str) -> list[str]:
    return [sys.executable, "-m", "bus.cli", "migrate", *args,
            "--data-dir", str(province.workdir / "var")]


def _env(province: Province) -> dict[str, str]:
    scaled = {f"LGSP_{k.upper()}": str(v) for k, v in province.overrides.items()
              if k in ("database_url", "broker_url")}
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT),
            "LGSP_ROUTES": str(province.workdir / "routes.yaml"), **scaled}


def _engine(province: Province) -> sa.Engine:
    url = province.overrides.get("database_url") or \
        f"sqlite:///{province.workdir / 'var' / 'lgsp.db'}"
    return create_engine(str(url))


def _run(province: Province, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_lgsp(province, *args), env=_env(province), capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def province(tmp_path: Path) -> Iterator[Province]:
    province = Province(tmp_path)
    archive = GeneratedArchive(COUNT, owner=OWNER, sizes=(2 * KB, 40 * KB), reject_every=9)
    province.eoffice.archive = ArchiveService(archive)
    with (tmp_path / "bus.log").open("a", encoding="utf-8") as log, province.started(log):
        yield province


@pytest.fixture
def scaled_province(tmp_path: Path, rabbitmq: RabbitMQServer,
                    postgres: PostgresServer) -> Iterator[Province]:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "migrate_e2e"')
        conn.execute('CREATE DATABASE "migrate_e2e"')
    province = Province(tmp_path, database_url=postgres.url.rsplit("/", 1)[0] + "/migrate_e2e",
                        broker_url=rabbitmq.url)
    archive = GeneratedArchive(COUNT, owner=OWNER, sizes=(2 * KB, 40 * KB), reject_every=9)
    province.eoffice.archive = ArchiveService(archive)
    with (tmp_path / "bus.log").open("a", encoding="utf-8") as log, province.started(log):
        yield province


def _job_id(province: Province) -> str:
    engine = _engine(province)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.select(migration_jobs.c.id)).scalar_one())
    finally:
        engine.dispose()


def _done(province: Province) -> int:
    engine = _engine(province)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(migration_records)
                                    .where(migration_records.c.state != "listed")).scalar_one())
    finally:
        engine.dispose()


def _plan_kill_resume(province: Province, target: str, *, pause: bool = False,
                      kills: int = 1) -> str:
    planned = _run(province, "plan", "--source-eoffice", province.eoffice.url,
                   "--target", target, "--owner", OWNER)
    assert planned.returncode == 0, planned.stderr
    job = _job_id(province)
    assert f"records {COUNT}" in planned.stdout
    at_kill = 0
    for round_ in range(kills):
        command = "run" if round_ == 0 else "resume"
        run = subprocess.Popen(_lgsp(province, command, job, "--rate", "12"),
                               env=_env(province), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        assert _wait(lambda floor=at_kill: _done(province) >= floor + 2, 30)
        time.sleep(random.uniform(0.0, 0.3))
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        done = _done(province)
        assert at_kill < done < COUNT, (at_kill, done)
        at_kill = done
    resumed = subprocess.Popen(_lgsp(province, "resume", job, "--rate", "1.5" if pause else "10"),
                               env=_env(province),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if pause:
        assert _wait(lambda: _done(province) > at_kill, 30)
        assert _run(province, "pause", job).returncode == 0
        time.sleep(0.8)
        held = _done(province)
        time.sleep(1.0)
        assert _done(province) == held < COUNT
        answer = _run(province, "resume", job)
        assert "resumed (its running process continues)" in answer.stdout, answer.stdout
    out, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err
    assert f"job {job}: finished" in out
    assert _done(province) == COUNT
    return job


def _wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _expected() -> tuple[dict[str, list[str]], int]:
    """DocumentId → the SHA-256 of the source's files, for records that convert; and the
    number of history statuses they carry."""
    from bus.directory import load_directory
    from bus.migrate.convert import ConversionError, Converter

    archive = GeneratedArchive(COUNT, owner=OWNER, sizes=(2 * KB, 40 * KB), reject_every=9)
    converter = Converter(load_directory(REPO_ROOT / "config" / "directory.yaml"), OWNER)
    files: dict[str, list[str]] = {}
    statuses = 0
    for page in archive.pages(100):
        for ref in page:
            record = archive.fetch(ref.record_id)
            try:
                converted = converter.convert(record)
            except ConversionError:
                continue
            files[converted.document_id] = [f.sha256 for f in record.files]
            statuses += len(converted.statuses)
    return files, statuses


def _check_received(packets: list[bytes], expected: dict[str, list[str]]) -> None:
    seen: collections.Counter[str] = collections.Counter()
    for data in packets:
        packet = read_packet(data).packet
        assert isinstance(packet, Edoc)
        seen[packet.document_id or ""] += 1
        assert [a.content.sha256 for a in packet.attachments] == expected[packet.document_id
                                                                          or ""]
    assert set(seen) == set(expected)
    assert all(n == 1 for n in seen.values()), seen.most_common(3)


def _verify_and_report(province: Province, job: str) -> None:
    verified = _run(province, "verify", job)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    summary = json.loads(verified.stdout.splitlines()[0])
    assert summary["verified"] and summary["counts"]["rejected"] == COUNT // 9
    out = province.workdir / "reports"
    reported = _run(province, "report", job, "--out", str(out))
    assert reported.returncode == 0, reported.stderr
    page = (out / f"migration-{job}.html").read_text(encoding="utf-8")
    assert "Báo cáo chuyển đổi cơ sở dữ liệu văn bản" in page
    assert "<strong>ĐẠT:" in page and "CHƯA ĐẠT" not in page
    rows = (out / f"migration-{job}.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == COUNT + 1 and sum("rejected" in r for r in rows) == COUNT // 9
    engine = _engine(province)
    try:
        with engine.connect() as conn:
            detail = conn.execute(sa.select(events.c.detail).where(
                events.c.action == "migration_verified")).scalar_one()
            planned = conn.execute(sa.select(events.c.detail).where(
                events.c.action == "migration_planned")).scalar_one()
    finally:
        engine.dispose()
    assert json.loads(detail)["verified"] is True
    assert json.loads(planned)["manifest"]["records"] == COUNT


def test_eoffice_archive_to_vnpt_ioffice_with_a_kill(province: Province) -> None:
    stop = threading.Event()
    collector = threading.Thread(target=province.ioffice.run, args=(stop, 0.3), daemon=True)
    collector.start()
    try:
        job = _plan_kill_resume(province, "vnpt_ioffice", kills=2)
        expected, statuses = _expected()
        assert _wait(lambda: len(province.ioffice.received) == len(expected) + statuses, 30)
        assert _wait(lambda: _run(province, "verify", job).returncode == 0, 20)
    finally:
        stop.set()
        collector.join(10)
    edocs = [p for p in province.ioffice.received.values() if b"<edXML:Subject>" in p]
    _check_received(edocs, expected)
    assert all(n == 1 for n in province.ioffice.acks.values())
    _verify_and_report(province, job)


def test_eoffice_archive_to_hcm_egov_paused_and_killed(province: Province) -> None:
    job = _plan_kill_resume(province, "hcm_egov", pause=True)
    expected, statuses = _expected()
    assert province.egov.wait_for(
        lambda: len(province.egov.received()) == len(expected) + statuses, 30)
    _check_received([r.body for r in province.egov.documents], expected)
    assert all(province.egov.effects_for(r.key) == 1 for r in province.egov.received())
    assert _wait(lambda: _run(province, "verify", job).returncode == 0, 20)
    _verify_and_report(province, job)
    api = f"http://127.0.0.1:{province.port}/api/v1/migrations"
    seen = httpx.get(f"{api}/{job}", headers={"X-API-Key": "dev-operator-key"}).json()
    assert seen["state"] == "finished" and seen["records"]["submitted"] == COUNT - COUNT // 9
    assert httpx.get(api, headers={"X-API-Key": "dev-eoffice-key"}).status_code == 404


@pytest.mark.services
@pytest.mark.slow
def test_eoffice_archive_to_hcm_egov_on_rabbitmq_and_postgresql(
        scaled_province: Province) -> None:
    """The scaled-out deployment: the migrated rows reach RabbitMQ through the workers'
    relay, since the migration process publishes nothing itself."""
    province = scaled_province
    job = _plan_kill_resume(province, "hcm_egov")
    expected, statuses = _expected()
    assert province.egov.wait_for(
        lambda: len(province.egov.received()) == len(expected) + statuses, 60)
    _check_received([r.body for r in province.egov.documents], expected)
    assert _wait(lambda: _run(province, "verify", job).returncode == 0, 30)
    _verify_and_report(province, job)

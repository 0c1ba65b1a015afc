"""Payloads kept outside rows survive a backup and restore and leave with a purge.

On SQLite they are files under the data dir, which ``lgsp backup`` copies beside the
database and ``lgsp restore`` puts back; on PostgreSQL they are large objects, which
``pg_dump`` carries. A retention purge removes their rows (and a large object at once;
a file with the next payload sweep), never a payload another document still uses.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.app import Bus
from bus.cli import main as lgsp
from bus.edxml import EdocBuilder, packet_bytes
from bus.evidence.bundle import FORWARDED, build
from bus.evidence.verify import verify
from bus.maintenance.retention import Policy, purge
from bus.settings import load_settings
from bus.store import Store
from bus.store.large_objects import payload_store
from bus.store.queries import Viewer
from bus.store.tables import create_engine, documents, payload_files
from tests.api_server import running_bus
from tests.cluster import fresh_database
from tests.integration.test_deadlines import COMMUNE, EOFFICE, OFFICE, deadlines, send
from tests.servers import PostgresServer

BIG = 400 * 1024  # above the default payload_inline_below


def _submit(bus: Bus, n: int) -> str:
    packet = (EdocBuilder("000.00.12.H37").to("000.00.00.H37")
              .subject(f"Hồ sơ quét {n}").signer("Nguyễn Văn A", "Giám đốc")
              .code(str(n), "HS").attach(f"scan-{n}.pdf", os.urandom(BIG)).build())
    return bus.submit(packet_bytes(packet), system="eoffice", channel="rest").document


def _payloads(bus_or_engine: sa.Engine, settings_dir: Path, url: str) -> dict[str, bytes]:
    settings = load_settings(environ={}, data_dir=settings_dir, database_url=url)
    store = Store(bus_or_engine, payload_store(settings, bus_or_engine))
    with bus_or_engine.connect() as conn:
        digests = list(conn.execute(sa.select(documents.c.payload_sha256)).scalars())
    return {digest: store.payload(digest) for digest in digests}


def _round_trip(tmp_path: Path, url: str, target_url: str, args: list[str],
                target_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    source = Bus(load_settings(environ={}, data_dir=tmp_path / "live", database_url=url))
    try:
        for n in range(3):
            _submit(source, n)
        with source.store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(payload_files)
                                ).scalar_one() == 3
        saved = _payloads(source.store.engine, tmp_path / "live", url)
    finally:
        source.close()
    assert lgsp(["backup", "-o", str(tmp_path / "backup"), *args]) == 0, capsys.readouterr()
    assert lgsp(["restore", str(tmp_path / "backup"), *target_args]) == 0, \
        capsys.readouterr()
    engine = create_engine(target_url)
    try:
        restored = _payloads(engine, tmp_path / "new", target_url)
    finally:
        engine.dispose()
    assert restored == saved and len(saved) == 3
    assert all(hashlib.sha256(data).hexdigest() == digest for digest, data in saved.items())


def test_sqlite_payload_files_are_backed_up_and_restored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _round_trip(tmp_path, "", f"sqlite:///{tmp_path / 'new' / 'lgsp.db'}",
                ["--data-dir", str(tmp_path / "live")], ["--data-dir", str(tmp_path / "new")],
                capsys)
    assert len(list((tmp_path / "backup" / "payloads").glob("??/*"))) == 3
    assert len(list((tmp_path / "new" / "payloads").glob("??/*"))) == 3


def test_a_backup_missing_a_payload_file_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = Bus(load_settings(environ={}, data_dir=tmp_path / "live"))
    try:
        _submit(source, 1)
    finally:
        source.close()
    for path in (tmp_path / "live" / "payloads").glob("??/*"):
        path.unlink()
    assert lgsp(["backup", "-o", str(tmp_path / "backup"), "--data-dir",
                 str(tmp_path / "live")]) == 1
    assert "is missing" in capsys.readouterr().err


@pytest.mark.services
def test_postgres_large_objects_are_dumped_and_restored(
        tmp_path: Path, postgres: PostgresServer, capsys: pytest.CaptureFixture[str]) -> None:
    url, target_url = fresh_database(postgres), fresh_database(postgres)
    source_yaml = tmp_path / "source.yaml"
    source_yaml.write_text(f"database_url: {url}\ndata_dir: {tmp_path / 'live'}\n")
    target_yaml = tmp_path / "target.yaml"
    target_yaml.write_text(f"database_url: {target_url}\ndata_dir: {tmp_path / 'new'}\n")
    _round_trip(tmp_path, url, target_url, ["--config", str(source_yaml)],
                ["--config", str(target_yaml)], capsys)
    assert not (tmp_path / "backup" / "payloads").exists()  # all in the dump


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_purge_drops_payloads_kept_outside_rows(tmp_path: Path, backend: str,
                                                  request: pytest.FixtureRequest) -> None:
    url = "" if backend == "sqlite" else fresh_database(request.getfixturevalue("postgres"))
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "live", database_url=url))
    try:
        for n in range(2):
            _submit(bus, n)
        engine = bus.store.engine
        with engine.connect() as conn:
            locations = list(conn.execute(sa.select(payload_files.c.location)).scalars())
        with engine.begin() as conn:  # delivered long ago
            conn.execute(sa.text("UPDATE deliveries SET state = 'delivered'"))
            conn.execute(documents.update().values(received_at=1.0))
        report = purge(engine, Policy.from_settings({"edoc": "1d", "status": "1d"}),
                       actor="operator:t", pause_s=0)
        assert report.documents == 2 and report.payloads == 2
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(payload_files)
                                ).scalar_one() == 0
            if backend == "postgresql":
                oids = [int(loc[3:]) for loc in locations]
                assert conn.execute(sa.text(
                    "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = ANY(:o)"),
                    {"o": oids}).scalar_one() == 0
        if backend == "sqlite":
            assert bus.store.sweep_payload_files(older_than_s=-1) == 2
            assert list((tmp_path / "live" / "payloads").glob("??/*")) == []
    finally:
        bus.close()


def test_evidence_reads_and_checks_payloads_kept_as_files(tmp_path: Path) -> None:
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "live"))
    try:
        document = _submit(bus, 7)
        bus.evidence.tick()
        engine, files = bus.store.engine, bus.store.files
        assert files is not None
        # Without the payload directory the rows are enough to know nothing was removed.
        assert verify(engine).ok, verify(engine).findings
        assert verify(engine, files=files).ok
        data = build(engine, document, Viewer(system="t", operator=True),
                     payload_files=files)
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            forwarded = bundle.read(FORWARDED)
        with engine.connect() as conn:
            digest = conn.execute(sa.select(documents.c.payload_sha256)).scalar_one()
        assert hashlib.sha256(forwarded).hexdigest() == digest
        path = files.path(f"{digest[:2]}/{digest}")
        path.write_bytes(path.read_bytes()[:-1] + b" ")
        report = verify(engine, files=files)
        assert not report.ok and "was changed" in report.findings[0].message
    finally:
        bus.close()


def test_deadlines_backfill_reads_a_packet_kept_as_a_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_bus(tmp_path / "bus") as server:
        policy = server.bus.deadlines.policy
        server.bus.deadlines.policy = lambda: None  # as before an upgrade
        packet = (EdocBuilder("000.00.12.H37").to(OFFICE, COMMUNE).subject("Báo cáo quét")
                  .signer("Nguyễn Văn A", "Giám đốc").code("7", "BC-STTTT").priority(1)
                  .attach("scan.pdf", os.urandom(BIG)).build())
        doc = send(server, packet)
        server.bus.deadlines.policy = policy
        with server.bus.store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(payload_files)
                                ).scalar_one() == 1
        argv = ["deadlines", "backfill", "--data-dir", str(server.bus.settings.data_dir)]
        assert lgsp(argv) == 0
        assert "for 2 recipient deliveries" in capsys.readouterr().out
        assert {d["rule"] for d in deadlines(server, doc, EOFFICE)["deliveries"]} == {"khan"}

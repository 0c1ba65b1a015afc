"""lgsp backup / lgsp restore: a backup taken while the bus runs, restored into a fresh
database, gives back every document with bytes matching their hashes, on SQLite and on
PostgreSQL; a changed backup or a non-empty target is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.app import Bus
from bus.cli import main as lgsp
from bus.edxml import EdocBuilder, packet_bytes
from bus.settings import load_settings
from bus.store.tables import create_engine
from tests.cluster import fresh_database
from tests.retention_seed import seed_finished
from tests.servers import PostgresServer


def _submit(bus: Bus, n: int) -> None:
    packet = (EdocBuilder("000.00.12.H37").to("000.00.00.H37", "000.00.31.H37")
              .subject(f"Báo cáo {n}").signer("Nguyễn Văn A", "Giám đốc")
              .code(str(n), "BC-STTTT").attach(f"bao-cao-{n}.pdf", bytes([n]) * 5000).build())
    bus.submit(packet_bytes(packet), system="eoffice", channel="rest")


def _documents(engine: sa.Engine) -> dict[str, tuple[str, bytes]]:
    """Each document's payload hash and the payload bytes, as the database gives them."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT d.id, d.payload_sha256, p.data FROM documents d "
            "JOIN payloads p ON p.sha256 = d.payload_sha256")).all()
    return {r.id: (r.payload_sha256, bytes(r.data)) for r in rows}


def _round_trip(tmp_path: Path, source_args: list[str], target_args: list[str],
                source: Bus, target_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(5):
        _submit(source, n)
    seed_finished(source.store.engine, 40)
    out = tmp_path / "backup"
    assert lgsp(["backup", "-o", str(out), *source_args]) == 0, capsys.readouterr().out
    assert "backed up 45 document(s)" in capsys.readouterr().out
    saved = _documents(source.store.engine)
    _submit(source, 99)  # after the backup: not in it

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["documents"] == 45 and "config/routes.yaml" in manifest["files"]
    assert lgsp(["restore", str(out), *target_args, "--config-to",
                 str(tmp_path / "etc")]) == 0
    assert "restored 45 document(s)" in capsys.readouterr().out
    engine = create_engine(target_url)
    try:
        restored = _documents(engine)
    finally:
        engine.dispose()
    assert restored == saved
    assert all(hashlib.sha256(data).hexdigest() == digest for digest, data in restored.values())
    assert (tmp_path / "etc" / "routes.yaml").read_bytes() == \
        source.settings.routes.read_bytes()

    assert lgsp(["restore", str(out), *target_args]) == 1
    assert "not empty" in capsys.readouterr().err


def test_sqlite_backup_while_running_and_restore(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = Bus(load_settings(environ={}, data_dir=tmp_path / "live"))
    try:
        _round_trip(tmp_path, ["--data-dir", str(tmp_path / "live")],
                    ["--data-dir", str(tmp_path / "new")], source,
                    f"sqlite:///{tmp_path / 'new' / 'lgsp.db'}", capsys)
    finally:
        source.close()


def test_a_changed_backup_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = Bus(load_settings(environ={}, data_dir=tmp_path / "live"))
    seed_finished(source.store.engine, 3)
    source.close()
    out = tmp_path / "backup"
    assert lgsp(["backup", "-o", str(out), "--data-dir", str(tmp_path / "live")]) == 0
    with (out / "lgsp.db").open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\xff")
    capsys.readouterr()
    assert lgsp(["restore", str(out), "--data-dir", str(tmp_path / "new")]) == 1
    assert "changed since the backup" in capsys.readouterr().err
    assert lgsp(["backup", "-o", str(out), "--data-dir", str(tmp_path / "live")]) == 1
    assert lgsp(["backup", "-o", str(tmp_path / "b2"), "--data-dir",
                 str(tmp_path / "void")]) == 1
    assert "NotFound: no bus database" in capsys.readouterr().err
    assert not (tmp_path / "void" / "lgsp.db").exists()


@pytest.mark.services
def test_postgres_backup_with_pg_dump_and_restore(tmp_path: Path, postgres: PostgresServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    source_url, target_url = fresh_database(postgres), fresh_database(postgres)
    source = Bus(load_settings(environ={}, data_dir=tmp_path / "live",
                               database_url=source_url))
    env = tmp_path / "source.yaml"
    env.write_text(f"database_url: {source_url}\ndata_dir: {tmp_path / 'live'}\n")
    target = tmp_path / "target.yaml"
    target.write_text(f"database_url: {target_url}\ndata_dir: {tmp_path / 'new'}\n")
    try:
        _round_trip(tmp_path, ["--config", str(env)], ["--config", str(target)], source,
                    target_url, capsys)
    finally:
        source.close()
    assert (tmp_path / "etc" / "settings.yaml").read_text() == env.read_text()

"""Schema migrations: the revisions build exactly the tables the code declares, and a
database made by an earlier release (create_all, no revisions) is upgraded with nothing
lost, on the embedded default and on PostgreSQL.

``test_migrations_build_the_declared_schema`` guards every future table change: a table
or column added to bus/store/tables.py without a revision fails it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bus import errors
from bus.app import Bus
from bus.cli import main as lgsp
from bus.edxml import EdocBuilder, packet_bytes, status_for
from bus.settings import load_settings
from bus.store import Store
from bus.store.schema import alembic_config, head, state
from bus.store.tables import create_engine, deliveries, documents, metadata
from bus.store.text_index import include_name
from tests.cluster import fresh_database
from tests.servers import PostgresServer
from tests.unit.legacy_schemas import release_43ac388, release_dcd1a0c

RELEASES: dict[str, Callable[[], sa.MetaData]] = {"43ac388": release_43ac388,
                                                  "dcd1a0c": release_dcd1a0c}


def _schema_diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                           "include_name": include_name})
        return list(compare_metadata(context, metadata))


def _migrate_from_nothing(engine: sa.Engine) -> None:
    """Only the revisions, never create_all: what an old database goes through."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")


def test_migrations_build_the_declared_schema_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _migrate_from_nothing(engine)
    assert _schema_diff(engine) == []
    assert state(engine).up_to_date


@pytest.mark.services
def test_migrations_build_the_declared_schema_postgres(postgres: PostgresServer) -> None:
    engine = create_engine(fresh_database(postgres))
    try:
        _migrate_from_nothing(engine)
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_a_schema_change_without_a_revision_is_caught(tmp_path: Path) -> None:
    """The guard itself: a column the revisions do not create shows as a difference."""
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _migrate_from_nothing(engine)
    changed = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    sa.Table("events", changed, sa.Column("chain", sa.String(64)), extend_existing=True)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(
            conn, opts={"include_name": include_name}), changed)
    assert [d[0] for d in diff] == ["add_column"] and "chain" in repr(diff)


# ------------------------------------------------------------------ old databases


def _traffic(bus: Bus) -> None:
    """Documents as the previous release held them: some delivered, some pending, one
    with an attachment, one answered by a business status."""
    for n in range(6):
        builder = (EdocBuilder("000.00.12.H37").to("000.00.00.H37", "000.00.31.H37")
                   .subject(f"Công văn số {n}").signer("Nguyễn Văn A", "Giám đốc")
                   .code(str(n), "CV-STTTT"))
        if n == 0:
            builder.attach("phu-luc.pdf", b"%PDF-1.4 " + bytes(range(256)) * 40)
        packet = builder.build()
        bus.submit(packet_bytes(packet), system="eoffice", channel="rest")
        if n == 1:
            arrived = status_for(packet, "01", at=datetime(2025, 7, 1, 8, 0, 0))
            bus.submit(packet_bytes(arrived), system="vnpt_ioffice", channel="rest",
                       expect="status")
    with bus.store.begin() as conn:
        some = conn.execute(sa.select(deliveries.c.id).limit(3)).scalars().all()
        conn.execute(deliveries.update().where(deliveries.c.id.in_(some))
                     .values(state="delivered", delivered_at=1.0))


def _copy_into_release(source: sa.Engine, target: sa.Engine, old: sa.MetaData) -> None:
    """The rows, restricted to the columns the old release had."""
    with source.connect() as src, target.begin() as dst:
        for table in old.sorted_tables:
            if not sa.inspect(src).has_table(table.name):
                continue
            names = [c.name for c in table.c]
            rows = [dict(r._mapping) for r in src.execute(
                sa.select(*(sa.column(n) for n in names)).select_from(sa.table(table.name)))]
            if rows:
                dst.execute(table.insert(), rows)
            serial = table.autoincrement_column
            if rows and serial is not None and dst.dialect.name == "postgresql":
                # As if the old release had numbered them: its sequences moved on.
                top = dst.execute(sa.select(sa.func.max(serial))).scalar_one()
                dst.execute(sa.text("SELECT setval(pg_get_serial_sequence(:t, :c), :n)"),
                            {"t": table.name, "c": serial.name, "n": top})


def _old_database(tmp_path: Path, url: str, release: str) -> dict[str, int]:
    """A database of ``release`` holding real traffic; returns its row counts."""
    source = Bus(load_settings(environ={}, data_dir=tmp_path / "source"))
    target = sa.create_engine(url)
    try:
        _traffic(source)
        old = RELEASES[release]()
        old.create_all(target)
        _copy_into_release(source.store.engine, target, old)
        return _counts(target, [t.name for t in old.sorted_tables])
    finally:
        source.close()
        target.dispose()


def _counts(engine: sa.Engine, names: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        return {n: int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(n)))
                       .scalar_one()) for n in names}


def _nothing_lost(store: Store, counts: dict[str, int]) -> None:
    """Every row is there, every document's bytes match their hash, delivery goes on."""
    assert _counts(store.engine, list(counts)) == counts
    assert counts["documents"] >= 7 and counts["payloads"] >= 7
    with store.engine.connect() as conn:
        docs = conn.execute(sa.select(documents.c.id, documents.c.payload_sha256)).all()
        pending = conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                               .where(deliveries.c.state == "pending")).scalar_one()
    for doc in docs:
        assert hashlib.sha256(store.payload(doc.payload_sha256)).hexdigest() \
            == doc.payload_sha256
    due = store.due(limit=1000, now=time.time() + 1)
    assert pending > 0 and len(due) == pending
    for item in due:
        claim = store.claim(item.id, lease_s=60, worker="test")
        assert claim is not None and claim.payload is not None
        assert hashlib.sha256(claim.payload).hexdigest() == claim.payload_sha256
        assert store.finish(claim, "delivered", worker="test", reference="ok")
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                            .where(deliveries.c.state != "delivered")).scalar_one()
    assert left == 0


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_the_embedded_database_of_an_earlier_release_is_upgraded_at_start(
        tmp_path: Path, release: str) -> None:
    data_dir = tmp_path / "bus"
    data_dir.mkdir()
    counts = _old_database(tmp_path, f"sqlite:///{data_dir / 'lgsp.db'}", release)
    bus = Bus(load_settings(environ={}, data_dir=data_dir))
    try:
        assert state(bus.store.engine).current == head()
        assert _schema_diff(bus.store.engine) == []
        _nothing_lost(bus.store, counts)
        _traffic(bus)  # and it takes new documents, with original_sha256 and all
    finally:
        bus.close()
    assert list(data_dir.glob("lgsp.db.before-migrations-*")), "no copy kept before upgrading"


@pytest.mark.services
@pytest.mark.parametrize("release", sorted(RELEASES))
def test_a_postgres_database_of_an_earlier_release_needs_db_upgrade_then_loses_nothing(
        tmp_path: Path, postgres: PostgresServer, release: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = fresh_database(postgres)
    counts = _old_database(tmp_path, url, release)
    with pytest.raises(errors.SchemaOutdated, match="run `lgsp db upgrade`"):
        Bus(load_settings(environ={}, data_dir=tmp_path / "bus", database_url=url))
    assert lgsp(["db", "current", "--database-url", url]) == 1
    assert lgsp(["db", "upgrade", "--database-url", url]) == 0
    assert f"-> {head()}" in capsys.readouterr().out
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "bus", database_url=url))
    try:
        assert _schema_diff(bus.store.engine) == []
        _nothing_lost(bus.store, counts)
    finally:
        bus.close()


def test_a_database_migrated_by_a_newer_release_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "bus"
    Bus(load_settings(environ={}, data_dir=data_dir)).close()
    engine = create_engine(f"sqlite:///{data_dir / 'lgsp.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(errors.SchemaOutdated, match="newer than this release"):
        Bus(load_settings(environ={}, data_dir=data_dir))


def test_serve_refuses_a_mismatched_database_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bus.logging.configure", lambda **_: None)  # keep pytest's streams
    data_dir = tmp_path / "bus"
    Bus(load_settings(environ={}, data_dir=data_dir)).close()
    engine = create_engine(f"sqlite:///{data_dir / 'lgsp.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    capsys.readouterr()
    assert lgsp(["serve", "--data-dir", str(data_dir), "--port", "0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("lgsp: SchemaOutdated: "), err


def test_db_commands_on_the_embedded_default(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "bus")]
    assert lgsp(["db", "current", *data]) == 1
    assert capsys.readouterr().err.startswith("lgsp: NotFound: no bus database (lgsp.db)")
    assert not (tmp_path / "bus").exists()
    assert lgsp(["db", "upgrade", *data]) == 0
    assert lgsp(["db", "upgrade", *data]) == 0
    out = capsys.readouterr().out
    assert f"-> {head()}" in out and f"already at {head()}" in out
    assert lgsp(["db", "current", *data]) == 0
    assert capsys.readouterr().out.strip() == f"{head()} (head, up to date)"

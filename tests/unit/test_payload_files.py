"""Payloads as content-addressed files: where they go, how they are read, what a crash leaves.

The promise is one-sided on purpose: a file may exist that no row names (swept later),
but a row never names a file that is not there — checked by killing a process that
accepts large payloads in a loop, at random moments, on both backends' embedded form.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus import errors
from bus.adapter import Delivery
from bus.store import NewDelivery, Store
from bus.store.blobs import PayloadBody, PayloadFiles
from bus.store.large_objects import LargeObjects
from bus.store.tables import create_engine, payload_files, payloads
from tests.cluster import fresh_database
from tests.fixtures_services import postgres  # noqa: F401 - fixture
from tests.servers import PostgresServer

TARGET = [NewDelivery("000.00.00.H37", "000.00.00.H37", "vnpt", "default:hosted")]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    files = PayloadFiles(tmp_path / "payloads", inline_below=1024)
    store = Store(create_engine(f"sqlite:///{tmp_path / 'bus.db'}"), files)
    store.create_schema()
    yield store
    store.engine.dispose()


def _accept(store: Store, payload: bytes, document_id: str = "DOC-1",
            original: bytes | None = None) -> str:
    return store.accept(
        kind="edoc", sender="000.00.12.H37", document_id=document_id,
        dedup_key=f"edoc|000.00.12.H37|{document_id}", content_sha256="c" * 64,
        payload=payload, system="eoffice", targets=TARGET, original=original,
        summary={"subject": "s", "code": "1/X", "business": "new"}).document


def _rows(store: Store) -> tuple[list[str], list[str]]:
    with store.engine.connect() as conn:
        inline = list(conn.execute(sa.select(payloads.c.sha256)).scalars())
        files = list(conn.execute(sa.select(payload_files.c.sha256)).scalars())
    return inline, files


def test_a_payload_over_the_threshold_is_a_file_and_reads_back_as_bytes_and_stream(
        store: Store, tmp_path: Path) -> None:
    big = os.urandom(5000)
    digest = hashlib.sha256(big).hexdigest()
    _accept(store, big)
    inline, files = _rows(store)
    assert (inline, files) == ([], [digest])
    assert (tmp_path / "payloads" / digest[:2] / digest).read_bytes() == big
    assert store.payload(digest) == big
    body = store.body(digest)
    assert body.size == 5000 and not body.in_memory
    assert b"".join(body.chunks(777)) == big
    with body.open() as first, body.open() as second:  # each read is a fresh file
        assert first.read(10) == second.read(10) == big[:10]


def test_a_small_payload_stays_a_row(store: Store) -> None:
    small = b"<edXML/>"
    _accept(store, small)
    assert _rows(store) == ([hashlib.sha256(small).hexdigest()], [])
    assert store.body(hashlib.sha256(small).hexdigest()).in_memory


def test_the_senders_original_is_kept_the_same_way(store: Store) -> None:
    forwarded, original = os.urandom(4000), os.urandom(3000)
    document = _accept(store, forwarded, original=original)
    assert store.original(document) == original
    assert len(_rows(store)[1]) == 2


def test_the_same_bytes_twice_are_one_file(store: Store, tmp_path: Path) -> None:
    big = os.urandom(4096)
    _accept(store, big, "A")
    _accept(store, big, "B")
    assert len(list((tmp_path / "payloads").glob("??/*"))) == 1
    assert len(_rows(store)[1]) == 1


def test_a_missing_payload_is_not_found(store: Store, tmp_path: Path) -> None:
    big = os.urandom(4096)
    digest = hashlib.sha256(big).hexdigest()
    _accept(store, big)
    (tmp_path / "payloads" / digest[:2] / digest).unlink()
    with pytest.raises(errors.NotFound, match="restore the data directory"):
        store.payload(digest)
    with pytest.raises(errors.NotFound):
        store.body("0" * 64)


def test_orphans_are_swept_once_old_and_named_files_never(store: Store, tmp_path: Path) -> None:
    assert store.files is not None
    named = os.urandom(4096)
    _accept(store, named)
    orphan = store.files.stage((os.urandom(4096),))
    spool = store.files.spool()
    spool.write(b"half an upload")
    spool.flush()
    assert store.sweep_payload_files(older_than_s=3600) == 0  # too young: maybe in flight
    old = time.time() - 7200
    for path in [*(tmp_path / "payloads").glob("??/*"), spool.path]:
        os.utime(path, (old, old))
    assert store.sweep_payload_files(older_than_s=3600) == 2
    assert not store.files.path(orphan.location).exists()
    assert store.payload(hashlib.sha256(named).hexdigest()) == named


def test_a_spool_over_its_cap_is_refused_and_removed(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path / "payloads")
    spool = files.spool(cap=10)
    spool.write(b"0123456789")
    with pytest.raises(errors.PayloadTooLarge):
        spool.write(b"x")
    assert not spool.path.exists()


def test_a_delivery_streams_its_body_and_keeps_payload_for_older_adapters(
        tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_bytes(b"x" * 3000)
    delivery = Delivery(body=PayloadBody(3000, opener=lambda: path.open("rb")),
                        idempotency_key="k")
    assert delivery.body.size == 3000 and delivery.payload == b"x" * 3000
    assert Delivery(payload=b"abc", idempotency_key="k").body.read() == b"abc"
    with pytest.raises(TypeError):
        Delivery(idempotency_key="k")


_LOOP = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from bus.store import NewDelivery, Store
    from bus.store.blobs import PayloadFiles
    from bus.store.tables import create_engine
    root = Path(sys.argv[1])
    store = Store(create_engine(f"sqlite:///{root / 'bus.db'}"),
                  PayloadFiles(root / "payloads", inline_below=1024))
    store.create_schema()
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        store.accept(kind="edoc", sender="S", document_id=f"D{os.getpid()}-{n}",
                     dedup_key=f"k{os.getpid()}-{n}", content_sha256="c" * 64,
                     payload=os.urandom(2 << 20), system="eoffice",
                     targets=[NewDelivery("R", "R", "vnpt", "r")],
                     summary={"subject": "s", "code": "c", "business": "new"})
""")


def test_a_killed_accept_never_leaves_a_row_without_its_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for round_ in range(6):
        process = subprocess.Popen([sys.executable, "-c", _LOOP, str(tmp_path)],
                                   stdout=subprocess.PIPE, env=env)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(0.15 + 0.13 * round_)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
    store = Store(create_engine(f"sqlite:///{tmp_path / 'bus.db'}"),
                  PayloadFiles(tmp_path / "payloads", inline_below=1024))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(payload_files)).all()
    assert len(rows) >= 6
    for row in rows:
        data = (tmp_path / "payloads" / row.location).read_bytes()
        assert len(data) == row.size and hashlib.sha256(data).hexdigest() == row.sha256
    store.engine.dispose()


# ---------------------------------------------------------------- PostgreSQL large objects


@pytest.fixture
def pg_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server: PostgresServer = request.getfixturevalue("postgres")
    engine = create_engine(fresh_database(server))
    store = Store(engine, LargeObjects(tmp_path / "payloads", engine, inline_below=1024))
    store.create_schema()
    yield store
    engine.dispose()


def test_on_postgresql_a_large_payload_is_a_large_object_streamed_back(
        pg_store: Store, tmp_path: Path) -> None:
    big = os.urandom(3 * (1 << 20) + 17)
    digest = hashlib.sha256(big).hexdigest()
    _accept(pg_store, big)
    with pg_store.engine.connect() as conn:
        location = conn.execute(sa.select(payload_files.c.location)).scalar_one()
    assert location.startswith("lo:")
    assert list((tmp_path / "payloads").glob("??/*")) == []  # nothing on this node's disk
    body = pg_store.body(digest)
    assert body.size == len(big) and not body.in_memory
    assert b"".join(body.chunks(100_000)) == big
    assert pg_store.payload(digest) == big


def test_on_postgresql_a_spooled_body_is_uploaded_when_kept(pg_store: Store) -> None:
    assert pg_store.files is not None
    spool = pg_store.files.spool()
    data = os.urandom(5000)
    spool.write(data)
    staged = spool.keep()
    assert not spool.path.exists()
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.size == 5000
    with pg_store.files.open(staged.location) as file:
        assert file.read() == data


def test_on_postgresql_unnamed_uploads_are_swept_once_old(pg_store: Store) -> None:
    assert pg_store.files is not None
    named = os.urandom(4096)
    _accept(pg_store, named)
    orphan = pg_store.files.stage((os.urandom(4096),))
    assert pg_store.sweep_payload_files(older_than_s=3600) == 0
    assert pg_store.files.sweep(lambda d: set(d), older_than_s=3600,
                                now=time.time() + 7200) == 1
    with pytest.raises(errors.NotFound, match="restore it from the backup"):
        pg_store.files.open(orphan.location)
    assert pg_store.payload(hashlib.sha256(named).hexdigest()) == named

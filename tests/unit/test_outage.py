"""What a sender is told when the bus's storage or broker, not its packet, fails.

The reliability battery proves the behaviour end to end with real outages
(tests/reliability/test_database_outage.py, test_disk_full.py, test_broker_cluster.py);
these pin the mapping itself in milliseconds, with real drivers and real errors.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pika
import pytest
import sqlalchemy as sa

from bus import errors
from bus.app import _engine_bounds
from bus.delivery import broker
from bus.store import outage, outage_refused
from bus.store.tables import create_engine
from tests.api_server import api_key, running_bus
from tests.servers import free_port


def test_a_real_sqlite_disk_full_is_storage_full(tmp_path: Path) -> None:
    """SQLITE_FULL made for real: a database capped at its current page count."""
    engine = create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (b BLOB)")
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(errors.StorageFull) as caught, outage_refused(), engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA max_page_count = 2")
        conn.execute(sa.text("INSERT INTO t VALUES (:b)"), {"b": b"x" * 100_000})
    assert caught.value.http_status == 507 and caught.value.code == "StorageFull"
    assert "disk" in caught.value.message and "nothing was stored" in caught.value.message


def test_an_unreachable_postgresql_is_unavailable_within_the_bound() -> None:
    url = f"postgresql+psycopg://lgsp@127.0.0.1:{free_port()}/nothing"
    engine = sa.create_engine(url, **_engine_bounds(url))
    began = time.monotonic()
    with pytest.raises(errors.Unavailable) as caught, outage_refused(), engine.connect():
        pass
    assert time.monotonic() - began < 6
    assert caught.value.http_status == 503 and caught.value.code == "Unavailable"
    assert "database is unreachable" in caught.value.message


def test_errors_that_are_not_outages_are_left_alone() -> None:
    integrity = sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE"))
    assert outage(integrity) is None
    assert outage(ValueError("a bug")) is None
    assert outage(sa.exc.OperationalError("x", {}, sqlite3.OperationalError("no such table"))) \
        is None
    with pytest.raises(ValueError), outage_refused():
        raise ValueError("a bug stays a bug")


def test_a_dropped_connection_is_unavailable() -> None:
    dropped = sa.exc.DBAPIError("SELECT 1", {}, Exception("server closed the connection"),
                                connection_invalidated=True)
    assert isinstance(outage(dropped), errors.Unavailable)
    assert isinstance(outage(sa.exc.TimeoutError("QueuePool limit reached")),
                      errors.Unavailable)


def test_broker_url_lists_several_nodes() -> None:
    url = "amqp://guest:secret@10.0.0.1:5672,10.0.0.2:5673, 10.0.0.3/%2Fprod?heartbeat=30"
    assert broker.endpoints(url) == [
        "amqp://guest:secret@10.0.0.1:5672/%2Fprod?heartbeat=30",
        "amqp://guest:secret@10.0.0.2:5673/%2Fprod?heartbeat=30",
        "amqp://guest:secret@10.0.0.3/%2Fprod?heartbeat=30",
    ]
    single = "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert broker.endpoints(single) == [single]
    assert pika.URLParameters(broker.endpoints(url)[2]).virtual_host == "/prod"


def test_connect_skips_a_dead_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node tried, in some order, until one answers; none is special."""
    tried: list[list[int]] = []

    def fake(params: list[pika.ConnectionParameters]) -> str:
        tried.append([p.port for p in params])
        return "connection"

    monkeypatch.setattr(pika, "BlockingConnection", fake)
    for _ in range(30):
        assert broker.connect("amqp://g:g@127.0.0.1:1,127.0.0.1:2,127.0.0.1:3/v") \
            == "connection"
    assert all(sorted(t) == [1, 2, 3] for t in tried)
    assert len({t[0] for t in tried}) > 1


def test_ping_names_every_node_down() -> None:
    ports = [free_port(), free_port()]
    url = "amqp://guest:guest@" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/%2F"
    verdict = broker.ping(url, timeout_s=1.0)
    assert verdict is not None and verdict.startswith("RabbitMQ unreachable")


def test_a_read_during_a_database_outage_is_a_coded_503(tmp_path: Path) -> None:
    """Reads never pass through ``Bus.submit``: the REST door maps the outage itself."""
    with running_bus(tmp_path / "bus") as server:
        url = f"postgresql+psycopg://lgsp@127.0.0.1:{free_port()}/nothing"
        healthy = server.bus.store.engine
        server.bus.store.engine = sa.create_engine(url, **_engine_bounds(url))
        try:
            began = time.monotonic()
            response = httpx.get(f"{server.url}/api/v1/edocs", timeout=30,
                                 headers=api_key("operator"))
        finally:
            server.bus.store.engine = healthy
    assert time.monotonic() - began < 8
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "Unavailable"
    assert "database is unreachable" in response.json()["message"]
    assert response.headers["Retry-After"] == "5"


def test_a_full_disk_under_a_payload_file_or_a_spooled_body_is_storage_full() -> None:
    """Payload files and spooled bodies are written beside the database: ENOSPC there is
    the same refusal as SQLite's SQLITE_FULL, not a 500."""
    import errno

    from bus.store import outage

    full = OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(outage(full), errors.StorageFull)
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("staging the payload failed") from inner
    except RuntimeError as wrapped:
        assert isinstance(outage(wrapped), errors.StorageFull)
    assert outage(OSError(errno.EACCES, "Permission denied")) is None

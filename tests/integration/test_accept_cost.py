"""What one accepted document costs the database, through the REST door, embedded default.

The bus's CPU per document (``tests/bench/bench_bus.py``) is spent as much on how many
transactions and statements a document takes as on their contents: each commit is an
fsync of the WAL, each statement a round through the driver. These tests pin the accept
path's budget so that a hook added after the commit (as deadlines once were: a second
transaction, a SELECT of the rows just written and an INSERT) shows up as a failure
rather than as a slower benchmark nobody reruns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bus.edxml import EdocBuilder, packet_bytes
from bus.store.tables import delivery_deadlines
from tests.api_server import ApiServer, api_key, running_bus

EOFFICE = api_key("eoffice")
OFFICE, COMMUNE = "000.00.00.H37", "000.00.31.H37"


class Trace:
    """Every statement SQLite ran on the engine's connections, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statements: list[str] = []

    def __call__(self, sql: str) -> None:
        with self.lock:
            self.statements.append(sql.strip().split(None, 1)[0].upper())

    def take(self) -> list[str]:
        with self.lock:
            taken, self.statements = self.statements, []
        return taken


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[ApiServer, Trace]]:
    trace = Trace()
    with running_bus(tmp_path / "bus") as server:
        engine = server.bus.store.engine

        @sa.event.listens_for(engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_trace_callback(trace)

        engine.dispose()  # pooled connections opened before the listener are replaced
        yield server, trace


def _post(server: ApiServer, document_id: str) -> dict[str, Any]:
    packet = (EdocBuilder("000.00.12.H37").to(OFFICE, COMMUNE).subject("Báo cáo tháng")
              .signer("Nguyễn Văn A", "Giám đốc").code("7", "BC-STTTT")
              .document_id(document_id).priority(1).build())
    response = httpx.post(f"{server.url}/api/v1/edocs", content=packet_bytes(packet),
                          headers=EOFFICE, timeout=30)
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_accepted_document_is_one_write_transaction_with_its_deadlines(
        traced: tuple[ApiServer, Trace]) -> None:
    server, trace = traced
    _post(server, "warm-up")  # first use compiles statements and opens connections
    trace.take()
    receipt = _post(server, "counted")
    ran = trace.take()
    assert ran.count("COMMIT") == 1, ran
    assert ran.count("BEGIN") == 1, ran
    with server.bus.store.engine.connect() as conn:
        written = conn.execute(sa.select(sa.func.count()).where(
            delivery_deadlines.c.document == receipt["id"])).scalar()
    assert written == 2  # the deadlines are in that one transaction


def test_a_resubmission_records_no_second_set_of_deadlines(
        traced: tuple[ApiServer, Trace]) -> None:
    server, _ = traced
    first = _post(server, "twice")
    again = _post(server, "twice")
    assert again["existing"] is True and again["id"] == first["id"]
    with server.bus.store.engine.connect() as conn:
        rows = conn.execute(sa.select(delivery_deadlines.c.delivery).where(
            delivery_deadlines.c.document == first["id"])).all()
    assert len(rows) == 2

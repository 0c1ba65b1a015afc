"""What one delivery attempt costs the database, on SQLite and on PostgreSQL.

The accept's budget is pinned by ``test_accept_cost.py``; these tests pin the other half
of a delivered document: the claim, the outcome, and the dispatcher's marking of published
tasks. On PostgreSQL every statement, BEGIN and COMMIT is a round trip and a parse on the
server, so a statement added back (a SELECT of the row just claimed, a separate INSERT of
the audit event, BEGIN and COMMIT around a single statement, one UPDATE per published
task) shows up here as a failure rather than as a slower benchmark nobody reruns. SQLite,
in-process, keeps the claim's SELECT: measured, it is cheaper there than RETURNING. The
audit events themselves are checked as well: the budget is met by folding statements
together, never by dropping the evidence.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from bus.store import Claim, NewDelivery, Store
from bus.store.tables import create_engine, deliveries, events
from tests.fixtures_services import postgres  # noqa: F401 - fixture
from tests.servers import PostgresServer

TARGET = [NewDelivery("000.00.31.H37", "000.00.31.H37", "hcm", "default:hosted")]


class Trace:
    """The first word of every statement the database was sent, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statements: list[str] = []

    def __call__(self, sql: Any) -> None:
        text = sql.decode() if isinstance(sql, bytes) else str(sql)
        with self.lock:
            self.statements.append(text.strip().split(None, 1)[0].upper())

    def take(self) -> list[str]:
        with self.lock:
            taken, self.statements = self.statements, []
        return taken


def _pg_url(server: PostgresServer) -> str:
    name = f"cost_{secrets.token_hex(4)}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def traced(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, Trace]]:
    trace = Trace()
    if request.param == "sqlite":
        store = Store(create_engine(f"sqlite:///{tmp_path / 'bus.db'}"))

        @sa.event.listens_for(store.engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_trace_callback(trace)
    else:
        store = Store(create_engine(_pg_url(request.getfixturevalue("postgres"))))
        # psycopg sends BEGIN, COMMIT and ROLLBACK through _exec_command and every
        # statement through a cursor: together, each round trip to the server.
        exec_command = psycopg.Connection._exec_command  # type: ignore[attr-defined]
        execute = psycopg.Cursor.execute

        def _command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
            trace(command)
            return exec_command(self, command, *args, **kwargs)

        def _execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            trace(query if isinstance(query, str | bytes) else query.as_string(self))
            return execute(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "_exec_command", _command)
        monkeypatch.setattr(psycopg.Cursor, "execute", _execute)
    store.create_schema()
    store.engine.dispose()
    yield store, trace
    store.engine.dispose()


def _accept(store: Store, document_id: str) -> tuple[str, str]:
    accepted = store.accept(
        kind="edoc", sender="000.00.12.H37", document_id=document_id,
        dedup_key=f"edoc|000.00.12.H37|{document_id}", content_sha256="c" * 64,
        payload=f"<edXML>{document_id}</edXML>".encode(), system="eoffice", targets=TARGET,
        summary={"subject": "Công văn", "code": "1/BENCH", "business": "new"})
    return accepted.document, accepted.deliveries[0][0]


def _deliver(store: Store, delivery: str) -> Claim:
    claim = store.claim(delivery, lease_s=60, worker="w1")
    assert claim is not None
    assert store.finish(claim, "delivered", worker="w1", reference="R-1")
    return claim


def _trail(store: Store, delivery: str) -> list[tuple[str, str | None, str | None]]:
    with store.engine.connect() as conn:
        return [(r.action, r.document, r.detail) for r in conn.execute(
            sa.select(events.c.action, events.c.document, events.c.detail)
            .where(events.c.delivery == delivery).order_by(events.c.id))]


def test_a_delivered_attempt_costs_a_claim_and_an_outcome_statement_each(
        traced: tuple[Store, Trace]) -> None:
    store, trace = traced
    _deliver(store, _accept(store, "warm-up")[1])  # compiles, opens the connection
    document, delivery = _accept(store, "counted")
    trace.take()
    claim = store.claim(delivery, lease_s=60, worker="w1")
    claimed = trace.take()
    assert claim is not None and claim.document == document and claim.attempts == 1
    assert claim.payload == b"<edXML>counted</edXML>" and claim.kind == "edoc"
    assert store.finish(claim, "delivered", worker="w1", reference="R-1")
    finished = trace.take()
    print(store.engine.dialect.name, "claim:", claimed, "finish:", finished)
    if store.engine.dialect.name == "sqlite":
        # In-process, the claim's SELECT costs less than RETURNING would (sql._claimed).
        assert claimed == ["BEGIN", "UPDATE", "SELECT", "INSERT", "COMMIT"]
        assert finished == ["BEGIN", "UPDATE", "INSERT", "COMMIT"]
    else:
        # One statement each, in autocommit: the event rides in the same statement.
        assert claimed == ["WITH"]
        assert finished == ["WITH"]
    assert _trail(store, delivery)[-2:] == [
        ("attempt", document, '{"attempt": 1}'),
        ("delivered", document,
         '{"attempt": 1, "reason": null, "reference": "R-1", "retry_at": null}')]


def test_a_claim_that_finds_the_row_leased_writes_nothing(
        traced: tuple[Store, Trace]) -> None:
    store, _ = traced
    _, delivery = _accept(store, "leased")
    first = store.claim(delivery, lease_s=60, worker="w1")
    assert first is not None
    assert store.claim(delivery, lease_s=60, worker="w2") is None
    assert [a for a, _, _ in _trail(store, delivery)] == ["routed", "attempt"]
    assert store.finish(first, "delivered", worker="w1", reference="R")
    assert store.claim(delivery, lease_s=60, worker="w2") is None
    stale = Claim(**{**first.__dict__, "attempts": first.attempts + 1})
    assert not store.finish(stale, "delivered", worker="w2", reference="R2")
    assert [a for a, _, _ in _trail(store, delivery)] == ["routed", "attempt", "delivered"]


def test_published_tasks_are_marked_queued_in_one_statement(
        traced: tuple[Store, Trace]) -> None:
    store, trace = traced
    ids = [_accept(store, f"batch-{n}")[1] for n in range(5)]
    store.mark_queued([(ids[0], 0)])  # warm-up
    trace.take()
    retried = ids[4]
    moved = store.mark_queued([(d, 0) for d in ids[1:4]] + [(retried, 3)])
    ran = trace.take()
    print(store.engine.dialect.name, "mark_queued of 4:", ran)
    assert moved == 3
    with store.engine.connect() as conn:
        states = dict(conn.execute(sa.select(deliveries.c.id, deliveries.c.state)
                                   .where(deliveries.c.id.in_(ids))).all())
    assert [states[d] for d in ids] == ["queued"] * 4 + ["pending"]
    assert ran == ["UPDATE"]

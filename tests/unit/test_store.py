"""The store's transport state machine on both backends, through its precompiled statements.

The hot path (accept, claim, finish, due, payload) runs compiled SQL on the driver's
cursor (:mod:`bus.store.statements`), so these tests pin what that path must keep from the
Core one: conditional transitions, the audit trail, deduplication, error classes, and a
pool that recovers after the server drops a connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from bus import errors
from bus.store import NewDelivery, Store
from bus.store.statements import Compiled
from bus.store.tables import create_engine, deliveries, events, payloads
from tests.cluster import fresh_database
from tests.fixtures_services import postgres  # noqa: F401 - fixture
from tests.servers import PostgresServer

TARGETS = [NewDelivery("000.00.00.H37", "000.00.00.H37", "vnpt", "default:hosted"),
           NewDelivery("000.00.31.H37", "000.00.31.H37", "hcm", "default:hosted"),
           NewDelivery("000.00.31.H37", "000.00.31.H37", "archive", "copy", is_copy=True)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bus.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres"))
    store = Store(create_engine(url))
    store.create_schema()
    yield store
    store.engine.dispose()


def _accept(store: Store, document_id: str = "DOC-1", payload: bytes = b"<edXML/>",
            **overrides: object) -> tuple[str, list[str]]:
    arguments: dict[str, object] = dict(
        kind="edoc", sender="000.00.12.H37", document_id=document_id,
        dedup_key=f"edoc|000.00.12.H37|{document_id}", content_sha256="c" * 64,
        payload=payload, system="eoffice", targets=TARGETS,
        summary={"subject": "Công văn", "code": "1/BENCH", "business": "new"})
    arguments.update(overrides)
    accepted = store.accept(**arguments)  # type: ignore[arg-type]
    return accepted.document, [d for d, _ in accepted.deliveries]


def _state(store: Store, delivery: str) -> tuple[str, int]:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(deliveries.c.state, deliveries.c.attempts)
                           .where(deliveries.c.id == delivery)).one()
    return row.state, row.attempts


def _actions(store: Store, delivery: str) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(events.c.action).where(events.c.delivery == delivery)
                                 .order_by(events.c.id)).scalars())


def test_accept_claim_finish_walks_the_machine_and_audits_each_step(store: Store) -> None:
    document, ids = _accept(store, payload="<edXML>Lạng Sơn</edXML>".encode())
    assert len(ids) == 3
    assert {r.id for r in store.due(limit=10)} == set(ids)

    claim = store.claim(ids[0], lease_s=60, worker="w1")
    assert claim is not None
    assert (claim.document, claim.attempts, claim.kind, claim.destination) == (
        document, 1, "edoc", "vnpt")
    assert claim.payload == "<edXML>Lạng Sơn</edXML>".encode()
    assert store.claim(ids[0], lease_s=60, worker="w2") is None  # leased: no second taker

    assert store.finish(claim, "delivered", worker="w1", reference="R-1")
    assert not store.finish(claim, "delivered", worker="w1")  # terminal: no second outcome
    assert store.claim(ids[0], lease_s=60, worker="w2") is None
    assert _state(store, ids[0]) == ("delivered", 1)
    assert _actions(store, ids[0]) == ["routed", "attempt", "delivered"]
    assert ids[0] not in {r.id for r in store.due(limit=10)}


def test_a_retry_waits_for_its_time_and_the_next_attempt_counts_on(store: Store) -> None:
    _, ids = _accept(store)
    first = store.claim(ids[1], lease_s=60, worker="w")
    assert first is not None
    later = time.time() + 3600
    assert store.finish(first, "pending", worker="w", reason="HTTP 503", retry_at=later)
    assert ids[1] not in {r.id for r in store.due(limit=10)}
    assert ids[1] in {r.id for r in store.due(limit=10, now=later + 1)}
    second = store.claim(ids[1], lease_s=60, worker="w")
    assert second is not None and second.attempts == 2
    assert not store.finish(first, "parked", worker="w")  # the stale attempt loses
    assert store.finish(second, "parked", worker="w", reason="gave up")
    assert _state(store, ids[1]) == ("parked", 2)
    assert _actions(store, ids[1]) == ["routed", "attempt", "retry", "attempt", "parked"]


def test_queued_is_recorded_only_for_the_attempt_that_was_published(store: Store) -> None:
    _, ids = _accept(store)
    assert [r.attempts for r in store.due(limit=10)] == [0, 0, 0]
    # The task for ids[0] was consumed, tried and sent back for a retry before the
    # publisher got round to recording it as queued: no task is in flight for it now.
    claim = store.claim(ids[0], lease_s=60, worker="w")
    assert claim is not None
    assert store.finish(claim, "pending", worker="w", reason="HTTP 503", retry_at=time.time())
    assert store.mark_queued([(ids[0], 0), (ids[1], 0)]) == 1
    assert _state(store, ids[0]) == ("pending", 1)  # still due, for the relay
    assert _state(store, ids[1]) == ("queued", 0)
    assert ids[0] in {r.id for r in store.due(limit=10)}
    assert store.mark_queued([(ids[0], 1)]) == 1
    assert _state(store, ids[0]) == ("queued", 1)
    assert store.mark_queued([]) == 0


def test_an_expired_lease_can_be_taken_over_and_the_old_holder_loses(store: Store) -> None:
    _, ids = _accept(store)
    old = store.claim(ids[2], lease_s=-1, worker="slow")
    assert old is not None
    new = store.claim(ids[2], lease_s=60, worker="fast")
    assert new is not None and new.attempts == 2
    assert store.finish(new, "awaiting", worker="fast", reference="MB-1")
    assert not store.finish(old, "delivered", worker="slow")
    assert _state(store, ids[2]) == ("awaiting", 2)


def test_one_claim_wins_among_racing_workers(store: Store) -> None:
    _, ids = _accept(store)
    won: list[object] = []
    barrier = threading.Barrier(4)

    def race() -> None:
        barrier.wait(5)
        claim = store.claim(ids[0], lease_s=60, worker=threading.current_thread().name)
        if claim is not None:
            won.append(claim)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(won) == 1


def test_resubmission_returns_the_original_and_other_content_is_refused(store: Store) -> None:
    document, ids = _accept(store)
    again = store.accept(
        kind="edoc", sender="000.00.12.H37", document_id="DOC-1",
        dedup_key="edoc|000.00.12.H37|DOC-1", content_sha256="c" * 64, payload=b"<edXML/>",
        system="eoffice", targets=TARGETS, summary={})
    assert again.existing and again.document == document
    assert [d for d, _ in again.deliveries] == ids
    with pytest.raises(errors.DuplicateDocumentId):
        _accept(store, content_sha256="d" * 64)


def test_the_same_payload_for_two_documents_is_stored_once(store: Store) -> None:
    _accept(store, "DOC-A", payload=b"<same/>")
    _, ids = _accept(store, "DOC-B", payload=b"<same/>")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(payloads)).scalar() == 1
    claim = store.claim(ids[0], lease_s=60, worker="w")
    assert claim is not None and claim.payload == b"<same/>"


def test_an_inbound_item_fetched_twice_is_accepted_once(store: Store) -> None:
    first, _ = _accept(store, "DOC-S", source=("national_axis", "item-7"))
    again = store.accept(
        kind="edoc", sender="000.00.12.H37", document_id="DOC-S",
        dedup_key="edoc|000.00.12.H37|DOC-S", content_sha256="c" * 64, payload=b"<edXML/>",
        system="eoffice", targets=TARGETS, summary={}, source=("national_axis", "item-7"))
    assert again.existing and again.document == first


def test_a_missing_payload_reads_as_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        store.payload("0" * 64)


def test_driver_errors_leave_as_sqlalchemy_errors_and_the_transaction_rolls_back(
        store: Store) -> None:
    document, _ = _accept(store)
    with pytest.raises(sa.exc.IntegrityError), store.statements.begin() as tx:
        tx.execute("test-event", lambda: events.insert().inline().values(
            at=sa.bindparam("at"), actor=sa.bindparam("actor"),
            action=sa.bindparam("action"), document=sa.bindparam("document")),
            {"at": 1.0, "actor": "t", "action": "probe", "document": document})
        def plain_insert() -> sa.Insert:
            return payloads.insert().values(sha256=sa.bindparam("sha256"),
                                            data=sa.bindparam("data"))

        tx.execute("test-dup", plain_insert, {"sha256": "x", "data": b"1"})
        tx.execute("test-dup", plain_insert, {"sha256": "x", "data": b"2"})
    with store.engine.connect() as conn:
        probes = conn.execute(sa.select(sa.func.count()).select_from(events)
                              .where(events.c.action == "probe")).scalar()
    assert probes == 0
    assert store.due(limit=10)  # the pool still serves


def test_an_expanding_in_list_is_refused_at_compile_time(store: Store) -> None:
    with pytest.raises(ValueError, match="IN lists"):
        Compiled(sa.select(deliveries.c.id).where(deliveries.c.id.in_(["a", "b"])),
                 store.engine)


def test_a_missing_parameter_is_an_error_not_a_null(store: Store) -> None:
    compiled = Compiled(deliveries.update().where(deliveries.c.id == sa.bindparam("d"))
                        .values(state=sa.bindparam("state")), store.engine)
    assert compiled.bind({"d": "x", "state": "pending"})
    with pytest.raises(KeyError, match="'d'"):
        compiled.bind({"state": "pending"})


def test_the_pool_recovers_after_the_server_drops_its_connections(
        postgres: PostgresServer) -> None:  # noqa: F811 - fixture
    store = Store(create_engine(fresh_database(postgres)))
    store.create_schema()
    try:
        _, ids = _accept(store)
        database = store.engine.url.database
        with psycopg.connect(postgres.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
        with pytest.raises(sa.exc.OperationalError) as failed:
            store.claim(ids[0], lease_s=60, worker="w")
        assert failed.value.connection_invalidated
        claim = store.claim(ids[0], lease_s=60, worker="w")  # a fresh connection
        assert claim is not None and claim.attempts == 1
    finally:
        store.engine.dispose()


def test_a_document_for_many_recipients_commits_every_row(store: Store) -> None:
    many = [NewDelivery(f"000.00.{i:02d}.H37", f"000.00.{i:02d}.H37", "hcm", "default:hosted")
            for i in range(73)]
    document, ids = _accept(store, targets=many)
    assert len(set(ids)) == 73
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                            .where(deliveries.c.document == document)).scalar()
        routed = conn.execute(sa.select(sa.func.count()).select_from(events)
                              .where(events.c.document == document,
                                     events.c.action == "routed")).scalar()
    assert (rows, routed) == (73, 73)
    assert {r.id for r in store.due(limit=100)} == set(ids)

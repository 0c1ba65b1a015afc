"""The sealed audit trail on both backends: what ``lgsp audit verify`` finds after each
kind of tampering done with plain SQL (as someone with database access would), and what
it must not report: a documented purge, an id a rolled-back transaction never committed,
an id committed after a later one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.evidence import Evidence, record_purge
from bus.evidence.chain import Sealer
from bus.evidence.verify import verify
from bus.store import NewDelivery, Store
from bus.store.tables import audit_seals, create_engine, documents, events, payloads
from tests.cluster import fresh_database
from tests.fixtures_services import postgres  # noqa: F401 - fixture

TARGETS = [NewDelivery("000.00.00.H37", "000.00.00.H37", "vnpt", "default:hosted")]


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


def accept(store: Store, document_id: str, payload: bytes = b"<edXML>x</edXML>") -> str:
    return store.accept(
        kind="edoc", sender="000.00.12.H37", document_id=document_id,
        dedup_key=f"edoc|000.00.12.H37|{document_id}",
        content_sha256=hashlib.sha256(payload).hexdigest(), payload=payload,
        system="eoffice", targets=TARGETS,
        summary={"subject": "Công văn", "code": "1/X", "business": "new"}).document


def sealed(store: Store, n: int = 3) -> list[str]:
    docs = [accept(store, f"DOC-{i}", f"<edXML>{i} Lạng Sơn</edXML>".encode())
            for i in range(n)]
    assert Sealer(store.engine).seal_all() > 0
    return docs


def sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def kinds(store: Store) -> list[tuple[str, str]]:
    report = verify(store.engine)
    return [(f.kind, f.message) for f in report.findings]


def test_an_untouched_trail_verifies_and_every_event_is_sealed(store: Store) -> None:
    sealed(store)
    report = verify(store.engine)
    assert report.ok, report.findings
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
    assert report.events == total and report.unsealed == 0 and report.seals == 1


def test_an_updated_event_row_is_named(store: Store) -> None:
    sealed(store)
    sql(store, "UPDATE events SET actor = 'someone' WHERE id = 2")
    found = kinds(store)
    assert found and found[0][0] == "changed" and found[0][1].startswith("event 2 ")
    assert len(found) == 1


def test_a_deleted_event_row_is_named(store: Store) -> None:
    sealed(store)
    sql(store, "DELETE FROM events WHERE id = 4")
    assert kinds(store) == [("removed", "event 4 (sealed by seal 1) was removed")]


def test_reordered_events_are_changed_rows(store: Store) -> None:
    sealed(store)
    with store.engine.begin() as conn:
        one, two = (conn.execute(sa.select(events.c.at).where(events.c.id == i)).scalar()
                    for i in (1, 3))
        assert one != two
        conn.execute(events.update().where(events.c.id == 1).values(at=two))
        conn.execute(events.update().where(events.c.id == 3).values(at=one))
        conn.execute(sa.text("UPDATE events SET id = -1 WHERE id = 2"))
        conn.execute(sa.text("UPDATE events SET id = 2 WHERE id = 4"))
        conn.execute(sa.text("UPDATE events SET id = 4 WHERE id = -1"))
    found = {m.split(" (")[0] for k, m in kinds(store) if k == "changed"}
    assert found == {"event 1", "event 2", "event 3", "event 4"}


def test_edited_removed_and_reordered_seals_break_the_chain(store: Store) -> None:
    accept(store, "A")
    Sealer(store.engine).seal_all()
    accept(store, "B")
    Sealer(store.engine).seal_all()
    accept(store, "C")
    Sealer(store.engine).seal_all()
    assert verify(store.engine).ok
    sql(store, "UPDATE audit_seals SET sealed_at = sealed_at + 1 WHERE number = 2")
    report = verify(store.engine)
    assert report.first_broken == ("seal 2: its hash does not match its contents (the seal "
                                   "row was edited)")
    sql(store, "DELETE FROM audit_seals WHERE number = 2")
    assert "seals 2..2 are missing" in (verify(store.engine).first_broken or "")


def test_an_edited_payload_byte_and_document_column_are_found(store: Store) -> None:
    doc = sealed(store)[0]
    with store.engine.begin() as conn:
        digest = conn.execute(sa.select(documents.c.payload_sha256)
                              .where(documents.c.id == doc)).scalar()
        data = bytearray(conn.execute(sa.select(payloads.c.data)
                                      .where(payloads.c.sha256 == digest)).scalar())
        data[3] ^= 1
        conn.execute(payloads.update().where(payloads.c.sha256 == digest)
                     .values(data=bytes(data)))
        conn.execute(documents.update().where(documents.c.id == doc)
                     .values(sender="000.00.99.H37"))
    found = kinds(store)
    assert ("payload", f"payload {digest} was changed: its bytes no longer hash to its "
            "digest") in found
    assert any(k == "document" and "sender is '000.00.99.H37'" in m for k, m in found)


def test_a_documented_purge_is_not_tampering_but_a_silent_one_is(store: Store) -> None:
    old, kept = sealed(store, 2)
    with store.engine.begin() as conn:
        ids = list(conn.execute(sa.select(events.c.id).where(events.c.document == old))
                   .scalars())
        digest = conn.execute(sa.select(documents.c.payload_sha256)
                              .where(documents.c.id == old)).scalar()
        record_purge(conn, "retention", reason="older than 5 years", documents=[old],
                     payloads=[digest], event_ids=ids)
        conn.execute(events.delete().where(events.c.id.in_(ids)))
        conn.execute(sa.text("DELETE FROM deliveries WHERE document = :d"), {"d": old})
        conn.execute(documents.delete().where(documents.c.id == old))
        conn.execute(payloads.delete().where(payloads.c.sha256 == digest))
    Sealer(store.engine).seal_all()
    report = verify(store.engine)
    assert report.ok, report.findings
    assert report.purged_events == len(ids) and len(report.purges) == 1
    sql(store, "DELETE FROM events WHERE document = :d", d=kept)
    assert {k for k, _ in kinds(store)} == {"removed", "document"}


def test_a_rolled_back_id_is_declared_absent_after_the_margin_not_reported(
        store: Store) -> None:
    accept(store, "A")
    accept(store, "B")
    sql(store, "DELETE FROM events WHERE id = 2")  # as a rolled-back insert leaves it
    now = [0.0]
    sealer = Sealer(store.engine, margin_s=10, clock=lambda: now[0])
    assert sealer.seal_once() == 1  # up to the gap only
    now[0] = 9.0
    assert sealer.seal_once() == 0  # it may still commit
    now[0] = 11.0
    assert sealer.seal_once() == 2
    report = verify(store.engine)
    assert report.ok and report.unsealed == 0, report.findings
    with store.engine.connect() as conn:
        absent = [json.loads(a) for a in conn.execute(sa.select(audit_seals.c.absent))
                  .scalars()]
    assert [[2, 2]] in absent


def test_an_id_committed_after_its_range_was_sealed_is_adopted_late(store: Store) -> None:
    accept(store, "A")
    with store.engine.begin() as conn:
        row = dict(conn.execute(sa.select(events).where(events.c.id == 2)).mappings().one())
        conn.execute(events.delete().where(events.c.id == 2))
    sealer = Sealer(store.engine, margin_s=0)
    sealer.seal_all()
    with store.engine.begin() as conn:
        conn.execute(events.insert().values(row))  # the slow transaction commits now
    assert sealer.seal_all() == 1
    report = verify(store.engine)
    assert report.ok and report.events == 2, report.findings


def test_refusals_are_bounded_per_minute_with_a_count(store: Store) -> None:
    evidence = Evidence(store.engine)
    clock = [600.0]
    evidence.refusals.clock = lambda: clock[0]
    for _ in range(25):
        evidence.refusals.record("MalformedXml", "rest", system="eoffice", body=b"<x")
    evidence.tick()
    clock[0] = 661.0
    evidence.tick()
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.action, events.c.digest, events.c.detail)
                            .order_by(events.c.id)).all()
    assert [r.action for r in rows] == ["door.refused"] * 10 + ["door.refused.more"]
    assert rows[0].digest == hashlib.sha256(b"<x").hexdigest()
    assert json.loads(rows[-1].detail)["count"] == 15
    assert verify(store.engine).ok


def test_the_commands_say_one_line_when_there_is_no_database(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bus.cli import main

    assert main(["audit", "verify", "--data-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lgsp: ") and "data directory" in err, err
    assert not (tmp_path / "nowhere" / "lgsp.db").exists()
    assert main(["evidence", "verify", str(tmp_path / "missing.zip")]) == 1
    assert "missing.zip" in capsys.readouterr().err

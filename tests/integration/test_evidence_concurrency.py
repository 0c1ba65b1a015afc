"""The sealer against real concurrency on PostgreSQL: two writers (separate engines, as
two processes would be) accepting documents, transactions rolled back after taking an
event id (missing for ever), a transaction that holds its id while later ones commit, and
two sealers racing. Afterwards every committed event is sealed exactly once, and
``audit verify`` reports nothing: no gap taken for a removal, nothing skipped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from bus.edxml import EdocBuilder, packet_bytes
from bus.evidence.chain import Sealer
from bus.evidence.verify import verify
from bus.store import Store
from bus.store.tables import audit_seals, create_engine, events
from tests.cluster import Cluster, fresh_database, fresh_vhost, routes_document, wait_until
from tests.fixtures_services import postgres, rabbitmq  # noqa: F401 - fixture
from tests.http_sink import HttpSink
from tests.servers import PostgresServer, RabbitMQServer
from tests.unit.test_evidence_chain import accept


def test_two_writers_and_two_sealers_leave_no_gap_and_skip_nothing(
        postgres: PostgresServer) -> None:  # noqa: F811 - fixture
    url = fresh_database(postgres)
    stores = [Store(create_engine(url)) for _ in range(2)]
    stores[0].create_schema()
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(store: Store, name: str) -> None:
        try:
            for i in range(80):
                accept(store, f"{name}-{i}")
                time.sleep(0.02)
                if i % 7 == 0:  # a transaction that failed after taking an event id
                    try:
                        with store.engine.begin() as conn:
                            Store.audit(conn, name, "note")
                            raise RuntimeError("rolled back")
                    except RuntimeError:
                        pass
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    def slow_writer() -> None:
        """Takes an id, then commits after others have committed later ids."""
        try:
            with stores[0].engine.begin() as conn:
                Store.audit(conn, "slow", "note", detail={"held": True})
                time.sleep(0.8)
            with stores[1].engine.begin() as conn:
                Store.audit(conn, "slower", "note", detail={"held": "past the margin"})
                time.sleep(3.0)
        except BaseException as exc:  # pragma: no cover
            failures.append(exc)

    def sealing(sealer: Sealer) -> None:
        while not stop.is_set():
            try:
                sealer.seal_all(0.5)
            except BaseException as exc:  # pragma: no cover
                failures.append(exc)
            time.sleep(0.05)

    sealers = [Sealer(create_engine(url), margin_s=1.5) for _ in range(2)]
    threads = [threading.Thread(target=writer, args=(stores[0], "a")),
               threading.Thread(target=writer, args=(stores[1], "b")),
               threading.Thread(target=slow_writer),
               *(threading.Thread(target=sealing, args=(s,)) for s in sealers)]
    try:
        for t in threads:
            t.start()
        for t in threads[:3]:
            t.join(120)
        time.sleep(2.0)  # past the margin: every rolled-back id may be declared absent
        stop.set()
        for t in threads[3:]:
            t.join(30)
        assert not failures, failures
        deadline = time.monotonic() + 20
        while sealers[0].seal_all() and time.monotonic() < deadline:
            pass
        report = verify(stores[0].engine)
        with stores[0].engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
            late = conn.execute(sa.select(audit_seals.c.late)
                                .where(audit_seals.c.late != "[]")).scalars().all()
            absent = conn.execute(sa.select(audit_seals.c.absent)
                                  .where(audit_seals.c.absent != "[]")).scalars().all()
        assert report.ok, report.findings
        assert report.unsealed == 0 and report.events == total
        assert total == 2 * 80 * 2 + 2
        assert absent, "the rolled-back duplicates left ids that were declared absent"
        assert late, "the transaction held past the margin was adopted late"
    finally:
        stop.set()
        for store in stores:
            store.engine.dispose()
        for sealer in sealers:
            sealer.engine.dispose()


def test_a_scaled_out_bus_seals_everything_once_across_its_processes(
        tmp_path: Path, postgres: PostgresServer,  # noqa: F811 - fixture
        rabbitmq: RabbitMQServer) -> None:  # noqa: F811 - fixture
    """Two ``lgsp serve --no-workers`` and two ``lgsp worker`` processes, each running
    the keeper: one seals at a time, none forks the chain, every event ends sealed."""
    with HttpSink() as sink, Cluster(tmp_path / "cluster", routes=routes_document(sink),
                                     database_url=fresh_database(postgres),
                                     broker_url=fresh_vhost(rabbitmq),
                                     reload_check_s=3600.0) as cluster:
        cluster.launch("ingress", 2)
        cluster.launch("worker", 2)
        ingress = cluster.by_role("ingress")
        for i in range(12):
            packet = (EdocBuilder("000.00.12.H37").to("000.00.31.H37")
                      .code(str(i), "E2E").subject(f"Công văn số {i}", "Nội dung")
                      .signer("Nguyễn Văn An", "Chánh Văn phòng").build())
            answer = httpx.post(ingress[i % 2].url + "/api/v1/edocs",
                                content=packet_bytes(packet),
                                headers={"X-API-Key": "dev-eoffice-key"}, timeout=30)
            assert answer.status_code == 202, answer.text
        wait_until(lambda: sink.effects >= 12, 60, what="twelve deliveries")

        def all_sealed() -> bool:
            with cluster.engine.connect() as conn:
                last = conn.execute(sa.select(sa.func.max(audit_seals.c.last_id))).scalar()
                newest = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
            return last is not None and last == newest
        wait_until(all_sealed, 30, what="every event sealed")
        report = verify(cluster.engine)
        assert report.ok, report.findings
        assert report.unsealed == 0 and report.events >= 12 * 4

"""One delivery attempt end to end: SQLite store, real http adapter, real loopback sink.

The sink counts effects by Idempotency-Key, so "exactly-once effect" is asserted the way
a destination experiences it, including when the bus itself sends twice.
"""

from __future__ import annotations

import collections
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from adapters.http import HttpAdapter
from bus.adapter import Adapter, Delivery, Receipt
from bus.app import Bus
from bus.delivery.embedded import EmbeddedDispatcher
from bus.delivery.worker import DeliveryWorker, backoff_s
from bus.edxml import EdocBuilder, packet_bytes
from bus.metrics import Metrics
from bus.routing import Destination, RetryPolicy, RouteTable
from bus.settings import Settings, load_settings
from bus.store import Accepted, NewDelivery, Store
from bus.store.tables import create_engine, deliveries, documents
from tests.http_sink import HttpSink

SENDER = "000.00.12.H37"
RECIPIENT = "000.00.31.H37"
POISON = b"POISON-PILL"


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    result = Store(create_engine(f"sqlite:///{tmp_path / 'bus.db'}"))
    result.create_schema()
    yield result
    result.engine.dispose()


def _table(sink: HttpSink, policy: RetryPolicy) -> RouteTable:
    options = {"url": sink.url("/edxml"), "timeout_s": 2.0}
    return RouteTable(destinations={"sink": Destination("sink", "http", options, policy)})


def _worker(store: Store, table: RouteTable, *, lease_s: float = 30.0,
            metrics: Metrics | None = None, name: str = "test-worker") -> DeliveryWorker:
    return DeliveryWorker(store, lambda: table, metrics=metrics, lease_s=lease_s, name=name,
                          rng=random.Random(7))


def _accept(store: Store, subject: str = "Công văn thử nghiệm") -> Accepted:
    edoc = (EdocBuilder(SENDER).to(RECIPIENT).subject(subject).signer("Nguyễn Văn A")
            .build())
    data = packet_bytes(edoc)
    digest = hashlib.sha256(data).hexdigest()
    doc_id = edoc.document_id or str(uuid.uuid4())
    return store.accept(kind="edoc", sender=SENDER, document_id=doc_id,
                        dedup_key=f"edoc|{SENDER}|{doc_id}", content_sha256=digest,
                        payload=data, system="eoffice",
                        targets=[NewDelivery(RECIPIENT, RECIPIENT, "sink", "test")],
                        summary={"subject": subject})


def _one(store: Store) -> str:
    return _accept(store).deliveries[0][0]


def _row(store: Store, delivery: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(deliveries, documents.c.payload_sha256)
            .join(documents, documents.c.id == deliveries.c.document)
            .where(deliveries.c.id == delivery)).one()


def _sample(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "lgsp_deliveries_total", {"destination": "sink", "outcome": outcome})
    return value or 0.0


def test_delivered_once_with_a_stable_idempotency_key(store: Store, sink: HttpSink) -> None:
    metrics = Metrics()
    worker = _worker(store, _table(sink, RetryPolicy(3, 1, 4)), metrics=metrics)
    accepted = _accept(store)
    delivery = accepted.deliveries[0][0]
    try:
        assert worker.handle(delivery) == "delivered"
        assert worker.handle(delivery) == "skipped"
    finally:
        worker.close()
    row = _row(store, delivery)
    [request] = sink.requests
    latency = metrics.registry.get_sample_value("lgsp_delivery_latency_seconds_count",
                                                {"destination": "sink"})
    print(f"\n[worker] state={row.state} attempts={row.attempts} "
          f"reference={row.receipt_reference} latency_samples={latency}")
    assert (row.state, row.attempts) == ("delivered", 1)
    key = f"{accepted.document}:{RECIPIENT}:sink"
    assert request.headers["idempotency-key"] == key
    assert row.receipt_reference == sink.reference_for(key)
    assert request.headers["x-lgsp-attempt"] == "1"
    assert _sample(metrics, "delivered") == 1 and latency == 1
    assert sink.effects == 1


def test_server_error_is_retried_within_the_backoff_window(store: Store,
                                                           sink: HttpSink) -> None:
    policy = RetryPolicy(attempts=5, first_delay_s=1.0, max_delay_s=30.0)
    worker = _worker(store, _table(sink, policy))
    delivery = _one(store)
    sink.fail(503, times=2)
    windows = []
    try:
        for attempt in (1, 2):
            before = time.time()
            assert worker.handle(delivery) == "retry"
            row = _row(store, delivery)
            delay = row.next_attempt_at - before
            ceiling = policy.first_delay_s * 2 ** (attempt - 1)
            windows.append((attempt, round(delay, 3), ceiling))
            assert row.state == "pending" and "HTTP 503" in row.last_error
            assert -0.05 <= delay <= ceiling + 0.5
        assert worker.handle(delivery) == "delivered"
    finally:
        worker.close()
    print(f"\n[worker] (attempt, delay_s, ceiling_s): {windows}; requests={len(sink.requests)}")
    assert _row(store, delivery).attempts == 3
    assert sink.effects == 1 and len(sink.requests) == 3


def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    policy = RetryPolicy(attempts=10, first_delay_s=30, max_delay_s=3600)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (40, 3600)]:
        samples = [backoff_s(attempt, policy, rng) for _ in range(400)]
        print(f"\n[backoff] attempt {attempt}: min={min(samples):.1f} "
              f"max={max(samples):.1f} ceiling={ceiling}", end="")
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.9 and min(samples) < ceiling * 0.1
    print()


def test_permanent_refusal_is_final_and_not_retried(store: Store, sink: HttpSink) -> None:
    worker = _worker(store, _table(sink, RetryPolicy(5, 1, 4)))
    delivery = _one(store)
    sink.fail(422)
    try:
        assert worker.handle(delivery) == "refused"
        assert worker.handle(delivery) == "skipped"
    finally:
        worker.close()
    row = _row(store, delivery)
    print(f"\n[worker] refused: {row.last_error!r}")
    assert (row.state, row.attempts) == ("refused", 1)
    assert row.last_error.startswith("[HTTP422] HTTP 422")
    assert sink.effects == 0 and len(sink.requests) == 1


def test_parked_after_the_configured_attempts_with_payload_and_reason(
    store: Store, sink: HttpSink
) -> None:
    worker = _worker(store, _table(sink, RetryPolicy(3, 0.01, 0.05)))
    delivery = _one(store)
    sink.fail(500)
    try:
        outcomes = [worker.handle(delivery) for _ in range(3)]
        row = _row(store, delivery)
        assert store.payload(row.payload_sha256) == sink.requests[0].body
        sink.ok()
        assert store.requeue(delivery, actor="operator")
        requeued = worker.handle(delivery)
    finally:
        worker.close()
    print(f"\n[worker] outcomes={outcomes} parked reason={row.last_error!r} "
          f"after requeue: {requeued}")
    assert outcomes == ["retry", "retry", "parked"]
    assert (row.state, row.attempts) == ("parked", 3)
    assert row.last_error.startswith("gave up after 3 attempt(s): HTTP 500")
    assert requeued == "delivered" and sink.effects == 1


def test_retry_after_overrides_the_backoff_once_within_max_delay(store: Store,
                                                                 sink: HttpSink) -> None:
    worker = _worker(store, _table(sink, RetryPolicy(5, 1, 60)))
    first, second = _one(store), _one(store)
    try:
        sink.fail(503, times=1, retry_after="7")
        before = time.time()
        assert worker.handle(first) == "retry"
        honoured = _row(store, first).next_attempt_at - before
        sink.fail(429, times=1, retry_after="86400")
        before = time.time()
        assert worker.handle(second) == "retry"
        capped = _row(store, second).next_attempt_at - before
    finally:
        worker.close()
    print(f"\n[worker] Retry-After 7 -> {honoured:.2f}s; Retry-After 86400 -> {capped:.2f}s")
    assert 6.9 <= honoured <= 7.5
    assert 59.9 <= capped <= 60.5


def test_a_duplicate_task_for_the_same_delivery_is_skipped(store: Store,
                                                           sink: HttpSink) -> None:
    table = _table(sink, RetryPolicy(3, 1, 4))
    delivery = _one(store)
    sink.slow(0.5)
    outcomes: list[str] = []
    workers = [_worker(store, table, name=f"w{i}") for i in range(2)]
    gate = threading.Barrier(2)

    def run(worker: DeliveryWorker) -> None:
        gate.wait(5)
        outcomes.append(worker.handle(delivery))

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for worker in workers:
        worker.close()
    print(f"\n[worker] concurrent tasks: {sorted(outcomes)}; requests={len(sink.requests)}")
    assert sorted(outcomes) == ["delivered", "skipped"]
    assert sink.effects == 1 and len(sink.requests) == 1


def test_an_expired_lease_is_swept_back_and_delivered_with_one_effect(
    store: Store, sink: HttpSink
) -> None:
    table = _table(sink, RetryPolicy(3, 1, 4))
    delivery = _one(store)
    sink.slow(0.8)
    slow_worker = _worker(store, table, lease_s=0.3, name="slow")
    fresh_worker = _worker(store, table, name="fresh")
    first: list[str] = []
    thread = threading.Thread(target=lambda: first.append(slow_worker.handle(delivery)))
    thread.start()
    deadline = time.monotonic() + 5
    while True:
        row = _row(store, delivery)
        if row.state == "delivering" and time.time() > row.lease_until + 0.05:
            break
        assert time.monotonic() < deadline, "the first attempt never took its lease"
        time.sleep(0.02)
    swept = store.sweep(queued_older_than_s=600)
    second = fresh_worker.handle(delivery)
    thread.join(10)
    slow_worker.close()
    fresh_worker.close()
    row = _row(store, delivery)
    key = f"{row.document}:{RECIPIENT}:sink"
    print(f"\n[worker] swept={swept} first={first} second={second} "
          f"requests with key={sink.requests_by_key()[key]} effects={sink.effects} "
          f"duplicates={sink.duplicates}")
    assert swept == 1 and first == ["stale"] and second == "delivered"
    assert (row.state, row.attempts) == ("delivered", 2)
    assert sink.requests_by_key()[key] == 2
    assert sink.effects == 1 and sink.duplicates == 1


class _FussyAdapter(HttpAdapter):
    """A vendor adapter with a bug: it crashes on one particular packet, every time."""

    def deliver(self, delivery: Delivery) -> Receipt:
        if POISON in delivery.payload:
            raise RuntimeError("cannot parse packet")
        return super().deliver(delivery)


def _fussy(destination: Destination) -> Adapter[Any]:
    return _FussyAdapter.from_options(destination.name, dict(destination.options))


def test_an_unexpected_exception_is_retried_and_its_traceback_logged(
    store: Store, sink: HttpSink
) -> None:
    table = _table(sink, RetryPolicy(3, 1, 4))
    worker = DeliveryWorker(store, lambda: table, build=_fussy, name="fussy")
    delivery = _accept(store, subject=f"Văn bản {POISON.decode()}").deliveries[0][0]
    with capture_logs() as logs:
        outcome = worker.handle(delivery)
    worker.close()
    [entry] = [e for e in logs if e["event"] == "delivery.adapter_error"]
    print(f"\n[worker] outcome={outcome} log={entry['event']} "
          f"decision={entry['decision']} exc_info={entry['exc_info']}")
    assert outcome == "retry" and entry["exc_info"] is True
    assert _row(store, delivery).last_error == "RuntimeError: cannot parse packet"


def test_a_poison_packet_parks_without_holding_up_the_others(
    store: Store, sink: HttpSink, tmp_path: Path
) -> None:
    table = _table(sink, RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2))
    settings = Settings(data_dir=tmp_path, delivery_threads=3, poll_interval_s=0.05,
                        sweep_interval_s=0.5)
    dispatcher = EmbeddedDispatcher(
        store, settings,
        lambda name: DeliveryWorker(store, lambda: table, build=_fussy, name=name),
        destinations=lambda: table.destinations)
    dispatcher.start()
    began = time.monotonic()
    poison = _accept(store, subject=f"Văn bản {POISON.decode()}")
    dispatcher.notify(poison)
    normal = []
    for number in range(20):
        accepted = _accept(store, subject=f"Công văn số {number}")
        dispatcher.notify(accepted)
        normal.append(accepted.deliveries[0][0])
    delivered_all = sink.wait_for_effects(20, timeout=20)
    delivered_in = time.monotonic() - began
    deadline = time.monotonic() + 20
    while _row(store, poison.deliveries[0][0]).state != "parked":
        assert time.monotonic() < deadline, "the poison packet was never parked"
        time.sleep(0.05)
    parked_in = time.monotonic() - began
    stop_began = time.monotonic()
    stopped = dispatcher.stop(timeout=10)
    stop_took = time.monotonic() - stop_began
    poisoned = _row(store, poison.deliveries[0][0])
    states = {_row(store, d).state for d in normal}
    counts: collections.Counter[str] = collections.Counter()
    for worker in dispatcher.workers:
        counts.update(worker.counts)
    print(f"\n[embedded] 20 deliveries in {delivered_in:.2f}s, poison parked after "
          f"{poisoned.attempts} attempts in {parked_in:.2f}s, stop took {stop_took:.3f}s; "
          f"outcomes={dict(counts)} requests={len(sink.requests)}")
    assert delivered_all and stopped
    assert states == {"delivered"} and sink.effects == 20
    assert (poisoned.state, poisoned.attempts) == ("parked", 3)
    assert "RuntimeError: cannot parse packet" in poisoned.last_error


def test_the_embedded_bus_delivers_what_bus_submit_commits(sink: HttpSink,
                                                           tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("version: 1\ndestinations:\n" + "".join(
        f'  {name}: {{adapter: http, options: {{url: "{sink.url("/" + name)}"}}}}\n'
        for name in ("eoffice", "vnpt_ioffice", "hcm_egov")), encoding="utf-8")
    settings = load_settings(environ={}, data_dir=tmp_path / "var", routes=routes,
                             poll_interval_s=0.05, delivery_threads=2)
    bus = Bus(settings)
    dispatcher = EmbeddedDispatcher.from_bus(bus)
    bus.dispatcher = dispatcher
    dispatcher.start()
    began = time.monotonic()
    try:
        for number in range(10):
            edoc = (EdocBuilder(SENDER).to(RECIPIENT, "000.00.00.H37")
                    .subject(f"Công văn số {number}").signer("Nguyễn Văn A").build())
            bus.submit(packet_bytes(edoc), system="eoffice", channel="test")
        delivered = sink.wait_for_effects(20, timeout=20)
        took = time.monotonic() - began
    finally:
        stopped = dispatcher.stop(10)
        bus.close()
    paths = collections.Counter(r.path for r in sink.requests)
    print(f"\n[embedded bus] 10 documents / 20 deliveries in {took:.2f}s; {dict(paths)}")
    assert delivered and stopped
    assert paths == {"/hcm_egov": 10, "/vnpt_ioffice": 10}


def test_metrics_children_are_looked_up_once_per_destination_and_outcome(
        store: Store, sink: HttpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt is counted and timed, without labels() (a lock and a key built) per
    attempt."""
    metrics = Metrics()
    looked_up: list[tuple[str, ...]] = []
    for family in (metrics.deliveries, metrics.latency):
        real = family.labels

        def counting(*values: str, _real: Any = real) -> Any:
            looked_up.append(values)
            return _real(*values)

        monkeypatch.setattr(family, "labels", counting)
    worker = _worker(store, _table(sink, RetryPolicy(3, 1, 4)), metrics=metrics)
    try:
        outcomes = [worker.handle(_one(store)) for _ in range(4)]
    finally:
        worker.close()
    assert outcomes == ["delivered"] * 4
    assert _sample(metrics, "delivered") == 4.0
    assert metrics.registry.get_sample_value("lgsp_delivery_latency_seconds_count",
                                             {"destination": "sink"}) == 4.0
    assert sorted(looked_up) == [("sink",), ("sink", "delivered")]

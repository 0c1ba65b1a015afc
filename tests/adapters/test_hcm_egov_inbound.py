"""HCM Egov inbound: the bus polls the platform's outbox into a real Bus on SQLite, and
statuses travel back through the ``hcm_egov`` destination, all over real sockets.

The bus here is the one ``lgsp serve`` builds (routes, directory, credentials, store),
with the sample directory: communes 000.00.31/32.H37 live on HCM Egov, the Department
of Information and Communications (000.00.12.H37) on eOffice, which a loopback sink
plays. Deliveries are run by a real :class:`DeliveryWorker`, which builds the adapter
through its entry point, exactly as production does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from adapters.hcm_egov import HcmEgovAdapter
from adapters.hcm_egov.simulator import HcmEgovSimulator
from bus.adapter import InboundPacket, Refuse, Retry
from bus.app import Bus
from bus.delivery.pollers import BusInbox, Pollers
from bus.delivery.worker import DeliveryWorker
from bus.edxml import packet_bytes, status_for
from bus.settings import load_settings
from bus.store.queries import DocumentDetail, Viewer, document_detail
from bus.store.tables import deliveries, documents
from tests.adapters.hcm_egov_support import (
    SO_TTTT,
    XA_31,
    XA_32,
    edoc,
    make_adapter,
    options,
    set_secrets,
    simulator,
)
from tests.http_sink import HttpSink
from tests.large_packet import write_large_packet

OPERATOR = Viewer(system="operator", operator=True)


@dataclass
class World:
    sim: HcmEgovSimulator
    sink: HttpSink
    bus: Bus
    worker: DeliveryWorker
    adapter: HcmEgovAdapter
    inbox: BusInbox

    def deliver_due(self) -> dict[str, str]:
        """Runs every due delivery once; returns destination → outcome."""
        outcomes: dict[str, str] = {}
        for row in self.bus.store.due(limit=50):
            outcomes[row.destination] = self.worker.handle(row.id)
        return outcomes

    def detail(self, doc: str) -> DocumentDetail:
        return document_detail(self.bus.store.engine, doc, OPERATOR)

    def count(self) -> int:
        with self.bus.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(documents))
                       .scalar_one())


def _routes(folder: Path, sim: HcmEgovSimulator, sink: HttpSink) -> Path:
    destinations: dict[str, Any] = {
        name: {"adapter": "http", "options": {"url": sink.url("/" + name), "timeout_s": 5}}
        for name in ("eoffice", "vnpt_ioffice", "national_axis", "archive")}
    destinations["hcm_egov"] = {"adapter": "hcm_egov",
                                "options": options(sim, poll_interval_s=0.1)}
    document = {"version": 1, "destinations": destinations,
                "defaults": {"outside": "national_axis",
                             "retry": {"attempts": 3, "first_delay_s": 0.1,
                                       "max_delay_s": 1}},
                "rules": []}
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    set_secrets(monkeypatch)
    with simulator() as sim, HttpSink() as sink:
        routes = _routes(tmp_path, sim, sink)
        bus = Bus(load_settings(environ={}, data_dir=tmp_path / "bus", routes=routes))
        worker = DeliveryWorker.from_bus(bus)
        adapter = make_adapter(sim)
        adapter.open()
        try:
            yield World(sim, sink, bus, worker, adapter, BusInbox(bus, "hcm_egov"))
        finally:
            adapter.close()
            worker.close()
            bus.close()


def test_commune_edoc_is_collected_delivered_and_its_status_flows_back(world: World) -> None:
    original = edoc(XA_31, SO_TTTT, subject="Báo cáo tình hình chuyển đổi số của xã")
    item = world.sim.put_outbox(packet_bytes(original))

    assert world.adapter.poll(world.inbox) == 1
    ack = world.sim.ack_of(item)
    assert ack is not None and ack["Result"] == "done"
    doc = world.detail(ack["ReferenceId"])
    assert (doc.sender, doc.system, doc.document_id) == (XA_31, "hcm_egov",
                                                         original.document_id)
    assert world.deliver_due() == {"eoffice": "delivered"}
    assert world.sink.effects == 1

    # eOffice registers it (03); the status must reach the commune through HCM Egov.
    answer = world.bus.submit(packet_bytes(status_for(original, "03")), system="eoffice",
                              channel="rest")
    assert [d for _, d in answer.deliveries] == ["hcm_egov"]
    assert world.deliver_due() == {"hcm_egov": "delivered"}
    [status] = world.sim.statuses
    assert (status.status_code, status.document_id, status.recipient) == (
        "03", original.document_id, XA_31)
    [delivery] = world.detail(answer.document).deliveries
    assert delivery.receipt_reference == status.reference
    assert [s.code for s in world.detail(doc.id).business_statuses] == ["03"]

    assert world.adapter.poll(world.inbox) == 0
    assert world.sim.outbox() == []


def test_bus_edoc_reaches_the_commune_and_the_clerks_status_comes_back(world: World) -> None:
    original = edoc(SO_TTTT, XA_32)
    accepted = world.bus.submit(packet_bytes(original), system="eoffice", channel="rest")
    assert world.deliver_due() == {"hcm_egov": "delivered"}
    [stored] = world.sim.documents
    assert (stored.document_id, stored.recipient) == (original.document_id, XA_32)
    [delivery] = world.detail(accepted.document).deliveries
    assert (delivery.state, delivery.receipt_reference) == ("delivered", stored.reference)

    # The commune's clerk registers it; HCM Egov queues the 03 for the bus to collect.
    world.sim.put_outbox(packet_bytes(status_for(original, "03", sender=XA_32)))
    assert world.adapter.poll(world.inbox) == 1
    statuses = world.detail(accepted.document).business_statuses
    assert [(s.code, s.organ_id) for s in statuses] == [("03", XA_32)]
    assert world.deliver_due() == {"eoffice": "delivered"}
    assert world.sink.effects == 1  # the status; the edoc went to HCM Egov


def test_an_item_whose_ack_was_lost_is_accepted_once(world: World) -> None:
    item = world.sim.put_outbox(packet_bytes(edoc(XA_31, SO_TTTT)))
    world.sim.fail(503, path_contains="/ack")
    with pytest.raises(Retry):
        world.adapter.poll(world.inbox)
    assert world.count() == 1 and world.sim.ack_of(item) is None

    world.sim.ok()
    world.adapter.poll(world.inbox)
    ack = world.sim.ack_of(item)
    assert ack is not None and ack["Result"] == "done"
    assert world.count() == 1
    with world.bus.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 1


def test_a_packet_the_bus_refuses_is_acknowledged_as_failed(world: World) -> None:
    impostor = world.sim.put_outbox(packet_bytes(edoc(SO_TTTT, XA_32)))  # not a commune
    garbage = world.sim.put_outbox(b"<edXMLEnvelope><broken>")
    assert world.adapter.poll(world.inbox) == 0
    refused = world.sim.ack_of(impostor)
    assert refused is not None and refused["Result"] == "fail"
    assert "SenderMismatch" in refused["Description"]
    broken = world.sim.ack_of(garbage)
    assert broken is not None and broken["Result"] == "fail"
    assert "MalformedXml" in broken["Description"]
    assert world.count() == 0 and world.sim.outbox() == []


def test_polling_a_platform_that_is_down_or_refuses_raises(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    item = world.sim.put_outbox(packet_bytes(edoc(XA_31, SO_TTTT)))
    world.sim.throttle("5", times=1)
    with pytest.raises(Retry) as throttled:
        world.adapter.poll(world.inbox)
    assert throttled.value.delay_s == 5.0
    world.sim.down()
    with pytest.raises(Retry):
        world.adapter.poll(world.inbox)
    world.sim.ok()
    set_secrets(monkeypatch, access="revoked")
    with pytest.raises(Refuse):
        world.adapter.poll(world.inbox)
    assert world.count() == 0 and world.sim.ack_of(item) is None


def test_the_bus_poller_collects_on_its_own(world: World) -> None:
    pollers = Pollers(world.bus)
    pollers.start()
    try:
        assert [p.destination.name for p in pollers.pollers] == ["hcm_egov"]
        items = [world.sim.put_outbox(packet_bytes(edoc(XA_31, SO_TTTT, subject=f"Số {i}")))
                 for i in range(3)]
        assert world.sim.wait_for(lambda: world.sim.outbox() == [], timeout=10)
    finally:
        assert pollers.stop(timeout=10)
    assert all((world.sim.ack_of(i) or {}).get("Result") == "done" for i in items)
    assert world.count() == 3


class _Watching:
    """The bus's inbox, noting in what form each packet was handed over."""

    def __init__(self, inbox: BusInbox) -> None:
        self.inbox = inbox
        self.forms: list[str] = []

    def submit(self, packet: InboundPacket, *, source_id: str | None = None) -> dict[str, Any]:
        self.forms.append("bytes" if isinstance(packet, bytes) else "pieces")
        return self.inbox.submit(packet, source_id=source_id)


def _spools(world: World) -> list[Path]:
    return list((world.bus.settings.data_dir / "payloads" / "tmp").glob("*"))


def test_a_large_item_is_handed_over_as_it_arrives_and_stored_intact(
        world: World, tmp_path: Path) -> None:
    """A commune's scan of tens of megabytes must not be read whole into the poller's
    memory: the bus gets it piece by piece, spools it, and stores exactly its bytes."""
    path = tmp_path / "scan.xml"
    _, digest = write_large_packet(path, 12 * 1024 * 1024, sender=XA_31, recipient=SO_TTTT)
    item = world.sim.put_outbox(path.read_bytes())
    watching = _Watching(world.inbox)

    assert world.adapter.poll(watching) == 1
    assert watching.forms == ["pieces"]
    ack = world.sim.ack_of(item)
    assert ack is not None and ack["Result"] == "done"
    with world.bus.store.engine.connect() as conn:
        assert conn.execute(sa.select(documents.c.sha256)).scalars().all() == [digest]
    assert _spools(world) == []


def test_an_item_cut_short_is_left_pending_and_the_others_are_collected(
        world: World) -> None:
    """A platform that breaks off one item must not hold up the communes' other items."""
    broken = world.sim.put_outbox(packet_bytes(edoc(XA_31, SO_TTTT, subject="Cắt giữa")))
    good = world.sim.put_outbox(packet_bytes(edoc(XA_31, SO_TTTT, subject="Nguyên vẹn")))
    world.sim.cut(times=1)
    assert world.adapter.poll(world.inbox) == 1
    assert world.sim.ack_of(broken) is None
    assert (world.sim.ack_of(good) or {}).get("Result") == "done"
    assert world.count() == 1 and _spools(world) == []

    assert world.adapter.poll(world.inbox) == 1  # its first failure costs no wait
    assert (world.sim.ack_of(broken) or {}).get("Result") == "done"
    assert world.count() == 2


def test_an_item_that_keeps_breaking_off_waits_longer_each_time(world: World) -> None:
    now = [0.0]
    world.adapter._backoff.clock = lambda: now[0]
    item = world.sim.put_outbox(packet_bytes(edoc(XA_31, SO_TTTT)))
    world.sim.cut()

    def fetches() -> int:
        return sum(1 for c in world.sim.calls if c.method == "GET" and item in c.path)

    world.adapter.poll(world.inbox)
    world.adapter.poll(world.inbox)
    world.adapter.poll(world.inbox)
    assert fetches() == 2
    now[0] += world.adapter.config.poll_interval_s * 2
    world.sim.ok()
    assert world.adapter.poll(world.inbox) == 1
    assert fetches() == 3 and world.count() == 1

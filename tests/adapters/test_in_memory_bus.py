"""InMemoryBus: routes.yaml plus real adapters, delivered in-process in milliseconds.

What a vendor or an administrator uses to test "this rule sends that packet there"
without a broker or a server, so these tests drive it the way they would: a routes text,
adapter instances pointing at a far side, ``submit`` then ``deliver_all``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

from adapters.http import HttpAdapter
from bus.adapter import Adapter, Delivery, Inbox, NoConfig, Receipt
from bus.edxml import EdocBuilder, packet_bytes
from bus.errors import ConfigInvalid, SenderMismatch
from bus.testing import InMemoryBus
from tests.http_sink import HttpSink

SENDER = "000.00.12.H37"          # hosted by eoffice in config/directory.yaml
COMMITTEE = "000.00.00.H37"       # hosted by vnpt_ioffice
COMMUNE = "000.00.31.H37"         # hosted by hcm_egov

ROUTES = """\
version: 1
destinations:
  eoffice: {adapter: http, options: {url: "URL/eoffice"}}
  vnpt_ioffice: {adapter: http, options: {url: "URL/ioffice", timeout_s: 2}}
  hcm_egov: {adapter: http, options: {url: "URL/egov", timeout_s: 2}}
  national_axis: {adapter: http, options: {url: "URL/axis", timeout_s: 2}}
  archive: {adapter: http, options: {url: "URL/archive", timeout_s: 2}}
defaults:
  outside: national_axis
  retry: {attempts: 3, first_delay_s: 30, max_delay_s: 60}
rules:
  - name: committee-copies-to-archive
    match: {recipient: "000.00.00.H37"}
    copy_to: [archive]
"""


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


def routes_for(sink: HttpSink, text: str = ROUTES) -> str:
    return text.replace("URL", sink.url(""))


def edoc(*recipients: str) -> bytes:
    packet = (EdocBuilder(SENDER).to(*recipients).subject("Báo cáo tháng")
              .signer("Trần Thị B").build())
    return packet_bytes(packet)


def test_submit_route_and_deliver_through_the_given_adapter(sink: HttpSink) -> None:
    routes = routes_for(sink)
    ioffice = HttpAdapter.from_options("vnpt_ioffice", {"url": sink.url("/ioffice")})
    with InMemoryBus(routes, adapters=[ioffice]) as bus:
        receipt = bus.submit(edoc(COMMITTEE, COMMUNE))
        assert bus.states(receipt["id"]) == {
            f"{COMMITTEE}@vnpt_ioffice": "pending", f"{COMMITTEE}@archive": "pending",
            COMMUNE: "pending"}
        outcomes = bus.deliver_all()
        states = bus.states(receipt["id"])
        print(f"\n[in-memory] outcomes={dict(outcomes)} states={states}")
        assert outcomes == {"delivered": 3}
        assert set(states.values()) == {"delivered"}
        paths = sorted(r.path for r in sink.requests)
        assert paths == ["/archive", "/egov", "/ioffice"]
        rows = {(r.destination, r.rule) for r in bus.deliveries(receipt["document_id"])}
        assert ("archive", "committee-copies-to-archive") in rows
        assert bus.deliver_all() == {}
    assert not bus.data_dir.exists()


def test_a_routes_change_is_honoured(sink: HttpSink) -> None:
    with InMemoryBus(routes_for(sink)) as bus:
        first = bus.submit(edoc(COMMUNE))
        bus.deliver_all()
        changed = routes_for(sink) + (
            "  - name: communes-via-the-committee\n"
            "    match: {recipient_system: hcm_egov}\n"
            "    deliver_to: vnpt_ioffice\n")
        bus.set_routes(changed)
        second = bus.submit(edoc(COMMUNE))
        bus.deliver_all()
        [before] = bus.deliveries(first["id"])
        [after] = bus.deliveries(second["id"])
    print(f"\n[in-memory] before={before.destination}/{before.rule} "
          f"after={after.destination}/{after.rule}")
    assert (before.destination, before.state) == ("hcm_egov", "delivered")
    assert (after.destination, after.rule, after.state) == (
        "vnpt_ioffice", "communes-via-the-committee", "delivered")
    assert [r.path for r in sink.requests] == ["/egov", "/ioffice"]


def test_an_invalid_routes_change_is_reported_and_not_applied(sink: HttpSink) -> None:
    with InMemoryBus(routes_for(sink)) as bus:
        with pytest.raises(ConfigInvalid) as invalid:
            bus.set_routes(routes_for(sink) + "  - name: x\n    deliver_to: nowhere\n")
        print(f"\n[in-memory] {invalid.value.problems[0]}")
        assert "unknown destination 'nowhere'" in invalid.value.problems[0].message
        receipt = bus.submit(edoc(COMMUNE))
        bus.deliver_all()
        assert bus.states(receipt["id"]) == {COMMUNE: "delivered"}


def test_retries_park_and_refusals_walk_the_real_state_machine(sink: HttpSink) -> None:
    with InMemoryBus(routes_for(sink)) as bus:
        sink.fail(503)
        receipt = bus.submit(edoc(COMMUNE))
        assert bus.deliver_all() == {"retry": 1}
        assert bus.deliver_all() == {}, "a retry is not due before its back-off"
        assert bus.deliver_all(skip_backoff=True) == {"retry": 1, "parked": 1}
        [parked] = bus.deliveries(receipt["id"])
        assert (parked.state, parked.attempts) == ("parked", 3)
        assert parked.last_error and "HTTP 503" in parked.last_error
        sink.fail(422)
        refused = bus.submit(edoc(COMMITTEE))
        assert bus.deliver_all() == {"refused": 2}
        assert set(bus.states(refused["id"]).values()) == {"refused"}


def test_the_door_is_the_real_one(sink: HttpSink) -> None:
    with InMemoryBus(routes_for(sink)) as bus:
        data = edoc(COMMUNE)
        receipt = bus.submit(data)
        assert bus.submit(data) == receipt, "a re-submission gets the original receipt"
        with pytest.raises(SenderMismatch):
            bus.submit(edoc(COMMUNE), system="hcm_egov")


def test_given_adapters_must_match_the_routes(sink: HttpSink) -> None:
    stray = HttpAdapter.from_options("portal", {"url": sink.url("/portal")})
    with pytest.raises(ValueError, match="'portal', which the routes do not define"):
        InMemoryBus(routes_for(sink), adapters=[stray])


def test_bad_options_fail_where_they_were_written(sink: HttpSink) -> None:
    bad = routes_for(sink).replace('timeout_s: 2}}\n  hcm_egov', 'timeout_s: -1}}\n  hcm_egov')
    with pytest.raises(ConfigInvalid) as invalid:
        InMemoryBus(bad)
    [problem] = invalid.value.problems
    print(f"\n[in-memory] {problem}")
    assert problem.path == "destinations.vnpt_ioffice.options.timeout_s" and problem.line == 4
    with InMemoryBus(routes_for(sink)) as bus:
        with pytest.raises(ConfigInvalid):
            bus.set_routes(bad)
        receipt = bus.submit(edoc(COMMITTEE))
        bus.deliver_all()
        assert bus.states(receipt["id"])[f"{COMMITTEE}@vnpt_ioffice"] == "delivered"


class Pigeonhole(Adapter[NoConfig]):
    """A mailbox system that also has packets for the bus: not installed anywhere."""

    kind = "pigeonhole"
    capabilities: ClassVar[frozenset[str]] = frozenset({"mailbox", "poll"})
    outgoing: ClassVar[list[tuple[str, bytes]]] = []

    def deliver(self, delivery: Delivery) -> Receipt:
        return Receipt(reference=f"box/{delivery.idempotency_key}", awaiting_pickup=True)

    def poll(self, inbox: Inbox) -> int:
        for item, packet in self.outgoing:
            inbox.submit(packet, source_id=item)
        return len(self.outgoing)


def test_an_uninstalled_mailbox_and_polling_adapter(sink: HttpSink) -> None:
    text = routes_for(sink, ROUTES.replace(
        'hcm_egov: {adapter: http, options: {url: "URL/egov", timeout_s: 2}}',
        "hcm_egov: {adapter: pigeonhole}"))
    box = Pigeonhole("hcm_egov", NoConfig())
    commune_edoc = packet_bytes(EdocBuilder(COMMUNE).to(SENDER).subject("Báo cáo xã")
                                .signer("Phạm D").build())
    Pigeonhole.outgoing[:] = [("item-1", commune_edoc)]
    with InMemoryBus(text, adapters=[box]) as bus:
        inbound = bus.poll("hcm_egov")
        again = bus.poll("hcm_egov")
        assert (inbound, again) == (1, 1)
        receipt = bus.submit(commune_edoc, system="hcm_egov")
        bus.deliver_all()
        assert bus.states(receipt["id"]) == {SENDER: "delivered"}, "one document, not two"
        outbound = bus.submit(edoc(COMMUNE))
        assert bus.deliver_all() == {"awaiting": 1}
        [waiting] = bus.deliveries(outbound["id"])
        assert waiting.state == "awaiting" and waiting.reference
        assert bus.acknowledge(waiting.id)
        assert bus.states(outbound["id"]) == {COMMUNE: "delivered"}

"""The national-axis adapter against the simulator, over real loopback sockets.

Every outcome the bus acts on is provoked for real: the simulator verifies signatures
with the same bus.vxp module the adapter signs with, refuses connections when down,
sleeps when slow, and runs its clock off when told. Inbound tests hand packets to a real
Bus on SQLite, so "one document in the bus" is counted in its database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from adapters.national_axis import NationalAxisAdapter, write_agencies_yaml
from adapters.national_axis.simulator import AxisSimulator
from bus import vxp
from bus.adapter import Delivery, Receipt, Refuse, Retry
from bus.app import Bus
from bus.delivery.pollers import BusInbox, Poller
from bus.edxml import Edoc, packet_bytes, status_for
from bus.routing import Destination
from bus.settings import load_settings
from bus.store.tables import documents
from tests.edxml_factory import builder
from tests.http_sink import HttpSink

SYSTEM = "000.00.00.H37"
SECRET = "s3cr3t/with+base64=looking"
ENV = "LGSP_TEST_AXIS_SECRET"
OUTSIDE = "000.00.00.G22"       # another province's agency, behind the axis
LOCAL = "000.00.12.H37"         # hosted by this province's eoffice


@pytest.fixture
def axis() -> Iterator[AxisSimulator]:
    with AxisSimulator({SYSTEM: SECRET, "OTHER": "other-secret"},
                       agencies=[vxp.Agency("000.00.00.G22", "Bộ Ngoại giao", "7", "", "a@x"),
                                 vxp.Agency("000.01.00.G22", "Vụ Lễ tân", "8", "7", ""),
                                 vxp.Agency(LOCAL, "Sở TT&TT Lạng Sơn", "9", "", "")]) as sim:
        sim.host(OUTSIDE, "OTHER")
        yield sim


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SECRET)


def make_adapter(endpoint: str, **options: Any) -> NationalAxisAdapter:
    adapter = NationalAxisAdapter.from_options("national_axis", {
        "endpoint": endpoint, "system_id": SYSTEM, "secret_env": ENV, "timeout_s": 2.0,
        "poll_interval_s": 0.1, **options})
    assert isinstance(adapter, NationalAxisAdapter)
    return adapter


@pytest.fixture
def adapter(axis: AxisSimulator) -> Iterator[NationalAxisAdapter]:
    built = make_adapter(axis.endpoint)
    yield built
    built.close()


def edoc(sender: str = LOCAL, *recipients: str, number: str = "1") -> Edoc:
    made = builder(sender, *(recipients or (OUTSIDE,)))
    return made.document_id(f"{sender},2024/05/17,{number}/UBND-VP").build()


def delivery(payload: bytes, key: str = "doc-1:000.00.00.G22", *, kind: str = "edoc",
             recipient: str = OUTSIDE) -> Delivery:
    return Delivery(payload=payload, idempotency_key=key, document_id="doc-1", kind=kind,
                    sender=LOCAL, recipient=recipient, destination="national_axis")


# ---- outbound ----------------------------------------------------------------------------

def test_an_edoc_is_sent_with_its_recipient_and_confirmed(
        axis: AxisSimulator, adapter: NationalAxisAdapter) -> None:
    payload = packet_bytes(edoc())
    receipt = adapter.deliver(delivery(payload))
    [sent] = axis.sent(SYSTEM)
    assert receipt.reference == sent.doc_id
    assert (sent.packet, sent.recipients, sent.message_type) == (payload, [OUTSIDE], "edoc")
    assert [i.doc_id for i in axis.pending("OTHER")] == [sent.doc_id]
    [row] = adapter.confirm(sent.doc_id)
    assert (row.to, row.send_status, row.receive_status) == (OUTSIDE, "done", "initial")
    axis.item("OTHER", sent.doc_id).status = "done"  # type: ignore[union-attr]
    assert adapter.confirm(sent.doc_id)[0].receive_status == "done"


def test_a_status_is_sent_as_messagetype_status_without_to(
        axis: AxisSimulator, adapter: NationalAxisAdapter) -> None:
    original = edoc(OUTSIDE, LOCAL)
    status = packet_bytes(status_for(original, "03"))
    receipt = adapter.deliver(delivery(status, "st-1:x", kind="status"))
    [sent] = axis.sent(SYSTEM)
    assert receipt.reference == sent.doc_id and sent.message_type == "status"
    assert sent.recipients == [OUTSIDE]  # the simulator read ResponseFor
    [call] = axis.calls_to("sendEdoc")
    assert "XroadVnpt-to" not in call.headers
    assert call.headers["XroadVnpt-messagetype"] == "status"


def test_the_same_idempotency_key_twice_is_one_document_at_the_axis(
        axis: AxisSimulator, adapter: NationalAxisAdapter) -> None:
    payload = packet_bytes(edoc())
    first = adapter.deliver(delivery(payload))
    again = adapter.deliver(delivery(payload))           # same process: remembered
    assert again.reference == first.reference and again.duplicate
    other_worker = make_adapter(axis.endpoint)           # another process: the header
    try:
        third = other_worker.deliver(delivery(payload))
    finally:
        other_worker.close()
    assert third.reference == first.reference
    assert len(axis.sent()) == 1 and len(axis.calls_to("sendEdoc")) == 2
    adapter.deliver(delivery(payload, "doc-1:other-recipient"))
    assert len(axis.sent()) == 2


def test_axis_down_is_retried(axis: AxisSimulator, adapter: NationalAxisAdapter) -> None:
    axis.down()
    with pytest.raises(Retry, match="unreachable"):
        adapter.deliver(delivery(packet_bytes(edoc())))
    axis.ok()
    assert adapter.deliver(delivery(packet_bytes(edoc()))).reference


def test_slow_axis_times_out_into_a_retry(axis: AxisSimulator) -> None:
    axis.slow(3.0)
    quick = make_adapter(axis.endpoint, timeout_s=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(Retry, match="no answer"):
            quick.deliver(delivery(packet_bytes(edoc())))
    finally:
        quick.close()
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(axis: AxisSimulator, adapter: NationalAxisAdapter,
                                   status: int) -> None:
    axis.fail_http(status, times=1)
    with pytest.raises(Retry, match=f"InternalError|HTTP {status}"):
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert isinstance(adapter.deliver(delivery(packet_bytes(edoc()))), Receipt)


@pytest.mark.parametrize("code", ["Busy", "InternalError", "SomethingNew"])
def test_transient_or_unknown_fail_codes_are_retried(
        axis: AxisSimulator, adapter: NationalAxisAdapter, code: str) -> None:
    axis.fail(code, "axis is busy")
    with pytest.raises(Retry, match=code):
        adapter.deliver(delivery(packet_bytes(edoc())))


@pytest.mark.parametrize("code", ["UnknownSystem", "BadSignature"])
def test_authentication_fail_is_refused_naming_the_settings(
        axis: AxisSimulator, adapter: NationalAxisAdapter, code: str) -> None:
    axis.fail(code, "who are you?")
    with pytest.raises(Refuse) as caught:
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert caught.value.code == code
    assert "system_id" in caught.value.reason and ENV in caught.value.reason


def test_packet_refusals_are_permanent_and_extra_codes_configurable(axis: AxisSimulator) -> None:
    axis.fail("Refused", "no such recipient")
    custom = make_adapter(axis.endpoint, refuse_error_codes=["E42"])
    try:
        with pytest.raises(Refuse, match="no such recipient"):
            custom.deliver(delivery(packet_bytes(edoc())))
        axis.fail("E42", "bad packet")
        with pytest.raises(Refuse, match="E42"):
            custom.deliver(delivery(packet_bytes(edoc())))
    finally:
        custom.close()


def test_a_wrong_secret_is_refused_by_the_real_signature_check(
        axis: AxisSimulator, adapter: NationalAxisAdapter,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "not-the-secret")
    with pytest.raises(Refuse) as caught:
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert caught.value.code == "BadSignature" and f"${ENV}" in caught.value.reason
    assert axis.sent() == []


def test_an_unregistered_system_is_refused(axis: AxisSimulator) -> None:
    stranger = make_adapter(axis.endpoint, system_id="999.99.99.Z99")
    try:
        with pytest.raises(Refuse, match="system_id") as caught:
            stranger.deliver(delivery(packet_bytes(edoc())))
    finally:
        stranger.close()
    assert caught.value.code == "UnknownSystem"


def test_clock_skew_is_a_retry_that_says_ntp(axis: AxisSimulator,
                                             adapter: NationalAxisAdapter) -> None:
    axis.skew_clock(3600)
    with pytest.raises(Retry) as caught:
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert "NTP" in caught.value.reason and "ClockSkew" in caught.value.reason
    assert "clock" in (adapter.check() or "")
    axis.skew_clock(0)
    assert adapter.check() is None


def test_missing_secret_is_a_retry_naming_the_variable(
        axis: AxisSimulator, adapter: NationalAxisAdapter,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV)
    with pytest.raises(Retry, match=ENV):
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert ENV in (adapter.check() or "")
    assert axis.calls == []


def test_a_malformed_answer_is_retried() -> None:
    with HttpSink() as sink:
        talking_nonsense = make_adapter(sink.url("/vdxp"))
        try:
            with pytest.raises(Retry, match="not a VXP answer"):
                talking_nonsense.deliver(delivery(packet_bytes(edoc())))
            sink.fail(404)
            with pytest.raises(Retry, match="HTTP 404"):
                talking_nonsense.deliver(delivery(packet_bytes(edoc())))
            sink.fail(401)
            with pytest.raises(Refuse, match="secret_env"):
                talking_nonsense.deliver(delivery(packet_bytes(edoc())))
        finally:
            talking_nonsense.close()


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        NationalAxisAdapter.from_options("national_axis", {
            "endpoint": "http://127.0.0.1:1", "system_id": SYSTEM, "secret_env": ENV,
            "secret": "inline"})
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        NationalAxisAdapter.from_options("national_axis", {
            "endpoint": "http://127.0.0.1:1", "system_id": SYSTEM, "secret_env": "abc def"})


def test_agencies_are_listed_and_written_in_the_directory_shape(
        adapter: NationalAxisAdapter, tmp_path: Path) -> None:
    agencies = adapter.agencies()
    assert [a.code for a in agencies] == ["000.00.00.G22", "000.01.00.G22", LOCAL]
    path = tmp_path / "outside-agencies.yaml"
    assert write_agencies_yaml(path, agencies, hosted=frozenset({LOCAL})) == 2
    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert written == {"agencies": {
        "000.00.00.G22": {"name": "Bộ Ngoại giao"},
        "000.01.00.G22": {"name": "Vụ Lễ tân", "parent": "000.00.00.G22"}}}


# ---- inbound, into a real bus ------------------------------------------------------------

@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    built = Bus(load_settings(environ={}, data_dir=tmp_path / "var"))
    yield built
    built.close()


def document_count(bus: Bus) -> int:
    with bus.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar_one())


def test_polled_items_reach_the_bus_and_are_acknowledged(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus) -> None:
    incoming = edoc(OUTSIDE, LOCAL)
    doc_id = axis.inject(SYSTEM, packet_bytes(incoming), sender=OUTSIDE, to=[LOCAL])
    status_id = axis.inject(SYSTEM, packet_bytes(status_for(edoc(LOCAL, OUTSIDE), "01")),
                            sender=OUTSIDE, message_type="status")
    assert adapter.poll(BusInbox(bus, "national_axis")) == 2
    assert document_count(bus) == 2
    assert axis.item(SYSTEM, doc_id).status == "done"  # type: ignore[union-attr]
    assert axis.item(SYSTEM, status_id).status == "done"  # type: ignore[union-attr]
    assert axis.pending(SYSTEM) == []
    assert adapter.poll(BusInbox(bus, "national_axis")) == 0


def test_an_item_listed_twice_is_one_document(axis: AxisSimulator,
                                              adapter: NationalAxisAdapter, bus: Bus) -> None:
    axis.list_twice()
    doc_id = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    adapter.poll(BusInbox(bus, "national_axis"))
    assert document_count(bus) == 1
    assert len(axis.calls_to("getEdoc")) == 2
    acks = [c for c in axis.calls_to("updateStatus") if c.answer["status"] == "OK"]
    assert [c.headers["XroadVnpt-status"] for c in acks] == ["done", "done"]
    assert axis.item(SYSTEM, doc_id).status == "done"  # type: ignore[union-attr]


def test_a_failing_get_edoc_leaves_the_item_for_the_next_poll(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus) -> None:
    first = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL, number="1")), sender=OUTSIDE)
    second = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL, number="2")), sender=OUTSIDE)
    axis.fail_get_edoc_once(first)
    assert adapter.poll(BusInbox(bus, "national_axis")) == 1
    assert [i.doc_id for i in axis.pending(SYSTEM)] == [first]
    assert axis.item(SYSTEM, second).status == "done"  # type: ignore[union-attr]
    assert adapter.poll(BusInbox(bus, "national_axis")) == 1
    assert document_count(bus) == 2 and axis.pending(SYSTEM) == []


def test_a_lost_acknowledgement_is_repeated_without_a_second_document(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus) -> None:
    doc_id = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    axis.fail("Busy", times=1, operation="updateStatus")
    adapter.poll(BusInbox(bus, "national_axis"))
    assert axis.item(SYSTEM, doc_id).status == "initial"  # type: ignore[union-attr]
    adapter.poll(BusInbox(bus, "national_axis"))
    assert axis.item(SYSTEM, doc_id).status == "done"  # type: ignore[union-attr]
    assert document_count(bus) == 1


def test_a_packet_the_bus_refuses_is_acknowledged_as_fail(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus) -> None:
    bad = axis.inject(SYSTEM, b"<not-edxml", sender=OUTSIDE)
    good = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    assert adapter.poll(BusInbox(bus, "national_axis")) == 1
    assert axis.item(SYSTEM, bad).status == "fail"  # type: ignore[union-attr]
    assert axis.item(SYSTEM, good).status == "done"  # type: ignore[union-attr]
    assert document_count(bus) == 1


def test_polling_survives_the_axis_being_down(axis: AxisSimulator,
                                              adapter: NationalAxisAdapter, bus: Bus) -> None:
    axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    axis.down()
    assert adapter.poll(BusInbox(bus, "national_axis")) == 0
    axis.ok()
    assert adapter.poll(BusInbox(bus, "national_axis")) == 1


def test_the_bus_poller_thread_drives_the_adapter(axis: AxisSimulator,
                                                  adapter: NationalAxisAdapter,
                                                  bus: Bus) -> None:
    axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    poller = Poller(bus, Destination("national_axis", "national_axis"), adapter)
    poller.start()
    try:
        deadline = time.monotonic() + 10
        while document_count(bus) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        assert poller.stop(10)
    assert document_count(bus) == 1 and axis.pending(SYSTEM) == []

"""Dialects per connected system: translated at the door for the configured system only.

The packets come from the vendor's client emulation (tests/field/producers.py); the door
tests drive the real bus (InMemoryBus: ingress, store, worker, HTTP adapter) against a
recording HTTP server, so "what receivers get" is what crossed the wire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus import errors
from bus.directory import load_directory
from bus.edxml import read_packet
from bus.edxml.dialects import DIALECTS, read_from, translate
from bus.edxml.markup import UnreadableError, scan
from bus.errors import ConfigInvalid
from bus.store.tables import documents, events
from bus.testing import InMemoryBus
from tests.field import producers as field
from tests.http_sink import HttpSink

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "directory.yaml"
HUB = "vendor-hub-2019"

ROUTES = """\
version: 1
destinations:
  eoffice: {adapter: http, options: {url: "URL/eoffice", timeout_s: 2}}
  vnpt_ioffice: {adapter: http, options: {url: "URL/ioffice", timeout_s: 2}}
  hcm_egov: {adapter: http, options: {url: "URL/egov", timeout_s: 2}}
  national_axis: {adapter: http, options: {url: "URL/axis", timeout_s: 2}}
defaults:
  outside: national_axis
  retry: {attempts: 2, first_delay_s: 30, max_delay_s: 60}
"""


def directory_text(dialect: str | None) -> str:
    text = SHIPPED.read_text(encoding="utf-8")
    anchor = "  eoffice:\n    destination: eoffice\n"
    assert anchor in text
    return text.replace(anchor, anchor + f"    dialect: {dialect}\n") if dialect else text


# ---------------------------------------------------------------- translation


def test_translation_gives_standard_bytes_that_read_without_dialect_notices() -> None:
    sent = field.vendor_hub_2019(field.sample_data())
    standard, notices = translate(sent, HUB)
    assert standard != sent
    changes = sorted(n.extra["change"] for n in notices)
    assert changes == sorted([
        "Business → Bussiness", "BusinessDocType → BussinessDocType",
        "BusinessDocReason → BussinessDocReason",
        "Signature in no namespace → Signature in the QCVN namespace",
        "edXML:version attribute removed", "edXML:version → version on edXMLManifest"])
    assert all(n.code == "DialectTranslated" and n.extra["rule"] == "dialect-translated"
               for n in notices)
    result = read_packet(standard)
    assert [n.code for n in result.notices] == ["DayFirstDate", "DayFirstDate"]
    packet = result.packet
    assert packet.business is not None and packet.business.bussiness_doc_type == 0
    assert packet.business.bussiness_doc_reason == "Văn bản mới"
    assert packet.signature is not None and packet.signature.namespace == field.NS
    # The signed content (SignedInfo and below) is byte for byte the sender's.
    signed = sent[sent.index(b"<SignedInfo>"):sent.index(b"</SignatureValue>")]
    assert signed in standard and signed in packet.signature.xml
    assert packet.manifest_version == "1.0"


def test_translation_leaves_standard_packets_and_other_hops_alone() -> None:
    for producer in field.ACCEPTED.values():
        data = producer(field.sample_data())
        assert translate(data, HUB) == (data, [])


def test_translated_read_keeps_every_field() -> None:
    data = field.sample_data()
    door = read_from(field.vendor_hub_2019(data), dialect=HUB)
    reference = read_packet(field.java_dom(data)).packet
    packet = door.result.packet
    assert door.translated
    assert packet.promulgation_info == reference.promulgation_info
    assert packet.due_date == reference.due_date
    assert packet.to == reference.to and packet.subject == reference.subject
    assert packet.business is not None and reference.business is not None
    assert packet.business.staff_info == reference.business.staff_info


@pytest.mark.parametrize("bomb", [
    b"<a>" * 200_000,
    b"<edXML>" + b"<a/>" * 300_000 + b"</edXML>",
    b'<!DOCTYPE x [<!ENTITY a "b">]><edXML/>',
    "<edXML/>".encode("utf-16"),
])
def test_hostile_bytes_are_left_to_the_reader_quickly(bomb: bytes) -> None:
    started = time.perf_counter()
    assert translate(bomb, HUB) == (bomb, [])
    with pytest.raises(errors.PacketError):
        read_from(bomb, dialect=HUB)
    assert time.perf_counter() - started < 1.0


def test_scanner_refuses_mismatched_markup() -> None:
    with pytest.raises(UnreadableError):
        list(scan(b"<a><b></a></b>"))


# ---------------------------------------------------------------- the directory


def test_directory_dialect_field(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(directory_text(HUB), encoding="utf-8")
    directory = load_directory(path)
    assert directory.dialect_of("eoffice") == HUB
    assert directory.dialect_of("hcm_egov") is None
    assert directory.dialect_of("nobody") is None


def test_unknown_dialect_names_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(directory_text("vendor-hub-2091"), encoding="utf-8")
    with pytest.raises(ConfigInvalid) as caught:
        load_directory(path)
    [problem] = caught.value.problems
    assert "did you mean 'vendor-hub-2019'" in problem.message
    assert problem.path == "systems/eoffice/dialect"
    assert set(DIALECTS) == {HUB}


# ---------------------------------------------------------------- the door


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


@pytest.fixture
def hub_bus(sink: HttpSink, tmp_path: Path) -> Iterator[InMemoryBus]:
    directory = tmp_path / "directory.yaml"
    directory.write_text(directory_text(HUB), encoding="utf-8")
    with InMemoryBus(ROUTES.replace("URL", sink.url("")), directory=directory) as bus:
        yield bus


def _row(bus: InMemoryBus, document: str) -> sa.Row[tuple[str, str, str | None]]:
    with bus.bus.store.engine.connect() as conn:
        return conn.execute(sa.select(documents.c.sha256, documents.c.payload_sha256,
                                      documents.c.original_sha256)
                            .where(documents.c.id == document)).one()


def test_configured_system_is_translated_and_receivers_get_standard_bytes(
    hub_bus: InMemoryBus, sink: HttpSink,
) -> None:
    sent = field.vendor_hub_2019(field.sample_data())
    receipt = hub_bus.submit(sent, system="eoffice")
    assert hub_bus.deliver_all() == {"delivered": 1}
    [request] = sink.requests
    received = request.body
    assert b"Bussiness" in received and b"<edXML:Business>" not in received
    assert b"edXML:version" not in received
    assert b"2025/03/14</edXML:PromulgationDate>" in received
    assert b"14/03/2025" not in received
    result = read_packet(received)
    assert result.packet.trace_headers[-1].organ_id == "00.37.W00"
    assert "DayFirstDate" not in [n.code for n in result.notices]
    row = _row(hub_bus, receipt["id"])
    assert row.original_sha256 == row.sha256
    assert hub_bus.bus.store.original(receipt["id"]) == sent
    with hub_bus.bus.store.engine.connect() as conn:
        detail = conn.execute(sa.select(events.c.detail).where(
            events.c.document == receipt["id"], events.c.action == "accepted")).scalar()
    assert detail is not None and "DialectTranslated" in detail and "DayFirstDate" in detail
    assert {"DialectTranslated", "DayFirstDate"} <= {n["code"] for n in receipt["notices"]}


def test_the_same_packet_from_another_system_is_refused(hub_bus: InMemoryBus) -> None:
    data = field.vendor_hub_2019(field.sample_data(**{"from": {"OrganId": "000.00.31.H37"}}))
    with pytest.raises(errors.UnsupportedPacket) as caught:
        hub_bus.submit(data, system="hcm_egov")
    assert "vendor-hub-2019" in caught.value.message
    assert "dialect: vendor-hub-2019" in caught.value.message


def test_day_first_dates_from_any_system_are_normalised_and_the_original_kept(
    hub_bus: InMemoryBus, sink: HttpSink,
) -> None:
    data = field.sample_data(**{"from": {"OrganId": "000.00.31.H37"}})
    sent = field.dotnet_xmlserializer(data)
    receipt = hub_bus.submit(sent, system="hcm_egov")
    hub_bus.deliver_all()
    [request] = sink.requests
    assert b"<PromulgationDate>2025/03/14</PromulgationDate>" in request.body
    assert b"<DueDate>2025/04/01</DueDate>" in request.body
    assert hub_bus.bus.store.original(receipt["id"]) == sent


def test_a_standard_packet_keeps_no_second_copy(hub_bus: InMemoryBus) -> None:
    data = field.sample_data(**{"from": {"OrganId": "000.00.31.H37"}})
    receipt = hub_bus.submit(field.java_dom(data), system="hcm_egov")
    assert _row(hub_bus, receipt["id"]).original_sha256 is None
    assert hub_bus.bus.store.original(receipt["id"]) is None

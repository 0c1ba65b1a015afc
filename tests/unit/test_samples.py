"""The official SDK sample packets: the closest thing QCVN 102:2016 has to a test suite.

Every real producer was written against these files, so a bus that refuses one of them,
or changes one on its way through, would break live traffic. Round-tripping is checked
twice over: the typed packet survives a write and a read, and writing is deterministic,
because idempotency keys and payload digests are computed over written bytes.
"""

from __future__ import annotations

import pytest
from lxml import etree

from bus.edxml import Edoc, ResponseFor, StatusPacket, packet_bytes, read_packet
from bus.errors import AttachmentInvalid
from tests.edxml_factory import (
    JMETER_PLACEHOLDER,
    OFFICIAL_SAMPLES,
    XMLDSIG,
    line_of,
    repaired_edoc_sample,
    sample_bytes,
    samples_dir,
    small_pdf,
)

# edoc.edxml is refused as shipped (a deliberate decision, tested below).
ACCEPTED_AS_SHIPPED = [name for name in OFFICIAL_SAMPLES if name != "edoc.edxml"]


@pytest.fixture(autouse=True)
def _clean_lxml_error_log() -> None:
    """Isolates each test from lxml's per-thread error log (see test_reader's leak test):
    an earlier module's malformed packets must not decide edoc.edxml's verdict here."""
    etree.clear_error_log()


def test_all_official_samples_are_present() -> None:
    """Guards the parametrised tests below against passing vacuously on an empty folder."""
    found = sorted(p.name for p in samples_dir().glob("*.edxml"))
    assert found == sorted(OFFICIAL_SAMPLES), f"sample folder: {samples_dir()}"


@pytest.mark.parametrize("name", ACCEPTED_AS_SHIPPED)
def test_sample_validates_with_the_right_kind(name: str) -> None:
    result = read_packet(sample_bytes(name))
    expected = "status" if name.startswith("status") else "edoc"
    assert result.kind == expected
    assert isinstance(result.packet, StatusPacket if expected == "status" else Edoc)


@pytest.mark.parametrize("name", ACCEPTED_AS_SHIPPED)
def test_sample_round_trips(name: str) -> None:
    first = read_packet(sample_bytes(name)).packet
    written = packet_bytes(first)
    second = read_packet(written).packet
    assert second == first
    assert packet_bytes(second) == written
    assert packet_bytes(first) == written


def test_jmeter_placeholder_sample_is_refused_as_attachment_invalid() -> None:
    """contract.md demands strict base64; a JMeter expression is not a file, so the bus
    refuses it and names the exact element, whatever the SDK's own tooling tolerated."""
    data = sample_bytes("edoc.edxml")
    with pytest.raises(AttachmentInvalid) as caught:
        read_packet(data)
    assert caught.value.code == "AttachmentInvalid"
    assert caught.value.line == line_of(data, JMETER_PLACEHOLDER)
    assert caught.value.path == "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"


def test_repaired_edoc_sample_validates_with_every_other_quirk() -> None:
    """With real base64 in place, the file's remaining oddities must all be accepted:
    undeclared edXML:/xlink: prefixes, commented-out ContentType, the older header order,
    an empty ResponseFor and a Signature in the XML-DSig namespace."""
    result = read_packet(repaired_edoc_sample())
    packet = result.packet
    assert isinstance(packet, Edoc)
    codes = [notice.code for notice in result.notices]
    assert "UndeclaredPrefix" in codes
    undeclared = next(n for n in result.notices if n.code == "UndeclaredPrefix")
    assert "edXML" in undeclared.message and "xlink" in undeclared.message

    assert packet.sender == "002.00.20.H13"
    assert packet.recipients == ["000.00.15.H51"]
    # DocumentId comes last in the older order and must still be found.
    assert packet.document_id == "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb"
    assert packet.steering_type == 1
    assert packet.response_for == [ResponseFor(organ_id="", code="", promulgation_date="",
                                               document_id="")]
    assert packet.manifest[0].content_type is None
    assert packet.attachments[0].content_type == "application/pdf"
    assert packet.attachments[0].content.read() == small_pdf()
    assert packet.attachments[0].format == "pdf"
    assert packet.signature is not None and packet.signature.namespace == XMLDSIG
    assert packet.to_places == ["Các bộ"]


def test_repaired_edoc_sample_round_trips_into_clean_form() -> None:
    first = read_packet(repaired_edoc_sample()).packet
    written = packet_bytes(first)
    again = read_packet(written)
    assert again.packet == first
    assert packet_bytes(again.packet) == written
    # The canonical form declares its prefixes: the notice must not travel onwards.
    assert "UndeclaredPrefix" not in [notice.code for notice in again.notices]

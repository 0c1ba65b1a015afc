"""The forwarded packet: the sender's bytes, one TraceHeader more, nothing else changed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given

from bus.edxml import Edoc, TraceHeader, packet_bytes, read_packet
from bus.edxml.forward import with_trace_header
from tests.edxml_factory import repaired_edoc_sample, sample_bytes, samples_dir, sized_edoc_bytes
from tests.unit.test_properties import PROPERTY, edocs

BUS = TraceHeader("00.37.W00", "2026/11/21 09:30:00")
ENTRY = re.compile(rb"<(?:[\w.\-]+:)?TraceHeader><(?:[\w.\-]+:)?OrganId>00\.37\.W00</.*?"
                   rb"</(?:[\w.\-]+:)?TraceHeader>")


def _forward(data: bytes) -> tuple[bytes, bytes]:
    """(forwarded bytes, the same with the spliced entry taken out again)."""
    packet = read_packet(data).packet
    out = with_trace_header(data, packet, BUS)
    assert packet.trace_headers[-1] == BUS
    return out, ENTRY.sub(b"", out, count=1)


def _assert_only_a_trace_was_added(data: bytes, out: bytes) -> None:
    before = read_packet(data).packet
    after = read_packet(out).packet
    assert after.trace_headers[-1] == BUS
    after.trace_headers.pop()
    assert after == before


SAMPLES = sorted(p.name for p in samples_dir().glob("*.edxml") if p.name != "edoc.edxml")


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_keeps_its_bytes_and_gains_one_trace(name: str) -> None:
    data = sample_bytes(name)
    out, without = _forward(data)
    _assert_only_a_trace_was_added(data, out)
    if b"TraceHeaderList" in data:
        assert without == data
    else:  # a status packet without a list gets one, right after MessageHeader
        assert re.sub(rb"<(\w+:)?TraceHeaderList></(\w+:)?TraceHeaderList>", b"",
                      without) == data


def test_the_repaired_sdk_sample_with_its_quirks_keeps_its_bytes() -> None:
    data = repaired_edoc_sample()
    out, without = _forward(data)
    _assert_only_a_trace_was_added(data, out)
    assert without == data


@pytest.mark.parametrize("size", [5 * 1024, 300 * 1024])
def test_attachments_are_not_rewritten(size: int) -> None:
    data = sized_edoc_bytes(size)
    out, without = _forward(data)
    assert without == data
    assert len(out) - len(data) < 300


def _edoc() -> bytes:
    return packet_bytes(read_packet(sample_bytes("edoc_new.edxml")).packet)


def test_markup_lookalikes_in_comments_cdata_and_attributes_are_stepped_over() -> None:
    data = _edoc()
    header = data.index(b"<edXMLHeader") if b"<edXMLHeader" in data else data.index(b":edXMLHeader")
    header = data.index(b">", header) + 1
    decoy = (b"<!-- </TraceHeaderList></edXMLHeader> --><?decoy </TraceHeaderList>?>")
    data = data[:header] + decoy + data[header:]
    subject = re.search(rb"<((?:\w+:)?Subject)>", data)
    assert subject is not None
    data = data.replace(subject[0], subject[0] + b"<![CDATA[</TraceHeaderList> x]]>", 1)
    out, without = _forward(data)
    assert without == data
    _assert_only_a_trace_was_added(data, out)
    assert out.index(b"00.37.W00") > out.index(b"</edXML:MessageHeader>"
                                               if b"edXML:MessageHeader" in out
                                               else b"</MessageHeader>")


@pytest.mark.parametrize("prolog", [b"", b"\xef\xbb\xbf", b"\xef\xbb\xbf<?xml version='1.0'?>\n"])
def test_with_or_without_a_declaration_or_a_bom(prolog: bytes) -> None:
    data = _edoc()
    data = prolog + data[data.index(b"?>") + 2:].lstrip()
    out, without = _forward(data)
    assert without == data
    _assert_only_a_trace_was_added(data, out)


def test_a_comment_after_the_list_does_not_hide_it() -> None:
    original = _edoc()
    data = re.sub(rb"(</(?:\w+:)?edXMLBody>)", rb"<!-- note -->\1", original, count=1)
    assert data != original
    out, without = _forward(data)
    assert without == data
    _assert_only_a_trace_was_added(data, out)


def test_an_empty_trace_list_is_opened() -> None:
    data = _edoc()
    emptied = re.sub(rb"<((?:\w+:)?TraceHeaderList)\b[^>]*>.*?</\1>", rb"<\1 />", data,
                     count=1, flags=re.S)
    assert emptied != data
    edoc = read_packet(emptied).packet
    assert isinstance(edoc, Edoc) and edoc.trace_headers == []
    out, _ = _forward(emptied)
    _assert_only_a_trace_was_added(emptied, out)


def test_a_utf16_packet_is_re_serialised_with_the_trace() -> None:
    text = sample_bytes("edoc_new.edxml").decode("utf-8")
    text = re.sub(r'encoding="[^"]*"', 'encoding="UTF-16"', text, count=1)
    data = text.encode("utf-16")
    packet = read_packet(data).packet
    out = with_trace_header(data, packet, BUS)
    # Not spliced: the model (now carrying the trace) written out, in UTF-8.
    assert out == packet_bytes(packet)
    assert b"\x00" not in out[:4]
    _assert_only_a_trace_was_added(data, out)


@PROPERTY
@given(edocs())
def test_generated_packets_gain_exactly_the_trace(edoc: Edoc) -> None:
    data = packet_bytes(edoc)
    out, without = _forward(data)
    assert without == data
    _assert_only_a_trace_was_added(data, out)

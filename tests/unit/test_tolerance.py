"""The tolerant reader's policy (edxml.md §9): one test per rule, packets from producers.

Every packet here comes from a producer emulation (tests/field/producers.py), so each
carries all its producer's habits at once; the registry, the README table and these
tests are kept equal by the first tests below.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from bus import errors
from bus.edxml import TraceHeader, read_packet
from bus.edxml.forward import forwarded_bytes, normalised
from bus.edxml.tolerance import BY_NAME, RULES
from tests.field import producers as field

README = Path(__file__).resolve().parents[2] / "schemas" / "edxml" / "README.md"
BUS = TraceHeader("00.37.W00", "2026/11/21 09:30:00")

# rule name → the test that covers it (checked against the registry below)
COVERED = {
    "trace-header-without-organ-id": "test_axis_hops_with_only_a_timestamp",
    "trace-header-organ-id-empty": "test_axis_hops_with_only_a_timestamp",
    "trace-header-extra-children": "test_trace_header_bookkeeping_children",
    "trace-header-list-attributes": "test_dotnet_trace_list_attributes",
    "empty-signature-block": "test_empty_signature_blocks_are_no_signature",
    "content-id-forms": "test_content_id_with_and_without_cid",
    "day-first-dates": "test_day_first_dates_are_normalised_in_the_forwarded_bytes",
    "dialect-translated": "tests/unit/test_dialects.py",
    "pre-qcvn-namespace": "test_refused_producers",
    "soap-envelope": "test_refused_producers",
    "root-without-namespace": "test_refused_producers",
    "status-fields-in-header": "test_refused_producers",
    "attachment-outside-attachment-encoded": "test_refused_producers",
    "dialect-not-configured": "test_refused_producers",
    "not-well-formed": "test_refused_producers",
}


def codes(data: bytes) -> list[str]:
    return [n.code for n in read_packet(data).notices]


def test_every_rule_is_covered_and_named_once() -> None:
    assert set(COVERED) == set(BY_NAME)
    assert len(BY_NAME) == len(RULES)
    here = {name for name in globals() if name.startswith("test_")}
    assert {t for t in COVERED.values() if t.startswith("test_")} <= here


def test_readme_table_is_the_registry() -> None:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (\w+) \| `(\w+)` \|", README.read_text(), re.M)
    assert rows == [(r.name, r.disposition, r.code) for r in RULES]


def test_standard_producers_get_no_policy_notice() -> None:
    assert codes(field.java_dom(field.sample_data())) == []


def test_axis_hops_with_only_a_timestamp() -> None:
    """The 2025 axis form: hops with only a Timestamp, an upstream OrganId 'null'."""
    data = field.axis_2025(field.sample_data())
    result = read_packet(data)
    assert [n.code for n in result.notices] == [
        "TraceHeaderOrganIdEmpty", "TraceHeaderWithoutOrganId", "TraceHeaderWithoutOrganId"]
    hops = result.packet.trace_headers
    assert [h.organ_id for h in hops] == ["000.00.12.H37", "null", None, None]
    assert [h.organization for h in hops] == ["000.00.12.H37", None, None, None]
    assert all(n.extra["rule"] in BY_NAME for n in result.notices)
    assert result.notices[1].path.endswith("TraceHeaderList/TraceHeader[3]")


def test_trace_header_without_timestamp_is_still_refused() -> None:
    data = field.axis_2025(field.sample_data()).replace(
        b"<edXML:Timestamp>2025/03/14 08:31:05</edXML:Timestamp>", b"", 1)
    with pytest.raises(errors.SchemaInvalid, match="Timestamp"):
        read_packet(data)


def test_trace_header_bookkeeping_children() -> None:
    result = read_packet(field.typescript_template(field.sample_data()))
    notice = next(n for n in result.notices if n.code == "TraceHeaderExtraChildren")
    assert notice.extra["elements"] == ["Business", "StaffInfo"]
    assert result.packet.trace_headers[0].organ_id == "000.00.12.H37"


def test_unknown_trace_header_children_are_still_refused() -> None:
    data = field.typescript_template(field.sample_data()).replace(
        b"<edXML:BusinessCode>GW01</edXML:BusinessCode>", b"<edXML:Route>GW01</edXML:Route>")
    with pytest.raises(errors.SchemaInvalid, match="Route"):
        read_packet(data)


def test_dotnet_trace_list_attributes() -> None:
    result = read_packet(field.dotnet_xmlserializer(field.sample_data()))
    notice = next(n for n in result.notices if n.code == "TraceHeaderListAttributes")
    assert notice.extra["attributes"] == ["actor", "id", "mustUnderstand", "version"]
    other = field.dotnet_xmlserializer(field.sample_data()).replace(b'actor=""', b'priority="1"')
    with pytest.raises(errors.SchemaInvalid, match="priority"):
        read_packet(other)


def test_soap_namespaced_trace_list_attributes() -> None:
    data = field.dotnet_xmlserializer(field.sample_data()).replace(
        b'mustUnderstand="0"',
        b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" soap:mustUnderstand="0"')
    notice = next(n for n in read_packet(data).notices if n.code == "TraceHeaderListAttributes")
    assert "mustUnderstand" in notice.extra["attributes"]


def test_day_first_dates_of_a_utf16_packet_reach_receivers_normalised() -> None:
    data = field.dotnet_xmlserializer(field.sample_data()).decode("utf-8").replace(
        'encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    result = read_packet(data)
    assert normalised(data, result.notices) is None  # not ASCII markup: no byte edits
    out = forwarded_bytes(data, result.packet, BUS, result.notices)
    again = read_packet(out)
    assert again.packet.promulgation_info.promulgation_date == date(2025, 3, 14)
    assert b"14/03/2025" not in out and "DayFirstDate" not in [n.code for n in again.notices]


def test_empty_signature_blocks_are_no_signature() -> None:
    for producer in (field.dotnet_xmlserializer, field.typescript_template, field.go_encoding_xml):
        result = read_packet(producer(field.sample_data()))
        assert result.packet.signature is None, producer.__name__
        assert "EmptySignatureBlock" in [n.code for n in result.notices], producer.__name__
    signed = field.dotnet_xmlserializer(field.sample_data()).replace(
        b"<DigitalSignature />", b"<DigitalSignature>MIIB</DigitalSignature>")
    with pytest.raises(errors.SchemaInvalid, match="DigitalSignature"):
        read_packet(signed)


def test_content_id_with_and_without_cid() -> None:
    for producer in (field.typescript_template, field.go_encoding_xml):
        result = read_packet(producer(field.sample_data()))
        notice = next(n for n in result.notices if n.code == "ContentIdForm")
        assert {notice.extra["manifest"], notice.extra["attachment"]} == {"cid:1", "1"}
        assert len(result.packet.attachments) == 1
        assert result.packet.attachments[0].content.read() == field.PDF
    two = field.sample_data(attachments=[
        {"id": "1", "name": "a.pdf", "type": "application/pdf", "content": field.PDF},
        {"id": "2", "name": "b.pdf", "type": "application/pdf", "content": field.PDF}])
    data = field.go_encoding_xml(two).replace(b"<ContentId>cid:2<", b"<ContentId>cid:3<")
    with pytest.raises(errors.AttachmentInvalid, match="cid:3"):
        read_packet(data)
    # Both forms listed for one file: one Reference is left without its Attachment.
    one = field.sample_data()
    twice = field.go_encoding_xml(one).replace(
        b"</edXMLManifest>",
        b"<Reference><ContentId>cid:1</ContentId><AttachmentName>a.pdf</AttachmentName>"
        b"</Reference></edXMLManifest>")
    with pytest.raises(errors.AttachmentInvalid, match="no Attachment with that ContentId"):
        read_packet(twice)


def test_day_first_dates_are_normalised_in_the_forwarded_bytes() -> None:
    response = {"OrganId": "000.00.00.G22", "Code": "12/UBND-VP",
                "PromulgationDate": date(2025, 1, 9), "DocumentId": "x"}
    data = field.dotnet_xmlserializer(field.sample_data(response_for=response))
    result = read_packet(data)
    days = [n for n in result.notices if n.code == "DayFirstDate"]
    assert [(n.extra["original"], n.extra["normalised"]) for n in days] == [
        ("14/03/2025", "2025/03/14"), ("01/04/2025", "2025/04/01"),
        ("09/01/2025", "2025/01/09")]
    packet = result.packet
    assert packet.promulgation_info.promulgation_date == date(2025, 3, 14)
    assert packet.due_date == date(2025, 4, 1)
    assert packet.response_for[0].promulgation_date == "2025/01/09"
    fixed = normalised(data, result.notices)
    assert fixed is not None and fixed != data
    # Only the three date texts changed: same length, same bytes elsewhere.
    assert len(fixed) == len(data)
    changed = [i for i, (a, b) in enumerate(zip(data, fixed, strict=True)) if a != b]
    assert changed and all(fixed.rfind(b">", 0, i) > fixed.rfind(b"<", 0, i) for i in changed)
    for old, new in (("14/03/2025", "2025/03/14"), ("01/04/2025", "2025/04/01")):
        assert old.encode() not in fixed and new.encode() in fixed
    again = read_packet(fixed)
    assert "DayFirstDate" not in [n.code for n in again.notices]
    out = forwarded_bytes(data, read_packet(data).packet, BUS, result.notices)
    assert out.count(b"<TraceHeader>") == 2 and b"2025/03/14</PromulgationDate>" in out


def test_day_first_dates_that_do_not_exist_are_refused() -> None:
    data = field.dotnet_xmlserializer(field.sample_data(promulgated=date(2025, 2, 28))).replace(
        b"28/02/2025", b"30/02/2025")
    with pytest.raises(errors.SchemaInvalid, match="February 2025 has 28 days"):
        read_packet(data)


def test_day_first_timestamps_are_still_refused() -> None:
    data = field.dotnet_xmlserializer(field.sample_data()).replace(
        b"2025/03/14 08:30:00", b"14/03/2025 08:30:00")
    with pytest.raises(errors.SchemaInvalid, match="Timestamp"):
        read_packet(data)


@pytest.mark.parametrize("name", sorted(field.REFUSED))
def test_refused_producers(name: str) -> None:
    producer, rule, code = field.REFUSED[name]
    data = producer(field.sample_data())
    started = time.perf_counter()
    with pytest.raises(errors.PacketError) as caught:
        read_packet(data)
    assert time.perf_counter() - started < 1.0
    assert caught.value.code == code == BY_NAME[rule].code
    if rule != "not-well-formed":
        assert caught.value.details["rule"] == rule
    assert caught.value.line is not None


def test_refusal_messages_name_the_real_problem() -> None:
    def message(producer: Callable[[field.Data], bytes]) -> str:
        with pytest.raises(errors.PacketError) as caught:
            read_packet(producer(field.sample_data()))
        return caught.value.message

    assert "http://www.go.vn/eDoc" in message(field.pre_qcvn_edoc)
    assert "/soap" in message(field.soap_wrapped)
    assert "no namespace" in message(field.no_namespace)
    assert "no MessageHeader" in message(field.status_in_header)
    assert message(field.attachment_data_block).startswith(
        "the attachment is outside AttachmentEncoded, in edXMLAttachments/AttachmentData")
    dialect = message(field.vendor_hub_2019)
    assert "vendor-hub-2019" in dialect and "config/directory.yaml" in dialect
    assert "From" in message(field.unclosed_from)


def test_strict_base64_is_kept() -> None:
    data = field.go_encoding_xml(field.sample_data()).replace(b"<ContentTransferEncoded>",
                                                       b"<ContentTransferEncoded>*", 1)
    with pytest.raises(errors.AttachmentInvalid, match="base64"):
        read_packet(data)

"""The hardened reader, the builders and the writer, seen through the typed model.

Adapters and routing read the model, never XML, so these tests pin down what the model
says about real packets (the SDK samples) and that every producer variant edxml.md §1
lists reads as the same packet. The writer tests fix the canonical form that other
systems on the national axis have been seen to accept.
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime

import pytest
from lxml import etree

from bus.edxml import (
    DEFAULT_LIMITS,
    NS,
    Edoc,
    Limits,
    ReadResult,
    StaffInfo,
    StatusPacket,
    TraceHeader,
    packet_bytes,
    read_packet,
    status_for,
)
from bus.edxml.blob import Blob
from bus.edxml.model import BusinessDocumentInfo, Receiver, ReplacementInfo
from bus.errors import InvalidIdentifier, MalformedXml, PacketError
from tests.edxml_factory import (
    MINIMAL_EDOC,
    MINIMAL_PDF_BASE64,
    MINIMAL_STATUS,
    builder,
    edoc_with_attachments,
    random_bytes,
    repaired_edoc_sample,
    replace_once,
    sample_bytes,
    small_pdf,
    small_zip,
)

ENVELOPE_NS_DECL = f' xmlns:edXML="{NS}"'


@pytest.fixture(autouse=True)
def _clean_lxml_error_log() -> None:
    """Each test starts with an empty per-thread lxml error log, so that the leak shown by
    test_undeclared_prefix_packet_reads_after_a_malformed_one fails that test only, not
    whichever later test happens to read an SDK-style packet."""
    etree.clear_error_log()


def read(data: str | bytes, limits: Limits = DEFAULT_LIMITS) -> ReadResult:
    return read_packet(data.encode("utf-8") if isinstance(data, str) else data, limits=limits)


def edoc_of(data: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Edoc:
    packet = read(data, limits).packet
    assert isinstance(packet, Edoc)
    return packet


def status_of(data: str | bytes) -> StatusPacket:
    packet = read(data).packet
    assert isinstance(packet, StatusPacket)
    return packet


def with_attachment(template: str, content_xml: str) -> str:
    """The minimal edoc with its attachment text replaced by ``content_xml`` verbatim."""
    return replace_once(template, MINIMAL_PDF_BASE64, content_xml)


# ---------------------------------------------------------------- the SDK samples


def test_new_document_sample_model() -> None:
    packet = edoc_of(sample_bytes("edoc_new.edxml"))
    assert packet.sender == "002.00.20.H13"
    assert packet.from_.organ_name == "UBND xã Hòa Tiến - UBND huyện Hòa Vang - Thành phố Đà Nẵng"
    assert packet.recipients == ["28.22.H17"]
    assert packet.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert str(packet.code) == "74fass22/VPCP-TTĐT"
    assert packet.promulgation_info.place == "Hà Nội"
    assert packet.promulgation_info.promulgation_date == date(2019, 1, 16)
    assert type(packet.promulgation_info.promulgation_date) is date
    assert packet.due_date == date(2018, 9, 28)
    assert (packet.document_type.type, packet.document_type.type_detail,
            packet.document_type.type_name) == (1, 0, "Công văn")
    assert packet.subject == "V/v kết nối, liên thông phần mềm quản lý văn bản"
    assert packet.signer_info.full_name == "Nguyen Thanh Phuc"
    assert packet.other_info is not None
    assert packet.priority == 0
    assert packet.other_info.direction is False
    assert packet.other_info.page_amount == 22
    assert packet.other_info.appendixes == [
        "Công văn về việc kết nối, liên thông phần mềm quản lý văn bản"
    ]
    assert packet.to_places == ["Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP"]
    assert packet.steering_type == 1
    assert packet.response_for == []
    assert packet.trace_headers == [TraceHeader("000.00.00.G22", "2018/09/28 00:00:00")]
    assert packet.business is not None
    assert packet.business_kind == "new"
    assert packet.business.paper == 0
    assert packet.business.staff_info is not None
    assert packet.business.staff_info.staff == "Nguyễn Thị Ngọc Trâm"
    # The SDK writes its Signature unprefixed in the QCVN namespace.
    assert packet.signature is not None and packet.signature.namespace == NS
    assert [m.content_id for m in packet.manifest] == ["cid:209"]
    (attachment,) = packet.attachments
    assert attachment.content_id == "cid:209"
    assert attachment.attachment_name == "1896_QD-TTg_m_294779.doc"
    assert attachment.content_type == "application/zip"
    assert attachment.format == "zip"
    assert attachment.content.size > 100_000


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        ("edoc_new.edxml", "new", 0),
        ("edoc_revocation.edxml", "revoke", 1),
        ("edoc_update.edxml", "update", 2),
        ("edoc_replacement.edxml", "replace", 3),
    ],
)
def test_business_kind_of_each_sample(name: str, kind: str, code: int) -> None:
    packet = edoc_of(sample_bytes(name))
    assert packet.business is not None
    assert packet.business.bussiness_doc_type == code
    assert packet.business_kind == kind
    assert all(a.format == "zip" for a in packet.attachments)


def test_update_sample_carries_its_receiver_list() -> None:
    packet = edoc_of(sample_bytes("edoc_update.edxml"))
    assert packet.recipients == ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
    assert packet.business is not None
    assert packet.business.document_info == BusinessDocumentInfo(
        document_info="1",
        document_receiver="1",
        receivers=[Receiver("000.00.00.H41", 0), Receiver("000.00.00.H14", 1)],
    )


def test_revocation_sample_points_at_the_revoked_document() -> None:
    packet = edoc_of(sample_bytes("edoc_revocation.edxml"))
    (target,) = packet.response_for
    assert target.organ_id == "000.00.00.H14"
    assert target.code == "267/VPCP-TTĐT"
    assert target.document_id == "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"
    assert target.promulgation_date == "2018/09/28"


def test_replacement_sample_lists_what_it_replaces() -> None:
    packet = edoc_of(sample_bytes("edoc_replacement.edxml"))
    assert packet.business is not None
    replaced = ReplacementInfo(
        "000.00.00.G22,2014/01/30,7806/VPCP-TTĐT", ["000.00.00.H41", "000.00.00.H14"]
    )
    assert packet.business.replacements == [replaced, replaced]


def test_status_sample_model() -> None:
    packet = status_of(sample_bytes("status.edxml"))
    assert packet.sender == "000.00.00.H41"
    assert packet.status_code == "01"
    assert packet.meaning == "arrived"
    assert packet.timestamp == datetime(2018, 9, 28, 17, 25, 11)
    assert packet.response_for.organ_id == "000.00.00.G22"
    assert packet.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert packet.staff_info is not None and packet.staff_info.mobile == "84912000001"
    assert packet.description is not None and packet.description.startswith("Văn thư")


@pytest.mark.parametrize(
    ("name", "code", "meaning"),
    [
        ("status_inbox_01.edxml", "01", "arrived"),
        ("status_rejection_02.edxml", "02", "refused"),
        ("status_acceptance_03.edxml", "03", "accepted"),
        ("status_assignment_04.edxml", "04", "assigned"),
        ("status_processing_05.edxml", "05", "processing"),
        ("status_finish_06.edxml", "06", "completed"),
        ("status_cancellation_13.edxml", "13", "recall requested"),
        ("status_change-acceptance_15.edxml", "15", "recall/update accepted"),
        ("status_change-rejection_16.edxml", "16", "recall/update refused"),
    ],
)
def test_status_code_and_meaning_of_each_sample(name: str, code: str, meaning: str) -> None:
    packet = status_of(sample_bytes(name))
    assert (packet.status_code, packet.meaning) == (code, meaning)
    assert packet.timestamp == datetime(2015, 9, 20, 11, 8, 36)


def test_recall_sample_travels_from_the_original_sender() -> None:
    """Code 13 reverses the direction (edxml.md §4): From is the document's sender."""
    packet = status_of(sample_bytes("status_cancellation_13.edxml"))
    assert packet.sender == "000.00.00.G22"
    assert packet.response_for.organ_id == "000.00.00.H41"


# ---------------------------------------------------------------- producer variants


def test_minimal_templates_read() -> None:
    assert edoc_of(MINIMAL_EDOC).attachments[0].content.read() == small_pdf()
    assert status_of(MINIMAL_STATUS).status_code == "03"


def test_unprefixed_packet_reads_as_the_prefixed_one() -> None:
    unprefixed = MINIMAL_EDOC.replace("edXML:", "").replace(ENVELOPE_NS_DECL, "")
    assert "edXML:" not in unprefixed
    assert edoc_of(unprefixed) == edoc_of(MINIMAL_EDOC)


def test_mixed_prefixes_read_as_one_packet() -> None:
    """Some producers prefix only part of the tree, even with a prefix of their own."""
    own_prefix = {"From", "Code", "Subject", "TraceHeader", "Reference"}
    unprefixed = {"To", "PromulgationInfo", "OrganId", "Bussiness", "ContentId"}

    def choose(match: re.Match[str]) -> str:
        slash, name = match.group(1), match.group(2)
        prefix = "q:" if name in own_prefix else "" if name in unprefixed else "edXML:"
        return f"<{slash}{prefix}{name}"

    mixed = re.sub(r"<(/?)edXML:(\w+)", choose, MINIMAL_EDOC)
    mixed = replace_once(mixed, "<edXML ", f'<edXML xmlns:q="{NS}" ')
    assert "<q:From>" in mixed and "<To>" in mixed and "<edXML:Subject" not in mixed
    assert edoc_of(mixed) == edoc_of(MINIMAL_EDOC)


def test_undeclared_prefix_packet_reads_after_a_malformed_one() -> None:
    """One bad packet from any sender must not change the verdict on the next one.

    lxml's exception error log accumulates per thread, so reading it to decide whether
    only undeclared prefixes went wrong sees an earlier packet's faults too: the worker
    thread would refuse every SDK-style packet after its first malformed one."""
    good = repaired_edoc_sample()
    assert isinstance(read_packet(good).packet, Edoc)
    with pytest.raises(MalformedXml):
        read_packet(b"<edXML><a></edXML>")
    result = read_packet(good)
    assert isinstance(result.packet, Edoc)
    assert "UndeclaredPrefix" in [n.code for n in result.notices]


def test_xsi_and_xsd_declarations_are_accepted() -> None:
    declared = replace_once(
        MINIMAL_EDOC,
        f'<edXML xmlns="{NS}">',
        '<edXML xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns="{NS}">',
    )
    assert edoc_of(declared) == edoc_of(MINIMAL_EDOC)


def test_header_in_the_older_vendor_order() -> None:
    """From, To, Code, …, ToPlaces, OtherInfo, SteeringType, DocumentId (edxml.md §2)."""
    moved = replace_once(
        MINIMAL_EDOC,
        "        <edXML:DocumentId>000.00.00.G22,2019/01/17,7816/VPCP-TTĐT</edXML:DocumentId>\n",
        "",
    )
    moved = replace_once(
        moved,
        "      </edXML:MessageHeader>",
        "        <edXML:ToPlaces><edXML:Place>Như trên</edXML:Place></edXML:ToPlaces>\n"
        "        <edXML:OtherInfo><edXML:Priority>2</edXML:Priority></edXML:OtherInfo>\n"
        "        <edXML:SteeringType>1</edXML:SteeringType>\n"
        "        <edXML:DocumentId>000.00.00.G22,2019/01/17,7816/VPCP-TTĐT</edXML:DocumentId>\n"
        "      </edXML:MessageHeader>",
    )
    packet = edoc_of(moved)
    assert packet.document_id == "000.00.00.G22,2019/01/17,7816/VPCP-TTĐT"
    assert packet.priority == 2
    assert packet.to_places == ["Như trên"]


def test_empty_response_for_and_null_trace_organisation() -> None:
    variant = replace_once(
        MINIMAL_EDOC,
        "      </edXML:MessageHeader>",
        "        <edXML:ResponseFor/>\n      </edXML:MessageHeader>",
    )
    variant = replace_once(
        variant,
        "        <edXML:Bussiness>",
        "        <edXML:TraceHeader><edXML:OrganId>null</edXML:OrganId>"
        "<edXML:Timestamp>2019/01/17 09:00:00</edXML:Timestamp></edXML:TraceHeader>\n"
        "        <edXML:Bussiness>",
    )
    packet = edoc_of(variant)
    assert len(packet.response_for) == 1
    assert packet.response_for[0].document_id is None
    assert [t.organization for t in packet.trace_headers] == ["000.00.00.G22", None]
    assert read_packet(packet_bytes(packet)).packet == packet


def test_raw_pdf_and_zipped_attachments_are_told_apart() -> None:
    pdf = edoc_of(MINIMAL_EDOC).attachments[0]
    zipped_text = with_attachment(MINIMAL_EDOC, base64.b64encode(small_zip()).decode())
    zipped = edoc_of(zipped_text).attachments[0]
    assert (pdf.format, zipped.format) == ("pdf", "zip")
    # ContentType claims application/pdf in both: the bytes decide.
    assert pdf.content_type == zipped.content_type == "application/pdf"
    assert zipped.content.read() == small_zip()


def test_mime_wrapped_base64_with_crlf() -> None:
    content = random_bytes(5000, seed=7)
    wrapped = base64.encodebytes(content).decode().replace("\n", "\r\n")
    assert wrapped.count("\r\n") > 10
    text = with_attachment(MINIMAL_EDOC, "\r\n" + wrapped)
    as_bytes = text.replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode()
    assert edoc_of(as_bytes).attachments[0].content.read() == content


def test_several_attachments_keep_order_and_content() -> None:
    contents = [small_pdf(), small_zip(), random_bytes(3000, seed=3)]
    packet = edoc_with_attachments(contents)
    again = edoc_of(packet_bytes(packet))
    assert [a.content.read() for a in again.attachments] == contents
    assert [a.format for a in again.attachments] == ["pdf", "zip", "unknown"]
    assert [m.content_id for m in again.manifest] == [a.content_id for a in again.attachments]
    assert again == packet


def test_cdata_wrapped_base64_takes_the_plain_path() -> None:
    """The byte-level lift skips CDATA; the packet must read exactly as without it."""
    text = with_attachment(MINIMAL_EDOC, f"<![CDATA[{MINIMAL_PDF_BASE64}]]>")
    assert edoc_of(text) == edoc_of(MINIMAL_EDOC)


def test_attachment_with_character_references_takes_the_plain_path() -> None:
    text = with_attachment(MINIMAL_EDOC, MINIMAL_PDF_BASE64[:8] + "&#10;" +
                           MINIMAL_PDF_BASE64[8:])
    assert edoc_of(text) == edoc_of(MINIMAL_EDOC)


def test_base64_lift_does_not_change_the_verdict() -> None:
    """The reader promises its base64 shortcut never changes a verdict. A '>' inside a
    quoted attribute value of ContentTransferEncoded is legal XML, so the start tag must
    not be taken to end there: the answer must be the one the plain path (CDATA) gives."""

    def verdict(content: str) -> str:
        text = replace_once(MINIMAL_EDOC, f"<ContentTransferEncoded>{MINIMAL_PDF_BASE64}",
                            f'<ContentTransferEncoded note="a>b">{content}')
        try:
            read(text)
        except PacketError as exc:
            return exc.code
        return "accepted"

    plain_path = verdict(f"<![CDATA[{MINIMAL_PDF_BASE64}]]>")
    assert plain_path == "SchemaInvalid"  # no attribute is allowed there
    assert verdict(MINIMAL_PDF_BASE64) == plain_path


def test_utf16_packet_reads_like_utf8() -> None:
    text = replace_once(MINIMAL_EDOC, 'encoding="UTF-8"', 'encoding="UTF-16"')
    assert edoc_of(text.encode("utf-16")) == edoc_of(MINIMAL_EDOC)


_WIDE = Limits(spool_threshold=16 * 1024, keep_base64_up_to=32 * 1024)


def test_a_large_attachment_is_checked_but_neither_copied_nor_decoded() -> None:
    content = random_bytes(64 * 1024, seed=1)
    data = packet_bytes(edoc_with_attachments([content, small_pdf()]))
    blob = edoc_of(data, limits=_WIDE).attachments[0].content
    # Kept as its place in the packet: no file, no decoded copy until it is read.
    assert not blob.on_disk and blob._decoded is None and blob._region is not None
    assert blob.size == len(content)
    assert blob.read() == content and b"".join(blob.chunks(1000)) == content
    assert b"".join(blob.base64_chunks()) == base64.b64encode(content)
    assert blob.sha256 == Blob.from_bytes(content).sha256


def test_a_large_attachment_in_mime_lines_reads_back_whole() -> None:
    content = random_bytes(64 * 1024, seed=2)
    data = packet_bytes(edoc_with_attachments([content]))
    single = base64.b64encode(content)
    assert single in data
    data = data.replace(single, base64.encodebytes(content).rstrip(b"\n"))
    blob = edoc_of(data, limits=_WIDE).attachments[0].content
    assert blob.read() == content
    assert b"".join(blob.base64_chunks()) == single


@pytest.mark.parametrize("spoil", [b"*", b"=", b"==A"])
def test_a_large_attachment_that_is_not_strict_base64_is_refused_as_before(
        spoil: bytes) -> None:
    content = random_bytes(64 * 1024, seed=3)
    data = packet_bytes(edoc_with_attachments([content]))
    text = base64.b64encode(content)
    middle = len(text) // 2
    data = data.replace(text, text[:middle] + spoil + text[middle + len(spoil):])
    with pytest.raises(PacketError) as wide:
        read(data, limits=_WIDE)
    with pytest.raises(PacketError) as default:
        read(data)
    assert wide.value.code == default.value.code == "AttachmentInvalid"
    assert wide.value.message == default.value.message


def test_ids_of_ten_levels_and_test_codes_pass_with_a_notice() -> None:
    text = replace_once(MINIMAL_EDOC, "<edXML:OrganId>000.00.00.H37</edXML:OrganId>",
                        "<edXML:OrganId>vxp.saas.03</edXML:OrganId>")
    result = read(text)
    assert isinstance(result.packet, Edoc)
    assert result.packet.recipients == ["vxp.saas.03"]
    assert "NonStandardIdentifier" in [n.code for n in result.notices]


# ---------------------------------------------------------------- builders


def test_builder_packet_reads_back_equal() -> None:
    edoc = (
        builder("000.00.00.G22", "000.00.00.H37", "001.00.10.H47")
        .responding_to("000.00.00.H37", "12/UBND", "uuid-1", date(2024, 1, 2))
        .business("update", "Cập nhật", staff=StaffInfo(department="Văn thư", staff="Lan"))
        .attach("a.pdf", small_pdf(), description="Bản chính")
        .attach("b.zip", small_zip(), content_type="application/zip")
        .build()
    )
    assert read_packet(packet_bytes(edoc)).packet == edoc
    assert edoc.business_kind == "update"
    assert edoc.recipients == ["000.00.00.H37", "001.00.10.H47"]


def test_builder_refuses_a_bad_identifier_at_build_time() -> None:
    with pytest.raises(InvalidIdentifier):
        builder("000.00.00.G22", "000.00 .00.H37").build()


@pytest.mark.parametrize("code", ["01", "03", "06", "15"])
def test_status_for_answers_the_sender(code: str) -> None:
    edoc = builder("000.00.00.G22", "000.00.00.H37").build()
    status = status_for(edoc, code, description="ok", at=datetime(2024, 5, 18, 8, 0, 5))
    assert status.sender == "000.00.00.H37"
    assert status.response_for.organ_id == "000.00.00.G22"
    assert status.response_for.code == "123/UBND-VP"
    assert status.response_for.promulgation_date == "2024/05/17"
    assert status.document_id == edoc.document_id
    assert status.status_code == code
    assert read_packet(packet_bytes(status)).packet == status


def test_status_13_travels_from_sender_to_recipient() -> None:
    edoc = builder("000.00.00.G22", "000.00.00.H37", "000.00.00.H41").build()
    status = status_for(edoc, "13", at=datetime(2024, 5, 18, 8, 0, 5))
    assert status.sender == "000.00.00.G22"
    assert status.response_for.organ_id == "000.00.00.H37"
    assert status.meaning == "recall requested"
    assert read_packet(packet_bytes(status)).packet == status


# ---------------------------------------------------------------- writer canonical form


def _full_edoc() -> Edoc:
    edoc = (
        builder("000.00.00.G22", "000.00.00.H37")
        .responding_to("000.00.00.H37", "12/UBND", "uuid-1")
        .attach("a.pdf", small_pdf())
        .build()
    )
    edoc.content = "Nội dung"
    edoc.steering_type = 1
    edoc.response_for_task = ["T1"]
    edoc.application_type = "QLVB"
    edoc.to_places = ["Như trên", "Lưu VT"]
    return edoc


def _parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, huge_tree=True))


def test_writer_root_uses_the_default_namespace() -> None:
    root = _parse(packet_bytes(_full_edoc()))
    assert root.tag == f"{{{NS}}}edXML"
    assert root.prefix is None
    assert root.nsmap.get(None) == NS
    assert packet_bytes(_full_edoc()).startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_writer_prefixes_everything_inside_the_envelope() -> None:
    root = _parse(packet_bytes(_full_edoc()))
    envelope = root[0]
    inside = [el for el in envelope.iter() if isinstance(el.tag, str)]
    assert len(inside) > 40
    assert {el.prefix for el in inside} == {"edXML"}
    assert {etree.QName(el).namespace for el in inside} == {NS}


def test_writer_puts_attachments_second_under_the_root() -> None:
    root = _parse(packet_bytes(_full_edoc()))
    assert [etree.QName(child).localname for child in root] == [
        "edXMLEnvelope", "AttachmentEncoded"
    ]


def test_writer_uses_the_sdk_header_order() -> None:
    root = _parse(packet_bytes(_full_edoc()))
    header = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/{{{NS}}}MessageHeader")
    assert header is not None
    assert [etree.QName(child).localname for child in header] == [
        "From", "To", "DocumentId", "Code", "PromulgationInfo", "DocumentType", "Subject",
        "Content", "SignerInfo", "DueDate", "OtherInfo", "ResponseFor", "SteeringType",
        "ResponseForTask", "ApplicationType", "ToPlaces",
    ]


def test_writer_omits_attachment_block_without_attachments() -> None:
    edoc = builder().build()
    root = _parse(packet_bytes(edoc))
    assert [etree.QName(child).localname for child in root] == ["edXMLEnvelope"]


def test_writer_zero_pads_years_before_1000() -> None:
    """yyyy/MM/dd has four year digits; glibc's strftime('%Y') writes 999, not 0999."""
    edoc = builder().promulgated("Hà Nội", date(999, 1, 2)).build(check=False)
    written = packet_bytes(edoc)
    assert b"<edXML:PromulgationDate>0999/01/02</edXML:PromulgationDate>" in written
    assert read_packet(written).packet == edoc


@pytest.mark.parametrize("source", ["edoc_new.edxml", "repaired edoc.edxml"])
def test_signature_is_written_back_byte_for_byte(source: str) -> None:
    data = repaired_edoc_sample() if source.startswith("repaired") else sample_bytes(source)
    packet = edoc_of(data)
    assert packet.signature is not None
    written = packet_bytes(packet)
    assert written.count(packet.signature.xml) == 1
    again = edoc_of(written)
    assert again.signature == packet.signature

    # What a verifier digests (exclusive c14n, comments dropped) is unchanged.
    original = data.replace(b'<edXML xmlns="', SDK_PREFIXES + b' xmlns="', 1)
    assert _signature_c14n(written) == _signature_c14n(original)


# edoc.edxml uses these without declaring them; declared on the root only to compare.
SDK_PREFIXES = f'<edXML xmlns:edXML="{NS}" xmlns:xlink="http://www.w3.org/1999/xlink"'.encode()


def _signature_c14n(raw: bytes) -> bytes:
    root = etree.fromstring(raw, etree.XMLParser(remove_comments=True, huge_tree=True))
    (signature,) = [el for el in root.iter() if isinstance(el.tag, str)
                    and etree.QName(el).localname == "Signature"]
    return etree.tostring(signature, method="c14n", exclusive=True)

"""Properties of the edXML core over generated packets, and over broken ones.

Example tests only cover what their authors thought of. Two promises hold for every
input: a packet the bus writes reads back as the same packet (otherwise forwarding would
alter documents), and any bytes whatsoever end in a ReadResult or a PacketError — an
escaping KeyError or XPathEvalError becomes a 500 and a retry storm instead of a 4xx the
sender can act on.
"""

from __future__ import annotations

import base64
import re
import string
from datetime import date, datetime

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bus.edxml import (
    Edoc,
    EdocBuilder,
    Organization,
    StaffInfo,
    packet_bytes,
    read_packet,
    status_for,
)
from bus.errors import PacketError
from tests.edxml_factory import edoc_with_attachments, random_bytes, small_pdf, small_zip

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
MUTATION = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

VIETNAMESE = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxy"
    "AĂÂBCDĐEÊGHIKLMNOÔƠPQRSTUƯVXY"
    "áàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
    "ÁÀẢÃẠẮẰẲẴẶẤẦẨẪẬÉÈẺẼẸẾỀỂỄỆÍÌỈĨỊÓÒỎÕỌỐỒỔỖỘỚỜỞỠỢÚÙỦŨỤỨỪỬỮỰÝỲỶỸỴ"
    "0123456789 ,.;:-/()\"'"
)
# Whatever XML 1.0 can carry: markup characters, the three allowed C0 controls (\r must
# survive as &#13;), astral characters. C0/C1 controls and surrogates cannot be in XML.
text = st.text(
    alphabet=st.one_of(
        st.sampled_from(VIETNAMESE),
        st.sampled_from("<>&]]\"'\t\n\r"),
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
    ),
    max_size=60,
)

_GROUP = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=5)
identifier = st.one_of(
    st.from_regex(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{2}\.[0-9]{2}\.W[0-9]{2}", fullmatch=True),
    st.lists(_GROUP, min_size=1, max_size=6).map(".".join).filter(lambda s: len(s) <= 35),
)
# Years before 1000 are left to test_reader's zero-padding test.
document_date = st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31))
moment = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31))
file_name = st.text(
    alphabet=st.sampled_from(VIETNAMESE.replace("/", "").replace(":", "") + "_-"),
    min_size=1, max_size=40,
).filter(lambda s: s.strip() not in ("", ".", "..")).map(lambda s: s + ".pdf")
content_type = st.sampled_from(["application/pdf", "application/zip", "image/jpeg", ""])


@st.composite
def organizations(draw: st.DrawFn) -> Organization:
    return Organization(
        organ_id=draw(identifier),
        organ_name=draw(st.none() | text),
        organ_add=draw(st.none() | text),
        email=draw(st.none() | text),
    )


@st.composite
def edocs(draw: st.DrawFn) -> Edoc:
    builder = (
        EdocBuilder(draw(organizations()))
        .to(*draw(st.lists(organizations(), min_size=1, max_size=5)))
        .code(draw(text), draw(text))
        .promulgated(draw(text), draw(document_date))
        .document_type(draw(st.integers(0, 999_999_999)), draw(text),
                       draw(st.none() | st.integers(0, 99)))
        .subject(draw(text), draw(st.none() | text))
        .signer(draw(text), draw(st.none() | text), draw(st.none() | text))
        .document_id(draw(text))
        .business(draw(st.sampled_from(["new", "revoke", "update", "replace"])), draw(text),
                  staff=draw(st.none() | st.builds(StaffInfo, department=text, staff=text)))
    )
    if draw(st.booleans()):
        builder.due(draw(document_date))
    if draw(st.booleans()):
        builder.priority(draw(st.integers(0, 4)))
    for _ in range(draw(st.integers(0, 2))):
        builder.trace(draw(identifier), draw(moment).replace(microsecond=0))
    for _ in range(draw(st.integers(0, 3))):
        content = draw(st.binary(max_size=1500))
        builder.attach(draw(file_name), content, draw(content_type), draw(st.none() | text))
    return builder.build(check=False)


@PROPERTY
@given(edocs())
def test_written_edoc_reads_back_equal(edoc: Edoc) -> None:
    written = packet_bytes(edoc)
    again = read_packet(written).packet
    assert again == edoc
    assert packet_bytes(again) == written


@PROPERTY
@given(edocs(), st.sampled_from(["01", "02", "03", "04", "05", "06", "13", "15", "16"]),
       st.none() | text, moment)
def test_written_status_reads_back_equal(edoc: Edoc, code: str, description: str | None,
                                         at: datetime) -> None:
    status = status_for(edoc, code, description=description, at=at, check=False)
    assert read_packet(packet_bytes(status)).packet == status


# ---------------------------------------------------------------- mutations

BASE = packet_bytes(edoc_with_attachments([small_pdf(), small_zip(), random_bytes(600)]))
_CTE_TEXT = re.compile(rb"<edXML:ContentTransferEncoded[^>]*>([^<]*)<")
BASE64_SPANS = [m.span(1) for m in _CTE_TEXT.finditer(BASE)]
REQUIRED = ["From", "To", "Code", "PromulgationInfo", "PromulgationDate", "DocumentType",
            "Subject", "SignerInfo", "FullName", "OrganId", "TraceHeaderList",
            "BussinessDocType", "MessageHeader", "edXMLHeader", "ContentId", "AttachmentName",
            "ContentTransferEncoded", "Reference", "Attachment"]


def check_outcome(data: bytes) -> None:
    """Accepted or refused with a code; if accepted, what the bus would forward must
    itself read back as the same packet."""
    try:
        result = read_packet(data)
    except PacketError:
        return
    written = packet_bytes(result.packet)
    assert read_packet(written).packet == result.packet


def test_mutation_base_is_valid() -> None:
    assert len(BASE64_SPANS) == 3
    assert isinstance(read_packet(BASE).packet, Edoc)


@MUTATION
@given(st.integers(0, len(BASE) - 1))
def test_truncated_packet(cut: int) -> None:
    check_outcome(BASE[:cut])


@MUTATION
@given(st.data())
def test_flipped_byte_in_base64(data: st.DataObject) -> None:
    start, end = data.draw(st.sampled_from(BASE64_SPANS))
    position = data.draw(st.integers(start, end - 1))
    value = data.draw(st.integers(0, 255))
    assume(value != BASE[position])
    mutated = BASE[:position] + bytes([value]) + BASE[position + 1 :]
    try:
        result = read_packet(mutated)
    except PacketError:
        return
    # Accepted only if the attachment is still base64 (another letter, whitespace, or
    # padding where the length allows it), and the change is explained by one attachment.
    span = re.sub(rb"\s", b"", mutated[start:end])
    base64.b64decode(span, validate=True)
    original = read_packet(BASE).packet
    assert isinstance(original, Edoc) and isinstance(result.packet, Edoc)
    changed = [i for i, (a, b) in enumerate(zip(original.attachments, result.packet.attachments,
                                                strict=True)) if a.content != b.content]
    assert len(changed) <= 1
    result.packet.attachments = original.attachments
    assert result.packet == original


@MUTATION
@given(st.integers(0, len(BASE) - 1), st.integers(0, 255))
def test_flipped_byte_anywhere(position: int, value: int) -> None:
    check_outcome(BASE[:position] + bytes([value]) + BASE[position + 1 :])


@MUTATION
@given(st.sampled_from(REQUIRED), st.integers(0, 3))
def test_required_element_deleted(name: str, which: int) -> None:
    pattern = re.compile(rf"<edXML:{name}[ >].*?</edXML:{name}>|<{name}[ >].*?</{name}>"
                         .encode(), re.S)
    matches = list(pattern.finditer(BASE))
    assume(matches)
    match = matches[which % len(matches)]
    mutated = BASE[: match.start()] + BASE[match.end() :]
    check_outcome(mutated)


@MUTATION
@given(st.sampled_from(["From", "To", "Code", "Subject", "TraceHeaderList", "Bussiness",
                        "edXMLBody", "Attachment", "Reference"]))
def test_element_duplicated(name: str) -> None:
    match = re.search(rf"<(?:edXML:)?{name}[ >].*?</(?:edXML:)?{name}>".encode(), BASE, re.S)
    assert match is not None
    check_outcome(BASE[: match.end()] + match.group(0) + BASE[match.end() :])


def test_duplicated_from_is_refused() -> None:
    match = re.search(rb"<edXML:From>.*?</edXML:From>", BASE, re.S)
    assert match is not None
    try:
        read_packet(BASE[: match.end()] + match.group(0) + BASE[match.end() :])
    except PacketError as exc:
        assert exc.code == "SchemaInvalid"
    else:
        raise AssertionError("a packet with two From elements was accepted")


@MUTATION
@given(st.integers(0, len(BASE)), st.sampled_from([
    b"<!DOCTYPE edXML>",
    b'<!DOCTYPE edXML [<!ENTITY x "y">]>',
    b'<!DOCTYPE edXML SYSTEM "file:///etc/passwd">',
    b"&x;",
    b"<![CDATA[x]]>",
    b"<!-- c -->",
    b"<?pi x?>",
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>',
    b"\x00",
    b"\xff\xfe",
    "đ".encode(),
]))
def test_markup_inserted(position: int, insert: bytes) -> None:
    check_outcome(BASE[:position] + insert + BASE[position:])


@MUTATION
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    check_outcome(data)


@MUTATION
@given(st.data())
def test_re_encoded_and_mutated(data: st.DataObject) -> None:
    """Byte-level guards in the reader assume ASCII-compatible input; UTF-16 is not."""
    text = BASE.decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'")
    encoded = text.encode("utf-16")
    position = data.draw(st.integers(0, len(encoded) - 1))
    value = data.draw(st.integers(0, 255))
    check_outcome(encoded[:position] + bytes([value]) + encoded[position + 1 :])


"""Second pass (bus.edxml.checks): what the XSDs accept but the bus must still refuse.

Every packet refused here is first shown to pass its XSD, so each test proves the second
pass is what catches the problem, with the right error class, line and path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from lxml import etree

from bus.edxml.checks import (
    ACCEPTED_STATUS_CODES,
    NOTICE_DUPLICATE_RECIPIENT,
    NOTICE_FIELD_EMPTY,
    NOTICE_FIELD_TOO_LONG,
    NOTICE_NON_STANDARD_IDENTIFIER,
    NOTICE_RESERVED_STATUS_CODE,
    RESERVED_STATUS_CODES,
    check_edoc,
    check_status,
    element_path,
)
from bus.errors import (
    AttachmentInvalid,
    InvalidIdentifier,
    LgspError,
    Notice,
    SchemaInvalid,
    UnsupportedPacket,
)
from bus.schemas import EDXML_NS, EdxmlSchemas, load_edxml_schemas

NS = EDXML_NS
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "edxml"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)

MH = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
TRACE_LIST = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList"
MANIFEST = "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest"
ENCODED = "/edXML/AttachmentEncoded"


def samples_dir() -> Path:
    override = os.environ.get("LGSP_SAMPLES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "edxml-samples"


def load_sample(path: Path) -> etree._Element:
    data = path.read_bytes()
    if path.name == "edoc.edxml":
        # The SDK's file uses the undeclared prefixes xlink: and edXML: (see test_schemas).
        data = data.replace(
            f'<edXML xmlns="{NS}">'.encode(),
            f'<edXML xmlns="{NS}" xmlns:edXML="{NS}" '
            'xmlns:xlink="http://www.w3.org/1999/xlink">'.encode(),
            1,
        )
    return etree.fromstring(data, PARSER)


# ------------------------------------------------------------------ packet builders


def org(tag: str, organ_id: str, *extra: str) -> str:
    lines = [
        f"<{tag}>",
        f"  <OrganId>{organ_id}</OrganId>",
        *(f"  {e}" for e in extra),
        f"</{tag}>",
    ]
    return "\n".join(lines)


FROM = org(
    "From",
    "000.00.00.G22",
    "<OrganName>Văn phòng Chính phủ</OrganName>",
    "<Email>vpcp@gov.vn</Email>",
)
TO = org("To", "000.00.00.H37", "<OrganName>UBND tỉnh Lạng Sơn</OrganName>")
TO_2 = org("To", "000.00.00.H41")
CODE = "<Code>\n  <CodeNumber>123</CodeNumber>\n  <CodeNotation>UBND-VP</CodeNotation>\n</Code>"
PROMULGATION = (
    "<PromulgationInfo>\n  <Place>Hà Nội</Place>\n"
    "  <PromulgationDate>2019/01/17</PromulgationDate>\n</PromulgationInfo>"
)
DOCTYPE = "<DocumentType>\n  <Type>1</Type>\n  <TypeName>Công văn</TypeName>\n</DocumentType>"
SUBJECT = "<Subject>V/v kết nối liên thông</Subject>"
CONTENT = "<Content>Nội dung</Content>"
SIGNER = (
    "<SignerInfo>\n  <Position>Chủ tịch</Position>\n"
    "  <FullName>Nguyễn Văn A</FullName>\n</SignerInfo>"
)
DUE = "<DueDate>2019/02/28</DueDate>"
OTHER = "<OtherInfo>\n  <Priority>1</Priority>\n  <TyperNotation>TVC</TyperNotation>\n</OtherInfo>"
RESPONSE_FOR = (
    "<ResponseFor>\n  <OrganId>000.00.00.H41</OrganId>\n  <Code>7816/VPCP-TTĐT</Code>\n"
    "  <PromulgationDate>2018/09/28</PromulgationDate>\n</ResponseFor>"
)
DOCUMENT_ID = "<DocumentId>9fbfbad2-f1f8-4256-a2eb-50fb1061cddb</DocumentId>"
HEADER = [
    FROM,
    TO,
    TO_2,
    DOCUMENT_ID,
    CODE,
    PROMULGATION,
    DOCTYPE,
    SUBJECT,
    CONTENT,
    SIGNER,
    DUE,
    OTHER,
    RESPONSE_FOR,
]

TRACE = (
    "<TraceHeader>\n  <OrganId>000.00.00.G22</OrganId>\n"
    "  <Timestamp>2019/01/17 08:30:00</Timestamp>\n</TraceHeader>"
)
BUSINESS = """<Bussiness>
  <BussinessDocType>2</BussinessDocType>
  <BussinessDocumentInfo>
    <ReceiverList>
      <Receiver>
        <OrganId>000.00.00.H41</OrganId>
        <ReceiverType>0</ReceiverType>
      </Receiver>
    </ReceiverList>
  </BussinessDocumentInfo>
  <ReplacementInfoList>
    <ReplacementInfo>
      <DocumentId>000.00.00.G22,2014/02/30,7806/VPCP-TTĐT</DocumentId>
      <OrganIdList>
        <OrganId>000.00.00.H14</OrganId>
      </OrganIdList>
    </ReplacementInfo>
  </ReplacementInfoList>
</Bussiness>"""


def reference(content_id: str = "cid:1", name: str = "Cong van 1.pdf") -> str:
    return (
        f"<Reference>\n  <ContentId>{content_id}</ContentId>\n"
        f"  <AttachmentName>{name}</AttachmentName>\n</Reference>"
    )


def attachment(
    content_id: str = "cid:1", name: str = "Cong van 1.pdf", data: str = "JVBERi0="
) -> str:
    return (
        f"<Attachment>\n  <ContentId>{content_id}</ContentId>\n"
        f"  <AttachmentName>{name}</AttachmentName>\n"
        f"  <ContentTransferEncoded>{data}</ContentTransferEncoded>\n</Attachment>"
    )


def edoc(
    header: list[str] | None = None,
    *,
    trace: list[str] | None = None,
    references: list[str] | None = None,
    attachments: list[str] | None = None,
    header_tail: str = "",
) -> str:
    nl = "\n"
    return f"""<edXML xmlns="{NS}">
<edXMLEnvelope>
<edXMLHeader>
<MessageHeader>
{nl.join(HEADER if header is None else header)}
</MessageHeader>
<TraceHeaderList>
{nl.join([TRACE, BUSINESS] if trace is None else trace)}
</TraceHeaderList>
{header_tail}
</edXMLHeader>
<edXMLBody>
<edXMLManifest version="1.0">
{nl.join([reference()] if references is None else references)}
</edXMLManifest>
</edXMLBody>
</edXMLEnvelope>
<AttachmentEncoded>
{nl.join([attachment()] if attachments is None else attachments)}
</AttachmentEncoded>
</edXML>
"""


STATUS_FROM = org("From", "000.00.00.H41")
STATUS_RESPONSE_FOR = (
    "<ResponseFor>\n  <OrganId>000.00.00.G22</OrganId>\n  <Code>7816/VPCP-TTĐT</Code>\n"
    "  <PromulgationDate>2018/09/28</PromulgationDate>\n"
    "  <DocumentId>000.00.00.G22,2018/09/28,7816/VPCP-TTĐT</DocumentId>\n</ResponseFor>"
)
STATUS_PARTS = [
    STATUS_FROM,
    STATUS_RESPONSE_FOR,
    "<StatusCode>03</StatusCode>",
    "<Description>Tiếp nhận</Description>",
    "<Timestamp>2018/09/28 17:25:11</Timestamp>",
]


def status(parts: list[str] | None = None, *, header_tail: str = "") -> str:
    nl = "\n"
    return f"""<edXML xmlns="{NS}">
<edXMLEnvelope>
<edXMLHeader>
<MessageHeader>
{nl.join(STATUS_PARTS if parts is None else parts)}
</MessageHeader>
{header_tail}
</edXMLHeader>
</edXMLEnvelope>
</edXML>
"""


def replaced(items: list[str], old: str, new: str) -> list[str]:
    """``items`` with ``old`` replaced in the one item that contains it."""
    hits = [i for i, item in enumerate(items) if old in item]
    assert len(hits) == 1, (old, hits)
    out = list(items)
    out[hits[0]] = out[hits[0]].replace(old, new)
    return out


def without(items: list[str], marker: str) -> list[str]:
    out = [item for item in items if not item.startswith(marker)]
    assert len(out) == len(items) - 1, marker
    return out


def line_of(text: str, marker: str, occurrence: int = 1, *, at_start: bool = False) -> int:
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(marker) if at_start else marker in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{marker!r} not found {occurrence} time(s)")


# ------------------------------------------------------------------ running the checks


@pytest.fixture(scope="module")
def schemas() -> EdxmlSchemas:
    return load_edxml_schemas(SCHEMA_DIR)


def checked(schemas: EdxmlSchemas, text: str) -> list[Notice]:
    """XSD first (it must pass), then the second pass for the packet's kind."""
    root = etree.fromstring(text.encode("utf-8"), PARSER)
    is_status = (
        root.find(
            f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/{{{NS}}}MessageHeader/{{{NS}}}StatusCode"
        )
        is not None
    )
    schema = schemas.status if is_status else schemas.edoc
    assert schema.validate(root), [f"line {e.line}: {e.message}" for e in schema.error_log]
    return check_status(root) if is_status else check_edoc(root)


def refused(
    schemas: EdxmlSchemas,
    text: str,
    error: type[LgspError],
    *,
    line: int,
    path: str,
    words: tuple[str, ...] = (),
) -> LgspError:
    with pytest.raises(LgspError) as caught:
        checked(schemas, text)
    found = caught.value
    assert type(found) is error, f"{type(found).__name__}: {found}"
    assert (found.line, found.path) == (line, path), str(found)
    for word in words:
        assert word in found.message, found.message
    return found


def codes(notices: list[Notice]) -> list[str]:
    return [n.code for n in notices]


# ------------------------------------------------------------------ samples and variants


SAMPLES = sorted(samples_dir().glob("*.edxml"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_official_samples_pass_the_second_pass(schemas: EdxmlSchemas, path: Path) -> None:
    root = load_sample(path)
    if path.name.startswith("status"):
        assert schemas.status.validate(root)
        notices = check_status(root)
    else:
        assert schemas.edoc.validate(root)
        notices = check_edoc(root)
    assert all(n.code == NOTICE_NON_STANDARD_IDENTIFIER for n in notices), notices


def test_sample_notices_point_at_the_non_2016_identifiers() -> None:
    new = check_edoc(load_sample(samples_dir() / "edoc_new.edxml"))
    assert [(n.code, n.path, n.extra["identifier"]) for n in new] == [
        (NOTICE_NON_STANDARD_IDENTIFIER, f"{MH}/To/OrganId", "28.22.H17")
    ]
    small = check_edoc(load_sample(samples_dir() / "edoc.edxml"))
    assert [(n.path, n.extra["identifier"]) for n in small] == [
        (f"{TRACE_LIST}/TraceHeader/OrganId", "01.02.G22")
    ]


def test_clean_packets_give_no_notices(schemas: EdxmlSchemas) -> None:
    assert checked(schemas, edoc()) == []
    assert checked(schemas, status()) == []


def test_older_order_and_repeated_response_for(schemas: EdxmlSchemas) -> None:
    older = [
        FROM,
        TO,
        CODE,
        PROMULGATION,
        DOCTYPE,
        SUBJECT,
        CONTENT,
        SIGNER,
        DUE,
        "<ToPlaces><Place>Các bộ</Place></ToPlaces>",
        OTHER,
        "<SteeringType>1</SteeringType>",
        DOCUMENT_ID,
        RESPONSE_FOR,
        RESPONSE_FOR,
    ]
    assert checked(schemas, edoc(older)) == []


def test_prefixed_and_mixed_packets_give_the_same_paths(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, "2019/01/17", "2019/02/30"))
    head, marker, tail = text.partition("<AttachmentEncoded>")
    prefixed = re.sub(r"<(/?)(?!edXML[ >])([A-Za-z]+)", r"<\1edXML:\2", head)
    prefixed = prefixed.replace(
        "<edXML:edXMLEnvelope>", f'<edXML:edXMLEnvelope xmlns:edXML="{NS}">'
    )
    mixed = text.replace("<PromulgationInfo>", f'<p:PromulgationInfo xmlns:p="{NS}">').replace(
        "</PromulgationInfo>", "</p:PromulgationInfo>"
    )
    for variant in (text, prefixed + marker + tail, mixed):
        refused(
            schemas,
            variant,
            SchemaInvalid,
            line=line_of(variant, "PromulgationDate>"),
            path=f"{MH}/PromulgationInfo/PromulgationDate",
        )


def test_empty_and_null_trace_organ_ids_pass(schemas: EdxmlSchemas) -> None:
    trace = [
        TRACE.replace("000.00.00.G22", "null"),
        TRACE.replace("000.00.00.G22", ""),
        BUSINESS,
        TRACE,
    ]
    notices = checked(schemas, edoc(trace=trace))
    assert [n.code for n in notices] == ["TraceHeaderOrganIdEmpty"] * 2


def test_edoc_response_for_may_be_empty(schemas: EdxmlSchemas) -> None:
    empty = (
        "<ResponseFor>\n  <OrganId></OrganId>\n  <Code></Code>\n"
        "  <PromulgationDate></PromulgationDate>\n  <DocumentId/>\n</ResponseFor>"
    )
    assert checked(schemas, edoc([*HEADER, empty, "<ResponseFor/>"])) == []


def test_documents_without_attachments(schemas: EdxmlSchemas) -> None:
    assert checked(schemas, edoc(references=[], attachments=[])) == []
    bare = re.sub(r"<edXMLBody>.*</AttachmentEncoded>", "</edXMLEnvelope>", edoc(), flags=re.S)
    assert checked(schemas, bare) == []


def test_leaf_text_split_by_a_comment_is_read_whole(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, "<OrganId>000.00.00.H37<", "<OrganId>000.00<!-- x -->.00.H37<"))
    assert checked(schemas, text) == []
    bad = edoc(replaced(HEADER, "<OrganId>000.00.00.H37<", "<OrganId>000.00<!-- x -->.0 0.H37<"))
    refused(
        schemas, bad, InvalidIdentifier, line=line_of(bad, "<!-- x -->"), path=f"{MH}/To[1]/OrganId"
    )


# ------------------------------------------------------------------ cardinalities


@pytest.mark.parametrize(
    "marker",
    [
        "<From>",
        "<To>",
        "<Code>",
        "<PromulgationInfo>",
        "<DocumentType>",
        "<Subject>",
        "<SignerInfo>",
    ],
)
def test_required_header_parts(schemas: EdxmlSchemas, marker: str) -> None:
    header = [h for h in HEADER if not h.startswith(marker)]
    text = edoc(header)
    name = marker.strip("<>")
    found = refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<MessageHeader>"),
        path=MH,
        words=(f"no {name}",),
    )
    assert "expected" in found.message


@pytest.mark.parametrize(
    ("part", "name"),
    [
        (FROM, "From"),
        (CODE, "Code"),
        (PROMULGATION, "PromulgationInfo"),
        (DOCTYPE, "DocumentType"),
        (SUBJECT, "Subject"),
        (SIGNER, "SignerInfo"),
        (CONTENT, "Content"),
        (DUE, "DueDate"),
        (OTHER, "OtherInfo"),
        (DOCUMENT_ID, "DocumentId"),
        ("<SteeringType>1</SteeringType>", "SteeringType"),
        ("<ToPlaces/>", "ToPlaces"),
        ("<ApplicationType/>", "ApplicationType"),
        ("<ResponseForTask/>", "ResponseForTask"),
    ],
)
def test_header_parts_allowed_once(schemas: EdxmlSchemas, part: str, name: str) -> None:
    header = [*HEADER, part] if part in HEADER else [*HEADER, part, part]
    text = edoc(header)
    first_line = part.splitlines()[0]
    refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, first_line, 2, at_start=True),
        path=f"{MH}/{name}[2]",
        words=(f"more than one {name}",),
    )


def test_two_business_blocks(schemas: EdxmlSchemas) -> None:
    text = edoc(trace=[BUSINESS, TRACE, BUSINESS])
    refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<Bussiness>", 2),
        path=f"{TRACE_LIST}/Bussiness[2]",
        words=("Bussiness",),
    )


def test_xmldsig_element_other_than_signature(schemas: EdxmlSchemas) -> None:
    dsig = "http://www.w3.org/2000/09/xmldsig#"
    text = edoc(header_tail=f'<KeyInfo xmlns="{dsig}"><KeyName>k</KeyName></KeyInfo>')
    refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<KeyInfo"),
        path="/edXML/edXMLEnvelope/edXMLHeader/KeyInfo",
        words=("Signature",),
    )
    good = edoc(header_tail=f'<Signature xmlns="{dsig}"><SignedInfo/></Signature>')
    assert checked(schemas, good) == []


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2019/02/28", True),
        ("2019/02/29", False),
        ("2019/02/30", False),
        ("2020/02/29", True),
        ("1900/02/29", False),
        ("2000/02/29", True),
        ("2019/04/31", False),
        ("2019/12/31", True),
        ("0000/01/01", False),
    ],
)
def test_promulgation_date_must_exist(schemas: EdxmlSchemas, value: str, ok: bool) -> None:
    text = edoc(replaced(HEADER, "<PromulgationDate>2019/01/17<", f"<PromulgationDate>{value}<"))
    if ok:
        assert checked(schemas, text) == []
        return
    found = refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<PromulgationDate>"),
        path=f"{MH}/PromulgationInfo/PromulgationDate",
    )
    assert "PromulgationDate" in found.message and "yyyy/MM/dd" in found.message
    assert value in found.message


def test_date_message_explains_the_month(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, "<PromulgationDate>2019/01/17<", "<PromulgationDate>2019/02/30<"))
    found = refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<PromulgationDate>"),
        path=f"{MH}/PromulgationInfo/PromulgationDate",
    )
    assert "February 2019 has 28 days" in found.message


def test_due_date_must_exist(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, DUE, "<DueDate>2019/06/31</DueDate>"))
    refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<DueDate>"),
        path=f"{MH}/DueDate",
        words=("DueDate", "June 2019 has 30 days"),
    )


def test_empty_due_date_is_fine(schemas: EdxmlSchemas) -> None:
    assert checked(schemas, edoc(replaced(HEADER, DUE, "<DueDate/>"))) == []


def test_response_for_date_must_exist(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, "2018/09/28", "2018/09/31"))
    refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "2018/09/31"),
        path=f"{MH}/ResponseFor/PromulgationDate",
        words=("ResponseFor/PromulgationDate",),
    )


def test_trace_timestamp_must_exist(schemas: EdxmlSchemas) -> None:
    text = edoc(trace=[TRACE, TRACE.replace("2019/01/17", "2019/02/29"), BUSINESS])
    refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "2019/02/29"),
        path=f"{TRACE_LIST}/TraceHeader[2]/Timestamp",
        words=("TraceHeader/Timestamp", "yyyy/MM/dd HH:mm:ss"),
    )


def test_status_timestamp_must_exist(schemas: EdxmlSchemas) -> None:
    text = status(replaced(STATUS_PARTS, "2018/09/28 17:25:11", "2018/11/31 17:25:11"))
    refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<Timestamp>"),
        path=f"{MH}/Timestamp",
        words=("Timestamp", "November 2018 has 30 days"),
    )


# ------------------------------------------------------------------ identifiers


@pytest.mark.parametrize(
    ("organ_id", "standard"),
    [
        ("000.00.00.H37", True),
        ("000.00.00.G22", True),
        ("00.53.W00", True),
        ("28.22.H17", False),
        ("01.02.G22", False),
        ("001.00.20.TT2", False),
        ("999.010.01.H22", False),
        ("vxp.saas.03", False),
        ("H37", False),
        ("a" * 35, False),
        ("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15", False),
    ],
)
def test_identifiers_accepted(schemas: EdxmlSchemas, organ_id: str, standard: bool) -> None:
    notices = checked(schemas, edoc(replaced(HEADER, "000.00.00.H37", organ_id)))
    if standard:
        assert notices == []
    else:
        assert [(n.code, n.path) for n in notices] == [
            (NOTICE_NON_STANDARD_IDENTIFIER, f"{MH}/To[1]/OrganId")
        ]


@pytest.mark.parametrize(
    ("organ_id", "words"),
    [
        ("000.00.00 H37", "a space"),
        (" 000.00.00.H37", "a space"),
        ("000.00.00.H37\n", "whitespace"),
        ("000.00.00.H37\t", "whitespace"),
        ("000.00.00.H37\u0085", "U+0085"),
        ("000.00.00.H37\u200b", "U+200B"),
        ("a" * 36, "36 characters"),
        ("000..00.H37", "empty group"),
        (".000.00.H37", "empty group"),
        ("000.00.00.H37.", "empty group"),
        ("000-00-00-H37", "'-'"),
        ("000_00.H37", "'_'"),
        ("000.00.00.Đ37", "'Đ'"),
        ("000/00/H37", "'/'"),
        ("", "empty"),
    ],
)
def test_bad_recipient_identifier(schemas: EdxmlSchemas, organ_id: str, words: str) -> None:
    header = replaced(
        HEADER, "<OrganId>000.00.00.H41</OrganId>\n</To>", f"<OrganId>{organ_id}</OrganId>\n</To>"
    )
    text = edoc(header)
    organ_id_line = line_of(text, "<To>", 2) + 1  # the second To's first child
    found = refused(
        schemas,
        text,
        InvalidIdentifier,
        line=organ_id_line,
        path=f"{MH}/To[2]/OrganId",
        words=("To/OrganId", words),
    )
    assert "000.00.00.H37" in found.message  # the message shows an example of what is expected


def test_null_is_not_an_organisation(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, "<OrganId>000.00.00.H37<", "<OrganId>null<"))
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "<OrganId>null<"),
        path=f"{MH}/To[1]/OrganId",
        words=("'null'",),
    )
    optional = edoc(
        replaced(
            HEADER,
            "<OrganId>000.00.00.H41</OrganId>\n  <Code>",
            "<OrganId>null</OrganId>\n  <Code>",
        )
    )
    assert checked(schemas, optional) == []


def test_bad_sender_identifier(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, "000.00.00.G22", "000.00.00.G 22"))
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "G 22"),
        path=f"{MH}/From/OrganId",
        words=("From/OrganId",),
    )


def test_empty_sender_identifier(schemas: EdxmlSchemas) -> None:
    text = edoc(replaced(HEADER, "<OrganId>000.00.00.G22</OrganId>", "<OrganId/>"))
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "<OrganId/>"),
        path=f"{MH}/From/OrganId",
        words=("empty",),
    )


def test_bad_identifier_in_edoc_response_for(schemas: EdxmlSchemas) -> None:
    text = edoc(
        replaced(
            HEADER,
            "<OrganId>000.00.00.H41</OrganId>\n  <Code>",
            "<OrganId>H 41</OrganId>\n  <Code>",
        )
    )
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "H 41"),
        path=f"{MH}/ResponseFor/OrganId",
    )


def test_bad_trace_identifier(schemas: EdxmlSchemas) -> None:
    text = edoc(trace=[TRACE.replace("000.00.00.G22", "000.00.00.G22 (VPCP)"), BUSINESS])
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "(VPCP)"),
        path=f"{TRACE_LIST}/TraceHeader/OrganId",
        words=("TraceHeader/OrganId",),
    )


def test_bad_receiver_identifier(schemas: EdxmlSchemas) -> None:
    text = edoc(trace=[TRACE, BUSINESS.replace("000.00.00.H41", "000.00.00.H41;H14")])
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "H41;H14"),
        path=f"{TRACE_LIST}/Bussiness/BussinessDocumentInfo/ReceiverList/Receiver/OrganId",
        words=("Receiver/OrganId", "';'"),
    )


def test_bad_replacement_identifier(schemas: EdxmlSchemas) -> None:
    text = edoc(trace=[TRACE, BUSINESS.replace("<OrganId>000.00.00.H14<", "<OrganId><")])
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "<OrganId></OrganId>"),
        path=f"{TRACE_LIST}/Bussiness/ReplacementInfoList/ReplacementInfo/OrganIdList/OrganId",
    )


def test_status_goes_to_a_non_empty_response_for(schemas: EdxmlSchemas) -> None:
    text = status(replaced(STATUS_PARTS, "<OrganId>000.00.00.G22</OrganId>", "<OrganId></OrganId>"))
    refused(
        schemas,
        text,
        InvalidIdentifier,
        line=line_of(text, "<OrganId></OrganId>"),
        path=f"{MH}/ResponseFor/OrganId",
        words=("ResponseFor/OrganId", "empty"),
    )


def test_status_sender_identifier(schemas: EdxmlSchemas) -> None:
    text = status(
        replaced(STATUS_PARTS, "<OrganId>000.00.00.H41</OrganId>", "<OrganId>x y</OrganId>")
    )
    refused(schemas, text, InvalidIdentifier, line=line_of(text, "x y"), path=f"{MH}/From/OrganId")


# ------------------------------------------------------------------ status codes


@pytest.mark.parametrize("code", sorted(ACCEPTED_STATUS_CODES))
def test_known_status_codes(schemas: EdxmlSchemas, code: str) -> None:
    assert checked(schemas, status(replaced(STATUS_PARTS, ">03<", f">{code}<"))) == []


@pytest.mark.parametrize("code", sorted(RESERVED_STATUS_CODES))
def test_reserved_status_codes_pass_with_a_notice(schemas: EdxmlSchemas, code: str) -> None:
    text = status(replaced(STATUS_PARTS, ">03<", f">{code}<"))
    notices = checked(schemas, text)
    assert [(n.code, n.path, n.line) for n in notices] == [
        (NOTICE_RESERVED_STATUS_CODE, f"{MH}/StatusCode", line_of(text, "<StatusCode>"))
    ]


def test_status_code_sets() -> None:
    assert set(ACCEPTED_STATUS_CODES) == {"01", "02", "03", "04", "05", "06", "13", "15", "16"}
    assert set(RESERVED_STATUS_CODES) == {"07", "08", "09", "10", "11", "12", "14"}


@pytest.mark.parametrize("code", ["00", "17", "20", "99"])
def test_unknown_status_codes_are_refused(schemas: EdxmlSchemas, code: str) -> None:
    text = status(replaced(STATUS_PARTS, ">03<", f">{code}<"))
    found = refused(
        schemas,
        text,
        SchemaInvalid,
        line=line_of(text, "<StatusCode>"),
        path=f"{MH}/StatusCode",
        words=("StatusCode", code),
    )
    assert "01 to 06, 13, 15 or 16" in found.message


def test_status_response_for_that_names_no_document(schemas: EdxmlSchemas) -> None:
    text = status(
        replaced(
            STATUS_PARTS,
            STATUS_RESPONSE_FOR,
            "<ResponseFor>\n  <OrganId>000.00.00.G22</OrganId>\n</ResponseFor>",
        )
    )
    assert [(n.code, n.path) for n in checked(schemas, text)] == [
        (NOTICE_FIELD_EMPTY, f"{MH}/ResponseFor")
    ]


def test_check_status_refuses_a_header_without_status_code() -> None:
    """The XSD catches this first; the second pass must not rely on it."""
    text = status(without(STATUS_PARTS, "<StatusCode>"))
    root = etree.fromstring(text.encode(), PARSER)
    with pytest.raises(SchemaInvalid) as caught:
        check_status(root)
    assert (caught.value.line, caught.value.path) == (line_of(text, "<MessageHeader>"), MH)
    assert "StatusCode" in caught.value.message


def test_check_edoc_refuses_unknown_header_elements_itself() -> None:
    text = edoc([*HEADER, "<Urgency>1</Urgency>"])
    root = etree.fromstring(text.encode(), PARSER)
    with pytest.raises(SchemaInvalid) as caught:
        check_edoc(root)
    assert (caught.value.line, caught.value.path) == (line_of(text, "<Urgency>"), f"{MH}/Urgency")


def test_wrong_root_is_an_unsupported_packet() -> None:
    root = etree.fromstring(b'<edXML xmlns="urn:other"><edXMLEnvelope/></edXML>', PARSER)
    with pytest.raises(UnsupportedPacket):
        check_edoc(root)
    with pytest.raises(UnsupportedPacket):
        check_status(root)


# ------------------------------------------------------------------ attachments


def test_reference_without_attachment(schemas: EdxmlSchemas) -> None:
    text = edoc(references=[reference(), reference("cid:2", "b.pdf")])
    refused(
        schemas,
        text,
        AttachmentInvalid,
        line=line_of(text, "<Reference>", 2),
        path=f"{MANIFEST}/Reference[2]",
        words=("cid:2", "no Attachment"),
    )


def test_attachment_without_reference(schemas: EdxmlSchemas) -> None:
    text = edoc(attachments=[attachment(), attachment("cid:9", "b.pdf")])
    refused(
        schemas,
        text,
        AttachmentInvalid,
        line=line_of(text, "cid:9"),
        path=f"{ENCODED}/Attachment[2]/ContentId",
        words=("cid:9", "not listed"),
    )


def test_duplicate_content_id_in_manifest(schemas: EdxmlSchemas) -> None:
    text = edoc(references=[reference(), reference(name="b.pdf")])
    refused(
        schemas,
        text,
        AttachmentInvalid,
        line=line_of(text, "<ContentId>cid:1", 2),
        path=f"{MANIFEST}/Reference[2]/ContentId",
        words=("twice",),
    )


def test_duplicate_content_id_in_attachments(schemas: EdxmlSchemas) -> None:
    text = edoc(attachments=[attachment(), attachment(name="b.pdf")])
    refused(
        schemas,
        text,
        AttachmentInvalid,
        line=line_of(text, "<ContentId>cid:1", 3),
        path=f"{ENCODED}/Attachment[2]/ContentId",
        words=("twice",),
    )


def test_empty_content_id(schemas: EdxmlSchemas) -> None:
    text = edoc(references=[reference(" ")], attachments=[attachment(" ")])
    refused(
        schemas,
        text,
        AttachmentInvalid,
        line=line_of(text, "<ContentId> "),
        path=f"{MANIFEST}/Reference/ContentId",
        words=("empty",),
    )


def test_several_attachments_in_any_order(schemas: EdxmlSchemas) -> None:
    refs = [reference("cid:1", "a.pdf"), reference("cid:2", "Báo cáo số 2 (bản chính).docx")]
    atts = [attachment("cid:2", "Báo cáo số 2 (bản chính).docx"), attachment("cid:1", "a.pdf")]
    assert checked(schemas, edoc(references=refs, attachments=atts)) == []


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../../etc/passwd", "path separator"),
        ("a/b.pdf", "path separator"),
        ("/etc/passwd", "path separator"),
        ("C:\\Windows\\x.pdf", "':'"),
        ("..\\x.pdf", "path separator"),
        ("C:x.pdf", "':'"),
        ("a.pdf:stream", "':'"),
        ("..", "directory"),
        (".", "directory"),
        ("", "empty"),
        ("   ", "empty"),
        ("a\u202efdp.exe", "U+202E"),
        ("a\u0085b.pdf", "U+0085"),
        ("a\tb.pdf", "U+0009"),
    ],
)
def test_unsafe_attachment_names(schemas: EdxmlSchemas, name: str, words: str) -> None:
    text = edoc(attachments=[attachment(name=name)])
    found = refused(
        schemas,
        text,
        AttachmentInvalid,
        line=line_of(text, "<AttachmentName>", 2),
        path=f"{ENCODED}/Attachment/AttachmentName",
        words=(words,),
    )
    assert "expected a plain file name" in found.message


def test_unsafe_name_in_manifest(schemas: EdxmlSchemas) -> None:
    text = edoc(references=[reference(name="x/../../y.pdf")])
    refused(
        schemas,
        text,
        AttachmentInvalid,
        line=line_of(text, "x/../../y.pdf"),
        path=f"{MANIFEST}/Reference/AttachmentName",
    )


# ------------------------------------------------------------------ notices


def test_field_length_notices(schemas: EdxmlSchemas) -> None:
    header = replaced(HEADER, SUBJECT, f"<Subject>{'x' * 501}</Subject>")
    header = replaced(header, "<CodeNumber>123<", "<CodeNumber>123456789012<")
    header = replaced(header, "<OrganName>UBND tỉnh Lạng Sơn<", f"<OrganName>{'y' * 201}<")
    notices = checked(
        schemas,
        edoc(
            header,
            references=[reference(name="n" * 201 + ".pdf")],
            attachments=[attachment(name="n" * 201 + ".pdf")],
        ),
    )
    found = {(n.code, n.path, n.extra["limit"], n.extra["length"]) for n in notices}
    assert found == {
        (NOTICE_FIELD_TOO_LONG, f"{MH}/Subject", 500, 501),
        (NOTICE_FIELD_TOO_LONG, f"{MH}/Code/CodeNumber", 11, 12),
        (NOTICE_FIELD_TOO_LONG, f"{MH}/To[1]/OrganName", 200, 201),
        (NOTICE_FIELD_TOO_LONG, f"{MANIFEST}/Reference/AttachmentName", 200, 205),
        (NOTICE_FIELD_TOO_LONG, f"{ENCODED}/Attachment/AttachmentName", 200, 205),
    }
    assert all(n.line is not None for n in notices)


def test_limits_at_the_boundary_give_no_notice(schemas: EdxmlSchemas) -> None:
    header = replaced(HEADER, SUBJECT, f"<Subject>{'x' * 500}</Subject>")
    header = replaced(header, "<CodeNumber>123<", "<CodeNumber>12345678901<")
    assert checked(schemas, edoc(header)) == []


def test_to_places_are_not_limited_like_the_promulgation_place(schemas: EdxmlSchemas) -> None:
    places = f"<ToPlaces>\n  <Place>{'Các bộ, ' * 20}</Place>\n</ToPlaces>"
    assert checked(schemas, edoc([*HEADER, places])) == []
    header = replaced(HEADER, "<Place>Hà Nội<", f"<Place>{'p' * 51}<")
    assert codes(checked(schemas, edoc(header))) == [NOTICE_FIELD_TOO_LONG]


def test_duplicate_recipient_notice(schemas: EdxmlSchemas) -> None:
    notices = checked(schemas, edoc([*HEADER, TO_2]))
    assert [(n.code, n.path) for n in notices] == [(NOTICE_DUPLICATE_RECIPIENT, f"{MH}/To[3]")]


def test_empty_subject_notice(schemas: EdxmlSchemas) -> None:
    notices = checked(schemas, edoc(replaced(HEADER, SUBJECT, "<Subject> </Subject>")))
    assert [(n.code, n.path) for n in notices] == [(NOTICE_FIELD_EMPTY, f"{MH}/Subject")]


# ------------------------------------------------------------------ element_path


def test_element_path_indexes_only_repeated_names() -> None:
    root = etree.fromstring(edoc().encode(), PARSER)
    to_2 = root.find(f".//{{{NS}}}MessageHeader/{{{NS}}}To[2]/{{{NS}}}OrganId")
    from_ = root.find(f".//{{{NS}}}From/{{{NS}}}OrganId")
    assert to_2 is not None and from_ is not None
    assert element_path(to_2) == f"{MH}/To[2]/OrganId"
    assert element_path(from_) == f"{MH}/From/OrganId"
    assert element_path(root) == "/edXML"


def test_element_path_ignores_prefixes_and_comments() -> None:
    text = (
        f'<edXML xmlns="{NS}"><!-- c --><e:edXMLEnvelope xmlns:e="{NS}"><!-- c -->'
        "<e:edXMLHeader/></e:edXMLEnvelope></edXML>"
    )
    root = etree.fromstring(text.encode(), PARSER)
    header = root[1][1]
    assert element_path(header) == "/edXML/edXMLEnvelope/edXMLHeader"
    assert element_path(root[0]) == "/edXML/comment()"


def test_element_path_strips_any_namespace_and_counts_by_namespace() -> None:
    # Same local name in two namespaces: not a repeat. Braces in a namespace URI (which
    # only a recovering parser lets through) must not leak into the path.
    dsig = "http://www.w3.org/2000/09/xmldsig#"
    text = (
        f'<edXML xmlns="{NS}" xmlns:d="{dsig}" xmlns:x="urn:a}}b" xmlns:y="{{urn:c" '
        f'xmlns:z="{NS}}}z"><d:Signature><d:KeyInfo/><d:KeyInfo/></d:Signature><Signature/>'
        "<x:Thing/><y:Thing/><y:Thing/><z:Thing/></edXML>"
    )
    root = etree.fromstring(text.encode(), etree.XMLParser(recover=True))
    paths = [element_path(el) for el in root.iter()]
    assert paths == [
        "/edXML", "/edXML/Signature", "/edXML/Signature/KeyInfo[1]",
        "/edXML/Signature/KeyInfo[2]", "/edXML/Signature", "/edXML/Thing",
        "/edXML/Thing[1]", "/edXML/Thing[2]", "/edXML/Thing",
    ]


def test_element_path_of_a_detached_element_starts_at_its_own_top() -> None:
    root = etree.fromstring(edoc().encode(), PARSER)
    header = root.find(f".//{{{NS}}}edXMLHeader")
    assert header is not None
    subject = header.find(f".//{{{NS}}}Subject")
    assert subject is not None
    header.getparent().remove(header)  # type: ignore[union-attr]
    assert element_path(subject) == "/edXMLHeader/MessageHeader/Subject"
    assert element_path(header) == "/edXMLHeader"


# ------------------------------------------------------------------ a realistic size
# How fast the second pass runs is measured by tests/bench/profile_reader.py, not here:
# timings on a shared machine make flaky tests.


def _five_kb_packet() -> str:
    recipients = [
        org(
            "To",
            f"000.{i:02d}.00.H37",
            f"<OrganName>Sở số {i} tỉnh Lạng Sơn</OrganName>",
            "<OrganAdd>Số 1 đường Hoàng Văn Thụ, TP Lạng Sơn</OrganAdd>",
            "<Email>so@langson.gov.vn</Email>",
            "<Telephone>0205 3812 345</Telephone>",
        )
        for i in range(1, 13)
    ]
    text = edoc([FROM, *recipients, *HEADER[3:]])
    assert 4500 <= len(text.encode()) <= 6000, len(text.encode())
    return text


def test_a_5kb_packet_with_twelve_recipients_gives_no_notices() -> None:
    root = etree.fromstring(_five_kb_packet().encode(), PARSER)
    assert check_edoc(root) == []

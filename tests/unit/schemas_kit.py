"""The project's edXML XSDs: how they load, and what they accept and refuse.

The shared part of the test_schemas_*.py files: samples, packet builders and the helpers
that validate. Acceptance tests cover the official SDK samples and the producer variants
of edxml.md §1-§6; refusal tests check that the XSD's first error points at the
offending line. Rules the XSD leaves to the second pass are tested in test_checks_*.py.
The module-scoped ``schemas`` fixture is tests/unit/checks_kit.py's (the same one).
"""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from bus.schemas import (
    EDXML_NS,
)

NS = EDXML_NS
DSIG = "http://www.w3.org/2000/09/xmldsig#"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "edxml"


def samples_dir() -> Path:
    override = os.environ.get("LGSP_SAMPLES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "edxml-samples"


def sample_files(prefix: str) -> list[Path]:
    return sorted(samples_dir().glob(f"{prefix}*.edxml"))


PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def parse(text: str | bytes) -> etree._Element:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return etree.fromstring(data, PARSER)


def repair_edoc_sample(data: bytes) -> bytes:
    """edoc.edxml uses two undeclared prefixes; declare them on the root so it parses."""
    root_tag = f'<edXML xmlns="{NS}">'.encode()
    assert root_tag in data
    return data.replace(
        root_tag,
        f'<edXML xmlns="{NS}" xmlns:edXML="{NS}" '
        'xmlns:xlink="http://www.w3.org/1999/xlink">'.encode(),
        1,
    )


def load_sample(path: Path) -> etree._Element:
    data = path.read_bytes()
    if path.name == "edoc.edxml":
        data = repair_edoc_sample(data)
    return parse(data)


# ------------------------------------------------------------------ packet builders

FROM = """<From>
  <OrganId>000.00.00.G22</OrganId>
  <OrganName>Văn phòng Chính phủ</OrganName>
  <OrganAdd>Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội</OrganAdd>
  <Email>vpcp@gov.vn</Email>
</From>"""
TO = """<To>
  <OrganId>000.00.00.H37</OrganId>
  <OrganName>UBND tỉnh Lạng Sơn</OrganName>
</To>"""
CODE = """<Code>
  <CodeNumber>123</CodeNumber>
  <CodeNotation>UBND-VP</CodeNotation>
</Code>"""
PROMULGATION = """<PromulgationInfo>
  <Place>Hà Nội</Place>
  <PromulgationDate>2019/01/17</PromulgationDate>
</PromulgationInfo>"""
DOCTYPE = """<DocumentType>
  <Type>1</Type>
  <TypeDetail>0</TypeDetail>
  <TypeName>Công văn</TypeName>
</DocumentType>"""
SUBJECT = "<Subject>V/v kết nối liên thông</Subject>"
CONTENT = "<Content>Nội dung</Content>"
SIGNER = """<SignerInfo>
  <Competence>KT. CHỦ TỊCH</Competence>
  <Position>Phó Chủ tịch</Position>
  <FullName>Nguyễn Văn A</FullName>
</SignerInfo>"""
DUE = "<DueDate>2019/02/28</DueDate>"
OTHER = """<OtherInfo>
  <Priority>2</Priority>
  <SphereOfPromulgation>Liên thông</SphereOfPromulgation>
  <TyperNotation>TVC</TyperNotation>
  <PromulgationAmount>2</PromulgationAmount>
  <PageAmount>3</PageAmount>
  <Direction>false</Direction>
  <Appendixes>
    <Appendix>Phụ lục I</Appendix>
  </Appendixes>
</OtherInfo>"""
RESPONSE_FOR = """<ResponseFor>
  <OrganId>000.00.00.H41</OrganId>
  <Code>7816/VPCP-TTĐT</Code>
  <PromulgationDate>2018/09/28</PromulgationDate>
  <DocumentId>000.00.00.H41,2018/09/28,7816/VPCP-TTĐT</DocumentId>
</ResponseFor>"""
STEERING = "<SteeringType>1</SteeringType>"
TO_PLACES = """<ToPlaces>
  <Place>Các bộ, cơ quan ngang bộ</Place>
</ToPlaces>"""
DOCUMENT_ID = "<DocumentId>9fbfbad2-f1f8-4256-a2eb-50fb1061cddb</DocumentId>"

SDK_ORDER = [
    FROM,
    TO,
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
    STEERING,
    TO_PLACES,
]
OLDER_ORDER = [
    FROM,
    TO,
    CODE,
    PROMULGATION,
    DOCTYPE,
    SUBJECT,
    CONTENT,
    SIGNER,
    DUE,
    TO_PLACES,
    OTHER,
    STEERING,
    DOCUMENT_ID,
]

TRACE = """<TraceHeader>
  <OrganId>000.00.00.G22</OrganId>
  <Timestamp>2019/01/17 08:30:00</Timestamp>
</TraceHeader>"""
BUSINESS = """<Bussiness>
  <BussinessDocType>0</BussinessDocType>
  <BussinessDocReason>Văn bản mới</BussinessDocReason>
  <Paper>0</Paper>
  <StaffInfo>
    <Department>Văn thư</Department>
    <Staff>Trần Thị B</Staff>
  </StaffInfo>
</Bussiness>"""
REFERENCE = """<Reference>
  <ContentId>cid:1</ContentId>
  <ContentType>application/pdf</ContentType>
  <AttachmentName>Cong van 123.pdf</AttachmentName>
</Reference>"""
ATTACHMENT = """<Attachment>
  <ContentId>cid:1</ContentId>
  <AttachmentName>Cong van 123.pdf</AttachmentName>
  <ContentType>application/pdf</ContentType>
  <ContentTransferEncoded>JVBERi0xLjQK</ContentTransferEncoded>
</Attachment>"""


def edoc(
    header: list[str] | None = None,
    *,
    trace: list[str] | None = None,
    signature: str = "",
    references: list[str] | None = None,
    attachments: list[str] | None = None,
    root_extra: str = "",
) -> str:
    """A document packet in the default namespace, unprefixed, one element per line."""
    header = SDK_ORDER if header is None else header
    trace = [TRACE, BUSINESS] if trace is None else trace
    references = [REFERENCE] if references is None else references
    attachments = [ATTACHMENT] if attachments is None else attachments
    nl = "\n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}"{root_extra}>
<edXMLEnvelope>
<edXMLHeader>
<MessageHeader>
{nl.join(header)}
</MessageHeader>
<TraceHeaderList>
{nl.join(trace)}
</TraceHeaderList>
{signature}
</edXMLHeader>
<edXMLBody>
<edXMLManifest version="1.0">
{nl.join(references)}
</edXMLManifest>
</edXMLBody>
</edXMLEnvelope>
<AttachmentEncoded>
{nl.join(attachments)}
</AttachmentEncoded>
</edXML>
"""


STATUS_FROM = """<From>
  <OrganId>000.00.00.H41</OrganId>
  <OrganName>UBND tỉnh Nghệ An</OrganName>
</From>"""
STATUS_RESPONSE_FOR = """<ResponseFor>
  <OrganId>000.00.00.G22</OrganId>
  <Code>7816/VPCP-TTĐT</Code>
  <PromulgationDate>2018/09/28</PromulgationDate>
  <DocumentId>000.00.00.G22,2018/09/28,7816/VPCP-TTĐT</DocumentId>
</ResponseFor>"""
STAFF = """<StaffInfo>
  <Department>Văn thư</Department>
  <Staff>Nguyễn Thị C</Staff>
</StaffInfo>"""
STATUS_PARTS = [
    STATUS_FROM,
    STATUS_RESPONSE_FOR,
    STAFF,
    "<StatusCode>03</StatusCode>",
    "<Description>Tiếp nhận</Description>",
    "<Timestamp>2018/09/28 17:25:11</Timestamp>",
]


def status(parts: list[str] | None = None, *, after_header: str = "") -> str:
    nl = "\n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
<edXMLEnvelope>
<edXMLHeader>
<MessageHeader>
{nl.join(STATUS_PARTS if parts is None else parts)}
</MessageHeader>
{after_header}
</edXMLHeader>
</edXMLEnvelope>
</edXML>
"""


def line_of(text: str, marker: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``marker``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if marker in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{marker!r} not found {occurrence} time(s)")


# ------------------------------------------------------------------ fixtures and helpers


def errors(schema: etree.XMLSchema, text: str) -> list[etree._LogEntry]:
    root = parse(text)
    if schema.validate(root):
        return []
    return list(schema.error_log)


def assert_valid(schema: etree.XMLSchema, text: str) -> None:
    found = errors(schema, text)
    assert not found, [f"line {e.line}: {e.message}" for e in found]


def assert_refused_at(schema: etree.XMLSchema, text: str, line: int, *words: str) -> None:
    found = errors(schema, text)
    assert found, "the schema accepted the packet"
    first = found[0]
    assert first.line == line, f"first error at line {first.line}, not {line}: {first.message}"
    for word in words:
        assert word in first.message, first.message

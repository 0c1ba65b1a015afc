"""Second pass (bus.edxml.checks): what the XSDs accept but the bus must still refuse.

The shared part of the test_checks_*.py files: packet builders, the module-scoped
``schemas`` fixture (registered for them in tests/unit/conftest.py) and the helpers that
run both passes. Every packet refused there is first shown to pass its XSD, so each test
proves the second pass is what catches the problem, with the right error class, line and
path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from bus.edxml.checks import (
    check_edoc,
    check_status,
)
from bus.errors import (
    LgspError,
    Notice,
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

"""The project's edXML XSDs: how they load, and what they accept and refuse.

Acceptance tests cover the official SDK samples and the producer variants of edxml.md
§1-§6; refusal tests check that the XSD's first error points at the offending line.
Rules the XSD leaves to the second pass are tested in test_checks.py.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from lxml import etree

from bus.errors import ConfigInvalid
from bus.schemas import (
    EDXML_NS,
    EdxmlSchemas,
    default_schemas,
    default_schemas_dir,
    load_edxml_schemas,
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


@pytest.fixture(scope="module")
def schemas() -> EdxmlSchemas:
    return load_edxml_schemas(SCHEMA_DIR)


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


# ------------------------------------------------------------------ loading


def test_default_schemas_compile_once_and_carry_the_version() -> None:
    first = default_schemas()
    assert first is default_schemas()
    assert isinstance(first.edoc, etree.XMLSchema)
    assert isinstance(first.status, etree.XMLSchema)
    assert re.fullmatch(r"\d+\.\d+\.\d+", first.version)
    for name in ("common.xsd", "edoc.xsd", "status.xsd"):
        root = etree.parse(str(SCHEMA_DIR / name)).getroot()
        assert root.get("version") == first.version, name


def test_readme_changelog_mentions_the_current_version(schemas: EdxmlSchemas) -> None:
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    assert schemas.version in readme


def test_default_directory_is_the_repository_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LGSP_SCHEMAS_DIR", raising=False)
    assert default_schemas_dir() == SCHEMA_DIR


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "edxml"
    target.mkdir()
    for name in ("common.xsd", "edoc.xsd", "status.xsd"):
        shutil.copy(SCHEMA_DIR / name, target / name)
    return target


def test_environment_overrides_the_directory(
    monkeypatch: pytest.MonkeyPatch, schema_copy: Path
) -> None:
    monkeypatch.setenv("LGSP_SCHEMAS_DIR", str(schema_copy))
    assert default_schemas_dir() == schema_copy
    loaded = load_edxml_schemas()
    assert loaded.edoc.validate(parse(edoc()))


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="not found"):
        load_edxml_schemas(tmp_path / "nowhere")


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_versions_must_agree(schema_copy: Path) -> None:
    common = schema_copy / "common.xsd"
    text = common.read_text(encoding="utf-8")
    bumped = re.sub(r'(<xs:schema[^>]*\sversion=")[^"]*"', r'\g<1>999.0.0"', text, count=1)
    assert bumped != text
    common.write_text(bumped, encoding="utf-8")
    with pytest.raises(ConfigInvalid, match="same non-empty version"):
        load_edxml_schemas(schema_copy)


@pytest.mark.parametrize(
    "location",
    [
        "../outside.xsd",
        "http://example.invalid/edxml.xsd",
        "file:///etc/passwd",
        "/etc/passwd",
        "linked.xsd",
    ],
)
def test_includes_outside_the_folder_are_refused(schema_copy: Path, location: str) -> None:
    outside = schema_copy.parent / "outside.xsd"
    shutil.copy(schema_copy / "common.xsd", outside)
    (schema_copy / "linked.xsd").symlink_to(outside)
    _replace_in(
        schema_copy / "edoc.xsd", 'schemaLocation="common.xsd"', f'schemaLocation="{location}"'
    )
    with pytest.raises(ConfigInvalid) as caught:
        load_edxml_schemas(schema_copy)
    assert "refused" in str(caught.value)
    assert location.rsplit("/", 1)[-1] in str(caught.value)


def test_entry_schema_linked_from_outside_is_refused(schema_copy: Path) -> None:
    outside = schema_copy.parent / "edoc.xsd"
    (schema_copy / "edoc.xsd").rename(outside)
    (schema_copy / "edoc.xsd").symlink_to(outside)
    with pytest.raises(ConfigInvalid, match="inside"):
        load_edxml_schemas(schema_copy)


def test_a_broken_schema_is_a_config_error_with_its_file(schema_copy: Path) -> None:
    _replace_in(schema_copy / "status.xsd", 'type="StatusCodeType"', 'type="NoSuchType"')
    with pytest.raises(ConfigInvalid) as caught:
        load_edxml_schemas(schema_copy)
    assert "status.xsd" in str(caught.value)


def test_instance_schema_location_hints_are_ignored(schemas: EdxmlSchemas, tmp_path: Path) -> None:
    trap = tmp_path / "trap.xsd"
    trap.write_text("not a schema", encoding="utf-8")
    text = edoc(
        root_extra=' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsi:schemaLocation="{NS} {trap.as_uri()}"'
    )
    assert_valid(schemas.edoc, text)


# ------------------------------------------------------------------ official samples


@pytest.mark.parametrize("path", sample_files("edoc"), ids=lambda p: p.name)
def test_official_edoc_samples_validate(schemas: EdxmlSchemas, path: Path) -> None:
    root = load_sample(path)
    assert schemas.edoc.validate(root), list(schemas.edoc.error_log)
    assert not schemas.status.validate(root)


@pytest.mark.parametrize("path", sample_files("status"), ids=lambda p: p.name)
def test_official_status_samples_validate(schemas: EdxmlSchemas, path: Path) -> None:
    root = load_sample(path)
    assert schemas.status.validate(root), list(schemas.status.error_log)
    assert not schemas.edoc.validate(root)


def test_samples_are_all_there() -> None:
    assert len(sample_files("edoc")) == 5
    assert len(sample_files("status")) == 10


def test_raw_edoc_sample_is_not_namespace_well_formed() -> None:
    """Recorded finding: the SDK's edoc.edxml uses xlink: and edXML: where undeclared."""
    data = (samples_dir() / "edoc.edxml").read_bytes()
    with pytest.raises(etree.XMLSyntaxError) as caught:
        etree.fromstring(data, PARSER)
    messages = [entry.message for entry in caught.value.error_log]
    assert any("xlink" in m for m in messages)


def test_edoc_sample_attachment_placeholder_is_not_the_schemas_concern(
    schemas: EdxmlSchemas,
) -> None:
    root = load_sample(samples_dir() / "edoc.edxml")
    content = root.find(
        f"{{{NS}}}AttachmentEncoded/{{{NS}}}Attachment/{{{NS}}}ContentTransferEncoded"
    )
    assert content is not None
    assert content.text == "${__StringFromFile(test.txt,,,)}"
    assert schemas.edoc.validate(root)


# ------------------------------------------------------------------ accepted variants


def sdk_form(text: str) -> str:
    """The SDK's layout: edXML: prefix declared on the envelope, used everywhere inside it."""
    head, marker, tail = text.partition("<AttachmentEncoded>")
    head = re.sub(r"<(/?)(?!edXML[ >])([A-Za-z]+)", r"<\1edXML:\2", head)
    head = head.replace("<edXML:edXMLEnvelope>", f'<edXML:edXMLEnvelope xmlns:edXML="{NS}">', 1)
    return head + marker + tail


def test_unprefixed_packet(schemas: EdxmlSchemas) -> None:
    assert_valid(schemas.edoc, edoc())


def test_sdk_prefixed_packet(schemas: EdxmlSchemas) -> None:
    text = sdk_form(edoc())
    assert "<edXML:MessageHeader>" in text and "<edXML:Attachment>" not in text
    assert_valid(schemas.edoc, text)


def test_root_declared_prefix_used_everywhere(schemas: EdxmlSchemas) -> None:
    text = re.sub(r"<(/?)(?!\?)([A-Za-z]+)", r"<\1q:\2", edoc())
    text = text.replace(f'<q:edXML xmlns="{NS}">', f'<q:edXML xmlns:q="{NS}">')
    assert "<q:AttachmentEncoded>" in text
    assert_valid(schemas.edoc, text)


def test_mixed_prefixes(schemas: EdxmlSchemas) -> None:
    text = edoc().replace("<edXMLEnvelope>", f'<edXML:edXMLEnvelope xmlns:edXML="{NS}">')
    text = text.replace("</edXMLEnvelope>", "</edXML:edXMLEnvelope>")
    text = text.replace("<Subject>", "<edXML:Subject>").replace("</Subject>", "</edXML:Subject>")
    text = text.replace("<To>", f'<e:To xmlns:e="{NS}">').replace("</To>", "</e:To>")
    assert_valid(schemas.edoc, text)


def test_dotnet_namespace_declarations(schemas: EdxmlSchemas) -> None:
    extra = (
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
    )
    assert_valid(schemas.edoc, edoc(root_extra=extra))


def test_comments_and_processing_instructions_anywhere(schemas: EdxmlSchemas) -> None:
    text = edoc()
    for tag in ("<MessageHeader>", "<From>", "<OrganId>", "<TraceHeaderList>", "<Reference>"):
        text = text.replace(tag, f"{tag}<!-- note -->")
    text = text.replace("</Subject>", "<!-- inside a leaf --></Subject>")
    text = text.replace("<edXMLBody>", "<?producer hint?><edXMLBody>")
    assert_valid(schemas.edoc, text)


def test_older_header_order(schemas: EdxmlSchemas) -> None:
    assert_valid(schemas.edoc, edoc(OLDER_ORDER))


def test_minimal_header(schemas: EdxmlSchemas) -> None:
    minimal = [
        "<From><OrganId>000.00.00.G22</OrganId></From>",
        "<To><OrganId>000.00.00.H37</OrganId></To>",
        "<Code><CodeNumber>1</CodeNumber><CodeNotation>UBND</CodeNotation></Code>",
        "<PromulgationInfo><PromulgationDate>2019/01/17</PromulgationDate></PromulgationInfo>",
        "<DocumentType><Type>1</Type></DocumentType>",
        "<Subject>x</Subject>",
        "<SignerInfo><FullName>A</FullName></SignerInfo>",
    ]
    assert_valid(schemas.edoc, edoc(minimal, trace=[], references=[], attachments=[]))


def test_partial_organisation_blocks_in_any_order(schemas: EdxmlSchemas) -> None:
    to = """<To>
  <Website>www.langson.gov.vn</Website>
  <Email>ls@gov.vn</Email>
  <OrganId>000.00.00.H37</OrganId>
  <OrganizationInCharge>UBND</OrganizationInCharge>
</To>"""
    header = [FROM, to, TO.replace("H37", "H41"), *SDK_ORDER[2:]]
    assert_valid(schemas.edoc, edoc(header))


def test_response_for_empty_or_with_empty_children(schemas: EdxmlSchemas) -> None:
    empty_children = """<ResponseFor>
  <OrganId></OrganId>
  <Code></Code>
  <PromulgationDate></PromulgationDate>
  <DocumentId></DocumentId>
</ResponseFor>"""
    header = [*SDK_ORDER, "<ResponseFor/>", empty_children]
    assert_valid(schemas.edoc, edoc(header))


def test_optional_elements_sent_empty(schemas: EdxmlSchemas) -> None:
    header = [
        h.replace("<DueDate>2019/02/28</DueDate>", "<DueDate></DueDate>")
        .replace("<Priority>2</Priority>", "<Priority/>")
        .replace("<TypeDetail>0</TypeDetail>", "<TypeDetail> </TypeDetail>")
        .replace("<SteeringType>1</SteeringType>", "<SteeringType/>")
        .replace("<PageAmount>3</PageAmount>", "<PageAmount></PageAmount>")
        .replace("<Direction>false</Direction>", "<Direction/>")
        for h in SDK_ORDER
    ]
    assert_valid(schemas.edoc, edoc([*header, "<ApplicationType/>", "<ResponseForTask/>"]))


def test_dates_and_numbers_tolerate_surrounding_whitespace(schemas: EdxmlSchemas) -> None:
    text = edoc().replace("<PromulgationDate>2019/01/17<", "<PromulgationDate>\n  2019/01/17\n<")
    text = text.replace("<Type>1</Type>", "<Type> 1 </Type>")
    assert_valid(schemas.edoc, text)


def test_trace_headers_and_business_in_either_order(schemas: EdxmlSchemas) -> None:
    null_trace = TRACE.replace("000.00.00.G22", "null")
    empty_trace = TRACE.replace("000.00.00.G22", "")
    assert_valid(schemas.edoc, edoc(trace=[BUSINESS, TRACE, null_trace, empty_trace]))
    assert_valid(schemas.edoc, edoc(trace=[TRACE]))


def test_business_blocks_of_updates_and_replacements(schemas: EdxmlSchemas) -> None:
    business = """<Bussiness>
  <DocumentId>000.00.00.G22,2014/02/30,7806/VPCP-TTĐT</DocumentId>
  <BussinessDocType>3</BussinessDocType>
  <BussinessDocReason>Thay thế</BussinessDocReason>
  <Paper>1</Paper>
  <BussinessDocumentInfo>
    <DocumentInfo>1</DocumentInfo>
    <DocumentReceiver>1</DocumentReceiver>
    <ReceiverList>
      <Receiver><OrganId>000.00.00.H41</OrganId><ReceiverType>0</ReceiverType></Receiver>
    </ReceiverList>
  </BussinessDocumentInfo>
  <ReplacementInfoList>
    <ReplacementInfo>
      <DocumentId>000.00.00.G22,2014/01/30,7806/VPCP-TTĐT</DocumentId>
      <OrganIdList><OrganId>000.00.00.H41</OrganId></OrganIdList>
    </ReplacementInfo>
  </ReplacementInfoList>
  <StaffInfo><DepartmentId>VT</DepartmentId><StaffId>42</StaffId></StaffInfo>
</Bussiness>"""
    assert_valid(schemas.edoc, edoc(trace=[TRACE, business]))


QCVN_SIGNATURE = """<Signature>
  <SignedInfo>
    <CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
    <Reference URI=""><DigestValue>AA==</DigestValue></Reference>
  </SignedInfo>
  <SignatureValue>AA==</SignatureValue>
  <KeyInfo><X509Data><X509Certificate>MII=</X509Certificate></X509Data></KeyInfo>
</Signature>"""
DSIG_SIGNATURE = QCVN_SIGNATURE.replace("<Signature>", f'<Signature xmlns="{DSIG}">', 1)


@pytest.mark.parametrize("signature", [QCVN_SIGNATURE, DSIG_SIGNATURE], ids=["qcvn", "xmldsig"])
def test_signature_in_either_namespace(schemas: EdxmlSchemas, signature: str) -> None:
    assert_valid(schemas.edoc, edoc(signature=signature))
    assert_valid(schemas.status, status(after_header=signature))


def test_manifest_reference_variants(schemas: EdxmlSchemas) -> None:
    reference = """<Reference xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="" id="r1">
  <!--<ContentType>application/zip</ContentType>-->
  <AttachmentName>Cong van 123.pdf</AttachmentName>
  <Description>Bản chính</Description>
  <ContentId>cid:1</ContentId>
</Reference>"""
    assert_valid(schemas.edoc, edoc(references=[reference]))


def test_attachment_content_is_any_string(schemas: EdxmlSchemas) -> None:
    attachment = ATTACHMENT.replace("JVBERi0xLjQK", "${__StringFromFile(test.txt,,,)} not base64")
    assert_valid(schemas.edoc, edoc(attachments=[attachment]))


def test_packet_without_attachments(schemas: EdxmlSchemas) -> None:
    text = edoc(references=[], attachments=[])
    assert_valid(schemas.edoc, text)
    text = re.sub(r"<edXMLBody>.*</edXMLBody>", "", text, flags=re.S)
    text = re.sub(r"<AttachmentEncoded>.*</AttachmentEncoded>", "", text, flags=re.S)
    assert_valid(schemas.edoc, text)


@pytest.mark.parametrize(
    "organ_id", ["vxp.saas.03", "001.00.20.TT2", "28.22.H17", "999.010.01.H22", "00.53.W00"]
)
def test_real_world_identifiers(schemas: EdxmlSchemas, organ_id: str) -> None:
    assert_valid(schemas.edoc, edoc().replace("000.00.00.H37", organ_id))


def test_status_children_in_any_order_with_trace_list(schemas: EdxmlSchemas) -> None:
    parts = list(reversed(STATUS_PARTS))
    trace = f"<TraceHeaderList>\n{TRACE}\n</TraceHeaderList>"
    assert_valid(schemas.status, status(parts, after_header=trace))


def test_status_without_optional_parts(schemas: EdxmlSchemas) -> None:
    parts = [
        STATUS_FROM,
        "<ResponseFor><OrganId>000.00.00.G22</OrganId></ResponseFor>",
        "<StatusCode>01</StatusCode>",
        "<Timestamp>2018/09/28 17:25:11</Timestamp>",
    ]
    assert_valid(schemas.status, status(parts))


# ------------------------------------------------------------------ refusals


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_unknown_element_in_message_header(schemas: EdxmlSchemas) -> None:
    text = edoc([*SDK_ORDER[:5], "<Urgency>1</Urgency>", *SDK_ORDER[5:]])
    assert_refused_at(schemas.edoc, text, line_of(text, "<Urgency>"), "Urgency")


def test_unknown_element_in_organisation_block(schemas: EdxmlSchemas) -> None:
    text = _swap(edoc(), "<OrganName>UBND tỉnh Lạng Sơn</OrganName>", "<Nickname>LS</Nickname>")
    assert_refused_at(schemas.edoc, text, line_of(text, "<Nickname>"), "Nickname")


def test_organisation_block_without_organ_id(schemas: EdxmlSchemas) -> None:
    text = _swap(edoc(), "  <OrganId>000.00.00.G22</OrganId>\n  <OrganName>Văn", "  <OrganName>Văn")
    assert_refused_at(schemas.edoc, text, line_of(text, "<From>"), "OrganId")


def test_element_from_no_namespace(schemas: EdxmlSchemas) -> None:
    text = _swap(edoc(), "<Subject>", '<Subject xmlns="">')
    assert_refused_at(schemas.edoc, text, line_of(text, "<Subject"), "Subject")


@pytest.mark.parametrize("value", ["Công văn", "1.5", "-1", "", "\u0661"])
def test_document_type_must_be_a_number(schemas: EdxmlSchemas, value: str) -> None:
    text = _swap(edoc(), "<Type>1</Type>", f"<Type>{value}</Type>")
    assert_refused_at(schemas.edoc, text, line_of(text, "<Type>"), "Type")


@pytest.mark.parametrize(
    "value",
    [
        "2019-01-17",
        "17-01-2019",
        "17/1/2019",
        "2019/1/17",
        "2019/13/01",
        "2019/01/32",
        "",
        "2019/01/17 08:00:00",
    ],
)
def test_promulgation_date_format(schemas: EdxmlSchemas, value: str) -> None:
    text = _swap(edoc(), "2019/01/17</PromulgationDate>", f"{value}</PromulgationDate>")
    assert_refused_at(schemas.edoc, text, line_of(text, "<PromulgationDate>"), "PromulgationDate")


def test_due_date_format(schemas: EdxmlSchemas) -> None:
    text = _swap(edoc(), "<DueDate>2019/02/28</DueDate>", "<DueDate>28.02.2019</DueDate>")
    assert_refused_at(schemas.edoc, text, line_of(text, "<DueDate>"), "DueDate")


def test_day_first_dates_pass_the_xsd_for_the_second_pass_to_normalise(
    schemas: EdxmlSchemas,
) -> None:
    """Tolerance rule day-first-dates: dd/MM/yyyy in the three document dates only."""
    text = _swap(edoc(), "<DueDate>2019/02/28</DueDate>", "<DueDate>28/02/2019</DueDate>")
    text = _swap(text, "2019/01/17</PromulgationDate>", "17/01/2019</PromulgationDate>")
    assert errors(schemas.edoc, text) == []
    stamp = _swap(edoc(), "2019/01/17 08:30:00", "17/01/2019 08:30:00")
    assert_refused_at(schemas.edoc, stamp, line_of(stamp, "<Timestamp>"), "Timestamp")


@pytest.mark.parametrize(
    "value",
    [
        "2019/01/17",
        "2019/01/17T08:30:00",
        "2019/01/17 24:00:00",
        "2019/01/17 8:30:00",
        "2019-01-17 08:30:00",
        "",
    ],
)
def test_trace_timestamp_format(schemas: EdxmlSchemas, value: str) -> None:
    text = _swap(edoc(), "2019/01/17 08:30:00", value)
    assert_refused_at(schemas.edoc, text, line_of(text, "<Timestamp>"), "Timestamp")


@pytest.mark.parametrize("value", ["5", "-1", "high", "1.0"])
def test_priority_range(schemas: EdxmlSchemas, value: str) -> None:
    text = _swap(edoc(), "<Priority>2</Priority>", f"<Priority>{value}</Priority>")
    assert_refused_at(schemas.edoc, text, line_of(text, "<Priority>"), "Priority")


def test_business_doc_type_range(schemas: EdxmlSchemas) -> None:
    text = _swap(edoc(), "<BussinessDocType>0<", "<BussinessDocType>7<")
    assert_refused_at(schemas.edoc, text, line_of(text, "<BussinessDocType>"), "BussinessDocType")


def test_attachment_encoded_inside_the_envelope(schemas: EdxmlSchemas) -> None:
    text = edoc().replace(
        "</edXMLBody>\n</edXMLEnvelope>\n<AttachmentEncoded>", "</edXMLBody>\n<AttachmentEncoded>"
    )
    text = text.replace(
        "</AttachmentEncoded>\n</edXML>", "</AttachmentEncoded>\n</edXMLEnvelope>\n</edXML>"
    )
    assert_refused_at(schemas.edoc, text, line_of(text, "<AttachmentEncoded>"), "AttachmentEncoded")


def test_attachment_without_content(schemas: EdxmlSchemas) -> None:
    text = _swap(edoc(), "  <ContentTransferEncoded>JVBERi0xLjQK</ContentTransferEncoded>\n", "")
    assert_refused_at(schemas.edoc, text, line_of(text, "<Attachment>"), "ContentTransferEncoded")


def test_edoc_without_trace_list(schemas: EdxmlSchemas) -> None:
    text = re.sub(r"<TraceHeaderList>.*</TraceHeaderList>", "", edoc(), flags=re.S)
    assert_refused_at(schemas.edoc, text, line_of(text, "<edXMLHeader>"), "TraceHeaderList")


def test_status_without_status_code(schemas: EdxmlSchemas) -> None:
    text = status([p for p in STATUS_PARTS if "StatusCode" not in p])
    assert_refused_at(schemas.status, text, line_of(text, "<MessageHeader>"), "StatusCode")


@pytest.mark.parametrize("value", ["3", "003", "A1", "", "0 3"])
def test_status_code_is_two_digits(schemas: EdxmlSchemas, value: str) -> None:
    text = status([p.replace(">03<", f">{value}<") for p in STATUS_PARTS])
    assert_refused_at(schemas.status, text, line_of(text, "<StatusCode>"), "StatusCode")


def test_status_timestamp_format(schemas: EdxmlSchemas) -> None:
    text = status([p.replace("2018/09/28 17:25:11", "28/09/2018 17:25") for p in STATUS_PARTS])
    assert_refused_at(schemas.status, text, line_of(text, "<Timestamp>"), "Timestamp")


def test_status_twice_the_same_child(schemas: EdxmlSchemas) -> None:
    text = status([*STATUS_PARTS, "<StatusCode>04</StatusCode>"])
    assert_refused_at(schemas.status, text, line_of(text, "<StatusCode>", 2), "StatusCode")


def test_status_refuses_document_parts(schemas: EdxmlSchemas) -> None:
    text = status([*STATUS_PARTS, TO])
    assert_refused_at(schemas.status, text, line_of(text, "<To>"), "To")


def test_status_without_response_for_organ_id(schemas: EdxmlSchemas) -> None:
    text = status(
        [
            STATUS_RESPONSE_FOR.replace("  <OrganId>000.00.00.G22</OrganId>\n", "")
            if p is STATUS_RESPONSE_FOR
            else p
            for p in STATUS_PARTS
        ]
    )
    assert_refused_at(schemas.status, text, line_of(text, "<ResponseFor>"), "OrganId")


def test_wrong_namespace_root(schemas: EdxmlSchemas) -> None:
    text = edoc().replace(f'xmlns="{NS}"', 'xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2022"')
    assert_refused_at(schemas.edoc, text, line_of(text, "<edXML "), "edXML")


def test_builders_put_each_element_on_its_own_line() -> None:
    """The line assertions above rely on it."""
    text = edoc()
    assert line_of(text, "<Subject>") != line_of(text, "<Content>")
    assert line_of(text, "<OrganId>", 2) == line_of(text, "<To>") + 1

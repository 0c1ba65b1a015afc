"""The edXML XSDs accept the official samples and the producer variants of edxml.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from bus.schemas import (
    EdxmlSchemas,
)
from tests.unit.schemas_kit import (
    ATTACHMENT,
    BUSINESS,
    DSIG,
    FROM,
    NS,
    OLDER_ORDER,
    PARSER,
    SDK_ORDER,
    STATUS_FROM,
    STATUS_PARTS,
    TO,
    TRACE,
    assert_valid,
    edoc,
    load_sample,
    sample_files,
    samples_dir,
    status,
)

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

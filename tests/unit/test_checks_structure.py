"""Second pass: cardinalities, attachments and element paths the XSDs leave open."""

from __future__ import annotations

import pytest
from lxml import etree

from bus.edxml.checks import (
    element_path,
)
from bus.errors import (
    AttachmentInvalid,
    SchemaInvalid,
)
from bus.schemas import EdxmlSchemas
from tests.unit.checks_kit import (
    BUSINESS,
    CODE,
    CONTENT,
    DOCTYPE,
    DOCUMENT_ID,
    DUE,
    ENCODED,
    FROM,
    HEADER,
    MANIFEST,
    MH,
    NS,
    OTHER,
    PARSER,
    PROMULGATION,
    SIGNER,
    SUBJECT,
    TRACE,
    TRACE_LIST,
    attachment,
    checked,
    edoc,
    line_of,
    reference,
    refused,
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

"""Second pass: the official samples and clean variants pass, with the notices they earn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from bus.edxml.checks import (
    NOTICE_DUPLICATE_RECIPIENT,
    NOTICE_FIELD_EMPTY,
    NOTICE_FIELD_TOO_LONG,
    NOTICE_NON_STANDARD_IDENTIFIER,
    check_edoc,
    check_status,
)
from bus.errors import (
    InvalidIdentifier,
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
    RESPONSE_FOR,
    SIGNER,
    SUBJECT,
    TO,
    TO_2,
    TRACE,
    TRACE_LIST,
    attachment,
    checked,
    codes,
    edoc,
    line_of,
    load_sample,
    org,
    reference,
    refused,
    replaced,
    samples_dir,
    status,
)

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

"""The edXML XSDs refuse what they must, their first error at the offending line."""

from __future__ import annotations

import re

import pytest

from bus.schemas import (
    EdxmlSchemas,
)
from tests.unit.schemas_kit import (
    NS,
    SDK_ORDER,
    STATUS_PARTS,
    STATUS_RESPONSE_FOR,
    TO,
    assert_refused_at,
    edoc,
    errors,
    line_of,
    status,
)

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

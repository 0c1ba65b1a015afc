"""Second pass: status codes and what a status packet must name."""

from __future__ import annotations

import pytest
from lxml import etree

from bus.edxml.checks import (
    ACCEPTED_STATUS_CODES,
    NOTICE_FIELD_EMPTY,
    NOTICE_RESERVED_STATUS_CODE,
    RESERVED_STATUS_CODES,
    check_edoc,
    check_status,
)
from bus.errors import (
    SchemaInvalid,
    UnsupportedPacket,
)
from bus.schemas import EdxmlSchemas
from tests.unit.checks_kit import (
    HEADER,
    MH,
    PARSER,
    STATUS_PARTS,
    STATUS_RESPONSE_FOR,
    checked,
    edoc,
    line_of,
    refused,
    replaced,
    status,
    without,
)

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

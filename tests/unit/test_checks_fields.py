"""Second pass: dates that must exist and organisation identifiers."""

from __future__ import annotations

import pytest

from bus.edxml.checks import (
    NOTICE_NON_STANDARD_IDENTIFIER,
)
from bus.errors import (
    InvalidIdentifier,
    SchemaInvalid,
)
from bus.schemas import EdxmlSchemas
from tests.unit.checks_kit import (
    BUSINESS,
    DUE,
    HEADER,
    MH,
    STATUS_PARTS,
    TRACE,
    TRACE_LIST,
    checked,
    edoc,
    line_of,
    refused,
    replaced,
    status,
)

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

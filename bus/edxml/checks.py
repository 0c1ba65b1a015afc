"""Second pass over an XSD-valid edXML packet: the rules XSD 1.0 cannot express.

The schemas accept MessageHeader children in any order because producers disagree on
the order, which leaves cardinalities to this pass; XSD patterns cannot tell that
2019/02/30 does not exist; identifiers are checked here so that a bad one is reported as
``InvalidIdentifier`` rather than as a generic schema error; and tying manifest
References to Attachments needs a comparison across elements.

It runs on every packet. Reading ``.tag`` or ``.text`` of an lxml element builds a new
Python string each time, so each element of interest is visited once, compared by its
full ``{namespace}name`` tag, and attachment content (megabytes) is never read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final, NamedTuple

from lxml import etree

from bus.errors import (
    AttachmentInvalid,
    InvalidIdentifier,
    Notice,
    SchemaInvalid,
    UnsupportedPacket,
)
from bus.schemas import EDXML_NS

__all__ = [
    "ACCEPTED_STATUS_CODES",
    "NOTICE_DUPLICATE_RECIPIENT",
    "NOTICE_FIELD_EMPTY",
    "NOTICE_FIELD_TOO_LONG",
    "NOTICE_NON_STANDARD_IDENTIFIER",
    "NOTICE_RESERVED_STATUS_CODE",
    "RESERVED_STATUS_CODES",
    "check_edoc",
    "check_status",
    "element_path",
]

NOTICE_FIELD_TOO_LONG: Final = "FieldTooLong"
NOTICE_FIELD_EMPTY: Final = "FieldEmpty"
NOTICE_NON_STANDARD_IDENTIFIER: Final = "NonStandardIdentifier"
NOTICE_RESERVED_STATUS_CODE: Final = "ReservedStatusCode"
NOTICE_DUPLICATE_RECIPIENT: Final = "DuplicateRecipient"

ACCEPTED_STATUS_CODES: Final = frozenset({"01", "02", "03", "04", "05", "06", "13", "15", "16"})
# No source defines these, and none forbids them: they pass, with a notice.
RESERVED_STATUS_CODES: Final = frozenset({"07", "08", "09", "10", "11", "12", "14"})

_NS: Final = "{" + EDXML_NS + "}"
_DSIG_NS: Final = "{http://www.w3.org/2000/09/xmldsig#}"


def _q(name: str) -> str:
    return _NS + name


_EDXML = _q("edXML")
_ENVELOPE = _q("edXMLEnvelope")
_HEADER = _q("edXMLHeader")
_MESSAGE_HEADER = _q("MessageHeader")
_TRACE_LIST = _q("TraceHeaderList")
_TRACE = _q("TraceHeader")
_BUSINESS = _q("Bussiness")
_BODY = _q("edXMLBody")
_MANIFEST = _q("edXMLManifest")
_REFERENCE = _q("Reference")
_ENCODED = _q("AttachmentEncoded")
_ATTACHMENT = _q("Attachment")
_CONTENT_ID = _q("ContentId")
_ATTACHMENT_NAME = _q("AttachmentName")
_ORGAN_ID = _q("OrganId")
_ORGAN_ID_LIST = _q("OrganIdList")
_TIMESTAMP = _q("Timestamp")
_PROMULGATION_DATE = _q("PromulgationDate")
_PLACE = _q("Place")
_SUBJECT = _q("Subject")
_CODE = _q("Code")
_DOCUMENT_ID = _q("DocumentId")
_DOCUMENT_INFO = _q("BussinessDocumentInfo")
_RECEIVER_LIST = _q("ReceiverList")
_RECEIVER = _q("Receiver")
_REPLACEMENT_LIST = _q("ReplacementInfoList")
_REPLACEMENT = _q("ReplacementInfo")
_DSIG_SIGNATURE = _DSIG_NS + "Signature"

_MAX_ID_LEN: Final = 35
_ID_RE: Final = re.compile(r"[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*")
_ID_2016_RE: Final = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
_ID_HUB_RE: Final = re.compile(r"[0-9]{2}\.[0-9]{2}\.W[0-9]{2}")
_ID_EXPECTED: Final = (
    "dot-separated groups of ASCII letters and digits, at most 35 characters, e.g. 000.00.00.H37"
)
_DATE_RE: Final = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})")
_TIMESTAMP_RE: Final = re.compile(
    r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
)
# Path separators, drive/stream colons, C0/C1 controls and the bidi overrides that can
# disguise an extension ("invoice\u202efdp.exe").
_UNSAFE_NAME_CHAR: Final = re.compile(r"[/\\:\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_NAMES: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# Limits used by two independent implementations (edxml.md §2), as (lower, upper).
# Past the lower one, some receiving system may truncate or refuse the field.
_LIMITS: Final[dict[str, tuple[str, int, int]]] = {
    _q(name): (name, low, high)
    for name, low, high in (
        ("OrganName", 200, 200),
        ("OrganAdd", 250, 250),
        ("Email", 100, 100),
        ("CodeNumber", 11, 50),
        ("CodeNotation", 30, 50),
        ("Place", 50, 50),
        ("Subject", 500, 500),
        ("Content", 500, 500),
        ("FullName", 50, 50),
        ("TyperNotation", 10, 10),
        ("AttachmentName", 200, 500),
        ("DocumentId", 200, 200),
    )
}


class _Pass:
    """State of one run: the findings so far and the recipients already seen."""

    __slots__ = ("notices", "recipients")

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.recipients: set[str] = set()


_Handler = Callable[[etree._Element, _Pass], None]


class _Rule(NamedTuple):
    name: str
    minimum: int
    maximum: int | None
    what: str
    handler: _Handler | None


# ---------------------------------------------------------------- locations and text


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return "comment()" if tag is etree.Comment else "processing-instruction()"
    return tag.rpartition("}")[2]


def element_path(el: etree._Element) -> str:
    """Slash path of local names, indexed (from 1) only where a tag repeats among siblings.

    Prefixes are left out on purpose: producers write the same packet prefixed,
    unprefixed or mixed, and the officer reading the error should see one form.
    """
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        tag = node.tag
        name = _local(tag)
        parent = node.getparent()
        if parent is not None and isinstance(tag, str):
            index = count = 0
            for sibling in parent.iterchildren(tag):
                count += 1
                if sibling is node:
                    index = count
            if count > 1:
                name = f"{name}[{index}]"
        parts.append(name)
        node = parent
    parts.reverse()
    return "/" + "/".join(parts)


def _line(el: etree._Element) -> int | None:
    line = el.sourceline
    return line if isinstance(line, int) else None


def _text(el: etree._Element) -> str:
    # A comment inside a leaf splits its text; XSD sees the joined value, so do we.
    if len(el):
        return "".join(t for t in el.itertext() if isinstance(t, str))
    return el.text or ""


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _schema_error(el: etree._Element, message: str) -> SchemaInvalid:
    return SchemaInvalid(message, line=_line(el), path=element_path(el))


def _attachment_error(el: etree._Element, message: str) -> AttachmentInvalid:
    return AttachmentInvalid(message, line=_line(el), path=element_path(el))


def _identifier_error(el: etree._Element, message: str) -> InvalidIdentifier:
    return InvalidIdentifier(message, line=_line(el), path=element_path(el))


def _notice(state: _Pass, code: str, el: etree._Element, message: str, **extra: object) -> None:
    state.notices.append(
        Notice(code=code, message=message, line=_line(el), path=element_path(el), extra=extra)
    )


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    # Cheaper than iterchildren(tag) or find() for the few children edXML elements have.
    for child in parent:
        if child.tag == tag:
            return child
    return None


# ---------------------------------------------------------------- value checks


def _check_length(el: etree._Element, limits: tuple[str, int, int], state: _Pass) -> None:
    name, low, high = limits
    text = el.text
    if (text is None or len(text) <= low) and not len(el):
        return
    size = len(_text(el).strip())
    if size > low:
        bound = f"at most {low}" if low == high else f"at most {low} (others up to {high})"
        _notice(
            state,
            NOTICE_FIELD_TOO_LONG,
            el,
            f"{name} is {size} characters long; some receiving systems accept {bound} "
            "and may truncate or refuse it.",
            field=name,
            length=size,
            limit=low,
        )


def _check_lengths_below(parent: etree._Element, state: _Pass) -> None:
    for child in parent:
        limits = _LIMITS.get(child.tag)
        if limits is not None:
            _check_length(child, limits, state)


def _check_leaf_length(el: etree._Element, state: _Pass) -> None:
    _check_length(el, _LIMITS[el.tag], state)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def _check_calendar(
    el: etree._Element, label: str, value: str, ymd: tuple[int, int, int], expected: str
) -> None:
    year, month, day = ymd
    if year == 0 or not 1 <= month <= 12:
        raise _schema_error(
            el,
            f"{label} {_show(value)} is not a real date; expected {expected} with a year "
            "from 0001 and a month from 01 to 12.",
        )
    days = _days_in_month(year, month)
    if not 1 <= day <= days:
        raise _schema_error(
            el,
            f"{label} {_show(value)} is not a real date: {_MONTH_NAMES[month - 1]} {year} "
            f"has {days} days. Expected an existing date as {expected}.",
        )


def _check_date(el: etree._Element, label: str, *, required: bool) -> None:
    value = _text(el).strip()
    if not value:
        if required:
            raise _schema_error(
                el, f"{label} is empty; expected a date as yyyy/MM/dd, e.g. 2019/01/17."
            )
        return
    match = _DATE_RE.fullmatch(value)
    if match is None:
        raise _schema_error(
            el, f"{label} is {_show(value)}; expected a date as yyyy/MM/dd, e.g. 2019/01/17."
        )
    ymd = (int(match[1]), int(match[2]), int(match[3]))
    _check_calendar(el, label, value, ymd, "yyyy/MM/dd")


def _check_timestamp(el: etree._Element, label: str) -> None:
    expected = "yyyy/MM/dd HH:mm:ss"
    value = _text(el).strip()
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise _schema_error(
            el, f"{label} is {_show(value)}; expected {expected}, e.g. 2018/09/28 17:25:11."
        )
    _check_calendar(el, label, value, (int(match[1]), int(match[2]), int(match[3])), expected)
    if int(match[4]) > 23 or int(match[5]) > 59 or int(match[6]) > 59:
        raise _schema_error(
            el,
            f"{label} {_show(value)} is not a real time of day; expected {expected} "
            "with HH from 00 to 23, mm and ss from 00 to 59.",
        )


def _describe_bad_char(value: str) -> str:
    for ch in value:
        if ch.isascii() and (ch.isalnum() or ch == "."):
            continue
        if ch == " ":
            return "a space"
        if ch.isspace():
            return f"a whitespace character (U+{ord(ch):04X})"
        if unicodedata.category(ch) in ("Cc", "Cf"):
            return f"a control character (U+{ord(ch):04X})"
        return f"the character {ch!r}"
    return "an empty group (a dot at the start or end, or two dots in a row)"


def _check_identifier(
    el: etree._Element,
    label: str,
    state: _Pass,
    *,
    required: bool = True,
) -> str:
    value = _text(el)
    if not value:
        if required:
            raise _identifier_error(
                el,
                f"{label} is empty; expected the organisation's identifier (mã định danh), "
                "e.g. 000.00.00.H37.",
            )
        return value
    if _ID_2016_RE.fullmatch(value) is not None:
        return value
    if value == "null":
        # What some producers serialise for a missing value: treated as empty.
        if required:
            raise _identifier_error(
                el,
                f"{label} is the literal 'null'; expected the organisation's identifier "
                "(mã định danh), e.g. 000.00.00.H37.",
            )
        return value
    if _ID_RE.fullmatch(value) is None:
        raise _identifier_error(
            el,
            f"{label} {_show(value)} contains {_describe_bad_char(value)}; "
            f"expected {_ID_EXPECTED}.",
        )
    if len(value) > _MAX_ID_LEN:
        raise _identifier_error(
            el, f"{label} {_show(value)} is {len(value)} characters long; expected {_ID_EXPECTED}."
        )
    if _ID_HUB_RE.fullmatch(value) is None:
        _notice(
            state,
            NOTICE_NON_STANDARD_IDENTIFIER,
            el,
            f"{label} {value!r} is not in the QCVN 102:2016 form NNN.NN.NN.Xnn (nor the hub "
            "form NN.NN.Wnn); accepted, but check it against the agency directory.",
            identifier=value,
        )
    return value


# ---------------------------------------------------------------- MessageHeader parts


def _check_organisation(block: etree._Element, role: str, state: _Pass) -> str:
    organ_id: str | None = None
    for child in block:
        tag = child.tag
        if tag == _ORGAN_ID:
            organ_id = _check_identifier(child, f"{role}/OrganId", state)
        else:
            limits = _LIMITS.get(tag)
            if limits is not None:
                _check_length(child, limits, state)
    if organ_id is None:
        raise _schema_error(
            block, f"{role} has no OrganId; expected the organisation's identifier."
        )
    return organ_id


def _check_from(el: etree._Element, state: _Pass) -> None:
    _check_organisation(el, "From", state)


def _check_to(el: etree._Element, state: _Pass) -> None:
    organ_id = _check_organisation(el, "To", state)
    if organ_id in state.recipients:
        _notice(
            state,
            NOTICE_DUPLICATE_RECIPIENT,
            el,
            f"To {organ_id!r} appears more than once; it is one recipient.",
            identifier=organ_id,
        )
    state.recipients.add(organ_id)


def _check_subject(el: etree._Element, state: _Pass) -> None:
    if not len(el) and not (el.text or "").strip():
        _notice(
            state,
            NOTICE_FIELD_EMPTY,
            el,
            "Subject is empty; receivers expect the document's summary (trích yếu).",
            field="Subject",
        )
    else:
        _check_length(el, _LIMITS[_SUBJECT], state)


def _check_promulgation(el: etree._Element, state: _Pass) -> None:
    date_el = None
    for child in el:
        tag = child.tag
        if tag == _PROMULGATION_DATE:
            date_el = child
        elif tag == _PLACE:
            _check_length(child, _LIMITS[_PLACE], state)
    if date_el is None:
        raise _schema_error(el, "PromulgationInfo has no PromulgationDate; expected yyyy/MM/dd.")
    _check_date(date_el, "PromulgationDate", required=True)


def _check_due_date(el: etree._Element, state: _Pass) -> None:
    _check_date(el, "DueDate", required=False)


def _check_edoc_response_for(el: etree._Element, state: _Pass) -> None:
    for child in el:
        tag = child.tag
        if tag == _ORGAN_ID:
            _check_identifier(child, "ResponseFor/OrganId", state, required=False)
        elif tag == _PROMULGATION_DATE:
            _check_date(child, "ResponseFor/PromulgationDate", required=False)


def _check_status_response_for(el: etree._Element, state: _Pass) -> None:
    has_organ_id = identified = False
    for child in el:
        tag = child.tag
        if tag == _ORGAN_ID:
            has_organ_id = True
            _check_identifier(child, "ResponseFor/OrganId", state)
        elif tag == _PROMULGATION_DATE:
            _check_date(child, "ResponseFor/PromulgationDate", required=False)
        elif tag in (_CODE, _DOCUMENT_ID) and _text(child).strip():
            identified = True
    if not has_organ_id:
        raise _schema_error(
            el,
            "ResponseFor has no OrganId; expected the identifier of the organisation the "
            "status is addressed to.",
        )
    if not identified:
        _notice(
            state,
            NOTICE_FIELD_EMPTY,
            el,
            "ResponseFor has neither Code nor DocumentId; the receiver may not find which "
            "document this status is about.",
            field="ResponseFor",
        )


def _check_status_code(el: etree._Element, state: _Pass) -> None:
    value = _text(el).strip()
    if value in ACCEPTED_STATUS_CODES:
        return
    known = "01 to 06, 13, 15 or 16"
    if value in RESERVED_STATUS_CODES:
        _notice(
            state,
            NOTICE_RESERVED_STATUS_CODE,
            el,
            f"StatusCode {value} is not defined by any known source (reserved); passed on "
            f"as is. Known codes: {known}.",
            status_code=value,
        )
        return
    raise _schema_error(el, f"StatusCode {_show(value)} is not a known status; expected {known}.")


def _check_status_timestamp(el: etree._Element, state: _Pass) -> None:
    _check_timestamp(el, "Timestamp")


class _Rules(NamedTuple):
    by_tag: dict[str, _Rule]
    required: tuple[str, ...]


def _rules(*rules: _Rule) -> _Rules:
    by_tag = {_q(rule.name): rule for rule in rules}
    return _Rules(by_tag, tuple(tag for tag, rule in by_tag.items() if rule.minimum))


_EDOC_RULES: Final = _rules(
    _Rule("From", 1, 1, "the sending organisation", _check_from),
    _Rule("To", 1, None, "at least one recipient organisation", _check_to),
    _Rule("DocumentId", 0, 1, "the document identifier", _check_leaf_length),
    _Rule("Code", 1, 1, "the document number and notation (CodeNumber, CodeNotation)",
          _check_lengths_below),
    _Rule("PromulgationInfo", 1, 1, "the place and date of issue (Place, PromulgationDate)",
          _check_promulgation),
    _Rule("DocumentType", 1, 1, "the document type (Type, TypeDetail, TypeName)", None),
    _Rule("Subject", 1, 1, "the document's summary (trích yếu)", _check_subject),
    _Rule("Content", 0, 1, "the document text", _check_leaf_length),
    _Rule("SignerInfo", 1, 1, "the signer (Competence, Position, FullName)",
          _check_lengths_below),
    _Rule("DueDate", 0, 1, "the due date", _check_due_date),
    _Rule("OtherInfo", 0, 1, "priority and other details", _check_lengths_below),
    _Rule("ResponseFor", 0, None, "a reference to an earlier document",
          _check_edoc_response_for),
    _Rule("SteeringType", 0, 1, "the steering type", None),
    _Rule("ResponseForTask", 0, 1, "task codes", None),
    _Rule("ApplicationType", 0, 1, "the application type", None),
    _Rule("ToPlaces", 0, 1, "the recipients as text (nơi nhận)", None),
)  # fmt: skip

_STATUS_RULES: Final = _rules(
    _Rule("From", 1, 1, "the organisation sending the status", _check_from),
    _Rule("ResponseFor", 1, 1, "the document the status is about (OrganId, Code, DocumentId)",
          _check_status_response_for),
    _Rule("StaffInfo", 0, 1, "the clerk who handled the document", _check_lengths_below),
    _Rule("StatusCode", 1, 1, "the two-digit status code, e.g. 01", _check_status_code),
    _Rule("Description", 0, 1, "a description of the status", None),
    _Rule("Timestamp", 1, 1, "when the status was set, as yyyy/MM/dd HH:mm:ss",
          _check_status_timestamp),
)  # fmt: skip


def _walk_message_header(header: etree._Element, rules: _Rules, state: _Pass) -> None:
    counts: dict[str, int] = {}
    for child in header:
        tag = child.tag
        rule = rules.by_tag.get(tag)
        if rule is None:
            if not isinstance(tag, str):
                continue
            raise _schema_error(
                child,
                f"MessageHeader contains an unknown element {_local(tag)}; expected only "
                f"{', '.join(r.name for r in rules.by_tag.values())}.",
            )
        seen = counts.get(tag, 0) + 1
        counts[tag] = seen
        name, minimum, maximum, what, handler = rule
        if maximum is not None and seen > maximum:
            raise _schema_error(
                child,
                f"MessageHeader has more than one {name}; expected "
                f"{'exactly' if minimum else 'at most'} one ({what}).",
            )
        if handler is not None:
            handler(child, state)
    for tag in rules.required:
        if tag not in counts:
            rule = rules.by_tag[tag]
            raise _schema_error(header, f"MessageHeader has no {rule.name}; expected {rule.what}.")


# ---------------------------------------------------------------- trace list, signature


def _check_trace_list(trace_list: etree._Element, state: _Pass) -> None:
    business_seen = False
    for child in trace_list:
        tag = child.tag
        if tag == _TRACE:
            _check_trace_header(child, state)
        elif tag == _BUSINESS:
            if business_seen:
                raise _schema_error(
                    child, "TraceHeaderList has more than one Bussiness; expected at most one."
                )
            business_seen = True
            _check_business(child, state)
        elif isinstance(tag, str):
            raise _schema_error(
                child,
                f"TraceHeaderList contains an unknown element {_local(tag)}; expected "
                "TraceHeader elements and at most one Bussiness.",
            )


def _check_trace_header(trace: etree._Element, state: _Pass) -> None:
    organ_id = timestamp = None
    for child in trace:
        tag = child.tag
        if tag == _ORGAN_ID:
            organ_id = child
        elif tag == _TIMESTAMP:
            timestamp = child
    if organ_id is None or timestamp is None:
        raise _schema_error(
            trace, "TraceHeader needs an OrganId and a Timestamp (yyyy/MM/dd HH:mm:ss)."
        )
    _check_identifier(organ_id, "TraceHeader/OrganId", state, required=False)
    _check_timestamp(timestamp, "TraceHeader/Timestamp")


def _grandchildren(parent: etree._Element, tag: str, grand_tag: str) -> list[etree._Element]:
    return [
        grand for child in parent if child.tag == tag for grand in child if grand.tag == grand_tag
    ]


def _check_business(business: etree._Element, state: _Pass) -> None:
    for child in business:
        tag = child.tag
        if tag == _DOCUMENT_INFO:
            for receiver in _grandchildren(child, _RECEIVER_LIST, _RECEIVER):
                for leaf in receiver:
                    if leaf.tag == _ORGAN_ID:
                        _check_identifier(leaf, "Receiver/OrganId", state)
        elif tag == _REPLACEMENT_LIST:
            for replacement in child:
                if replacement.tag != _REPLACEMENT:
                    continue
                for organ_id in _grandchildren(replacement, _ORGAN_ID_LIST, _ORGAN_ID):
                    _check_identifier(organ_id, "ReplacementInfo/OrganIdList/OrganId", state)


def _check_signature_slot(header: etree._Element) -> None:
    for child in header:
        tag = child.tag
        if isinstance(tag, str) and tag.startswith(_DSIG_NS) and tag != _DSIG_SIGNATURE:
            raise _schema_error(
                child,
                f"edXMLHeader contains the XML-DSig element {_local(tag)}; only a Signature "
                "element is expected there.",
            )


# ---------------------------------------------------------------- attachments


def _unsafe_name_reason(name: str) -> str | None:
    stripped = name.strip()
    if not stripped:
        return "is empty"
    if stripped in (".", ".."):
        return "is a directory name, not a file name"
    bad = _UNSAFE_NAME_CHAR.search(name)
    if bad is None:
        return None
    ch = bad.group()
    if ch in "/\\":
        return "contains a path separator ('/' or '\\')"
    if ch == ":":
        return "contains ':' (a drive letter or an alternate data stream on Windows)"
    return f"contains a control character (U+{ord(ch):04X})"


def _content_id_and_name(
    item: etree._Element, kind: str, state: _Pass
) -> tuple[str, etree._Element]:
    content_id_el = name_el = None
    for child in item:
        tag = child.tag
        if tag == _CONTENT_ID:
            content_id_el = child
        elif tag == _ATTACHMENT_NAME:
            name_el = child
    if content_id_el is None:
        raise _attachment_error(
            item,
            f"{kind} has no ContentId; expected an identifier such as 'cid:209' shared by "
            "the manifest Reference and its Attachment.",
        )
    if name_el is None:
        raise _attachment_error(item, f"{kind} has no AttachmentName; expected a file name.")
    content_id = _text(content_id_el).strip()
    if not content_id:
        raise _attachment_error(
            content_id_el,
            f"{kind}/ContentId is empty; expected an identifier such as 'cid:209' shared by "
            "the manifest Reference and its Attachment.",
        )
    name = _text(name_el)
    reason = _unsafe_name_reason(name)
    if reason is not None:
        raise _attachment_error(
            name_el,
            f"{kind}/AttachmentName {_show(name)} {reason}; expected a plain file name such "
            "as 'Cong van 123.pdf', without folders.",
        )
    _check_length(name_el, _LIMITS[_ATTACHMENT_NAME], state)
    return content_id, content_id_el


def _check_attachments(
    body: etree._Element | None, encoded: etree._Element | None, state: _Pass
) -> None:
    references: dict[str, etree._Element] = {}
    if body is not None:
        manifest = _child(body, _MANIFEST)
        if manifest is None:
            raise _schema_error(
                body,
                "edXMLBody has no edXMLManifest; expected the list of "
                "attachments (edXMLManifest with one Reference each).",
            )
        for reference in manifest.iterchildren(_REFERENCE):
            content_id, content_id_el = _content_id_and_name(reference, "Reference", state)
            if content_id in references:
                raise _attachment_error(
                    content_id_el,
                    f"edXMLManifest lists ContentId {_show(content_id)} twice; each Reference "
                    "needs its own ContentId.",
                )
            references[content_id] = reference
    matched: set[str] = set()
    if encoded is not None:
        for attachment in encoded.iterchildren(_ATTACHMENT):
            content_id, content_id_el = _content_id_and_name(attachment, "Attachment", state)
            if content_id in matched:
                raise _attachment_error(
                    content_id_el,
                    f"AttachmentEncoded carries ContentId {_show(content_id)} twice; each "
                    "Attachment needs its own ContentId.",
                )
            if content_id not in references:
                raise _attachment_error(
                    content_id_el,
                    f"Attachment ContentId {_show(content_id)} is not listed in edXMLManifest; "
                    "expected a manifest Reference with the same ContentId for every "
                    "Attachment.",
                )
            matched.add(content_id)
    for content_id, reference in references.items():
        if content_id not in matched:
            raise _attachment_error(
                reference,
                f"edXMLManifest lists ContentId {_show(content_id)} but AttachmentEncoded has "
                "no Attachment with that ContentId; expected one Attachment per Reference.",
            )


# ---------------------------------------------------------------- entry points


def _locate(root: etree._Element) -> tuple[etree._Element, etree._Element, etree._Element]:
    if root.tag != _EDXML:
        raise UnsupportedPacket(
            f"root element is {root.tag!r}; expected edXML in namespace {EDXML_NS}.",
            line=_line(root),
            path=element_path(root),
        )
    envelope = _child(root, _ENVELOPE)
    if envelope is None:
        raise _schema_error(root, "edXML has no edXMLEnvelope; expected it as the first child.")
    header = _child(envelope, _HEADER)
    if header is None:
        raise _schema_error(envelope, "edXMLEnvelope has no edXMLHeader.")
    message_header = _child(header, _MESSAGE_HEADER)
    if message_header is None:
        raise _schema_error(header, "edXMLHeader has no MessageHeader.")
    return envelope, header, message_header


def check_edoc(root: etree._Element) -> list[Notice]:
    """Second pass for a document packet that already passed ``edoc.xsd``.

    Returns the non-fatal findings and raises the first hard problem it meets, walking
    the MessageHeader, then the TraceHeaderList, then manifest and attachments.
    """
    state = _Pass()
    envelope, header, message_header = _locate(root)
    _walk_message_header(message_header, _EDOC_RULES, state)
    trace_list = _child(header, _TRACE_LIST)
    if trace_list is None:
        raise _schema_error(header, "edXMLHeader has no TraceHeaderList.")
    _check_trace_list(trace_list, state)
    _check_signature_slot(header)
    _check_attachments(_child(envelope, _BODY), _child(root, _ENCODED), state)
    return state.notices


def check_status(root: etree._Element) -> list[Notice]:
    """Second pass for a status packet that already passed ``status.xsd``.

    Returns the non-fatal findings and raises the first hard problem it meets.
    """
    state = _Pass()
    _envelope, header, message_header = _locate(root)
    _walk_message_header(message_header, _STATUS_RULES, state)
    trace_list = _child(header, _TRACE_LIST)
    if trace_list is not None:
        _check_trace_list(trace_list, state)
    _check_signature_slot(header)
    return state.notices

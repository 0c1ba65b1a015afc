"""An XSD-valid tree → the typed model, with the second pass applied on the way.

The model and the second pass need the same values, and lxml charges for every element
visited (a proxy object, a new tag string, a new text string), so both are done in one
walk: each value is read once, checked, and kept. The rules run in a fixed order —
MessageHeader children as written, then the TraceHeaderList, the signature slot, the
manifest and the attachments — which decides the first problem reported and the order
of notices, the same for ``read_packet`` and for ``checks.check_edoc``.

The XSD has already vouched for formats (numbers are digits, dates look like
yyyy/MM/dd), so conversions here only have to catch what XSD 1.0 cannot see.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from lxml import etree

from bus.edxml import blocks
from bus.edxml.attachments import read_attachments
from bus.edxml.blob import Blob
from bus.edxml.dates import to_date, to_datetime
from bus.edxml.findings import (
    CONTENT,
    DOCUMENT_ID,
    NOTICE_FIELD_EMPTY,
    SUBJECT,
    Findings,
    Q,
    check_length,
    children,
    local_name,
    schema_error,
    show,
)
from bus.edxml.frame import (
    Frame,
    check_frame,
    check_signature_slot,
    find_frame,
    signature_of,
)
from bus.edxml.model import (
    Attachment,
    Edoc,
    Packet,
    PacketKind,
    StatusPacket,
    TraceHeader,
)
from bus.edxml.trace import trace_list
from bus.errors import Notice, SchemaInvalid

NOTICE_RESERVED_STATUS_CODE: Final = "ReservedStatusCode"
ACCEPTED_STATUS_CODES: Final = frozenset({"01", "02", "03", "04", "05", "06", "13", "15", "16"})
# No source defines these, and none forbids them: they pass, with a notice.
RESERVED_STATUS_CODES: Final = frozenset({"07", "08", "09", "10", "11", "12", "14"})

ContentOf = Callable[[etree._Element | None], Blob]
"""Gives an Attachment's content from its ContentTransferEncoded element."""

_TASK_CODE: Final = Q + "TaskCode"
_PLACE: Final = Q + "Place"
_UNBOUNDED: Final = sys.maxsize


# ---------------------------------------------------------------- MessageHeader parts


def _text(el: etree._Element, findings: Findings) -> object:
    return el.text or ""


def _document_id(el: etree._Element, findings: Findings) -> object:
    text = el.text or ""
    if len(text) > DOCUMENT_ID.low:
        check_length(el, text, DOCUMENT_ID, findings)
    return text


def _content(el: etree._Element, findings: Findings) -> object:
    text = el.text or ""
    if len(text) > CONTENT.low:
        check_length(el, text, CONTENT, findings)
    return text


def _subject(el: etree._Element, findings: Findings) -> object:
    text = el.text or ""
    if not text.strip():
        findings.notice(
            NOTICE_FIELD_EMPTY,
            el,
            "Subject is empty; receivers expect the document's summary (trích yếu).",
            field="Subject",
        )
    elif len(text) > SUBJECT.low:
        check_length(el, text, SUBJECT, findings)
    return text


def _due_date(el: etree._Element, findings: Findings) -> object:
    return to_date(el, "DueDate", el.text or "", required=False, findings=findings)


def _number(el: etree._Element, findings: Findings) -> object:
    return blocks.to_int(el.text)


def _task_codes(el: etree._Element, findings: Findings) -> object:
    return [task.text or "" for task in children(el) if task.tag == _TASK_CODE]


def _to_places(el: etree._Element, findings: Findings) -> object:
    return [place.text or "" for place in children(el) if place.tag == _PLACE]


def _status_code(el: etree._Element, findings: Findings) -> object:
    value = (el.text or "").strip()
    if value in ACCEPTED_STATUS_CODES:
        return value
    known = "01 to 06, 13, 15 or 16"
    if value in RESERVED_STATUS_CODES:
        findings.notice(
            NOTICE_RESERVED_STATUS_CODE,
            el,
            f"StatusCode {value} is not defined by any known source (reserved); passed on "
            f"as is. Known codes: {known}.",
            status_code=value,
        )
        return value
    raise schema_error(el, f"StatusCode {show(value)} is not a known status; expected {known}.")


def _status_timestamp(el: etree._Element, findings: Findings) -> object:
    return to_datetime(el, "Timestamp", el.text or "")


def _staff(el: etree._Element, findings: Findings) -> object:
    return blocks.staff_info(el, findings)


_Read = Callable[[etree._Element, Findings], object]


class _Part(NamedTuple):
    """A MessageHeader child: how many may appear, and how its value is read."""

    name: str
    minimum: int
    maximum: int
    what: str
    read: _Read


class _Parts(NamedTuple):
    parts: tuple[_Part, ...]
    by_tag: dict[str, tuple[int, _Read, bool]]
    """Index, reader and whether at most one may appear, by Clark tag: one lookup a child."""
    required: tuple[int, ...]


def _parts(*parts: _Part) -> _Parts:
    return _Parts(
        parts,
        {Q + part.name: (i, part.read, part.maximum == 1) for i, part in enumerate(parts)},
        tuple(i for i, part in enumerate(parts) if part.minimum),
    )


# The XSD accepts these in any order (producers use at least two), so how many of each
# may appear is checked here. Indexes below follow this order.
_EDOC: Final = _parts(
    _Part("From", 1, 1, "the sending organisation", blocks.sender),
    _Part("To", 1, _UNBOUNDED, "at least one recipient organisation", blocks.recipient),
    _Part("DocumentId", 0, 1, "the document identifier", _document_id),
    _Part("Code", 1, 1, "the document number and notation (CodeNumber, CodeNotation)",
          blocks.code),
    _Part("PromulgationInfo", 1, 1, "the place and date of issue (Place, PromulgationDate)",
          blocks.promulgation_info),
    _Part("DocumentType", 1, 1, "the document type (Type, TypeDetail, TypeName)",
          blocks.document_type),
    _Part("Subject", 1, 1, "the document's summary (trích yếu)", _subject),
    _Part("Content", 0, 1, "the document text", _content),
    _Part("SignerInfo", 1, 1, "the signer (Competence, Position, FullName)", blocks.signer_info),
    _Part("DueDate", 0, 1, "the due date", _due_date),
    _Part("OtherInfo", 0, 1, "priority and other details", blocks.other_info),
    _Part("ResponseFor", 0, _UNBOUNDED, "a reference to an earlier document",
          blocks.response_for),
    _Part("SteeringType", 0, 1, "the steering type", _number),
    _Part("ResponseForTask", 0, 1, "task codes", _task_codes),
    _Part("ApplicationType", 0, 1, "the application type", _text),
    _Part("ToPlaces", 0, 1, "the recipients as text (nơi nhận)", _to_places),
)  # fmt: skip

_STATUS: Final = _parts(
    _Part("From", 1, 1, "the organisation sending the status", blocks.sender),
    _Part("ResponseFor", 1, 1, "the document the status is about (OrganId, Code, DocumentId)",
          blocks.status_response_for),
    _Part("StaffInfo", 0, 1, "the clerk who handled the document", _staff),
    _Part("StatusCode", 1, 1, "the two-digit status code, e.g. 01", _status_code),
    _Part("Description", 0, 1, "a description of the status", _text),
    _Part("Timestamp", 1, 1, "when the status was set, as yyyy/MM/dd HH:mm:ss",
          _status_timestamp),
)  # fmt: skip


def _message_header(
    header: etree._Element,
    kids: Sequence[etree._Element] | None,
    rules: _Parts,
    findings: Findings,
) -> list[Any]:
    """Each part's value by its index in ``rules``: a list for repeatable parts."""
    parts, by_tag, required = rules
    values: list[Any] = [None] * len(parts)
    counts = [0] * len(parts)
    for child in children(header) if kids is None else kids:
        entry = by_tag.get(child.tag)
        if entry is None:
            _unexpected(child, parts)
            continue
        i, read, once = entry
        if counts[i]:
            if once:
                raise _repeated(child, parts[i])
            counts[i] += 1
            values[i].append(read(child, findings))
        else:
            counts[i] = 1
            value = read(child, findings)
            values[i] = value if once else [value]
    for i in required:
        if not counts[i]:
            part = parts[i]
            raise schema_error(
                header, f"MessageHeader has no {part.name}; expected {part.what}."
            )
    return values


def _unexpected(child: etree._Element, parts: tuple[_Part, ...]) -> None:
    if isinstance(child.tag, str):
        raise schema_error(
            child,
            f"MessageHeader contains an unknown element {local_name(child)}; expected "
            f"only {', '.join(part.name for part in parts)}.",
        )


def _repeated(child: etree._Element, part: _Part) -> SchemaInvalid:
    return schema_error(
        child,
        f"MessageHeader has more than one {part.name}; expected "
        f"{'exactly' if part.minimum else 'at most'} one ({part.what}).",
    )


# ---------------------------------------------------------------- the packet


def read_tree(
    root: etree._Element, kind: PacketKind, content_of: ContentOf
) -> tuple[Packet, list[Notice]]:
    """The packet and the second pass's notices; raises the first hard problem met.

    ``content_of`` is called only once every rule has passed, in attachment order.
    """
    return read_frame(find_frame(root), kind, content_of)


def read_frame(
    frame: Frame, kind: PacketKind, content_of: ContentOf
) -> tuple[Packet, list[Notice]]:
    """``read_tree`` for a frame the caller has already found (see ``frame``)."""
    check_frame(frame)
    findings = Findings()
    if kind == "status":
        return _status(frame, findings), findings.notices
    return _edoc(frame, content_of, findings), findings.notices


def _edoc(frame: Frame, content_of: ContentOf, findings: Findings) -> Edoc:
    assert frame.header is not None and frame.message_header is not None
    v = _message_header(frame.message_header, frame.message_children, _EDOC, findings)
    if frame.trace_list is None:
        raise schema_error(frame.header, "edXMLHeader has no TraceHeaderList.")
    traces, business = trace_list(frame.trace_list, findings)
    check_signature_slot(frame)
    version, manifest, pending = read_attachments(frame.body, frame.encoded, findings)
    attachments = [
        Attachment(content_id, name, content_of(encoded), content_type, description)
        for content_id, name, content_type, description, encoded in pending
    ]
    # Positional, in the model's field order: keywords cost a microsecond here.
    return Edoc(
        v[0], v[1] or [], v[3], v[4], v[5], v[6], v[8], v[2], v[7], v[9], v[10],
        v[11] or [], v[12], v[13], v[14], v[15], traces, business, signature_of(frame, findings),
        version, manifest, attachments,
    )


def _status(frame: Frame, findings: Findings) -> StatusPacket:
    assert frame.message_header is not None
    v = _message_header(frame.message_header, frame.message_children, _STATUS, findings)
    traces: list[TraceHeader] = []
    if frame.trace_list is not None:
        traces, _business = trace_list(frame.trace_list, findings)
    check_signature_slot(frame)
    return StatusPacket(
        from_=v[0],
        response_for=v[1],
        staff_info=v[2],
        status_code=v[3],
        description=v[4],
        timestamp=v[5],
        trace_headers=traces,
        signature=signature_of(frame, findings),
    )

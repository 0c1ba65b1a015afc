"""TraceHeaderList: the hops a packet took and the business block, read and checked.

Every hop's OrganId and Timestamp are checked like the MessageHeader's (an empty or
``null`` OrganId is fine here: intermediaries send both), and so are the identifiers
the business block names; XSD 1.0 cannot say that the block appears at most once.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from bus.edxml.blocks import staff_info, to_int
from bus.edxml.dates import to_datetime
from bus.edxml.findings import Findings, Q, children, local_name, schema_error
from bus.edxml.identifiers import check_identifier, standard_form
from bus.edxml.model import Business, BusinessDocumentInfo, Receiver, ReplacementInfo, TraceHeader
from bus.edxml.tolerance import (
    TRACE_EXTRA_CHILDREN,
    TRACE_LIST_ATTRIBUTES,
    TRACE_ORGAN_ID_EMPTY,
    TRACE_WITHOUT_ORGAN_ID,
    tolerated,
)

_ORGAN_ID: Final = Q + "OrganId"
_DOCUMENT_ID: Final = Q + "DocumentId"
_TRACE_HEADER: Final = Q + "TraceHeader"
_TIMESTAMP: Final = Q + "Timestamp"
_BUSINESS: Final = Q + "Bussiness"
_BUSINESS_DOC_TYPE: Final = Q + "BussinessDocType"
_BUSINESS_DOC_REASON: Final = Q + "BussinessDocReason"
_PAPER: Final = Q + "Paper"
_DOCUMENT_INFO_BLOCK: Final = Q + "BussinessDocumentInfo"
_DOCUMENT_INFO: Final = Q + "DocumentInfo"
_DOCUMENT_RECEIVER: Final = Q + "DocumentReceiver"
_RECEIVER_LIST: Final = Q + "ReceiverList"
_RECEIVER: Final = Q + "Receiver"
_RECEIVER_TYPE: Final = Q + "ReceiverType"
_REPLACEMENT_LIST: Final = Q + "ReplacementInfoList"
_REPLACEMENT: Final = Q + "ReplacementInfo"
_ORGAN_ID_LIST: Final = Q + "OrganIdList"
_STAFF_INFO: Final = Q + "StaffInfo"
_TRACE_EXTRAS: Final = (Q + "Business", _STAFF_INFO)

_BOOLEAN_NUMBERS: Final = {"true": 1, "false": 0}


def _to_flag(text: str | None) -> int | None:
    # Paper is an XSD boolean: true/false/1/0; the model keeps the SDK's 1/0.
    if not text or not text.strip():
        return None
    value = text.strip()
    flag = _BOOLEAN_NUMBERS.get(value)
    return int(value) if flag is None else flag


def trace_list(
    block: etree._Element, findings: Findings
) -> tuple[list[TraceHeader], Business | None]:
    """The hops, in order, and the business block (at most one; XSD 1.0 cannot say so)."""
    traces: list[TraceHeader] = []
    business = None
    attributes = block.keys()  # a list built in C: cheaper than .attrib
    if attributes:
        names = sorted(etree.QName(name).localname for name in attributes)
        tolerated(findings, TRACE_LIST_ATTRIBUTES, block,
                  f"TraceHeaderList carries the attribute(s) {', '.join(names)} (a SOAP-header "
                  "habit); they mean nothing in edXML and are ignored.", attributes=names)
    for child in children(block):
        tag = child.tag
        if tag == _TRACE_HEADER:
            traces.append(_trace_header(child, findings))
        elif tag == _BUSINESS:
            if business is not None:
                raise schema_error(
                    child, "TraceHeaderList has more than one Bussiness; expected at most one."
                )
            business = _business(child, findings)
        elif isinstance(tag, str):
            raise schema_error(
                child,
                f"TraceHeaderList contains an unknown element {local_name(child)}; expected "
                "TraceHeader elements and at most one Bussiness.",
            )
    return traces, business


def _trace_header(block: etree._Element, findings: Findings) -> TraceHeader:
    organ_el = stamp_el = None
    organ_id = timestamp = ""
    extras: list[str] = []
    for leaf in children(block):
        tag = leaf.tag
        if tag == _ORGAN_ID:
            organ_el, organ_id = leaf, leaf.text or ""
        elif tag == _TIMESTAMP:
            stamp_el, timestamp = leaf, leaf.text or ""
        elif tag in _TRACE_EXTRAS:
            extras.append(local_name(leaf))
    if stamp_el is None:
        raise schema_error(block, "TraceHeader needs a Timestamp (yyyy/MM/dd HH:mm:ss).")
    if extras:
        tolerated(findings, TRACE_EXTRA_CHILDREN, block,
                  f"TraceHeader carries {' and '.join(extras)}, a producer's own bookkeeping; "
                  "ignored (as the official parser does) and forwarded as sent.",
                  elements=extras)
    found: str | None = organ_id
    if organ_el is None:
        found = None
        tolerated(findings, TRACE_WITHOUT_ORGAN_ID, block,
                  "TraceHeader has only a Timestamp, no OrganId (the national axis appends such "
                  "hops); read as a hop with no organisation.")
    elif standard_form(organ_id) is None:
        check_identifier(organ_el, "TraceHeader/OrganId", organ_id, findings, required=False)
        if organ_id in ("", "null"):
            tolerated(findings, TRACE_ORGAN_ID_EMPTY, organ_el,
                      f"TraceHeader/OrganId is {'empty' if not organ_id else 'the text null'}; "
                      "read as a hop with no organisation.")
    to_datetime(stamp_el, "TraceHeader/Timestamp", timestamp)
    return TraceHeader(found, timestamp)


def _business(block: etree._Element, findings: Findings) -> Business:
    doc_type = reason = document_id = paper = None
    info = staff = None
    replacements: list[ReplacementInfo] | None = None
    for child in children(block):
        tag = child.tag
        if tag == _BUSINESS_DOC_TYPE:
            doc_type = child.text
        elif tag == _BUSINESS_DOC_REASON:
            reason = child.text or ""
        elif tag == _DOCUMENT_ID:
            document_id = child.text or ""
        elif tag == _PAPER:
            paper = child.text
        elif tag == _STAFF_INFO:
            if staff is None:
                staff = staff_info(child, None)
        elif tag == _DOCUMENT_INFO_BLOCK:
            found_info = _document_info(child, findings)
            if info is None:
                info = found_info
        elif tag == _REPLACEMENT_LIST:
            found = _replacements(child, findings)
            if replacements is None:
                replacements = found
    return Business(
        to_int(doc_type) or 0, reason, document_id, _to_flag(paper) if paper else None, info,
        replacements, staff,
    )


def _document_info(block: etree._Element, findings: Findings) -> BusinessDocumentInfo:
    document_info = document_receiver = None
    receivers: list[Receiver] | None = None
    for child in children(block):
        tag = child.tag
        if tag == _RECEIVER_LIST:
            found = [_receiver(r, findings) for r in children(child) if r.tag == _RECEIVER]
            if receivers is None:
                receivers = found
        elif tag == _DOCUMENT_INFO:
            document_info = child.text or ""
        elif tag == _DOCUMENT_RECEIVER:
            document_receiver = child.text or ""
    return BusinessDocumentInfo(document_info, document_receiver, receivers)


def _receiver(block: etree._Element, findings: Findings) -> Receiver:
    organ_id: str | None = None
    receiver_type = None
    for leaf in children(block):
        tag = leaf.tag
        if tag == _ORGAN_ID:
            checked = check_identifier(leaf, "Receiver/OrganId", leaf.text or "", findings)
            if organ_id is None:
                organ_id = checked
        elif tag == _RECEIVER_TYPE and receiver_type is None:
            receiver_type = leaf.text
    return Receiver(organ_id or "", to_int(receiver_type))


def _replacements(block: etree._Element, findings: Findings) -> list[ReplacementInfo]:
    found: list[ReplacementInfo] = []
    for item in children(block):
        if item.tag != _REPLACEMENT:
            continue
        document_id: str | None = None
        organ_ids: list[str] | None = None
        for child in children(item):
            tag = child.tag
            if tag == _ORGAN_ID_LIST:
                ids = [
                    check_identifier(
                        organ, "ReplacementInfo/OrganIdList/OrganId", organ.text or "", findings
                    )
                    for organ in children(child)
                    if organ.tag == _ORGAN_ID
                ]
                if organ_ids is None:
                    organ_ids = ids
            elif tag == _DOCUMENT_ID and document_id is None:
                document_id = child.text or ""
        found.append(ReplacementInfo(document_id or "", organ_ids or []))
    return found

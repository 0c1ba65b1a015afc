"""The fixed elements of a packet, found once and shared by every stage of a read.

The reader needs the MessageHeader to pick a schema, the header's Signature to bound
its depth, and the model walk needs all of these again. lxml builds a new proxy and a
new tag string for an element each time one is visited after its last proxy died, so
the frame keeps the proxies (and with them their cached tags) alive from the first
visit to the last: the MessageHeader's children are visited once for the kind and
reused by the walk.

Finding the frame never raises: a packet the XSD refuses must be reported by the XSD,
so what is missing is only recorded here and raised by :func:`check_frame`, in the
order the model walk has always reported it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from lxml import etree

from bus.edxml.findings import (
    Findings,
    Q,
    children,
    element_path,
    line_of,
    local_name,
    schema_error,
)
from bus.edxml.model import NS, XMLDSIG_NS, Signature
from bus.edxml.tolerance import EMPTY_SIGNATURE, tolerated
from bus.errors import UnsupportedPacket
from bus.schemas import EDXML_NS

_DSIG: Final = "{" + XMLDSIG_NS + "}"
_EDXML: Final = Q + "edXML"
_ENVELOPE: Final = Q + "edXMLEnvelope"
_HEADER: Final = Q + "edXMLHeader"
_BODY: Final = Q + "edXMLBody"
_ENCODED: Final = Q + "AttachmentEncoded"
_MESSAGE_HEADER: Final = Q + "MessageHeader"
_TRACE_LIST: Final = Q + "TraceHeaderList"
_SIGNATURE: Final = Q + "Signature"
_DSIG_SIGNATURE: Final = _DSIG + "Signature"
_DIGITAL_SIGNATURE: Final = Q + "DigitalSignature"
_ANY_SIGNATURE: Final = "}Signature"
# More children than any valid packet's root, envelope, header or usual MessageHeader.
_FEW: Final = 64


class Frame(NamedTuple):
    """The first of each fixed element (None where absent) and the MessageHeader's
    children (None if too many to collect before the XSD); ``signatures`` are the
    header's children named Signature in any namespace, and DigitalSignature. ``plain``
    says the root and envelope hold nothing but one of each of their known children, so
    that this header is the only one there is."""

    root: etree._Element
    envelope: etree._Element | None = None
    encoded: etree._Element | None = None
    header: etree._Element | None = None
    body: etree._Element | None = None
    message_header: etree._Element | None = None
    message_children: Sequence[etree._Element] | None = None
    trace_list: etree._Element | None = None
    sdk_signature: etree._Element | None = None
    dsig_signature: etree._Element | None = None
    foreign: etree._Element | None = None
    signatures: tuple[etree._Element, ...] = ()
    plain: bool = False


def _first(parent: etree._Element, tag: str) -> etree._Element | None:
    """The first child with ``tag``, filtered in C: no proxy for the others."""
    return next(parent.iterchildren(tag), None)


def _pair(parent: etree._Element, first: str, second: str
          ) -> tuple[etree._Element | None, etree._Element | None, bool]:
    """The first child tagged ``first`` and the first tagged ``second``, and whether
    ``parent`` holds nothing else.

    The frame is found before the XSD has bounded anything: a refused packet with a
    million children must not first get a million proxies, so past ``_FEW`` children
    the two are filtered in C.
    """
    if len(parent) > _FEW:
        return _first(parent, first), _first(parent, second), False
    a = b = None
    plain = True
    for child in children(parent):
        tag = child.tag
        if tag == first and a is None:
            a = child
        elif tag == second and b is None:
            b = child
        else:
            plain = False
    return a, b, plain


def find_frame(root: etree._Element) -> Frame:
    if root.tag != _EDXML:
        return Frame(root)
    envelope, encoded, plain = _pair(root, _ENVELOPE, _ENCODED)
    if envelope is None:
        return Frame(root, encoded=encoded)
    header, body, plain_envelope = _pair(envelope, _HEADER, _BODY)
    plain = plain and plain_envelope
    if header is None:
        return Frame(root, envelope, encoded, body=body)
    message_header = trace_list = sdk = dsig = foreign = None
    signatures: list[etree._Element] = []
    if len(header) > _FEW:
        kids: list[etree._Element] = []
        message_header, trace_list = _first(header, _MESSAGE_HEADER), _first(header, _TRACE_LIST)
        sdk, dsig, plain = _first(header, _SIGNATURE), _first(header, _DSIG_SIGNATURE), False
        for child in header.iterchildren(_DSIG + "*"):
            if child.tag != _DSIG_SIGNATURE:
                foreign = child
                break
    else:
        kids = children(header)
    for child in kids:
        tag = child.tag
        if tag == _MESSAGE_HEADER:
            if message_header is None:
                message_header = child
        elif tag == _TRACE_LIST:
            if trace_list is None:
                trace_list = child
        elif isinstance(tag, str):
            if tag.endswith(_ANY_SIGNATURE) or tag == "Signature" or tag == _DIGITAL_SIGNATURE:
                signatures.append(child)
            if tag == _SIGNATURE:
                if sdk is None:
                    sdk = child
            elif tag == _DSIG_SIGNATURE:
                if dsig is None:
                    dsig = child
            elif foreign is None and tag.startswith(_DSIG):
                foreign = child
    message_children = (
        None if message_header is None or len(message_header) > _FEW
        else children(message_header)
    )
    # Every field, in order: tuple.__new__ skips the generated __new__ and its defaults.
    return tuple.__new__(Frame, (
        root, envelope, encoded, header, body, message_header, message_children,
        trace_list, sdk, dsig, foreign, tuple(signatures), plain,
    ))  # fmt: skip


def check_frame(frame: Frame) -> None:
    """Raises for the first fixed element missing, from the root down."""
    root = frame.root
    if root.tag != _EDXML:
        raise UnsupportedPacket(
            f"root element is {root.tag!r}; expected edXML in namespace {EDXML_NS}.",
            line=line_of(root),
            path=element_path(root),
        )
    if frame.envelope is None:
        raise schema_error(root, "edXML has no edXMLEnvelope; expected it as the first child.")
    if frame.header is None:
        raise schema_error(frame.envelope, "edXMLEnvelope has no edXMLHeader.")
    if frame.message_header is None:
        raise schema_error(frame.header, "edXMLHeader has no MessageHeader.")


def signature_of(frame: Frame, findings: Findings) -> Signature | None:
    """Kept as bytes: intermediaries must not re-serialise what a signer signed.

    The SDK's form wins over an XML-DSig one if a packet somehow has both. An empty
    block (tolerance rule empty-signature-block) is no signature at all, not a bad one.
    """
    if frame.sdk_signature is None and frame.dsig_signature is None and not frame.signatures:
        return None
    for element, namespace in ((frame.sdk_signature, NS), (frame.dsig_signature, XMLDSIG_NS)):
        if element is None:
            continue
        if len(element) or (element.text or "").strip():
            return Signature(_serialised(element), namespace)
        _empty_block(element, findings)
    header = frame.header
    digital = header.find(_DIGITAL_SIGNATURE) if header is not None else None
    if digital is not None:
        _empty_block(digital, findings)
    return None


def _empty_block(element: etree._Element, findings: Findings) -> None:
    tolerated(findings, EMPTY_SIGNATURE, element,
              f"{local_name(element)} is empty: the packet is read as unsigned (an empty "
              "block is neither a signature nor a bad one).")


def _serialised(element: etree._Element) -> bytes:
    return etree.tostring(element, encoding="UTF-8", with_tail=False)


def check_signature_slot(frame: Frame) -> None:
    if frame.foreign is not None:
        raise schema_error(
            frame.foreign,
            f"edXMLHeader contains the XML-DSig element {local_name(frame.foreign)}; only a "
            "Signature element is expected there.",
        )

"""Bytes → checked, typed packet, with every guard of contract.md on.

The order of checks is the order of cost: size cap, then byte scans that refuse a
DOCTYPE and an element bomb before libxml2 sees them (:mod:`bus.xmlsafe`, which also
makes the parser and re-encodes UTF-16/32), then a hardened parse (no DTD, entities or
network), depth, namespace, XSD, the second pass (applied while the model is built, see
``build_model``), and only then attachment content. A bomb is refused before any work
proportional to what it would expand to.

Large packets have their base64 lifted out before parsing (``content``). If the markers
do not all come back as the text of ``ContentTransferEncoded`` elements (a CDATA
section, a comment, an exotic encoding), the packet is read as sent instead, and a
refused small packet is re-read lifted: the shortcut never changes a verdict, a line
or a message.
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass, field
from typing import Final

from lxml import etree

from bus import errors, xmlsafe
from bus.edxml.blob import SPOOL_THRESHOLD, Blob
from bus.edxml.build_model import read_frame
from bus.edxml.content import TooManyHits, blob_of, find_regions, lift, text_blob
from bus.edxml.findings import element_path, line_of
from bus.edxml.frame import Frame, find_frame
from bus.edxml.model import NS, Packet, PacketKind
from bus.edxml.tolerance import explain_refusal, root_refusal
from bus.schemas import EdxmlSchemas, default_schemas

_XINCLUDE_NS: Final = b"http://www.w3.org/2001/XInclude"
_Q: Final = f"{{{NS}}}"
_ROOT: Final = _Q + "edXML"
_ENVELOPE: Final = _Q + "edXMLEnvelope"
_HEADER: Final = _Q + "edXMLHeader"
_MESSAGE_HEADER: Final = _Q + "MessageHeader"
_STATUS_CODE: Final = _Q + "StatusCode"
_CTE_TAG: Final = _Q + "ContentTransferEncoded"
# Below this size libxml2 parses the base64 faster than it can be found and lifted out.
_LIFT_ABOVE: Final = 16 * 1024


@dataclass(frozen=True)
class Limits:
    """Guards applied to every packet; the defaults suit scanned documents up to 100 MB."""

    max_bytes: int = 150 * 1024 * 1024
    max_depth: int = 32
    max_attachment_bytes: int = 100 * 1024 * 1024
    spool_threshold: int = SPOOL_THRESHOLD
    keep_base64_up_to: int = 8 * 1024 * 1024
    max_elements: int = xmlsafe.DEFAULT_MAX_ELEMENTS


DEFAULT_LIMITS = Limits()


@dataclass
class ReadResult:
    packet: Packet
    kind: PacketKind
    notices: list[errors.Notice] = field(default_factory=list)


def hardened_parser() -> etree.XMLParser:
    """A new parser with every guard of contract.md on (benchmarks measure against it)."""
    return xmlsafe.hardened_parser()


_KNOWN_PREFIXES = {"edXML": NS, "xlink": "http://www.w3.org/1999/xlink"}
_UNDECLARED = re.compile(r"Namespace prefix (\S+) (?:for \S+ )?on \S+ is not defined")
_ROOT_TAG = re.compile(rb"<(?![?!])[A-Za-z_][\w.:-]*")


def _undeclared_prefixes(log: etree._ListErrorLog) -> set[str] | None:
    """The prefixes a producer used without declaring, if those are the only faults.

    The SDK's own sample writes ``edXML:AttachmentEncoded`` outside the element that
    declares ``edXML``, and ``xlink:href`` with no declaration at all. The intent is
    unambiguous for these two well-known prefixes, so they are read as meant; any other
    undeclared prefix, or any other fault, leaves the packet refused.

    ``log`` must be the parser's own log, which holds this parse only: the exception's
    log is the thread's, and still holds the faults of earlier packets.
    """
    found: set[str] = set()
    for entry in log:
        match = _UNDECLARED.fullmatch(entry.message.strip())
        if entry.type != etree.ErrorTypes.NS_ERR_UNDEFINED_NAMESPACE or match is None:
            return None
        found.add(match.group(1))
    return found if found and found <= _KNOWN_PREFIXES.keys() else None


def _declare_on_root(data: bytes, prefixes: set[str]) -> bytes:
    root = _ROOT_TAG.search(data)
    if root is None:
        return data
    extra = "".join(f' xmlns:{p}="{_KNOWN_PREFIXES[p]}"' for p in sorted(prefixes))
    return data[: root.end()] + extra.encode() + data[root.end() :]


# ---------------------------------------------------------------- tree guards


def _refuse_xinclude(root: etree._Element, data: bytes) -> None:
    """DtdForbidden if any element is in the XInclude namespace.

    The schemas admit elements of other namespaces only inside a Signature (and as an
    XML-DSig element of the header), so a packet the XSD accepted needs this only when
    its header has one. A packet refused before or by the XSD is looked at first, so an
    XInclude is always reported as such. A character reference can spell the namespace
    without its bytes appearing.
    """
    if (_XINCLUDE_NS in data or xmlsafe.has_char_reference(data)) and root.xpath(
        "boolean(//*[namespace-uri()='http://www.w3.org/2001/XInclude'])"
    ):
        raise errors.DtdForbidden("XInclude is not allowed in an edXML packet")


def _parse(
    data: bytes, notices: list[errors.Notice], *, retried: bool = False
) -> etree._Element:
    parser = xmlsafe.thread_parser()
    try:
        return xmlsafe.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        log = parser.error_log
        prefixes = _undeclared_prefixes(log)
        if prefixes and not retried:
            first = next(iter(log))
            notices.append(errors.Notice(
                "UndeclaredPrefix",
                f"namespace prefix(es) {', '.join(sorted(prefixes))} used without a "
                "declaration; read as their usual namespaces. Declare them on the root.",
                line=first.line,
            ))
            return _parse(_declare_on_root(data, prefixes), notices, retried=True)
        message = str(exc.msg if hasattr(exc, "msg") else exc)
        line = exc.lineno if exc.lineno else None
        if "Excessive depth" in message or ("depth" in message.lower() and "exceed" in message):
            raise errors.TooDeep(
                "the XML is nested deeper than any edXML packet can be", line=line
            ) from None
        if "huge" in message.lower() or "Resource limit" in message:
            raise errors.PayloadTooLarge(
                "a text node exceeds the parser's limit; large attachments must be plain "
                "base64 inside ContentTransferEncoded",
                line=line,
            ) from None
        raise errors.MalformedXml(f"not well-formed XML: {message}", line=line) from None
    except ValueError as exc:
        raise errors.MalformedXml(f"not readable as XML: {exc}") from None


# Packets are about ten levels deep: a short probe settles almost every one, and only a
# packet deeper than that pays for the probe at the limit.
_SHALLOW: Final = 10


def _check_depth(root: etree._Element, limit: int) -> None:
    if limit > _SHALLOW and xmlsafe.too_deep(root, _SHALLOW) is None:
        return
    element = xmlsafe.too_deep(root, limit)
    if element is not None:
        raise errors.TooDeep(
            f"elements are nested more than {limit} levels deep; no edXML packet needs that",
            line=line_of(element),
            path=element_path(element),
        )


_SIGNATURES: Final = etree.XPath(
    "/*/*[local-name()='edXMLEnvelope']/*[local-name()='edXMLHeader']/*[local-name()='Signature']")
_SIGNATURE_DEPTH: Final = 4


@functools.lru_cache(maxsize=8)
def _relative_probe(levels: int) -> etree.XPath:
    return etree.XPath("(" + "/".join(["*"] * levels) + ")[1]")


def _check_signature_depth(root: etree._Element, frame: Frame, limit: int) -> None:
    """Depth of a packet the XSD accepted: only a Signature's content is unconstrained.

    The schemas declare a fixed structure everywhere else (no recursion, no wildcard:
    tests/unit/test_schemas_*.py check this), so a valid packet is as deep as they allow
    plus whatever a Signature holds; packets the XSD refuses get the full probe before
    their refusal, so a nesting bomb is always reported as TooDeep. A valid packet has
    one envelope and one header, so the frame's Signatures are all there are; any other
    shape is searched in full.
    """
    if frame.plain and not frame.signatures:
        return
    signatures = frame.signatures if frame.plain else _SIGNATURES(root)
    for signature in signatures if isinstance(signatures, (list, tuple)) else ():
        assert isinstance(signature, etree._Element)
        if _relative_probe(limit - _SIGNATURE_DEPTH + 1)(signature):
            _check_depth(root, limit)


def _detect_kind(root: etree._Element, frame: Frame) -> PacketKind:
    """Which schema applies: a MessageHeader with a StatusCode makes a status packet.

    The MessageHeader looked at is the first one under any envelope and header.
    """
    if root.tag != _ROOT:
        raise root_refusal(root)
    message_header = frame.message_header
    if message_header is not None and frame.message_children is not None:
        # The frame keeps these proxies alive, so each tag is made once per read.
        for child in frame.message_children:
            if child.tag == _STATUS_CODE:
                return "status"
        return "edoc"
    if message_header is None:
        # A malformed packet: look further, under any envelope and any header.
        message_header = root.find(f"{_ENVELOPE}/{_HEADER}/{_MESSAGE_HEADER}")
        if message_header is None:
            return "edoc"
    return "edoc" if next(message_header.iterchildren(_STATUS_CODE), None) is None else "status"


def _all_came_back(root: etree._Element, token: str, count: int) -> bool:
    """Whether every marker is the text of a ContentTransferEncoded element.

    If one is not, lifting changed something the sender wrote (a CDATA section, a
    comment, an element in another namespace), so the packet is judged as sent. A valid
    packet shows this by the Attachments the walk meets, so only a refusal needs to look.
    """
    found = sum(1 for element in root.iter(_CTE_TAG) if (element.text or "").startswith(token))
    return found == count


def _validate(tree: etree._ElementTree, kind: PacketKind, schemas: EdxmlSchemas) -> None:
    schema = schemas.edoc if kind == "edoc" else schemas.status
    try:
        schema.assertValid(tree)
    except etree.DocumentInvalid as exc:
        entry = exc.error_log[0]  # type: ignore[index]
    else:
        return
    message = entry.message.replace(f"{{{NS}}}", "")
    path = None
    if entry.path:
        # libxml2 writes the path with the packet's own prefixes: resolve them the same way.
        prefixes = {prefix: uri for element in tree.iter() if isinstance(element.tag, str)
                    for prefix, uri in element.nsmap.items() if prefix}
        try:
            nodes = tree.xpath(entry.path, namespaces=prefixes)
        except etree.XPathError:
            nodes = []
        if isinstance(nodes, list) and nodes and isinstance(nodes[0], etree._Element):
            path = element_path(nodes[0])
    raise errors.SchemaInvalid(
        f"the {kind} packet does not follow QCVN 102:2016: {message}",
        line=entry.line or None,
        path=path,
    )


# ---------------------------------------------------------------- entry point


def read_packet(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    schemas: EdxmlSchemas | None = None,
) -> ReadResult:
    """Parse, validate and type one packet, or raise the :mod:`bus.errors` code for it."""
    schemas = schemas or default_schemas()
    _check_size(data, limits)
    utf8 = xmlsafe.as_utf8(data, max_elements=limits.max_elements)
    if utf8 is not data:
        _check_size(utf8, limits)  # re-encoding UTF-16 can make it longer
        data = utf8
    if len(data) > _LIFT_ABOVE:
        return _read(data, limits, schemas, lifting=True)
    try:
        return _read(data, limits, schemas, lifting=False)
    except errors.PacketError:
        # A refusal is reported as the lifting read reports it (where base64 text starts,
        # columns after lifted text), so the size of a packet never changes a message.
        if not _regions(data, limits):
            raise
    return _read(data, limits, schemas, lifting=True)


def _check_size(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_bytes:
        raise errors.PayloadTooLarge(
            f"the packet is {len(data)} bytes; this bus accepts at most {limits.max_bytes}"
        )


# No real packet has more attachments than this; past it, ContentTransferEncoded occurs
# as text or in a bomb, and finding regions one by one would cost more than parsing.
_MAX_CTE_MENTIONS: Final = 4096


def _regions(data: bytes, limits: Limits) -> list[tuple[int, int]]:
    """Where to lift base64 out, at a cost bounded whatever the packet holds."""
    try:
        return find_regions(data, max_hits=_MAX_CTE_MENTIONS)
    except TooManyHits:
        xmlsafe.check_elements(data, limits.max_elements, "packet")
        return []


def _read(data: bytes, limits: Limits, schemas: EdxmlSchemas, *, lifting: bool) -> ReadResult:
    regions = _regions(data, limits) if lifting else []
    token = f"lgsp.spool.{secrets.token_hex(8)}." if regions else ""
    reduced = lift(data, regions, token.encode()) if regions else data
    if xmlsafe.declares_dtd(reduced):
        raise errors.DtdForbidden(
            "the packet contains a DOCTYPE or entity declaration; edXML packets must not "
            "carry DTDs, entities or external references",
            line=reduced.count(b"\n", 0, max(reduced.find(b"<!DOCTYPE"), 0)) + 1,
        )
    xmlsafe.check_elements(reduced, limits.max_elements, "packet")
    early: list[errors.Notice] = []
    try:
        root = _parse(reduced, early)
    except errors.MalformedXml:
        if regions:
            return _read(data, limits, schemas, lifting=False)
        raise
    tree = root.getroottree()
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # type: ignore[attr-defined]
        raise errors.DtdForbidden("the packet declares a DTD; edXML packets must not")
    frame = find_frame(root)
    try:
        kind = _detect_kind(root, frame)
    except errors.PacketError:
        _refuse_xinclude(root, reduced)
        raise

    # Markers met in Attachments: one anywhere else means lifting changed the packet.
    lifted = 0

    def content_of(element: etree._Element | None) -> Blob:
        nonlocal lifted
        if element is None:  # the XSD requires one per Attachment
            raise errors.SchemaInvalid("Attachment has no ContentTransferEncoded")
        text = element.text or ""
        if regions and text.startswith(token):
            lifted += 1
            start, end = regions[int(text[len(token) :])]
            return blob_of(data, start, end, None, element, max_bytes=limits.max_attachment_bytes,
                           spool_threshold=limits.spool_threshold,
                           keep_base64_up_to=limits.keep_base64_up_to)
        return text_blob(text, element, limits.max_attachment_bytes, limits.spool_threshold,
                         limits.keep_base64_up_to)

    try:
        try:
            _validate(tree, kind, schemas)
        except errors.SchemaInvalid:
            _refuse_xinclude(root, reduced)
            _check_depth(root, limits.max_depth)
            better = explain_refusal(root)  # edxml.md §9's refused variants, named
            if better is not None:
                raise better from None
            raise
        if frame.signatures or frame.foreign is not None or not frame.plain:
            _refuse_xinclude(root, reduced)
        _check_signature_depth(root, frame, limits.max_depth)
        packet, notices = read_frame(frame, kind, content_of)
    except errors.PacketError:
        if regions and not _all_came_back(root, token, len(regions)):
            return _read(data, limits, schemas, lifting=False)
        raise
    if lifted != len(regions):
        return _read(data, limits, schemas, lifting=False)
    return ReadResult(packet, kind, early + notices if early else notices)

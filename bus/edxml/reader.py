"""Bytes → checked, typed packet, with every guard of contract.md on.

The order of checks is the order of cost: size cap, then a byte scan that refuses a
DOCTYPE before libxml2 sees it, then a hardened parse (no DTD, entities or network),
depth, namespace, XSD, the second pass, and only then the expensive part — decoding
attachments. A bomb is refused before any work proportional to what it would expand to.

Scanned attachments make packets of 10–100 MB. Rather than lift libxml2's text-node
limit for everyone (``huge_tree`` turns off several guards at once), the reader lifts the
base64 out of each ``ContentTransferEncoded`` before parsing, leaving a marker and the
same number of line breaks so that line numbers stay true, and decodes it strictly, in
chunks, into a :class:`~bus.edxml.blob.Blob`. If the markers do not all come back as
the text of ``ContentTransferEncoded`` elements (a CDATA section, a comment, an exotic
encoding), the packet is parsed as sent instead: the shortcut never changes a verdict.
"""

from __future__ import annotations

import binascii
import functools
import re
import secrets
import threading
from dataclasses import dataclass, field

from lxml import etree

from bus import errors
from bus.edxml import checks
from bus.edxml.blob import SPOOL_THRESHOLD, Blob
from bus.edxml.build_model import build_packet
from bus.edxml.model import NS, Packet, PacketKind
from bus.schemas import EdxmlSchemas, default_schemas

_XINCLUDE_NS = b"http://www.w3.org/2001/XInclude"
_CTE = b"ContentTransferEncoded"
_WHITESPACE = b" \t\r\n"
_DECODE_CHUNK = 1 << 22
_CTE_TAG = f"{{{NS}}}ContentTransferEncoded"


@dataclass(frozen=True)
class Limits:
    """Guards applied to every packet; the defaults suit scanned documents up to 100 MB."""

    max_bytes: int = 150 * 1024 * 1024
    max_depth: int = 32
    max_attachment_bytes: int = 100 * 1024 * 1024
    spool_threshold: int = SPOOL_THRESHOLD


DEFAULT_LIMITS = Limits()


@dataclass
class ReadResult:
    packet: Packet
    kind: PacketKind
    notices: list[errors.Notice] = field(default_factory=list)


@dataclass
class _Region:
    start: int
    end: int
    line: int


_local = threading.local()


def _parser() -> etree.XMLParser:
    """One parser per thread: lxml parsers keep state and are not shared across threads."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


_KNOWN_PREFIXES = {"edXML": NS, "xlink": "http://www.w3.org/1999/xlink"}
_UNDECLARED = re.compile(r"Namespace prefix (\S+) (?:for \S+ )?on \S+ is not defined")
_ROOT_TAG = re.compile(rb"<(?![?!])[A-Za-z_][\w.:-]*")


def _undeclared_prefixes(log: etree._ListErrorLog) -> set[str] | None:
    """The prefixes a producer used without declaring, if those are the only faults.

    The SDK's own sample writes ``edXML:AttachmentEncoded`` outside the element that
    declares ``edXML``, and ``xlink:href`` with no declaration at all. The intent is
    unambiguous for these two well-known prefixes, so they are read as meant; any other
    undeclared prefix, or any other fault, leaves the packet refused.
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


def _find_regions(data: bytes) -> list[_Region]:
    """Spans of base64 text inside ``ContentTransferEncoded`` elements, found by bytes."""
    regions: list[_Region] = []
    pos = 0
    line = 1
    counted_to = 0
    while True:
        hit = data.find(_CTE, pos)
        if hit < 0:
            return regions
        lt = data.rfind(b"<", max(0, hit - 64), hit)
        gt = data.find(b">", hit)
        pos = hit + len(_CTE)
        if lt < 0 or gt < 0 or data[lt + 1 : lt + 2] == b"/" or data[gt - 1 : gt] == b"/":
            continue
        qname = data[lt + 1 : hit + len(_CTE)]
        if not _is_qname(qname):
            continue
        close = data.find(b"</" + qname, gt + 1)
        if close < 0:
            return regions
        start, end = gt + 1, close
        if data.find(b"<", start, end) >= 0 or data.find(b"&", start, end) >= 0:
            pos = end
            continue
        line += data.count(b"\n", counted_to, start)
        counted_to = start
        regions.append(_Region(start, end, line))
        pos = end


def _is_qname(qname: bytes) -> bool:
    prefix, _, local = qname.rpartition(b":")
    return local == _CTE and (not prefix or prefix.replace(b"_", b"").replace(b"-", b"").isalnum())


def _reduce(data: bytes, regions: list[_Region], token: str) -> bytes:
    parts: list[bytes] = []
    last = 0
    for i, region in enumerate(regions):
        parts.append(data[last : region.start])
        parts.append(f"{token}{i}".encode())
        parts.append(b"\n" * data.count(b"\n", region.start, region.end))
        last = region.end
    parts.append(data[last:])
    return b"".join(parts)


def _parse(
    data: bytes, notices: list[errors.Notice], *, retried: bool = False
) -> etree._ElementTree:
    try:
        return etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as exc:
        prefixes = _undeclared_prefixes(exc.error_log)
        if prefixes and not retried:
            first = exc.error_log[0]
            notices.append(errors.Notice(
                "UndeclaredPrefix",
                f"namespace prefix(es) {', '.join(sorted(prefixes))} used without a "
                "declaration; read as their usual namespaces. Declare them on the root.",
                line=first.line,
            ))
            return _parse(_declare_on_root(data, prefixes), notices, retried=True)
        message = str(exc.msg if hasattr(exc, "msg") else exc)
        line = exc.lineno if exc.lineno else None
        if "Excessive depth" in message or "depth" in message.lower() and "exceed" in message:
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


@functools.lru_cache(maxsize=8)
def _depth_probe(limit: int) -> etree.XPath:
    return etree.XPath("(" + "/*" * (limit + 1) + ")[1]")


def _check_depth(root: etree._Element, limit: int) -> None:
    deep = _depth_probe(limit)(root)
    if isinstance(deep, list) and deep:
        element = deep[0]
        assert isinstance(element, etree._Element)
        raise errors.TooDeep(
            f"elements are nested more than {limit} levels deep; no edXML packet needs that",
            line=element.sourceline,
            path=checks.element_path(element),
        )


def _detect_kind(root: etree._Element) -> PacketKind:
    if root.tag != f"{{{NS}}}edXML":
        qname = etree.QName(root)
        namespace = qname.namespace or "no namespace"
        raise errors.UnsupportedPacket(
            f"root element is '{qname.localname}' in {namespace}; an edXML packet has root "
            f"'edXML' in namespace {NS}",
            line=root.sourceline,
            path="/" + qname.localname,
        )
    header = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/{{{NS}}}MessageHeader")
    if header is not None and header.find(f"{{{NS}}}StatusCode") is not None:
        return "status"
    return "edoc"


def _validate(tree: etree._ElementTree, kind: PacketKind, schemas: EdxmlSchemas) -> None:
    schema = schemas.edoc if kind == "edoc" else schemas.status
    try:
        schema.assertValid(tree)
    except etree.DocumentInvalid as exc:
        entry = exc.error_log[0]
    else:
        return
    message = entry.message.replace(f"{{{NS}}}", "")
    path = None
    if entry.path:
        nodes = tree.xpath(entry.path)
        if isinstance(nodes, list) and nodes and isinstance(nodes[0], etree._Element):
            path = checks.element_path(nodes[0])
    raise errors.SchemaInvalid(
        f"the {kind} packet does not follow QCVN 102:2016: {message}",
        line=entry.line or None,
        path=path,
    )


def _decode(data: bytes, region: _Region, limits: Limits, element: etree._Element) -> Blob:
    """Strict base64 (libxml2's own check lets junk through), in bounded chunks."""
    blob = Blob(limits.spool_threshold)
    carry = b""
    try:
        for pos in range(region.start, region.end, _DECODE_CHUNK):
            piece = carry + data[pos : min(pos + _DECODE_CHUNK, region.end)].translate(
                None, _WHITESPACE
            )
            usable = len(piece) - len(piece) % 4
            carry = piece[usable:]
            if usable:
                blob.write(binascii.a2b_base64(piece[:usable], strict_mode=True))
            if blob.size > limits.max_attachment_bytes:
                raise errors.AttachmentInvalid(
                    f"attachment is larger than the per-file cap of "
                    f"{limits.max_attachment_bytes} bytes",
                    line=region.line,
                    path=checks.element_path(element),
                )
        if carry:
            raise binascii.Error("length is not a multiple of 4 characters")
    except binascii.Error as exc:
        blob.close()
        raise errors.AttachmentInvalid(
            f"attachment content is not valid base64 ({exc}); send the file encoded with the "
            "standard base64 alphabet, padded with '=', line breaks allowed",
            line=region.line,
            path=checks.element_path(element),
        ) from None
    blob.seal()
    return blob


def read_packet(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    schemas: EdxmlSchemas | None = None,
) -> ReadResult:
    """Parse, validate and type one packet, or raise the :mod:`bus.errors` code for it."""
    return _read(data, limits, schemas or default_schemas(), lift=True)


def _read(data: bytes, limits: Limits, schemas: EdxmlSchemas, *, lift: bool) -> ReadResult:
    if len(data) > limits.max_bytes:
        raise errors.PayloadTooLarge(
            f"the packet is {len(data)} bytes; this bus accepts at most {limits.max_bytes}"
        )
    regions = _find_regions(data) if lift else []
    token = f"lgsp.spool.{secrets.token_hex(8)}."
    reduced = _reduce(data, regions, token) if regions else data
    if b"<!DOCTYPE" in reduced or b"<!ENTITY" in reduced:
        raise errors.DtdForbidden(
            "the packet contains a DOCTYPE or entity declaration; edXML packets must not "
            "carry DTDs, entities or external references",
            line=reduced.count(b"\n", 0, max(reduced.find(b"<!DOCTYPE"), 0)) + 1,
        )
    early: list[errors.Notice] = []
    tree = _parse(reduced, early)
    root = tree.getroot()
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise errors.DtdForbidden("the packet declares a DTD; edXML packets must not")
    if _XINCLUDE_NS in reduced and root.xpath(
        "boolean(//*[namespace-uri()='http://www.w3.org/2001/XInclude'])"
    ):
        raise errors.DtdForbidden("XInclude is not allowed in an edXML packet")
    _check_depth(root, limits.max_depth)
    kind = _detect_kind(root)

    ctes = list(root.iter(_CTE_TAG))
    spooled: dict[etree._Element, _Region] = {}
    if regions:
        for element in ctes:
            text = element.text or ""
            if text.startswith(token):
                spooled[element] = regions[int(text[len(token) :])]
        if len(spooled) != len(regions):
            return _read(data, limits, schemas, lift=False)

    _validate(tree, kind, schemas)
    notices = early + (checks.check_edoc(root) if kind == "edoc" else checks.check_status(root))

    contents: dict[etree._Element, Blob] = {}
    for element in ctes:
        region = spooled.get(element)
        if region is not None:
            contents[element] = _decode(data, region, limits, element)
        else:
            raw = (element.text or "").encode("utf-8", "surrogateescape")
            contents[element] = _decode(raw, _Region(0, len(raw), element.sourceline or 0),
                                        limits, element)
    packet = build_packet(root, kind, contents)
    return ReadResult(packet=packet, kind=kind, notices=notices)

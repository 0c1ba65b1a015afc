"""The one way the bus reads XML: packets, SOAP envelopes, answers from the systems it calls.

Every parse in ``bus/`` and ``adapters/`` goes through here (a test enforces it), so the
guards of contract.md are settled once:

* the parser: no DTD loading, no entity substitution, no network, libxml2's own size and
  depth guards on (``huge_tree`` off), ID collection on, and a resolver that answers
  every request for an outside resource with nothing. Either of the last two alone keeps
  libxml2 from opening a file named by a parameter entity: with ``collect_ids=False``
  lxml marks the context as wanting the DTD subset (``XML_SKIP_IDS`` in
  ``loadsubset``), and libxml2 then loads external parameter entities even with
  ``load_dtd`` off. The resolver is what guarantees it whatever the options.
* a byte scan refusing any ``<!DOCTYPE`` or ``<!ENTITY`` before libxml2 sees the bytes,
  after UTF-16 and UTF-32 documents are re-encoded as UTF-8: scanning the raw bytes of
  a UTF-16 document sees nothing.
* an element count made by C-speed ``bytes.count`` calls, so a bomb of millions of
  empty elements is refused in milliseconds instead of being built as a tree.
* a depth limit checked on the tree, which never raises anything but :class:`TooDeep`.
"""

from __future__ import annotations

import codecs
import functools
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from bus import errors

DEFAULT_MAX_ELEMENTS: Final = 50_000
"""Real packets have tens to a few thousand elements; a 10,000-recipient packet about 80k
would need a configured limit. Settings: ``max_elements``."""

MIN_ELEMENT_BYTES: Final = 4
"""``<a/>``: no element takes fewer bytes of UTF-8, so a document of ``n`` bytes holds at
most ``n // 4`` of them and a short one needs no counting at all."""

_COUNT_CHUNK: Final = 256 * 1024
_DECLARED_ENCODING: Final = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ASCII_ENCODINGS: Final = (b"UTF-8", b"US-ASCII", b"ASCII", b"ISO-8859-", b"WINDOWS-125", b"CP125")
_PLAIN_DECLARATIONS: Final = (b"<?xml version='1.0' encoding='UTF-8'?>",
                              b'<?xml version="1.0" encoding="UTF-8"?>',
                              b'<?xml version="1.0" encoding="utf-8"?>')
_BOMS: Final = (
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),
)
# A '!' not opening a declaration, or a '&' not opening a character reference, is rare
# in a packet; past this many, plain substring searches are cheaper than looking at each.
_LOOKS: Final = 16

_local = threading.local()


# ---------------------------------------------------------------- the parser


class NothingFromOutside(etree.Resolver):
    """Answers every request for an outside resource (DTD, entity, XInclude) with nothing,
    so libxml2 never falls back to its own file or network loader."""

    def resolve(self, system_url: str, public_id: str, context: object = None
                ) -> object:
        return self.resolve_string("", context, base_url=None)


def hardened_parser(*, collect_ids: bool = True, remove_comments: bool = True,
                    remove_pis: bool = True, resolver: etree.Resolver | None = None
                    ) -> etree.XMLParser:
    """A new parser with every guard on. ``resolver`` replaces the refusing one, for
    trusted schemas that include their siblings; it must itself refuse everything else."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=remove_comments,
        remove_pis=remove_pis,
        collect_ids=collect_ids,
    )
    parser.resolvers.add(resolver if resolver is not None else NothingFromOutside())
    return parser


def hardened_pull_parser() -> etree.XMLPullParser:
    """An incremental parser with the same guards (start and end events), for reading a
    prefix of a body."""
    parser = etree.XMLPullParser(
        events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
        dtd_validation=False, attribute_defaults=False, huge_tree=False,
        remove_comments=True, remove_pis=True, collect_ids=True)
    parser.resolvers.add(NothingFromOutside())
    return parser


def thread_parser() -> etree.XMLParser:
    """The calling thread's parser: lxml parsers keep state and are not shared across
    threads, and building one per document costs more than small packets' parsing."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = hardened_parser()
    return parser


# ---------------------------------------------------------------- encodings


def _ascii_names(data: bytes) -> bool:
    """Whether markup is written as ASCII bytes: no UTF-16/32 signature or NUL in the
    first bytes, and no declared encoding outside the ASCII-compatible families."""
    if data.startswith(_PLAIN_DECLARATIONS):
        return True
    head = data[:4]
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    if not data.startswith(b"<?xml", start):
        return True
    end = data.find(b"?>", start, start + 256)
    if end < 0:
        return False
    match = _DECLARED_ENCODING.search(data, start, end)
    return match is None or match.group(1).upper().startswith(_ASCII_ENCODINGS)


def as_utf8(data: bytes, *, what: str = "packet", partial: bool = False,
            max_elements: int | None = None) -> bytes:
    """UTF-16 and UTF-32 documents (with or without BOM) re-encoded as UTF-8, so that the
    byte-level guards see what libxml2 will see; line numbers are kept. Other encodings
    whose markup is not ASCII bytes are refused. ``partial``: ``data`` is a prefix, and
    may end inside a character. ``max_elements``: an element bomb is refused before the
    decoding, which would cost far more than counting."""
    if _ascii_names(data):
        return data
    codec = next((name for mark, name in _BOMS if data.startswith(mark)), None)
    if codec is None:
        raise errors.UnsupportedPacket(
            f"the {what}'s declared encoding is not supported; send UTF-8 (or UTF-16)")
    if max_elements is not None:
        check_elements(data, max_elements, what, codec=codec)
    try:
        text = codecs.getincrementaldecoder(codec)().decode(data, final=not partial)
    except UnicodeDecodeError as exc:
        raise errors.MalformedXml(f"not valid {codec.upper()}: {exc.reason}") from None
    text = text.removeprefix("\ufeff")
    if text.startswith("<?xml"):
        end = text.find("?>")
        declaration = re.sub(r"""encoding\s*=\s*["'][^"']*["']""", 'encoding="UTF-8"',
                             text[:end] if end >= 0 else text)
        text = declaration + (text[end:] if end >= 0 else "")
    return text.encode("utf-8")


# ---------------------------------------------------------------- byte scans


def _occurs(data: bytes, anchor: bytes, needles: tuple[tuple[bytes, int], ...]) -> bool:
    """Whether any needle occurs in ``data``; each is given with the offset of the
    one-byte ``anchor`` in it.

    CPython searches for a string of two or more bytes a byte at a time (5 us in a 5 KB
    packet), but for one byte with memchr, and the anchors chosen are rare in packets:
    look at each anchor, and past a few of them fall back to the plain searches.
    """
    pos = data.find(anchor)
    for _ in range(_LOOKS):
        if pos < 0:
            return False
        for needle, offset in needles:
            if pos >= offset and data.startswith(needle, pos - offset):
                return True
        pos = data.find(anchor, pos + 1)
    return any(needle in data for needle, _ in needles)


def declares_dtd(data: bytes) -> bool:
    """Whether ``<!DOCTYPE`` or ``<!ENTITY`` occurs anywhere in (UTF-8) ``data``,
    comments included."""
    return _occurs(data, b"!", ((b"<!DOCTYPE", 1), (b"<!ENTITY", 1)))


def has_char_reference(data: bytes) -> bool:
    """Whether ``&#`` occurs anywhere."""
    return _occurs(data, b"&", ((b"&#", 0),))


def refuse_dtd(data: bytes, what: str = "document") -> None:
    """DtdForbidden if (UTF-8) ``data`` declares a DTD or entity, naming the line."""
    if declares_dtd(data):
        found = [p for p in (data.find(b"<!DOCTYPE"), data.find(b"<!ENTITY")) if p >= 0]
        at = min(found, default=0)
        raise errors.DtdForbidden(
            f"the {what} contains a DOCTYPE or entity declaration; it must not carry DTDs, "
            "entities or external references",
            line=data.count(b"\n", 0, at) + 1,
        )


def _units(codec: str) -> tuple[bytes, ...]:
    """``<``, ``</``, ``<!``, ``<?`` as ``codec`` writes them."""
    return tuple(text.encode(codec) for text in ("<", "</", "<!", "<?"))


_UTF8_UNITS: Final = _units("utf-8")
_WIDE_UNITS: Final = {codec: _units(codec) for codec in
                      ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")}


def _tags(data: bytes, start: int, end: int, units: tuple[bytes, ...]) -> int:
    """Start and empty-element tags whose ``<`` starts in ``data[start:end]``; a ``<`` in
    a comment or CDATA section counts too. Each needle is counted where it starts, so
    chunks neither miss nor repeat one."""
    size = len(data)
    lt, *others = units
    return (data.count(lt, start, min(end + len(lt) - 1, size))
            - sum(data.count(other, start, min(end + len(other) - 1, size))
                  for other in others))


def count_exceeds(data: bytes, limit: int, codec: str = "utf-8") -> bool:
    """Whether ``data`` (UTF-8, or raw UTF-16/32 in ``codec``) holds more than ``limit``
    elements.

    A document too short to hold that many is not looked at; otherwise the tags are
    counted chunk by chunk and the answer comes as soon as the limit is passed, so a bomb
    of any size costs about what its first ``limit`` elements do. In UTF-16/32 a needle
    found across two characters can only be one of a few thousand CJK characters followed
    by another; the count is re-made on the UTF-8 text anyway.
    """
    units = _UTF8_UNITS if codec == "utf-8" else _WIDE_UNITS[codec]
    if len(data) <= MIN_ELEMENT_BYTES * len(units[0]) * limit:
        return False
    seen = 0
    for start in range(0, len(data), _COUNT_CHUNK):
        seen += _tags(data, start, start + _COUNT_CHUNK, units)
        if seen > limit:
            return True
    return False


def check_elements(data: bytes, limit: int, what: str = "document", *,
                   codec: str = "utf-8") -> None:
    if count_exceeds(data, limit, codec):
        raise errors.TooManyElements(
            f"the {what} has more than {limit} elements; no real one needs that many (the "
            "limit is the bus's max_elements setting)", details={"limit": limit})


# ---------------------------------------------------------------- parsing


def syntax_error(exc: etree.XMLSyntaxError, what: str = "document") -> errors.PacketError:
    """The code for a libxml2 refusal: its own depth guard (256 levels without
    ``huge_tree``) is TooDeep, its text-node guard PayloadTooLarge, the rest MalformedXml."""
    message = str(exc.msg if hasattr(exc, "msg") else exc)
    line = exc.lineno or None
    lowered = message.lower()
    if "excessive depth" in lowered or ("depth" in lowered and "exceed" in lowered):
        return errors.TooDeep(f"the {what} is nested deeper than any needs to be", line=line)
    if "huge" in lowered or "resource limit" in lowered:
        return errors.PayloadTooLarge(f"a text node of the {what} exceeds the parser's limit",
                                      line=line)
    return errors.MalformedXml(f"the {what} is not well-formed XML: {message}", line=line)


@functools.lru_cache(maxsize=16)
def _depth_probe(levels: int) -> etree.XPath:
    return etree.XPath("(" + "/*" * levels + ")[1]")


def _deepest(root: etree._Element, limit: int) -> etree._Element | None:
    """An element more than ``limit`` levels deep, walking the tree without XPath."""
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > limit:
            return element
        stack.extend((child, depth + 1) for child in element.iterchildren(tag=etree.Element))
    return None


def too_deep(root: etree._Element, limit: int) -> etree._Element | None:
    """The first element nested more than ``limit`` levels, or None. Never raises: if
    libxml2's XPath gives up (node-set limits), the tree is walked instead."""
    try:
        found = _depth_probe(limit + 1)(root)
    except etree.XPathError:
        return _deepest(root, limit)
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_depth: int = 32


def screen(data: bytes, limits: Limits, what: str = "document") -> bytes:
    """The checks made before any parse: size, encoding, DTD, element count. Returns the
    document as UTF-8, which is what should be parsed."""
    if len(data) > limits.max_bytes:
        raise errors.PayloadTooLarge(
            f"the {what} is {len(data)} bytes; this bus accepts at most {limits.max_bytes}",
            details={"limit": limits.max_bytes})
    data = as_utf8(data, what=what, max_elements=limits.max_elements)
    refuse_dtd(data, what)
    check_elements(data, limits.max_elements, what)
    return data


def parse(data: bytes, limits: Limits, what: str = "document") -> etree._Element:
    """Screened, parsed and depth-checked: the root, or the :mod:`bus.errors` code."""
    data = screen(data, limits, what)
    try:
        root = etree.fromstring(data, thread_parser())
    except etree.XMLSyntaxError as exc:
        raise syntax_error(exc, what) from None
    except ValueError as exc:
        raise errors.MalformedXml(f"the {what} is not readable as XML: {exc}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise errors.DtdForbidden(f"the {what} declares a DTD; it must not")
    if too_deep(root, limits.max_depth) is not None:
        raise errors.TooDeep(f"the {what} is nested more than {limits.max_depth} levels deep")
    return root


def fromstring(data: bytes, parser: etree.XMLParser | None = None, *,
               base_url: str | None = None) -> etree._Element:
    """A bare parse, for callers that screen ``data`` themselves (the edXML reader) or read
    the bus's own files (schemas, WSDL templates). ``parser`` must come from
    :func:`hardened_parser` (default: the thread's); libxml2's errors propagate."""
    chosen = parser if parser is not None else thread_parser()
    if base_url is None:
        return etree.fromstring(data, chosen)
    return etree.fromstring(data, chosen, base_url=base_url)


def parse_trusted(data: bytes) -> etree._Element:
    """The bus's own packaged files (WSDL templates): the hardened parser, no limits."""
    return fromstring(data)


def iter_events(parser: etree.XMLPullParser, data: bytes, what: str = "document",
                step: int = 4096) -> Iterator[tuple[str, object]]:
    """Feeds ``data`` in steps and yields the parser's events as they come, so a caller
    that has what it needs stops feeding."""
    for start in range(0, len(data), step):
        try:
            parser.feed(data[start : start + step])
            events = list(parser.read_events())
        except etree.XMLSyntaxError as exc:
            raise syntax_error(exc, what) from None
        yield from events


# ---------------------------------------------------------------- lifting large text


@dataclass(frozen=True)
class Lifted:
    """A document with one element's text replaced by ``token`` (``span`` in the
    original), for base64 that would exceed libxml2's text-node guard."""

    data: bytes
    token: str
    span: tuple[int, int]


def lift_text(data: bytes, local_name: bytes) -> Lifted | None:
    """The first ``local_name`` element's text lifted out, if it is plain text (no markup,
    no reference); the caller must check that the token came back as that element's
    text, and parse as sent otherwise."""
    match = re.search(rb"<((?:[A-Za-z_][\w.-]*:)?" + re.escape(local_name) + rb")(?:\s[^<>]*)?>",
                      data)
    if match is None or match.group(0).endswith(b"/>"):
        return None
    start = match.end()
    end = data.find(b"</" + match.group(1), start)
    if end < 0 or data.find(b"<", start, end) >= 0 or data.find(b"&", start, end) >= 0:
        return None
    token = f"lgsp.lifted.{secrets.token_hex(8)}"
    return Lifted(data[:start] + token.encode() + data[end:], token, (start, end))

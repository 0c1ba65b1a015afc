"""Dialects: a vendor's own edXML, translated at the door for the systems configured with it.

One vendor's client SDK writes its own form for its own hub (edxml.md §9): ``Business``
for the standard's ``Bussiness``, a ``Signature`` in no namespace, ``edXML:version``
attributes, dd/MM/yyyy dates. A province with such clients names the dialect on the
system's entry in ``config/directory.yaml`` (``dialect: vendor-hub-2019``); packets from
that system are translated before they are read (bytes → standard bytes, each change a
notice, the sender's bytes kept), and the same packet from any other system is refused
with a message that names the dialect and the setting. Dates need no translation: every
system's dd/MM/yyyy dates are normalised by the reader (tolerance rule day-first-dates).

Translation edits the bytes (:mod:`bus.edxml.markup`): names and attributes only, never
a re-serialisation, so the attachments and everything else stay as sent.
"""

from __future__ import annotations

import mmap
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Final, NamedTuple

from lxml import etree

from bus import errors
from bus.edxml.findings import element_path, line_of
from bus.edxml.mapped import Mapped
from bus.edxml.markup import Edit, Element, UnreadableError, apply, line_at, scan
from bus.edxml.reader import DEFAULT_LIMITS, Limits, ReadResult, read_packet
from bus.edxml.tolerance import DIALECT_TRANSLATED
from bus.schemas import EDXML_NS

__all__ = ["DIALECTS", "Dialect", "Door", "read_from", "translate", "unconfigured_dialect"]

_Q: Final = "{" + EDXML_NS + "}"
_BUSINESS_CHILDREN: Final = {"BusinessDocType": b"BussinessDocType",
                             "BusinessDocReason": b"BussinessDocReason",
                             "BusinessDocumentInfo": b"BussinessDocumentInfo"}


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    features: tuple[str, ...]
    translate: Callable[[bytes], tuple[bytes, list[errors.Notice]]] = field(repr=False)


class _Change(NamedTuple):
    feature: str
    line: int
    path: str


def _renamed(qname: bytes, local: bytes) -> bytes:
    prefix, colon, _ = qname.rpartition(b":")
    return prefix + colon + local


def _prefix_for(scope: dict[str, str]) -> tuple[bytes, bytes]:
    """A prefix bound to the QCVN namespace here, and the declaration to add if none is."""
    for prefix, uri in scope.items():
        if uri == EDXML_NS and prefix and prefix != "xmlns":
            return prefix.encode("ascii"), b""
    name = "edXML" if "edXML" not in scope else "qcvn"
    return name.encode("ascii"), f' xmlns:{name}="{EDXML_NS}"'.encode("ascii")


def _hub_2019(data: bytes) -> tuple[bytes, list[errors.Notice]]:
    edits: list[tuple[int, int, bytes]] = []
    changes: list[_Change] = []
    renames: dict[tuple[str, ...], bytes] = {}  # an open element's path → its new qname

    def note(feature: str, element: Element) -> None:
        changes.append(_Change(feature, line_at(data, element.start), "/" + "/".join(element.path)))

    for element in scan(data):
        parent = element.path[-2] if len(element.path) > 1 else ""
        if element.closing and element.local == "edXMLEnvelope" and len(element.path) == 2:
            break  # the dialect's marks are all in the envelope; attachments are not read
        if element.closing:
            new = renames.pop(element.path, None)
            if new is not None:
                edits.append((element.start + 2, element.start + 2 + len(element.qname), new))
            continue
        new_qname: bytes | None = None
        declare = b""
        if element.namespace == EDXML_NS and element.local == "Business" \
                and parent == "TraceHeaderList":
            new_qname = _renamed(element.qname, b"Bussiness")
            note("Business → Bussiness", element)
        elif element.namespace == EDXML_NS and element.local in _BUSINESS_CHILDREN \
                and element.path[-3:-1] == ("TraceHeaderList", "Business"):
            new_qname = _renamed(element.qname, _BUSINESS_CHILDREN[element.local])
            note(f"{element.local} → {_BUSINESS_CHILDREN[element.local].decode()}", element)
        elif element.namespace is None and element.local == "Signature" \
                and parent == "edXMLHeader":
            prefix, declare = _prefix_for(element.prefixes)
            new_qname = prefix + b":Signature"
            note("Signature in no namespace → Signature in the QCVN namespace", element)
        if new_qname is not None:
            start = element.start + 1
            edits.append((start, start + len(element.qname), new_qname + declare))
            if not element.empty:
                renames[element.path] = new_qname
        version = [a for a in element.attributes
                   if a.namespace == EDXML_NS and a.local == "version"]
        if version:
            plain = any(a.namespace is None and a.name == b"version" for a in element.attributes)
            for attribute in version:
                if element.local == "edXMLManifest" and not plain:
                    edits.append((attribute.start, attribute.end,
                                  b' version="' + attribute.value + b'"'))
                    note("edXML:version → version on edXMLManifest", element)
                else:
                    edits.append((attribute.start, attribute.end, b""))
                    note("edXML:version attribute removed", element)
    if not edits:
        return data, []
    return _applied(data, edits), _notices("vendor-hub-2019", changes)


_SPILL_FROM: Final = 8 << 20
_COPY: Final = 4 << 20


def _applied(data: bytes, edits: Sequence[Edit]) -> bytes:
    """``data`` with ``edits`` made: in memory for a packet in memory, else into a file.

    A large packet arrives spooled and is read through a :class:`Mapped` file; building
    its translation as ``bytes`` would put the whole packet in memory once more (and the
    reader, the forwarder and the store would then work on that copy). The edits are
    all in the envelope's first kilobytes, so the translation is written to an unnamed
    temporary file piece by piece (the untouched rest copied window by window, each
    window given back) and read through a map of its own, like the sender's."""
    if not isinstance(data, Mapped) or len(data) < _SPILL_FROM:
        return apply(data, edits)
    with tempfile.TemporaryFile(prefix="lgsp-dialect-") as out:
        position = 0
        for start, end, replacement in sorted(edits):
            if start < position:
                raise UnreadableError("overlapping edits")
            _copy(data, position, start, out)
            out.write(replacement)
            position = end
        _copy(data, position, len(data), out)
        out.flush()
        return Mapped(out.fileno(), 0, access=mmap.ACCESS_READ).as_bytes()


def _copy(source: Mapped, start: int, end: int, out: IO[bytes]) -> None:
    for at in range(start, end, _COPY):
        stop = min(end, at + _COPY)
        out.write(source[at:stop])
        source.release(at, stop)


def _notices(dialect: str, changes: list[_Change]) -> list[errors.Notice]:
    grouped: dict[str, list[_Change]] = {}
    for change in changes:
        grouped.setdefault(change.feature, []).append(change)
    return [
        errors.Notice(
            DIALECT_TRANSLATED.code,
            f"dialect {dialect}: {feature} ({len(found)} time(s)); receivers get the "
            "standard form, the sender's bytes are kept.",
            line=found[0].line, path=found[0].path,
            extra={"rule": DIALECT_TRANSLATED.name, "dialect": dialect, "change": feature,
                   "count": len(found)})
        for feature, found in grouped.items()
    ]


DIALECTS: Final[dict[str, Dialect]] = {
    "vendor-hub-2019": Dialect(
        "vendor-hub-2019",
        "one vendor's client SDK writing for its own hub (edxml.md §9)",
        ("Business instead of Bussiness in TraceHeaderList (and BusinessDocType, "
         "BusinessDocReason, BusinessDocumentInfo inside it)",
         "Signature in no namespace in edXMLHeader",
         "edXML:version attributes",
         "dd/MM/yyyy dates (normalised for every system, see day-first-dates)"),
        _hub_2019,
    ),
}


_MARKS: Final = (b"Business", b"Signature", b"version")


def translate(data: bytes, dialect: str) -> tuple[bytes, list[errors.Notice]]:
    """``data`` in the standard form, and a notice per kind of change; ``data`` itself
    when nothing is in the dialect or the bytes cannot be scanned (the reader judges).

    Only bytes that name one of the dialect's elements or attributes are scanned, and
    only their envelope: a standard packet costs three substring searches."""
    if not any(mark in data for mark in _MARKS):
        return data, []
    try:
        return DIALECTS[dialect].translate(data)
    except UnreadableError:
        return data, []


# ---------------------------------------------------------------- the refusal rule


def _marks(root: etree._Element) -> list[tuple[str, etree._Element]]:
    """vendor-hub-2019's marks in a parsed packet: what no standard producer writes."""
    found: list[tuple[str, etree._Element]] = []
    for trace_list in root.iter(_Q + "TraceHeaderList"):
        business = trace_list.find(_Q + "Business")
        if business is not None:
            found.append(("Business instead of Bussiness in TraceHeaderList", business))
    for header in root.iter(_Q + "edXMLHeader"):
        signature = header.find("Signature")
        if signature is not None:
            found.append(("a Signature in no namespace", signature))
    for element in root.iter():
        if isinstance(element.tag, str) and element.get(_Q + "version") is not None:
            found.append(("edXML:version attributes", element))
            break
    return found


def unconfigured_dialect(root: etree._Element) -> errors.PacketError | None:
    """Tolerance rule dialect-not-configured: a dialect packet read without its dialect."""
    marks = _marks(root)
    if not marks:
        return None
    name = "vendor-hub-2019"
    first = marks[0][1]
    return errors.UnsupportedPacket(
        f"the packet is written in the '{name}' dialect ({'; '.join(m for m, _ in marks)}), "
        "not in standard QCVN 102:2016 edXML. The bus translates that dialect only for the "
        f"systems configured for it: add `dialect: {name}` to the sending system's entry "
        "under systems in config/directory.yaml, or have the system send the standard form.",
        line=line_of(first), path=element_path(first),
        details={"rule": "dialect-not-configured", "dialect": name})


# ---------------------------------------------------------------- the door


@dataclass
class Door:
    """A packet read as its system speaks: ``standard`` is what was read (the sender's
    bytes, translated when the system has a dialect), ``translated`` whether that changed
    anything."""

    result: ReadResult
    standard: bytes
    translated: bool


def read_from(data: bytes, *, dialect: str | None = None, limits: Limits = DEFAULT_LIMITS
              ) -> Door:
    """Translate ``data`` from the system's dialect (if any), then read it."""
    if dialect is None:
        return Door(read_packet(data, limits=limits), data, False)
    if len(data) > limits.max_bytes:
        raise errors.PayloadTooLarge(
            f"the packet is {len(data)} bytes; this bus accepts at most {limits.max_bytes}")
    standard, notices = translate(data, dialect)
    result = read_packet(standard, limits=limits)
    result.notices[:0] = notices
    return Door(result, standard, standard is not data)

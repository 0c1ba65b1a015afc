"""The packet as the bus forwards it: the sender's own bytes with the bus's TraceHeader.

An intermediary appends one TraceHeader per hop (edxml.md §3) and should change nothing
else: the rest of the header may be covered by the sender's signature (§5), and the
attachments are most of the bytes. So the new TraceHeader is spliced into the bytes as
received, at the end of ``edXMLHeader/TraceHeaderList`` (or in a new TraceHeaderList
right after ``MessageHeader`` for a status packet that has none), written with the prefix
the packet already uses there. Re-serialising the model, the alternative, rewrote every
byte of a 100 MB scan to add 150 bytes, and normalised what the sender signed.

The scan is called only on packets :func:`bus.edxml.read_packet` accepted — well formed,
no DOCTYPE, schema-valid — so it reads markup only up to the end of ``edXMLHeader``,
stepping over comments, CDATA sections, processing instructions and quoted attribute
values. A packet whose markup is not ASCII-compatible (UTF-16, UTF-32) is re-serialised
as before, and so is anything the scan does not recognise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final, NamedTuple
from xml.sax.saxutils import escape

from bus.edxml.dates import day_first_text
from bus.edxml.markup import Edit, Element, UnreadableError, apply, scan
from bus.edxml.model import Packet, TraceHeader
from bus.edxml.tolerance import DAY_FIRST_DATES
from bus.edxml.writer import packet_bytes
from bus.errors import Notice

__all__ = ["forwarded_bytes", "forwarded_stream", "normalised", "with_trace_header"]

_START: Final = re.compile(
    rb"""<([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)"""
    rb"""(?:\s+[^\s=/>]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*\s*(/?)>""")
_END: Final = re.compile(rb"</([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)\s*>")
_SKIP: Final = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_LIST_END: Final = re.compile(rb"</((?:[A-Za-z_][\w.\-]*:)?)TraceHeaderList\s*>")
_HIDING: Final = re.compile(rb"<!--|<!\[CDATA\[|<\?")
_UTF8_BOM: Final = b"\xef\xbb\xbf"


def with_trace_header(data: bytes, packet: Packet, trace: TraceHeader) -> bytes:
    """``data`` (which ``packet`` was read from) with ``trace`` appended to its trace list.

    ``packet.trace_headers`` gains ``trace`` too, so the model describes what is sent.
    """
    packet.trace_headers.append(trace)
    spliced = _splice(data, trace)
    return spliced if spliced is not None else packet_bytes(packet)


def _splice(data: bytes, trace: TraceHeader) -> bytes | None:
    edit = _trace_edit(data, trace)
    if edit is None:
        return None
    return b"".join((data[:edit[0]], edit[2], data[edit[1]:]))


def _trace_edit(data: bytes, trace: TraceHeader) -> Edit | None:
    """Where and what to splice for ``trace``, as an edit of ``data``."""
    organ, stamp = escape(trace.organ_id or ""), escape(trace.timestamp or "")
    head = data[:4]
    if not (organ.isascii() and stamp.isascii()) or b"\x00" in head \
            or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # UTF-16/32: markup is not ASCII bytes
    slot = _first_list_end(data) or _header_slot(data)
    if slot is None:
        return None
    p = slot.prefix.decode("ascii")
    entry = (f"<{p}TraceHeader><{p}OrganId>{organ}</{p}OrganId>"
             f"<{p}Timestamp>{stamp}</{p}Timestamp></{p}TraceHeader>").encode("ascii")
    return slot.start, slot.end, slot.head + entry + slot.tail


class _Slot(NamedTuple):
    """``data[start:end]`` is replaced by ``head + TraceHeader + tail``."""

    start: int
    end: int
    prefix: bytes
    head: bytes = b""
    tail: bytes = b""


def _local(name: bytes) -> tuple[bytes, bytes]:
    """(prefix with its colon, local name)."""
    prefix, _, local = name.rpartition(b":")
    return (prefix + b":" if prefix else b""), local


def _first_list_end(data: bytes) -> _Slot | None:
    """The common case without a tag-by-tag walk: in a schema-valid packet the first
    ``</TraceHeaderList>`` is the header's (MessageHeader, before it, cannot hold one),
    and since neither text nor attribute values may contain ``<``, a match is a real end
    tag unless a comment, CDATA section or PI before it could be hiding markup."""
    end = _LIST_END.search(data)
    if end is None:
        return None
    begin = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    if data.startswith(b"<?xml", begin):
        declared = data.find(b"?>", begin)
        if declared < 0:
            return None
        begin = declared + 2
    if _HIDING.search(data, begin, end.start()) is not None:
        return None
    return _Slot(end.start(), end.start(), end[1])


def _header_slot(data: bytes) -> _Slot | None:
    """Where the new TraceHeader goes, or None when the header is not what a valid
    packet has. ``edXMLHeader`` is the first element of that name (the header precedes
    the body), under the root or under ``edXMLEnvelope`` inside an ``edXML`` root."""
    depth = 0
    position = 0
    header: int | None = None  # the depth of edXMLHeader's children
    after_message_header: _Slot | None = None
    while True:
        at = data.find(b"<", position)
        if at < 0:
            return None
        skipped = _skip(data, at)
        if skipped is not None:
            if skipped < 0:
                return None
            position = skipped
            continue
        if data.startswith(b"</", at):
            end = _END.match(data, at)
            if end is None:
                return None
            depth -= 1
            prefix, local = _local(end[1])
            if header is not None and depth == header and local == b"TraceHeaderList":
                return _Slot(at, at, prefix)
            if header is not None and depth == header and local == b"MessageHeader":
                list_tag = prefix + b"TraceHeaderList"
                after_message_header = _Slot(end.end(), end.end(), prefix,
                                             b"<" + list_tag + b">", b"</" + list_tag + b">")
            if header is not None and depth < header:
                # </edXMLHeader> without a TraceHeaderList (status packets)
                return after_message_header if local == b"edXMLHeader" else None
            position = end.end()
            continue
        start = _START.match(data, at)
        if start is None:
            return None
        prefix, local = _local(start[1])
        if header is None and local == b"edXMLHeader":
            if depth > 2 or start[2]:
                return None
            header = depth + 1
        elif start[2]:  # an empty element
            if depth == header and local == b"TraceHeaderList":
                opened = data[at:start.end()].rstrip(b">").rstrip(b"/").rstrip() + b">"
                return _Slot(at, start.end(), prefix, opened, b"</" + start[1] + b">")
            position = start.end()
            continue
        depth += 1
        position = start.end()


def _skip(data: bytes, at: int) -> int | None:
    """The offset after a comment, CDATA section or processing instruction starting at
    ``at``; -1 if it never ends; None when ``at`` starts an element tag."""
    for opening, closing in _SKIP:
        if data.startswith(opening, at):
            end = data.find(closing, at + len(opening))
            return -1 if end < 0 else end + len(closing)
    if data.startswith(b"<!", at):  # a DOCTYPE: the reader refuses those; do not guess
        return -1
    return None


# ---------------------------------------------------------------- normalised bytes

_DATE_FIELDS: Final = frozenset({"PromulgationDate", "DueDate"})


def normalised(data: bytes, notices: Sequence[Notice]) -> bytes | None:
    """``data`` with the corrections the read recorded (tolerance rule day-first-dates)
    made in its bytes; ``data`` itself when there are none; None when the bytes cannot be
    edited (UTF-16, or the scan does not find exactly what the read found).

    Only the date texts change: a signed packet is not re-serialised, and the attachments
    are not touched (the scan stops at the end of MessageHeader).
    """
    edits = _date_edits(data, notices)
    if edits is None:
        return None
    return apply(data, edits) if edits else data


def _date_edits(data: bytes, notices: Sequence[Notice]) -> list[Edit] | None:
    """The edits :func:`normalised` makes; None when the bytes cannot be edited."""
    wanted = sum(1 for n in notices if n.code == DAY_FIRST_DATES.code)
    if not wanted:
        return []
    edits: list[Edit] = []
    opened: Element | None = None
    try:
        for element in scan(data):
            if not element.closing:
                opened = element
                continue
            if element.local == "MessageHeader":
                break
            if (opened is not None and element.local in _DATE_FIELDS
                    and opened.qname == element.qname and "MessageHeader" in element.path):
                text = data[opened.end:element.start].decode("ascii", "replace")
                fixed = day_first_text(text)
                if fixed is not None:
                    core = text.strip()
                    lead = opened.end + text.index(core)
                    edits.append((lead, lead + len(core), fixed.encode("ascii")))
            opened = None
        if len(edits) != wanted:
            return None
        return edits
    except UnreadableError:
        return None


def forwarded_bytes(data: bytes, packet: Packet, trace: TraceHeader,
                    notices: Sequence[Notice] = ()) -> bytes:
    """What receivers get: ``data`` normalised as the read's notices say, with ``trace``
    appended; the model re-serialised only when the bytes cannot be edited."""
    fixed = normalised(data, notices)
    if fixed is None:
        packet.trace_headers.append(trace)
        return packet_bytes(packet)
    return with_trace_header(fixed, packet, trace)


def forwarded_stream(data: bytes, packet: Packet, trace: TraceHeader,
                     notices: Sequence[Notice] = (), *, chunk: int = 1 << 20
                     ) -> Iterator[bytes] | None:
    """:func:`forwarded_bytes` as pieces of at most ``chunk`` bytes (plus the small edits),
    for a packet too large to copy in memory (``data`` a :class:`bus.edxml.mapped.Mapped`);
    None when it would need re-serialising, which only :func:`forwarded_bytes` does."""
    edits = _date_edits(data, notices)
    trace_edit = _trace_edit(data, trace) if edits is not None else None
    if edits is None or trace_edit is None:
        return None
    packet.trace_headers.append(trace)
    return _pieces(data, sorted([*edits, trace_edit]), chunk)


def _pieces(data: bytes, edits: list[Edit], chunk: int) -> Iterator[bytes]:
    position = 0
    for start, end, replacement in [*edits, (len(data), len(data), b"")]:
        for at in range(position, start, chunk):
            yield data[at:min(start, at + chunk)]
        if replacement:
            yield replacement
        position = end

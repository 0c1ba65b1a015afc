"""Edits to a packet's own bytes: the tag scanner that normalising rules and dialects use.

A packet may be signed, and its attachments are most of its bytes, so the bus never
re-serialises one to correct it: it finds the few spans to change (an element name, an
attribute, a date's text) and replaces just those. :func:`scan` walks the markup of
ASCII-compatible bytes tag by tag, stepping over comments, CDATA sections and processing
instructions, resolving namespace prefixes as it goes; text (base64 included) is jumped
over with one ``find``. It runs on bytes no parser has checked yet (a dialect is
translated before reading), so it is bounded: past ``max_depth`` levels or ``max_tags``
tags, at a DOCTYPE, or at anything it does not recognise it raises :class:`UnreadableError`
and the caller leaves the bytes as they were, for the reader to judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final, NamedTuple

__all__ = ["Attribute", "Element", "UnreadableError", "apply", "line_at", "scan"]

_START: Final = re.compile(
    rb"""<([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)"""
    rb"""((?:\s+[^\s=/>]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(/?)>""")
_END: Final = re.compile(rb"</([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)\s*>")
_ATTRIBUTE: Final = re.compile(rb"""\s+([^\s=/>]+)\s*=\s*("[^"<]*"|'[^'<]*')""")
_SKIP: Final = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_XML_NS: Final = "http://www.w3.org/XML/1998/namespace"

MAX_TAGS: Final = 20_000  # a real envelope has a few hundred; attachments are not scanned
MAX_DEPTH: Final = 64


class UnreadableError(Exception):
    """The bytes are not markup the scanner can edit safely."""


class Attribute(NamedTuple):
    name: bytes
    """As written, with its prefix."""
    namespace: str | None
    local: str
    value: bytes
    start: int
    """Where the attribute starts, leading white space included."""
    end: int


class Element(NamedTuple):
    """A start tag (``closing`` False) or an end tag; an empty-element tag is a start tag
    with ``empty`` True and no end tag of its own."""

    start: int
    end: int
    qname: bytes
    namespace: str | None
    local: str
    closing: bool
    empty: bool
    path: tuple[str, ...]
    """Local names from the root down to this element, itself included."""
    attributes: tuple[Attribute, ...]
    prefixes: dict[str, str]
    """Prefix bindings in scope on this element ("" is the default namespace)."""


def _split(qname: bytes) -> tuple[str, str]:
    prefix, _, local = qname.decode("ascii", "replace").rpartition(":")
    return prefix, local


def _skip(data: bytes, at: int) -> int | None:
    for opening, closing in _SKIP:
        if data.startswith(opening, at):
            end = data.find(closing, at + len(opening))
            if end < 0:
                raise UnreadableError("a comment, CDATA section or PI never ends")
            return end + len(closing)
    if data.startswith(b"<!", at):
        raise UnreadableError("a DOCTYPE or declaration")
    return None


def scan(data: bytes, *, max_tags: int = MAX_TAGS, max_depth: int = MAX_DEPTH
         ) -> Iterator[Element]:
    """Every tag of ``data`` in document order; raises UnreadableError as described above."""
    head = data[:4]
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableError("markup that is not ASCII bytes (UTF-16 or UTF-32)")
    stack: list[tuple[bytes, dict[str, str], tuple[str, ...]]] = []
    scope: dict[str, str] = {"xml": _XML_NS}
    position = 0
    tags = 0
    while True:
        at = data.find(b"<", position)
        if at < 0:
            if stack:
                raise UnreadableError("the root element never ends")
            return
        skipped = _skip(data, at)
        if skipped is not None:
            position = skipped
            continue
        tags += 1
        if tags > max_tags:
            raise UnreadableError(f"more than {max_tags} tags")
        if data.startswith(b"</", at):
            end = _END.match(data, at)
            if end is None or not stack or stack[-1][0] != end[1]:
                raise UnreadableError("an end tag that does not match")
            qname, scope, path = stack.pop()
            prefix, local = _split(qname)
            outer = stack[-1][1] if stack else {"xml": _XML_NS}
            yield Element(at, end.end(), qname, scope.get(prefix) or None, local, True, False, path,
                          (), scope)
            scope = outer
            position = end.end()
            continue
        start = _START.match(data, at)
        if start is None:
            raise UnreadableError("a start tag the scanner does not recognise")
        raw: list[tuple[bytes, bytes, int, int]] = []
        inner = scope
        for found in _ATTRIBUTE.finditer(start[2]):
            name, value = found[1], found[2][1:-1]
            offset = start.start(2)
            raw.append((name, value, offset + found.start(), offset + found.end()))
            if name == b"xmlns" or name.startswith(b"xmlns:"):
                if inner is scope:
                    inner = dict(scope)
                inner[name[6:].decode("ascii", "replace")] = value.decode("utf-8", "replace")
        qname = start[1]
        prefix, local = _split(qname)
        parent_path = stack[-1][2] if stack else ()
        path = (*parent_path, local)
        attributes = []
        for name, value, a_start, a_end in raw:
            a_prefix, a_local = _split(name)
            attributes.append(Attribute(
                name, inner.get(a_prefix) if a_prefix and a_prefix != "xmlns" else None,
                a_local, value, a_start, a_end))
        empty = bool(start[3])
        yield Element(at, start.end(), qname, inner.get(prefix) or None, local, False, empty, path,
                      tuple(attributes), inner)
        if not empty:
            if len(stack) >= max_depth:
                raise UnreadableError(f"more than {max_depth} levels")
            stack.append((qname, inner, path))
            scope = inner
        position = start.end()


Edit = tuple[int, int, bytes]
"""Replace ``data[start:end]`` with the bytes."""


def apply(data: bytes, edits: Sequence[Edit]) -> bytes:
    """``data`` with non-overlapping ``edits`` made."""
    out: list[bytes] = []
    position = 0
    for start, end, replacement in sorted(edits):
        if start < position:
            raise UnreadableError("overlapping edits")
        out += (data[position:start], replacement)
        position = end
    out.append(data[position:])
    return b"".join(out)


def line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1

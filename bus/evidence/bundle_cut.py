"""The sender's bytes recovered from the forwarded ones: the bus's spliced-in TraceHeader
cut out, in memory (:func:`sender_bytes`) or streamed for a payload too large to hold."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from bus.store.blobs import PayloadBody

_TRACE: Final = re.compile(
    rb"<(?P<p>(?:[A-Za-z_][\w.\-]*:)?)TraceHeader><(?P=p)OrganId>[^<]*</(?P=p)OrganId>"
    rb"<(?P=p)Timestamp>[^<]*</(?P=p)Timestamp></(?P=p)TraceHeader>")


def sender_bytes(forwarded: bytes, sha256: str) -> bytes | None:
    """The sender's bytes from the forwarded ones, when the bus only spliced in its
    TraceHeader (in a TraceHeaderList of its own for a status that had none): a candidate
    removal is kept only if it hashes to the sender's digest."""
    for match in reversed(list(_TRACE.finditer(forwarded))):
        start, end = match.span()
        prefix = match["p"]
        spans = [(start, end)]
        opening, closing = b"<" + prefix + b"TraceHeaderList>", b"</" + prefix + b"TraceHeaderList>"
        if forwarded[:start].endswith(opening) and forwarded.startswith(closing, end):
            spans.append((start - len(opening), end + len(closing)))
        for a, b in spans:
            candidate = forwarded[:a] + forwarded[b:]
            if hashlib.sha256(candidate).hexdigest() == sha256:
                return candidate
    return None



_HEAD: Final = 4 << 20
"""How far into the forwarded packet its TraceHeader is looked for: it is in the edXML
header, which precedes the attachments, so a few MB covers any real packet."""


def _cut_piece(chunk: bytes, at: int, start: int, end: int) -> Iterator[bytes]:
    """What is left of ``chunk`` (found at offset ``at``) once ``[start, end)`` is cut."""
    done = at + len(chunk)
    if done <= start or at >= end:
        yield chunk
        return
    if at < start:
        yield chunk[:start - at]
    if done > end:
        yield chunk[end - at:]


@dataclass(frozen=True)
class _Cut:
    """The sender's bytes as the forwarded ones without ``[start, end)``."""

    forwarded: PayloadBody
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.forwarded.size - (self.end - self.start)

    def chunks(self) -> Iterator[bytes]:
        at = 0
        for chunk in self.forwarded.chunks():
            yield from _cut_piece(chunk, at, self.start, self.end)
            at += len(chunk)


def _cut_candidates(forwarded: PayloadBody) -> list[_Cut]:
    """:func:`sender_bytes`'s candidate removals for a payload too large to hold, in the
    same order; the TraceHeader is looked for in the packet's head only."""
    with forwarded.open() as file:
        head_bytes = file.read(_HEAD)
    candidates = []
    for match in reversed(list(_TRACE.finditer(head_bytes))):
        start, end = match.span()
        prefix = match["p"]
        candidates.append(_Cut(forwarded, start, end))
        opening, closing = b"<" + prefix + b"TraceHeaderList>", b"</" + prefix + b"TraceHeaderList>"
        if head_bytes[:start].endswith(opening) and head_bytes.startswith(closing, end):
            candidates.append(_Cut(forwarded, start - len(opening), end + len(closing)))
    return candidates


class _CutHashes:
    """Hashes every candidate's bytes while the forwarded ones stream past (no pass of
    their own); :meth:`match` is the first whose digest is the sender's."""

    def __init__(self, candidates: list[_Cut]) -> None:
        self.candidates = candidates
        self._hashes = [hashlib.sha256() for _ in candidates]

    def __call__(self, chunk: bytes, at: int) -> None:
        for cut, digest in zip(self.candidates, self._hashes, strict=True):
            for part in _cut_piece(chunk, at, cut.start, cut.end):
                digest.update(part)

    def match(self, sha256: str) -> _Cut | None:
        return next((cut for cut, digest in zip(self.candidates, self._hashes, strict=True)
                     if digest.hexdigest() == sha256), None)


def _sender_cut(forwarded: PayloadBody, sha256: str) -> _Cut | None:
    """The candidate removal that gives the sender's bytes, in one streamed pass."""
    hashes = _CutHashes(_cut_candidates(forwarded))
    at = 0
    for chunk in forwarded.chunks():
        hashes(chunk, at)
        at += len(chunk)
    return hashes.match(sha256)


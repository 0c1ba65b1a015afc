"""One document's evidence as a zip, and its offline check.

The zip holds ``manifest.json`` (every other file's SHA-256, the document's digests, the
chain head at export), ``document.json`` (the document, its deliveries, statuses and
history as the status API shows them, and the receipt the sender got),
``sender/original.edxml`` (the sender's bytes), ``forwarded/forwarded.edxml`` (what every
recipient was sent), ``events.json`` (the document's audit events, whole rows),
``chain.json`` (the seals covering those events with their digests, and the seal headers
linking them to the head) and ``summary.html`` (the printable Vietnamese summary).

:func:`check` needs no database: each file matches the manifest, the bytes match the
digests the sealed ``accepted`` event holds, each event's digest is at its place in its
seal, each seal's hash is right, and the headers chain from the first seal to the head.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.evidence.canonical import SKIP, covered_ids, events_hash, leaf, seal_hash
from bus.evidence.chain import event_rows, head, seal_row
from bus.evidence.summary import summary_html
from bus.store import Store, queries
from bus.store.blobs import PayloadBody, PayloadFiles
from bus.store.tables import audit_seals, documents, events

FORMAT: Final = "lgsp-evidence/1"
ORIGINAL: Final = "sender/original.edxml"
FORWARDED: Final = "forwarded/forwarded.edxml"
PAYLOAD_FILES: Final = (ORIGINAL, FORWARDED)
_ZIP64_FROM: Final = zipfile.ZIP64_LIMIT // 2
"""An entry streamed in has no size up front; from here it is written as ZIP64 so that
it may pass 2 GiB (compressed base64 of a scan can exceed its raw size)."""

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


def proof_path(numbers: list[int], last: int) -> list[int]:
    """Seal numbers whose headers link each of ``numbers`` to seal ``last`` (the head):
    one by one to the next checkpoint, then by SKIP, then one by one again."""
    path: set[int] = set()
    stops = [*sorted(set(numbers)), last]
    for a, b in itertools.pairwise(stops):
        path.add(a)
        first = -(-a // SKIP) * SKIP
        final = b // SKIP * SKIP
        if b - a < 2 * SKIP or first >= final:
            path.update(range(a, b + 1))
            continue
        path.update(range(a, first + 1))
        path.update(range(first, final + 1, SKIP))
        path.update(range(final, b + 1))
    path.add(last)
    return sorted(path)


_HEAD: Final = 4 << 20
"""How far into the forwarded packet its TraceHeader is looked for: it is in the edXML
header, which precedes the attachments, so a few MB covers any real packet."""
_STREAM_FROM: Final = 1 << 20
"""Payloads from this size are streamed into the zip from their file, never held."""


def _body(store: Store, digest: str) -> PayloadBody | None:
    """A stored payload (row, file or large object), or None when it is not there."""
    try:
        return store.body(digest)
    except errors.NotFound:
        return None


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")


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


Source = bytes | PayloadBody | _Cut


def _pieces(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
    else:
        yield from source.chunks()


def build(engine: Engine, doc_id: str, viewer: queries.Viewer, *,
          zone: str = "Asia/Ho_Chi_Minh", names: Mapping[str, str] | None = None,
          payload_files: PayloadFiles | None = None) -> bytes:
    """The bundle of ``doc_id`` in memory (small documents, tests); see :func:`write`."""
    out = io.BytesIO()
    write(out, engine, doc_id, viewer, zone=zone, names=names, payload_files=payload_files)
    return out.getvalue()


def write(target: IO[bytes], engine: Engine, doc_id: str, viewer: queries.Viewer, *,
          zone: str = "Asia/Ho_Chi_Minh", names: Mapping[str, str] | None = None,
          payload_files: PayloadFiles | None = None) -> int:
    """Writes the bundle of ``doc_id`` into ``target``; returns the bytes written.
    NotFound when the viewer may not read it. ``names``: organisation code → name (the
    directory's), for the summary.

    The payloads are streamed from the store into their zip entries, hashed on the way,
    and ``manifest.json`` is written last, once every digest is known: a 500 MB scan
    costs its export a few MB of memory, not three copies of itself.
    """
    detail = queries.document_detail(engine, doc_id, viewer)
    store = Store(engine, payload_files)
    with engine.connect() as conn:
        doc = conn.execute(sa.select(documents).where(documents.c.id == doc_id)).mappings().one()
        rows = event_rows(conn, events.c.document == doc_id)
        top = head(conn)
        seals = _covering(conn, [int(r["id"]) for r in rows], top)
        path = proof_path([s["number"] for s in seals], top["number"]) if top and seals else []
        headers = [_header(seal_row(r)) for r in conn.execute(
            sa.select(audit_seals).where(audit_seals.c.number.in_(path))
            .order_by(audit_seals.c.number)).mappings()] if path else []
    forwarded = _body(store, doc["payload_sha256"])
    original: Source | None = None
    if doc["original_sha256"]:
        original = _body(store, doc["original_sha256"])
    notes: list[str] = []
    digests: dict[str, str] = {}
    start = target.tell() if target.seekable() else 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        if forwarded is None:
            notes.append("the forwarded bytes are no longer stored (purged)")
        else:
            streamed = original is None and forwarded.size >= _STREAM_FROM
            hashes = _CutHashes(_cut_candidates(forwarded) if streamed else [])
            digests[FORWARDED] = _put(archive, FORWARDED, forwarded, hashes)
            if original is None:
                original = (hashes.match(doc["sha256"]) if streamed
                            else sender_bytes(forwarded.read(), doc["sha256"]))
                if original is None:
                    notes.append("the sender's own bytes were not kept; the forwarded bytes "
                                 "differ from them only by the bus's TraceHeader, and the "
                                 "sender's copy can be checked against sender_sha256")
        if original is not None:
            digests[ORIGINAL] = _put(archive, ORIGINAL, original)
        sealed_ids = {i for s in seals for i in covered_ids(s)}
        unsealed = [int(r["id"]) for r in rows if int(r["id"]) not in sealed_ids]
        if unsealed:
            notes.append(f"{len(unsealed)} event(s) are not sealed yet; export again in a "
                         "minute for a proof of every event")
        document = {"detail": detail.model_dump(mode="json"),
                    "receipt": json.loads(doc["receipt"]),
                    "sender_sha256": doc["sha256"], "forwarded_sha256": doc["payload_sha256"],
                    "original_sha256": doc["original_sha256"]}
        files = {
            "document.json": _json(document),
            "events.json": _json(rows),
            "chain.json": _json({"seals": seals, "path": headers,
                                 "head": _header(top) if top else None}),
            "summary.html": summary_html(
                detail, rows, seals, top, notes, zone=zone,
                digests={"sender": doc["sha256"], "forwarded": doc["payload_sha256"]},
                names=names or {}).encode(),
        }
        for name, data in sorted(files.items()):
            digests[name] = _put(archive, name, data)
        manifest = {"format": FORMAT, "document": doc_id, "exported_at": time.time(),
                    "sender_sha256": doc["sha256"], "forwarded_sha256": doc["payload_sha256"],
                    "notes": notes, "unsealed_events": unsealed,
                    "head": _header(top) if top else None,
                    "files": dict(sorted(digests.items()))}
        archive.writestr("manifest.json", _json(manifest))
    return (target.tell() - start) if target.seekable() else 0


def _put(archive: zipfile.ZipFile, name: str, source: Source,
         observe: Callable[[bytes, int], None] | None = None) -> str:
    """Writes one entry from ``source`` piece by piece; its SHA-256. ``observe`` sees
    each piece with its offset (the sender-cut candidates are hashed that way)."""
    size = len(source) if isinstance(source, bytes) else source.size
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    # A scan's base64 deflates to ~3/4 at the cost of a minute of CPU per 500 MB; large
    # payloads are stored as they are, so an export is bound by the disk.
    info.compress_type = zipfile.ZIP_STORED if size >= _STREAM_FROM else zipfile.ZIP_DEFLATED
    digest = hashlib.sha256()
    at = 0
    with archive.open(info, "w", force_zip64=size >= _ZIP64_FROM) as entry:
        for piece in _pieces(source):
            digest.update(piece)
            entry.write(piece)
            if observe is not None:
                observe(piece, at)
            at += len(piece)
    return digest.hexdigest()


def _header(seal: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in seal.items() if k != "leaves"}


def _covering(conn: sa.Connection, ids: list[int], top: dict[str, Any] | None
              ) -> list[dict[str, Any]]:
    """The seals holding ``ids``: by range, plus any that adopted one of them late."""
    if not ids or top is None:
        return []
    s = audit_seals.c
    found: dict[int, dict[str, Any]] = {}
    for i in ids:
        if i > top["last_id"]:
            continue
        row = conn.execute(sa.select(audit_seals).where(s.last_id >= i, s.first_id <= i)
                           .order_by(s.last_id).limit(1)).mappings().first()
        if row is not None:
            seal = seal_row(row)
            if i in covered_ids(seal):
                found.setdefault(seal["number"], seal)
                continue
        for row in conn.execute(sa.select(audit_seals).where(s.late.like(f"%{i}%"))
                                ).mappings():
            seal = seal_row(row)
            if i in seal["late"]:
                found[seal["number"]] = seal
    return [found[n] for n in sorted(found)]


@dataclass
class BundleReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0
    seals: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _member_digest(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while piece := member.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def check(data: bytes | Path | IO[bytes]) -> BundleReport:
    """Checks a bundle with nothing but its bytes (or its file: the payloads in it are
    hashed as they are read, so a bundle of a 500 MB scan is checked in little memory)."""
    report = BundleReport()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        names = archive.namelist()
        digests = {name: _member_digest(archive, name) for name in names}
        files = {name: archive.read(name) for name in names if name not in PAYLOAD_FILES}
        manifest = json.loads(files.pop("manifest.json"))
        digests.pop("manifest.json")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        report.problems.append(f"not an evidence bundle: {exc}")
        return report
    if manifest.get("format") != FORMAT:
        report.problems.append(f"unknown bundle format {manifest.get('format')!r}")
        return report
    report.notes.extend(manifest.get("notes", []))
    listed: dict[str, str] = manifest.get("files", {})
    for name in sorted(set(listed) | set(digests)):
        if name not in digests:
            report.problems.append(f"{name}: listed in the manifest but missing")
        elif name not in listed:
            report.problems.append(f"{name}: not listed in the manifest")
        elif digests[name] != listed[name]:
            report.problems.append(f"{name}: was changed (its SHA-256 is not the manifest's)")
    if report.problems:
        return report
    try:
        rows = json.loads(files["events.json"])
        chain = json.loads(files["chain.json"])
    except (KeyError, ValueError) as exc:
        report.problems.append(f"events.json or chain.json unreadable: {exc}")
        return report
    _check_bytes(digests, manifest, rows, report)
    _check_chain(rows, chain, manifest.get("unsealed_events", []), report)
    return report


def _check_bytes(digests: dict[str, str], manifest: dict[str, Any],
                 rows: list[dict[str, Any]], report: BundleReport) -> None:
    accepted = next((r for r in rows if r["action"] == "accepted"), None)
    if accepted is None:
        report.problems.append("events.json has no accepted event")
        return
    said = json.loads(accepted["detail"] or "{}")
    wanted = {ORIGINAL: accepted["digest"], FORWARDED: said.get("payload_sha256")}
    for name, digest in wanted.items():
        if name in digests and digest and digests[name] != digest:
            report.problems.append(f"{name}: its SHA-256 is not the one the sealed accepted "
                                   f"event {accepted['id']} records")
    if manifest.get("sender_sha256") != accepted["digest"]:
        report.problems.append("manifest sender_sha256 differs from the accepted event")


def _check_chain(rows: list[dict[str, Any]], chain: dict[str, Any], unsealed: list[int],
                 report: BundleReport) -> None:
    seals = chain.get("seals", [])
    report.seals = len(seals)
    position: dict[int, tuple[dict[str, Any], int]] = {}
    for seal in seals:
        if seal_hash(seal) != seal["hash"] or events_hash(seal["leaves"]) != \
                seal["events_hash"]:
            report.problems.append(f"seal {seal['number']}: its hash does not match")
        for index, i in enumerate(covered_ids(seal)):
            position[i] = (seal, index)
    for row in rows:
        i = int(row["id"])
        if i not in position:
            if i not in unsealed:
                report.problems.append(f"event {i}: no seal in the bundle covers it")
            continue
        seal, index = position[i]
        report.events += 1
        if index >= len(seal["leaves"]) or seal["leaves"][index] != leaf(row):
            report.problems.append(f"event {i} ({row['action']}): does not match seal "
                                   f"{seal['number']} (the event was changed)")
    path = {int(h["number"]): h for h in chain.get("path", [])}
    for seal in seals:
        if path.get(seal["number"], {}).get("hash") != seal["hash"]:
            report.problems.append(f"seal {seal['number']} is not on the proof path")
    numbers = sorted(path)
    for a, b in itertools.pairwise(numbers):
        older, newer = path[a], path[b]
        if b == a + 1:
            linked = newer["prev_hash"] == older["hash"]
        else:
            linked = b == a + SKIP and newer.get("skip_hash") == older["hash"]
        if not linked or seal_hash(newer) != newer["hash"]:
            report.problems.append(f"chain: seal {b} does not link to seal {a}")
    top = chain.get("head")
    if top is not None and numbers and (numbers[-1] != top["number"]
                                        or path[numbers[-1]]["hash"] != top["hash"]):
        report.problems.append("chain: the path does not end at the head")

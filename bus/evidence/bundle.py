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

import hashlib
import io
import itertools
import json
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.evidence.bundle_check import (
    FORMAT,
    FORWARDED,
    ORIGINAL,
    PAYLOAD_FILES,
    BundleReport,
    _check_chain,
    check,
)
from bus.evidence.bundle_cut import (
    _Cut,
    _cut_candidates,
    _CutHashes,
    _sender_cut,
    sender_bytes,
)
from bus.evidence.canonical import SKIP, covered_ids
from bus.evidence.chain import event_rows, head, seal_row
from bus.evidence.summary import summary_html
from bus.store import Store, queries
from bus.store.blobs import PayloadBody, PayloadFiles
from bus.store.tables import audit_seals, documents, events

__all__ = [
    "FORMAT",
    "FORWARDED",
    "ORIGINAL",
    "PAYLOAD_FILES",
    "BundleReport",
    "Source",
    "_check_chain",
    "_sender_cut",
    "build",
    "check",
    "proof_path",
    "sender_bytes",
    "write",
]

_ZIP64_FROM: Final = zipfile.ZIP64_LIMIT // 2
"""An entry streamed in has no size up front; from here it is written as ZIP64 so that
it may pass 2 GiB (compressed base64 of a scan can exceed its raw size)."""


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

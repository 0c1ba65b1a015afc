"""Payloads as PostgreSQL large objects: the store every node of a scale-out bus shares.

On the embedded default payload files live under the data dir (:mod:`bus.store.blobs`).
A scale-out bus has several ``serve`` and ``worker`` processes on several machines, and
a payload accepted by one must be delivered by another, so the files cannot be local.
Two shared stores were candidates: PostgreSQL large objects and an S3-compatible object
store. Large objects are chosen (measured figures in the README): they need no service
beyond the database the bus already depends on, are written in their own committed
transaction before the accept (the same crash rule as files), are read and written in
pieces (``lo_get``/``lo_put``), and a ``pg_dump`` of the database includes them, so a
backup stays one consistent thing. An object store would scale further for terabytes of
scans, at the price of a second service to run, secure and back up in step with the
database; nothing in the code below prevents adding one beside this class.

Request bodies are still spooled to a local temporary file (the read path maps it); it is
uploaded when kept. Each upload is recorded in ``payload_staging`` with its time, in the
upload's transaction, so an upload whose accept never committed (a crash, a refusal
after staging, the same bytes accepted twice) is found and unlinked by :meth:`sweep`.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.settings import Settings
from bus.store.blobs import DEFAULT_INLINE_BELOW, PayloadFiles, Staged, read_chunks
from bus.store.tables import payload_files, payload_staging

PREFIX: Final = "lo:"
_PIECE: Final = 1 << 20
_ORPHAN_AGE_S: Final = 3600.0


class LargeObjects(PayloadFiles):
    """Payload bodies in PostgreSQL large objects; ``root`` is only for spooled uploads."""

    def __init__(self, root: Path, engine: Engine, *,
                 inline_below: int = DEFAULT_INLINE_BELOW) -> None:
        super().__init__(root, inline_below=inline_below)
        self.engine = engine

    def adopt(self, path: Path, sha256: str, size: int) -> Staged:
        staged = self.stage(read_chunks(path.open("rb")))
        path.unlink()
        if staged.sha256 != sha256 or staged.size != size:
            raise errors.Unavailable("a spooled body changed while it was stored; retry")
        return staged

    def stage(self, pieces: Iterable[bytes | memoryview]) -> Staged:
        """Uploads ``pieces`` as one large object, committed when this returns."""
        digest = hashlib.sha256()
        size = 0
        with self.engine.begin() as conn:
            oid = int(conn.execute(sa.text("SELECT lo_create(0)")).scalar_one())
            for piece in _rechunked(pieces):
                conn.execute(sa.text("SELECT lo_put(:oid, :offset, :data)"),
                             {"oid": oid, "offset": size, "data": piece})
                digest.update(piece)
                size += len(piece)
            conn.execute(payload_staging.insert().values(oid=oid, staged_at=time.time()))
        return Staged(digest.hexdigest(), size, f"{PREFIX}{oid}")

    def open(self, location: str) -> IO[bytes]:
        if not location.startswith(PREFIX):
            return super().open(location)
        oid = int(location[len(PREFIX):])
        with self.engine.connect() as conn:
            exists = conn.execute(sa.text(
                "SELECT 1 FROM pg_largeobject_metadata WHERE oid = :oid"),
                {"oid": oid}).first()
        if exists is None:
            raise errors.NotFound(
                f"payload large object {oid} is missing from the database; restore it "
                "from the backup")
        return io.BufferedReader(_Reader(self.engine, oid), buffer_size=_PIECE)

    def sweep(self, named: Callable[[list[str]], set[str]], *,
              older_than_s: float = _ORPHAN_AGE_S, now: float | None = None) -> int:
        """Spooled uploads left behind, then uploads no payload row names, both only once
        older than ``older_than_s``."""
        removed = super().sweep(named, older_than_s=older_than_s, now=now)
        cutoff = (now or time.time()) - older_than_s
        s, f = payload_staging.c, payload_files.c
        location = sa.literal(PREFIX) + sa.cast(s.oid, sa.String)
        with self.engine.begin() as conn:
            orphans = list(conn.execute(sa.select(s.oid).where(
                s.staged_at < cutoff,
                ~sa.exists().where(f.location == location))).scalars())
            for oid in orphans:
                conn.execute(sa.text("SELECT lo_unlink(:oid) FROM pg_largeobject_metadata "
                                     "WHERE oid = :oid"), {"oid": oid})
            conn.execute(payload_staging.delete().where(s.staged_at < cutoff))
        return removed + len(orphans)


class _Reader(io.RawIOBase):
    """A large object read piece by piece, each piece one ``lo_get`` on a pooled
    connection (no transaction held open while an adapter streams a slow upload)."""

    def __init__(self, engine: Engine, oid: int) -> None:
        self._engine = engine
        self._oid = oid
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        with self._engine.connect() as conn:
            piece = conn.execute(sa.text("SELECT lo_get(:oid, :offset, :length)"),
                                 {"oid": self._oid, "offset": self._offset,
                                  "length": len(buffer)}).scalar_one()
        count = len(piece)
        buffer[:count] = piece
        self._offset += count
        return count


def _rechunked(pieces: Iterable[bytes | memoryview]) -> Iterable[bytes]:
    """Pieces of about a megabyte: one ``lo_put`` round trip each."""
    held: list[bytes] = []
    total = 0
    for piece in pieces:
        held.append(bytes(piece))
        total += len(piece)
        if total >= _PIECE:
            yield b"".join(held)
            held, total = [], 0
    if held:
        yield b"".join(held)


def payload_store(settings: Settings, engine: Engine) -> PayloadFiles:
    """Where ``settings`` keep large payloads: every process reading payloads needs it
    (serve, worker, backup, restore, evidence bundles)."""
    root = settings.data_dir / "payloads"
    wanted = settings.payload_store
    if wanted == "auto":
        wanted = "large_objects" if engine.dialect.name == "postgresql" else "files"
    if wanted == "large_objects":
        if engine.dialect.name != "postgresql":
            raise errors.ConfigInvalid([errors.Problem(
                "payload_store: large_objects needs PostgreSQL (database_url); use files "
                "on SQLite")])
        return LargeObjects(root, engine, inline_below=settings.payload_inline_below)
    return PayloadFiles(root, inline_below=settings.payload_inline_below)

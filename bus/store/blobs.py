"""Payload files: content-addressed, written once, durable before the document commits.

A scanned packet of hundreds of megabytes must not be a database row: a row is read
whole into memory, PostgreSQL's ``bytea`` tops out at 1 GB, and SQLite copies it
through its page cache. So a payload at or above the inline threshold is a file named by
its SHA-256 under ``<data dir>/payloads`` and the database keeps digest, size and
location (``payload_files``); smaller payloads stay in ``payloads`` where one statement
reads them with the delivery they belong to.

The order of writes is what makes this crash safe. A body is written (and hashed) into
``tmp/`` as it arrives, fsynced, renamed to its final name and the directory fsynced —
all before the accept transaction commits the row that names it. A crash before the
commit leaves a file no row names: harmless, and :meth:`PayloadFiles.sweep` removes it
once it is older than any accept in flight. A row therefore never names a missing file.
The same bytes sent twice are one file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from bus import errors

DEFAULT_INLINE_BELOW: Final = 256 * 1024
"""Payloads smaller than this stay in the database (see the README's benchmark)."""
_CHUNK: Final = 1 << 20
_ORPHAN_AGE_S: Final = 3600.0


@dataclass(frozen=True)
class Staged:
    """A payload file that is durable under its final name, not yet named by any row."""

    sha256: str
    size: int
    location: str


class Spool:
    """A file being written in ``tmp/``, hashed on the way; :meth:`keep` makes it a payload.

    Used for request bodies as they arrive: ``cap`` refuses a body as soon as the running
    total passes it, so the disk never holds more than the cap either.
    """

    def __init__(self, files: PayloadFiles, cap: int | None = None) -> None:
        self._files = files
        self.cap = cap
        fd, name = tempfile.mkstemp(dir=files.tmp, prefix="in-")
        self.path = Path(name)
        self._file: IO[bytes] | None = os.fdopen(fd, "w+b")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes | memoryview) -> None:
        if self._file is None:
            raise ValueError("spool is closed")
        self.size += len(chunk)
        if self.cap is not None and self.size > self.cap:
            self.discard()
            raise errors.PayloadTooLarge(
                f"the request body is more than {self.cap} bytes; this bus accepts at most "
                f"{self.cap} bytes per request", details={"limit": self.cap})
        self._file.write(chunk)
        self._hash.update(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def tail(self, size: int) -> bytes:
        """The last ``size`` bytes written."""
        if self._file is None:
            raise ValueError("spool is closed")
        self._file.flush()
        with self.path.open("rb") as file:
            file.seek(max(0, self.size - size))
            return file.read()

    def drop_tail(self, size: int) -> None:
        """Cuts the last ``size`` bytes (a transport's trailing CRLF) and hashes again."""
        if self._file is None:
            raise ValueError("spool is closed")
        self._file.flush()
        self.size = max(0, self.size - size)
        self._file.truncate(self.size)
        self._file.seek(self.size)
        self._hash = hashlib.sha256()
        with self.path.open("rb") as file:
            for chunk in read_chunks(file):
                self._hash.update(chunk)

    def keep(self) -> Staged:
        """fsync, rename to the content's name, fsync the directory: durable from here."""
        if self._file is None:
            raise ValueError("spool is closed")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        return self._files.adopt(self.path, self.sha256, self.size)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class PayloadFiles:
    """The directory of payload files; ``inline_below`` decides what stays in rows."""

    def __init__(self, root: Path, *, inline_below: int = DEFAULT_INLINE_BELOW) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.inline_below = inline_below
        self.tmp.mkdir(parents=True, exist_ok=True)

    def spool(self, cap: int | None = None) -> Spool:
        return Spool(self, cap)

    def stage(self, pieces: Iterable[bytes | memoryview]) -> Staged:
        """Writes ``pieces`` as one payload file (durable when this returns)."""
        spool = self.spool()
        try:
            for piece in pieces:
                spool.write(piece)
            return spool.keep()
        finally:
            spool.discard()

    def adopt(self, path: Path, sha256: str, size: int) -> Staged:
        """Renames a fsynced file in ``tmp/`` to its content's name.

        When the content is already stored the new copy is dropped and the old one's
        time refreshed, so a concurrent sweep does not take it as an old orphan.
        """
        location = f"{sha256[:2]}/{sha256}"
        final = self.root / location
        final.parent.mkdir(exist_ok=True)
        if final.exists():
            os.utime(final)
            path.unlink()
        else:
            os.replace(path, final)
            _fsync_dir(final.parent)
        return Staged(sha256, size, location)

    def path(self, location: str) -> Path:
        return self.root / location

    def open(self, location: str) -> IO[bytes]:
        try:
            return self.path(location).open("rb")
        except FileNotFoundError:
            raise errors.NotFound(
                f"payload file {location} is missing from {self.root}; restore the data "
                "directory from its backup") from None

    def sweep(self, named: Callable[[list[str]], set[str]], *,
              older_than_s: float = _ORPHAN_AGE_S, now: float | None = None) -> int:
        """Removes files no row names (an accept that crashed or was refused after
        staging) and abandoned uploads, both only once older than ``older_than_s``;
        ``named`` answers which of the given digests rows name. Returns files removed."""
        cutoff = (now or time.time()) - older_than_s
        removed = 0
        for stale in self.tmp.iterdir():
            if _mtime(stale) < cutoff:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
                    removed += 1
        for batch in _batches(p for p in self.root.glob("??/*") if _mtime(p) < cutoff):
            kept = named([p.name for p in batch])
            for candidate in batch:
                # Re-read the time: an accept of the same bytes refreshes it (adopt).
                if candidate.name not in kept and _mtime(candidate) < cutoff:
                    with contextlib.suppress(FileNotFoundError):
                        candidate.unlink()
                        removed += 1
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _batches(paths: Iterable[Path], size: int = 500) -> Iterator[list[Path]]:
    batch: list[Path] = []
    for path in paths:
        batch.append(path)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_chunks(file: IO[bytes], size: int = _CHUNK) -> Iterator[bytes]:
    """``file`` from where it stands, in pieces of at most ``size`` bytes; closes it."""
    with file:
        while True:
            chunk = file.read(size)
            if not chunk:
                return
            yield chunk


class PayloadBody:
    """A stored payload to be read, from a row's bytes or from its file, as a stream.

    What adapters and the download endpoints get: ``size`` is known without reading,
    ``open`` gives a fresh readable file each time (an attempt may be retried), and
    ``read`` is for the few callers that need every byte in memory at once.
    """

    def __init__(self, size: int, *, data: bytes | None = None,
                 opener: Callable[[], IO[bytes]] | None = None) -> None:
        if (data is None) == (opener is None):
            raise ValueError("a payload body has either its bytes or a file")
        self.size = size
        self._data = data
        self._opener = opener

    @classmethod
    def of(cls, data: bytes) -> PayloadBody:
        return cls(len(data), data=data)

    @property
    def in_memory(self) -> bool:
        return self._data is not None

    def open(self) -> IO[bytes]:
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._opener is not None
        return self._opener()

    def chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        if self._data is not None:
            view = memoryview(self._data)
            for start in range(0, len(self._data), size):
                yield bytes(view[start:start + size])
            return
        yield from read_chunks(self.open(), size)

    def read(self) -> bytes:
        if self._data is not None:
            return self._data
        with self.open() as file:
            return file.read()

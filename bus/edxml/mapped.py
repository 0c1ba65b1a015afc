"""A packet on disk read as if it were ``bytes``, without holding it in memory.

A request body of hundreds of megabytes is spooled to a file as it arrives. The reader's
byte-level passes (finding the base64 regions, lifting them, decoding them in chunks,
finding where the TraceHeader goes) only ever ask for ``find``, ``rfind``, ``count``,
``startswith``, ``in``, an index and slices. :class:`Mapped` answers exactly those over
a read-only memory map, so the reader runs the same code — the same verdicts, lines and
messages — on a file as on bytes.

A memory map alone does not keep the resident size down: every page a pass touches
stays mapped into the process (the kernel counts file pages in RSS), so one ``find``
across 500 MB of base64 made the process 500 MB larger. Long searches therefore run
window by window, and a window (or a large slice) once done is given back with
``MADV_DONTNEED``: the page cache keeps the data, the process does not.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Final, cast, overload

_WINDOW: Final = 16 << 20
_RELEASE_SLICES_FROM: Final = 1 << 20
_PAGE: Final = mmap.PAGESIZE


class Mapped(mmap.mmap):
    """A read-only map of a whole file with the ``bytes`` methods the reader uses."""

    @classmethod
    def of(cls, path: Path) -> Mapped:
        fd = os.open(path, os.O_RDONLY)
        try:
            return cls(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)

    def as_bytes(self) -> bytes:
        """Typed as what it stands in for: the reader's functions take ``bytes``."""
        return cast(bytes, self)

    def release(self, start: int = 0, end: int | None = None) -> None:
        """Drops the pages of ``[start, end)`` from the process (not from the cache)."""
        end = len(self) if end is None else min(end, len(self))
        first = start - start % _PAGE
        if end > first:
            self.madvise(mmap.MADV_DONTNEED, first, end - first)

    def _range(self, start: int | None, end: int | None) -> tuple[int, int]:
        size = len(self)
        start = 0 if start is None else (max(0, start + size) if start < 0 else start)
        end = size if end is None else (max(0, end + size) if end < 0 else min(end, size))
        return start, end

    def find(self, sub: bytes, start: int | None = None,  # type: ignore[override]
             end: int | None = None) -> int:
        start, end = self._range(start, end)
        if end - start <= _WINDOW:
            return super().find(sub, start, end)
        position = start
        while position < end:
            stop = min(end, position + _WINDOW + len(sub) - 1)
            found = super().find(sub, position, stop)
            if found >= 0:
                return found
            self.release(position, position + _WINDOW)
            position += _WINDOW
        return -1

    def count(self, sub: bytes, start: int | None = None, end: int | None = None) -> int:
        start, end = self._range(start, end)
        if len(sub) == 1:  # line breaks in MIME-style base64: window by window
            total = 0
            for position in range(start, end, _WINDOW):
                stop = min(end, position + _WINDOW)
                total += super().__getitem__(slice(position, stop)).count(sub)
                if end - start > _WINDOW:
                    self.release(position, stop)
            return total
        total = 0
        position = start
        while True:
            found = self.find(sub, position, end)
            if found < 0:
                return total
            total += 1
            position = found + max(1, len(sub))

    def startswith(self, prefix: bytes | tuple[bytes, ...], start: int = 0,
                   end: int | None = None) -> bool:
        prefixes = prefix if isinstance(prefix, tuple) else (prefix,)
        start, end = self._range(start, end)
        for candidate in prefixes:
            if end - start >= len(candidate) and \
                    super().__getitem__(slice(start, start + len(candidate))) == candidate:
                return True
        return False

    def __contains__(self, sub: object) -> bool:
        return isinstance(sub, bytes) and self.find(sub) >= 0

    @overload  # type: ignore[override]
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> bytes: ...
    def __getitem__(self, index: int | slice) -> int | bytes:
        value = super().__getitem__(index)
        if isinstance(index, slice) and isinstance(value, bytes) \
                and len(value) >= _RELEASE_SLICES_FROM and index.step in (None, 1):
            start, end = self._range(index.start, index.stop)
            self.release(start, end)
        return value

"""Attachment content that may be 100 MB: kept in memory when small, on disk when large.

Scanned documents of 10–100 MB are ordinary traffic, so a packet's attachments must not
be held as ``bytes`` while the rest of the packet is being handled. A :class:`Blob` is
written once (decoding base64 as it arrives) and then read as often as needed.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from collections.abc import Iterator
from typing import IO

SPOOL_THRESHOLD = 1 << 20
_CHUNK = 3 * (1 << 18)

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"%PDF-", "pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"{\\rtf", "rtf"),
)


def sniff(head: bytes) -> str:
    """Names the file format from its first bytes; producers' ContentType is unreliable."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "unknown"


class Blob:
    """Write-once binary content with its size and SHA-256 known once closed for writing."""

    def __init__(self, spool_threshold: int = SPOOL_THRESHOLD) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=spool_threshold)
        self._hash = hashlib.sha256()
        self._size = 0
        self._head = b""
        self._sealed = False

    @classmethod
    def from_bytes(cls, data: bytes) -> Blob:
        blob = cls()
        blob.write(data)
        blob.seal()
        return blob

    def write(self, data: bytes) -> None:
        if self._sealed:
            raise ValueError("blob is sealed")
        if len(self._head) < 16:
            self._head += data[: 16 - len(self._head)]
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def seal(self) -> None:
        self._sealed = True

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def format(self) -> str:
        """``zip`` for the Java SDK's zip-then-base64 habit, ``pdf`` for raw files, …"""
        return sniff(self._head)

    @property
    def on_disk(self) -> bool:
        return bool(getattr(self._file, "_rolled", False))

    def chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        self._file.seek(0)
        while True:
            chunk = self._file.read(size)
            if not chunk:
                return
            yield chunk

    def read(self) -> bytes:
        """All content at once: for small attachments and tests, not for scanned files."""
        return b"".join(self.chunks())

    def base64_chunks(self) -> Iterator[bytes]:
        """Base64 text in pieces whose concatenation is the single-line encoding."""
        for chunk in self.chunks(_CHUNK):
            yield base64.b64encode(chunk)

    def close(self) -> None:
        self._file.close()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Blob):
            return NotImplemented
        return self.size == other.size and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        return f"Blob(size={self.size}, format={self.format!r}, sha256={self.sha256[:12]}…)"

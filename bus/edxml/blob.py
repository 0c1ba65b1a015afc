"""Attachment content that may be 100 MB: kept in memory when small, on disk when large.

Scanned documents of 10 to 100 MB are ordinary traffic, so a packet's attachments must not
be held as ``bytes`` while the rest of the packet is being handled. A :class:`Blob` is
filled once (decoding base64 as it arrives, or keeping small content as checked base64
until it is first read) and then read as often as needed.
"""

from __future__ import annotations

import base64
import binascii
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
    """Write-once binary content with its size and SHA-256 known once closed for writing.

    A blob is either written (``write`` then ``seal``, spooled to disk past the
    threshold) or made from base64 text the reader has already checked
    (``from_base64``), which is decoded only when the bytes or their digest are first
    asked for. Size and format need no decoding, and the writer forwards canonical
    text as it came, so routing a packet never pays for the base64.
    """

    def __init__(self, spool_threshold: int = SPOOL_THRESHOLD) -> None:
        # Owned for the blob's lifetime and closed by close(), not by a with block.
        self._file: IO[bytes] | None = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=spool_threshold
        )
        self._hash: hashlib._Hash | None = hashlib.sha256()
        self._size = 0
        self._head = b""
        self._sealed = False
        self._base64: bytes | None = None
        self._decoded: bytes | None = None
        self._region: tuple[bytes, int, int, bool] | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> Blob:
        blob = cls()
        blob.write(data)
        blob.seal()
        return blob

    @classmethod
    def from_base64(cls, text: bytes, size: int) -> Blob:
        """Content given as base64 that ``binascii``'s strict mode accepts, without
        whitespace; ``size`` is its decoded length. Meant for content small enough to
        keep in memory: it is never spooled."""
        blob = cls.__new__(cls)
        blob._file = None
        blob._hash = None
        blob._size = size
        blob._head = b""
        blob._sealed = True
        blob._base64 = text
        blob._decoded = None
        blob._region = None
        return blob

    @classmethod
    def from_region(cls, source: bytes, start: int, end: int, size: int,
                    single_line: bool) -> Blob:
        """Content that is ``source[start:end]``, base64 the reader has checked (strict
        once whitespace is dropped; ``single_line``: there is none), ``size`` bytes
        decoded. Nothing is copied or decoded until read: a packet that is only routed
        and forwarded never pays for its scans' base64, and ``source`` (the packet, which
        the caller holds anyway, or its memory map) is the only copy."""
        blob = cls.from_base64(b"", size)
        blob._base64 = None
        blob._region = (source, start, end, single_line)
        return blob

    def write(self, data: bytes) -> None:
        if self._sealed or self._file is None or self._hash is None:
            raise ValueError("blob is sealed")
        if len(self._head) < 16:
            self._head += data[: 16 - len(self._head)]
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def seal(self) -> None:
        self._sealed = True

    def _content(self) -> bytes:
        """The decoded bytes of a blob made from base64."""
        decoded = self._decoded
        if decoded is None:
            if self._region is not None:
                return b"".join(self._region_chunks())
            assert self._base64 is not None
            decoded = self._decoded = binascii.a2b_base64(self._base64)
        return decoded

    def _region_chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        """A region's content decoded piece by piece (never held whole)."""
        assert self._region is not None
        source, start, end, single_line = self._region
        step = size // 3 * 4
        carry = b""
        for at in range(start, end, step):
            piece = source[at:min(end, at + step)]
            if not single_line:
                piece = piece.translate(None, b" \t\r\n")
            piece = carry + piece
            usable = len(piece) - len(piece) % 4
            carry = piece[usable:]
            if usable:
                yield binascii.a2b_base64(piece[:usable])

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        if self._hash is None:
            digest = hashlib.sha256()
            for chunk in self.chunks():
                digest.update(chunk)
            self._hash = digest
        return self._hash.hexdigest()

    @property
    def format(self) -> str:
        """``zip`` for the Java SDK's zip-then-base64 habit, ``pdf`` for raw files, …"""
        if self._base64 is not None and not self._head:
            # 24 characters of unpadded base64 are 18 whole bytes: enough to sniff.
            self._head = binascii.a2b_base64(self._base64[:24])[:16]
        if self._region is not None and not self._head:
            self._head = next(self._region_chunks(24), b"")[:16]
        return sniff(self._head)

    @property
    def on_disk(self) -> bool:
        return bool(getattr(self._file, "_rolled", False))

    def chunks(self, size: int = _CHUNK) -> Iterator[bytes]:
        if self._region is not None:
            yield from self._region_chunks(size)
            return
        if self._file is None:
            content = self._content()
            for start in range(0, len(content), size):
                yield content[start : start + size]
            return
        self._file.seek(0)
        while True:
            chunk = self._file.read(size)
            if not chunk:
                return
            yield chunk

    def read(self) -> bytes:
        """All content at once: for small attachments and tests, not for scanned files."""
        if self._file is None:
            return self._content()
        return b"".join(self.chunks())

    def base64_chunks(self) -> Iterator[bytes]:
        """Base64 text in pieces whose concatenation is the single-line encoding."""
        text = self._base64
        if text is not None and _canonical(text):
            step = _CHUNK // 3 * 4
            for start in range(0, len(text), step):
                yield text[start : start + step]
            return
        region = self._region
        if region is not None and region[3] \
                and _canonical(region[0][max(region[1], region[2] - 4):region[2]]):
            source, first, end, _ = region
            step = _CHUNK // 3 * 4
            for start in range(first, end, step):
                yield source[start : min(end, start + step)]
            return
        for chunk in self.chunks(_CHUNK):
            yield base64.b64encode(chunk)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Blob):
            return NotImplemented
        return self.size == other.size and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        return f"Blob(size={self.size}, format={self.format!r}, sha256={self.sha256[:12]}…)"


def _canonical(text: bytes) -> bool:
    """Whether ``text`` is what ``b64encode`` makes of its own decoding.

    Strict decoding ignores the unused low bits of the last character before padding;
    the encoder writes them as zero, so only then does the text round-trip unchanged.
    """
    if text.endswith(b"=="):
        return text[-3:-2] in b"AQgw"
    if text.endswith(b"="):
        return text[-2:-1] in b"AEIMQUYcgkosw048"
    return True

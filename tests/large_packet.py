"""Packets of hundreds of megabytes written straight to a file, for the streaming tests.

A builder holds its attachments as blobs and serialises in memory; a 500 MB packet
made that way would cost the test process more than the bus it measures. So the packet
is built with a small marker attachment, and the file is written as the packet's bytes
with the marker's base64 replaced by ``size`` bytes of content encoded on the fly (one
random 3 MiB block repeated: whole blocks of 3 bytes encode to whole blocks of base64).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from bus.edxml import EdocBuilder, packet_bytes

_BLOCK: Final = 3 << 20
_MARKER: Final = b"LGSP-LARGE-PACKET-MARKER" * 4


def write_large_packet(path: Path, size: int, *, sender: str = "000.00.12.H37",
                       recipient: str = "000.00.00.H37", document_id: str | None = None
                       ) -> tuple[int, str]:
    """Writes an edoc whose one attachment holds ``size`` bytes; returns the file's size
    and SHA-256."""
    builder = EdocBuilder(sender).to(recipient).subject("Hồ sơ quét").signer("A")
    if document_id is not None:
        builder = builder.document_id(document_id)
    packet = packet_bytes(builder.attach("scan.pdf", _MARKER).build(check=False))
    marker = base64.b64encode(_MARKER)
    head, found, tail = packet.partition(marker)
    assert found, "the marker's base64 is not in the packet"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for piece in (head, *_encoded(size), tail):
            out.write(piece)
            digest.update(piece)
    return path.stat().st_size, digest.hexdigest()


def _encoded(size: int) -> Iterator[bytes]:
    block = os.urandom(_BLOCK)
    text = base64.b64encode(block)
    left = size
    while left >= _BLOCK:
        yield text
        left -= _BLOCK
    if left:
        yield base64.b64encode(block[:left])


def file_chunks(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(chunk):
            yield piece

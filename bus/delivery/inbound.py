"""A polled packet given as a file or as pieces, gathered the way the REST door gathers a body.

An adapter that polls a system may hand :meth:`Inbox.submit <bus.adapter.Inbox.submit>`
a packet it never held whole (the national axis' getEdoc of a 500 MB scan, decoded as it
arrives). It is collected in memory while small, and from ``SPOOL_FROM`` on written and
hashed into a :class:`~bus.store.blobs.Spool` in the payload directory, exactly as
:func:`bus.api.bodies.read_spooled` does for a request body; the bus's ``max_body_bytes``
is enforced while reading either way, so a packet over it costs neither memory nor disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

from bus import errors
from bus.store.blobs import PayloadFiles, Spool

SPOOL_FROM: Final = 8 << 20
_READ: Final = 1 << 20


def pieces_of(packet: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    """A file read in pieces (iterating it would split it at newlines), or the pieces."""
    read = getattr(packet, "read", None)
    if read is not None:
        while piece := read(_READ):
            yield piece
        return
    yield from packet


def too_large(cap: int, what: str) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"{what} is more than {cap} bytes; this bus accepts at most {cap} bytes per packet "
        "(setting max_body_bytes)", details={"limit": cap})


def gather(packet: BinaryIO | Iterable[bytes], files: PayloadFiles | None, cap: int, *,
           what: str = "the packet", spool_from: int = SPOOL_FROM) -> bytes | Spool:
    """``bytes`` when under ``spool_from`` (or without payload files), else a Spool the
    caller must discard. Raises PayloadTooLarge past ``cap``, and whatever the pieces
    raise, having dropped what it gathered."""
    held: list[bytes] = []
    total = 0
    spool: Spool | None = None
    try:
        for piece in pieces_of(packet):
            if spool is not None:
                try:
                    spool.write(piece)
                except errors.PayloadTooLarge:
                    raise too_large(cap, what) from None
                continue
            total += len(piece)
            if total > cap:
                raise too_large(cap, what)
            held.append(bytes(piece))
            if files is not None and total >= spool_from:
                spool = files.spool(cap)
                for kept in held:
                    spool.write(kept)
                held = []
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    return spool if spool is not None else b"".join(held)

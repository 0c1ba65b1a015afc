"""Request bodies that may be a gigabyte: kept in memory while small, on disk once large.

Most packets are kilobytes, and reading them into ``bytes`` is the cheapest thing to do.
A scanned packet is hundreds of megabytes; holding it whole (and the copies parsing
makes) is what made a 500 MB packet impossible. So a body is collected in memory up to
``SPOOL_FROM`` and from there written, and hashed, to a file in the payload directory as
it arrives (:class:`bus.store.blobs.Spool`); a declared length that large goes to disk
from the first byte. The cap is enforced while reading either way.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from bus.api import check_declared_length, too_large
from bus.store.blobs import PayloadFiles, Spool

SPOOL_FROM: Final = 8 << 20


async def read_spooled(request: Request, cap: int, files: PayloadFiles | None,
                       *, spool_from: int = SPOOL_FROM) -> bytes | Spool:
    """The body: ``bytes`` when under ``spool_from``, else a :class:`Spool` the caller
    must discard (``with``). Without payload files, always ``bytes``."""
    check_declared_length(request, cap)
    declared = request.headers.get("content-length")
    spool: Spool | None = None
    if files is not None and declared is not None and int(declared) >= spool_from:
        spool = files.spool(cap)
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            if spool is not None:
                spool.write(chunk)
                continue
            total += len(chunk)
            if total > cap:
                raise too_large(f"more than {cap}", cap)
            chunks.append(chunk)
            if files is not None and total >= spool_from:
                spool = files.spool(cap)
                for held in chunks:
                    spool.write(held)
                chunks = []
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    return spool if spool is not None else b"".join(chunks)

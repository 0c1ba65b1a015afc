"""The httpx client shared by the adapters that speak plain HTTP, and how it is built.

The client is made on first use, never in a constructor, because the bus builds adapters
merely to validate routes. It ignores the environment's proxy variables
(``trust_env=False``), since the bus talks to destinations directly, and it does not
follow redirects, since a 3xx is an answer for the adapter to decide on, not a reason to
send a packet somewhere routes.yaml does not name.

It also holds what the adapters need to send a packet of hundreds of megabytes without
holding it: a body made of pieces with its length known up front, and base64 encoded as
the file is read.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import httpx

from bus.store.blobs import PayloadBody

__all__ = ["HttpClientLifecycle", "SizedStream", "base64_length", "base64_pieces",
           "new_client", "packet_base64"]


def new_client(timeout_s: float, *, base_url: str = "") -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout_s),
                        follow_redirects=False, trust_env=False)


class HttpClientLifecycle:
    """Mixin (listed before ``Adapter``) whose ``open`` and ``close`` may be called any
    number of times, in any order, as the bus and its conformance suite do."""

    _client: httpx.Client | None = None

    def _new_client(self) -> httpx.Client:
        """The adapter's client, built with :func:`new_client` from its configuration."""
        raise NotImplementedError

    def open(self) -> None:
        if self._client is None:
            self._client = self._new_client()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


_B64_READ: Final = 3 * 256 * 1024
"""Bytes of packet read per base64 piece: a multiple of 3, so no piece but the last pads."""


def base64_length(size: int) -> int:
    """Length of the standard (padded, unwrapped) base64 of ``size`` bytes."""
    return 4 * ((size + 2) // 3)


def base64_pieces(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The base64 of the concatenated ``chunks``, piece by piece, equal to encoding it whole.

    A chunk whose length is not a multiple of 3 (a short read) keeps its last one or two
    bytes back for the next, so padding can only appear at the very end.
    """
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        whole = len(data) - len(data) % 3
        if whole:
            yield binascii.b2a_base64(data[:whole], newline=False)
        carry = data[whole:]
    if carry:
        yield binascii.b2a_base64(carry, newline=False)


def packet_base64(body: PayloadBody) -> Iterator[bytes]:
    """The packet's base64, read from its file (or bytes) in pieces of :data:`_B64_READ`."""
    return base64_pieces(body.chunks(_B64_READ))


class SizedStream:
    """A request body made piece by piece, whose length is known before the first byte.

    Both HTTP libraries the adapters use stream an iterable body, but requests sends a
    bare generator with ``Transfer-Encoding: chunked`` (which older SOAP servers refuse
    and our simulators do not read), and takes the Content-Length from ``len()`` of what
    it is given: hence ``__len__``. httpx is given the pieces with an explicit
    Content-Length header. Each iteration starts again from ``pieces()``, and a body that
    turns out longer or shorter than declared raises instead of leaving the peer waiting
    for bytes that never come.
    """

    def __init__(self, size: int, pieces: Callable[[], Iterable[bytes]]) -> None:
        self.size = size
        self._pieces = pieces

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for piece in self._pieces():
            sent += len(piece)
            if sent > self.size:
                raise ValueError(f"request body longer than its declared {self.size} bytes")
            if piece:
                yield piece
        if sent != self.size:
            raise ValueError(f"request body ended at {sent} of its declared {self.size} bytes")

"""An unauthenticated caller's XML names leave nothing behind (bus/xmlsafe/scan.py).

The SOAP door reads the caller's key from the envelope's first 64 KB before it knows who
is calling. Read with lxml, every element name met there stayed in the reading thread's
name dictionary for the thread's life (lxml 6), so a flood of envelopes full of names
nobody used before grew the process for good. This floods the key search in one
long-lived thread, as the server's thread pool is, and measures what stays.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bus.api.soap import key_in_prefix
from tests.memory_probe import settled_mb

REQUESTS = 400
NAMES = 200
NAME_CHARS = 240


def _envelope(n: int) -> bytes:
    names = b"".join(b"<n%d_%d_%s/>" % (n, j, b"x" * NAME_CHARS) for j in range(NAMES))
    return (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soap:Header>" + names + b"</soap:Header><soap:Body/></soap:Envelope>")


def _flood(start: int) -> list[str | None]:
    return [key_in_prefix(_envelope(n)[: 64 * 1024], False) for n in range(start,
                                                                            start + REQUESTS)]


def test_new_names_from_unknown_callers_do_not_stay() -> None:
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(_flood, 0).result() == [None] * REQUESTS   # warm-up
        before = settled_mb()
        assert pool.submit(_flood, REQUESTS).result() == [None] * REQUESTS
        grown = settled_mb() - before
    unique = REQUESTS * NAMES * NAME_CHARS / 2**20
    print(f"\n{REQUESTS} envelopes, {unique:.0f} MB of new names: RSS {grown:+.1f} MB")
    assert grown < unique / 4, f"{grown:.1f} MB of {unique:.0f} MB of names stayed"

"""Figures for issue 11's element bombs (not collected by pytest):

    python tests/security/bomb_figures.py

1. ``read_packet`` on 1M and 10M empty elements: code, best of 3, resident-set growth.
2. A real bus: three unauthenticated 38 MB SOAP envelopes of empty elements: code, time
   (upload included) and the resident set after each.

Run it with PYTHONPATH pointing at another tree to compare (it imports only what both
the old and the new tree have).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_NS = "urn:lgsp-bus:soap:v1"


def rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def reader() -> None:
    from bus.edxml import read_packet
    from bus.errors import PacketError
    from tests.edxml_factory import MINIMAL_EDOC, NS

    read_packet(MINIMAL_EDOC.encode())
    for count in (1_000_000, 10_000_000):
        bomb = f'<edXML xmlns="{NS}">'.encode() + b"<a/>" * count + b"</edXML>"
        before, best, outcome = rss_mb(), float("inf"), ""
        for _ in range(3):
            start = time.perf_counter()
            try:
                read_packet(bomb)
                outcome = "accepted"
            except PacketError as exc:
                outcome = exc.code
            best = min(best, time.perf_counter() - start)
        print(f"read_packet, {count:>10,} empty elements: {outcome}, best of 3 "
              f"{best * 1e3:.1f} ms, RSS +{rss_mb() - before} MB")


def soap_door() -> None:
    import httpx
    from lxml import etree

    from tests.api_server import running_bus

    bomb = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:lgsp="{SOAP_NS}"><soap:Body>'
            + "<a/>" * 10_000_000 + "</soap:Body></soap:Envelope>").encode()
    with running_bus(Path(tempfile.mkdtemp(prefix="lgsp-bombs-"))) as server:
        print(f"SOAP door, {len(bomb) // 2**20} MB envelope without a credential; "
              f"RSS at start {rss_mb()} MB")
        for attempt in range(3):
            start = time.perf_counter()
            try:
                response = httpx.post(server.url + "/soap", content=bomb, timeout=120)
                code = etree.fromstring(response.content).findtext(f".//{{{SOAP_NS}}}code")
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            print(f"  {attempt + 1}: {code} in {time.perf_counter() - start:.2f} s, "
                  f"RSS {rss_mb()} MB")


if __name__ == "__main__":
    reader()
    soap_door()

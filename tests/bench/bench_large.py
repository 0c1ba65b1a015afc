"""Benchmark: one very large packet through a real ``lgsp serve``, POST to delivered.

    python tests/bench/bench_large.py [--mb 500] [--repeats 1] [--postgresql]
        [--adapter http|eoffice|national_axis|vnpt_ioffice | --inbound-axis]

Issue 16's target: a 500 MB packet accepted, stored and delivered with the serve
process's resident size rising by at most 256 MB. The packet (one attachment of ``--mb``
MiB, base64, so the body is about 4/3 of that) is written to a temporary file and
streamed to ``lgsp serve`` (embedded default: SQLite, payload files under its data
dir) with its Content-Length; the route sends it with the ``http`` adapter to a sink in
this process that hashes the body as it reads it, so neither side of the measurement
holds the packet. The serve process's VmRSS and RssAnon are sampled every 10 ms.

``--adapter`` delivers through another adapter instead, to a stand-in of its system
that hashes what it receives as it arrives (tests/bench/large_peers.py): ``eoffice``
(SOAP, the packet base64 in the envelope), ``national_axis`` (sendEdoc, hashed and
signed) or ``vnpt_ioffice`` (the mailbox, collected by a poller through the bus's /vxp
downloadEdoc). "intact" says the bytes received hash to the document's stored payload.

``--inbound-axis`` takes the packet the other way: FROM the national axis. The axis
simulator (adapters/national_axis/simulator.py, in this process) holds it in a file and
encodes its base64 into getEdoc's answer as it writes; the serve process polls, streams
the answer, stores the packet and delivers it with ``http`` to the sink. "202 after s"
is then the time to the axis item acknowledged ``done`` (the packet committed).

Prints the rise of each (peak minus the value after a warm-up packet), the seconds to
the 202 and to delivery, and the throughput in MB of body per second.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import shutil
import socketserver
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.national_axis.simulator import AxisSimulator
from bus.api.vxp_systems import dev_secret
from bus.store.tables import documents
from tests.bench.large_peers import AxisPeer, EofficePeer, IofficePoller
from tests.cluster import Cluster, routes_document
from tests.large_packet import file_chunks, write_large_packet
from tests.servers import PostgresServer

MB: Final = 1024 * 1024
KEY: Final = "dev-eoffice-key"
ADAPTERS: Final = ("http", "eoffice", "national_axis", "vnpt_ioffice")
# (sender, its API key, recipient): a recipient the adapter's destination serves.
ROUTE_OF: Final = {
    "http": ("000.00.12.H37", KEY, "000.00.00.H37"),
    "eoffice": ("000.00.31.H37", "dev-hcm_egov-key", "000.00.12.H37"),
    "national_axis": ("000.00.12.H37", KEY, "000.00.00.G22"),
    "vnpt_ioffice": ("000.00.12.H37", KEY, "000.00.00.H37"),
}
AXIS_ENV: Final = "LGSP_BENCH_AXIS_SECRET"
VXP_SYSTEMS: Final = """
version: 1
development_secrets: true
systems:
  "000.00.00.H37":
    system: vnpt_ioffice
    secret_env: LGSP_BENCH_VXP_SECRET_UNSET
"""


def status_bytes(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = {"VmRSS": 0, "RssAnon": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for field in self.peak:
                self.peak[field] = max(self.peak[field], status_bytes(self.pid, field))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class HashingSink(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Answers 200 to every POST; keeps (size, sha256) of each body, never the body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[int, str]] = []
        self.port = self.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: HashingSink

    def do_POST(self) -> None:
        left = int(self.headers.get("Content-Length") or 0)
        digest = hashlib.sha256()
        size = 0
        while left:
            piece = self.rfile.read(min(left, 1 << 20))
            if not piece:
                break
            digest.update(piece)
            size += len(piece)
            left -= len(piece)
        self.server.received.append((size, digest.hexdigest()))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Peers:
    """The destination's other side, and where each adapter's route points."""

    def __init__(self, adapter: str, sink: HashingSink) -> None:
        self.adapter = adapter
        self.sink = sink
        self.eoffice = EofficePeer() if adapter == "eoffice" else None
        self.axis = AxisPeer() if adapter == "national_axis" else None
        self.ioffice: IofficePoller | None = None

    def routes(self) -> dict[str, Any]:
        routes = routes_document(self.sink)  # type: ignore[arg-type]
        destinations = routes["destinations"]
        if self.eoffice is not None:
            destinations["eoffice"] = {"adapter": "eoffice", "options": {
                "endpoint": self.eoffice.endpoint, "timeout_s": 600}}
        if self.axis is not None:
            destinations["national_axis"] = {"adapter": "national_axis", "options": {
                "endpoint": self.axis.endpoint, "system_id": "LGSP-BENCH",
                "secret_env": AXIS_ENV, "timeout_s": 600}}
        if self.adapter == "vnpt_ioffice":
            destinations["vnpt_ioffice"] = {"adapter": "vnpt_ioffice",
                                            "options": {"system_id": "000.00.00.H37"}}
        return routes

    def connect(self, bus_url: str) -> None:
        if self.adapter == "vnpt_ioffice":
            self.ioffice = IofficePoller(bus_url + "/vxp", "000.00.00.H37",
                                         dev_secret("vnpt_ioffice"))

    @property
    def received(self) -> list[tuple[int, str]]:
        for peer in (self.eoffice, self.axis, self.ioffice):
            if peer is not None:
                return peer.received
        return self.sink.received

    def close(self) -> None:
        for server in (self.eoffice, self.axis):
            if server is not None:
                server.shutdown()
        if self.ioffice is not None:
            self.ioffice.close()


def run(folder: Path, content_mb: int, repeats: int, database_url: str = "",
        adapter: str = "http", evidence: bool = False) -> list[dict[str, Any]]:
    sink = HashingSink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    peers = _Peers(adapter, sink)
    sender, key, recipient = ROUTE_OF[adapter]
    rows: list[dict[str, Any]] = []
    folder.mkdir(parents=True, exist_ok=True)
    systems = folder / "vxp_systems.yaml"
    systems.write_text(VXP_SYSTEMS, encoding="utf-8")
    try:
        with Cluster(folder / "bus", routes=peers.routes(), database_url=database_url,
                     max_body_bytes=1024 * MB, max_attachment_bytes=1024 * MB,
                     body_idle_timeout_s=120.0, vxp_systems=str(systems)) as cluster:
            bus = cluster.add("embedded")
            bus.extra_env[AXIS_ENV] = "bench-axis-secret"
            bus.start()
            bus.wait_ready(60)
            assert bus.pid is not None
            peers.connect(bus.url)
            warm = folder / "warm.xml"
            size, _ = write_large_packet(warm, 9 * MB, sender=sender, recipient=recipient)
            _send(bus.url, warm, size, key, peers, 1)
            time.sleep(1.0)
            for repeat in range(repeats):
                packet = folder / "packet.xml"
                size, digest = write_large_packet(packet, content_mb * MB, sender=sender,
                                                  recipient=recipient)
                base = {f: status_bytes(bus.pid, f) for f in ("VmRSS", "RssAnon")}
                with Sampler(bus.pid) as sampler:
                    accepted, delivered = _send(bus.url, packet, size, key, peers, repeat + 2)
                got, got_digest = peers.received[repeat + 1]
                with cluster.engine.connect() as conn:
                    doc_id, stored = conn.execute(sa.select(
                        documents.c.id, documents.c.payload_sha256).where(
                        documents.c.sha256 == digest)).one()
                rows.append({"body_mb": size / MB, "delivered_mb": got / MB,
                             "base_rss_mb": base["VmRSS"] / MB,
                             "rss_rise_mb": (sampler.peak["VmRSS"] - base["VmRSS"]) / MB,
                             "anon_rise_mb": (sampler.peak["RssAnon"] - base["RssAnon"]) / MB,
                             "accept_s": accepted, "delivered_s": delivered,
                             "intact": got_digest == stored})
                if evidence:
                    rows[-1].update(_evidence(bus.url, bus.pid, doc_id, key))
                packet.unlink()
    finally:
        peers.close()
        sink.shutdown()
    return rows


INBOUND_SENDER: Final = "000.00.00.G22"  # another province's agency, behind the axis
INBOUND_SYSTEM: Final = "LGSP-BENCH-IN"


def run_inbound_axis(folder: Path, content_mb: int, repeats: int,
                     database_url: str = "") -> list[dict[str, Any]]:
    """The packet polled from the axis simulator, stored, delivered to the sink."""
    sink = HashingSink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    axis = AxisSimulator({INBOUND_SYSTEM: "bench-axis-secret"})
    axis.start()
    routes = routes_document(sink)  # type: ignore[arg-type]
    routes["destinations"]["national_axis"] = {"adapter": "national_axis", "options": {
        "endpoint": axis.endpoint, "system_id": INBOUND_SYSTEM, "secret_env": AXIS_ENV,
        "timeout_s": 600, "poll_interval_s": 0.2}}
    recipient = ROUTE_OF["http"][2]
    rows: list[dict[str, Any]] = []
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with Cluster(folder / "bus", routes=routes, database_url=database_url,
                     max_body_bytes=1024 * MB, max_attachment_bytes=1024 * MB) as cluster:
            bus = cluster.add("embedded")
            bus.extra_env[AXIS_ENV] = "bench-axis-secret"
            bus.start()
            bus.wait_ready(60)
            assert bus.pid is not None
            warm = folder / "warm.xml"
            write_large_packet(warm, 9 * MB, sender=INBOUND_SENDER, recipient=recipient)
            _poll(axis, warm, recipient, sink, 1)
            time.sleep(1.0)
            for repeat in range(repeats):
                packet = folder / "packet.xml"
                size, digest = write_large_packet(packet, content_mb * MB,
                                                  sender=INBOUND_SENDER, recipient=recipient)
                base = {f: status_bytes(bus.pid, f) for f in ("VmRSS", "RssAnon")}
                with Sampler(bus.pid) as sampler:
                    accepted, delivered = _poll(axis, packet, recipient, sink, repeat + 2)
                got, got_digest = sink.received[repeat + 1]
                with cluster.engine.connect() as conn:
                    stored = conn.execute(sa.select(documents.c.payload_sha256).where(
                        documents.c.sha256 == digest)).scalar_one_or_none()
                rows.append({"body_mb": size / MB, "delivered_mb": got / MB,
                             "base_rss_mb": base["VmRSS"] / MB,
                             "rss_rise_mb": (sampler.peak["VmRSS"] - base["VmRSS"]) / MB,
                             "anon_rise_mb": (sampler.peak["RssAnon"] - base["RssAnon"]) / MB,
                             "accept_s": accepted, "delivered_s": delivered,
                             "intact": stored is not None and got_digest == stored})
                packet.unlink()
    finally:
        axis.stop()
        sink.shutdown()
    return rows


def _poll(axis: AxisSimulator, path: Path, recipient: str, sink: HashingSink,
          count: int) -> tuple[float, float]:
    """Queues the packet on the axis; (seconds until acknowledged done, until delivered)."""
    began = time.monotonic()
    doc_id = axis.inject_file(INBOUND_SYSTEM, path, sender=INBOUND_SENDER, to=[recipient])
    deadline = began + 900
    accepted: float | None = None
    while time.monotonic() < deadline:
        item = axis.item(INBOUND_SYSTEM, doc_id)
        if item is None or item.status == "fail":
            raise SystemExit(f"the bus refused axis item {doc_id}")
        if accepted is None and item.status == "done":
            accepted = time.monotonic() - began
        if accepted is not None and len(sink.received) >= count:
            return accepted, time.monotonic() - began
        time.sleep(0.05)
    raise SystemExit("not taken from the axis and delivered within 900 s")


def _evidence(url: str, pid: int, doc_id: str, key: str) -> dict[str, float]:
    """GET the document's evidence bundle, hashing it as it arrives; the serve's rise."""
    base = status_bytes(pid, "VmRSS")
    began = time.monotonic()
    size = 0
    with Sampler(pid) as sampler, httpx.stream(
            "GET", f"{url}/api/v1/edocs/{doc_id}/evidence", headers={"X-API-Key": key},
            timeout=900) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"evidence: HTTP {answer.status_code}")
        digest = hashlib.sha256()
        for piece in answer.iter_bytes(1 << 20):
            digest.update(piece)
            size += len(piece)
    return {"evidence_mb": size / MB, "evidence_s": time.monotonic() - began,
            "evidence_rise_mb": (sampler.peak["VmRSS"] - base) / MB}


def _send(url: str, path: Path, size: int, key: str, peers: _Peers, count: int
          ) -> tuple[float, float]:
    began = time.monotonic()
    answer = httpx.post(url + "/api/v1/edocs", content=file_chunks(path),
                        headers={"X-API-Key": key, "Content-Length": str(size),
                                 "Content-Type": "application/xml"}, timeout=900)
    accepted = time.monotonic() - began
    if answer.status_code != 202:
        raise SystemExit(f"refused: {answer.status_code} {answer.text}")
    deadline = time.monotonic() + 900
    while len(peers.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    if len(peers.received) < count:
        raise SystemExit("not delivered within 900 s")
    return accepted, time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=500, help="attachment size in MiB")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--postgresql", action="store_true",
                        help="on a private PostgreSQL (payloads as large objects)")
    parser.add_argument("--adapter", choices=ADAPTERS, default="http",
                        help="the adapter that delivers it (default: http)")
    parser.add_argument("--inbound-axis", action="store_true",
                        help="the packet polled FROM the national axis (getEdoc) instead")
    parser.add_argument("--evidence", action="store_true",
                        help="then GET the document's evidence bundle (zip) and measure it")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="lgsp-bench-large-"))
    server = PostgresServer() if args.postgresql else None
    try:
        if server is not None:
            server.start()
        url = server.url if server else ""
        rows = (run_inbound_axis(folder, args.mb, args.repeats, url) if args.inbound_axis
                else run(folder, args.mb, args.repeats, url, args.adapter, args.evidence))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    path = "inbound from national_axis, delivered by http" if args.inbound_axis \
        else f"adapter {args.adapter}"
    print(f"embedded lgsp serve on {'PostgreSQL' if server else 'SQLite'}, "
          f"{path}, {os.cpu_count()} CPUs\n")
    print("| adapter | body MB | delivered MB | RSS before MB | RSS rise MB | anon rise MB | "
          "202 after s | delivered after s | MB/s end to end | rise ≤ 256 MB | intact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    label = "axis→bus" if args.inbound_axis else args.adapter
    for r in rows:
        print(f"| {label} | {r['body_mb']:.0f} | {r['delivered_mb']:.0f} | "
              f"{r['base_rss_mb']:.0f} | "
              f"{r['rss_rise_mb']:.0f} | {r['anon_rise_mb']:.0f} | {r['accept_s']:.1f} | "
              f"{r['delivered_s']:.1f} | {r['body_mb'] / r['delivered_s']:.0f} | "
              f"{'yes' if r['rss_rise_mb'] <= 256 else 'NO'} | "
              f"{'yes' if r['intact'] else 'NO'} |")
    if args.evidence:
        print("\n| evidence bundle MB | answered in s | serve RSS rise MB |\n|---|---|---|")
        for r in rows:
            print(f"| {r['evidence_mb']:.0f} | {r['evidence_s']:.1f} | "
                  f"{r['evidence_rise_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: one very large packet through a real ``lgsp serve``, POST to delivered.

    python tests/bench/bench_large.py [--mb 500] [--repeats 1]

Issue 16's target: a 500 MB packet accepted, stored and delivered with the serve
process's resident size rising by at most 256 MB. The packet (one attachment of ``--mb``
MiB, base64, so the body is about 4/3 of that) is written to a temporary file and
streamed to ``lgsp serve`` (embedded default: SQLite, payload files under its data
dir) with its Content-Length; the route sends it with the ``http`` adapter to a sink in
this process that hashes the body as it reads it, so neither side of the measurement
holds the packet. The serve process's VmRSS and RssAnon are sampled every 10 ms.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.cluster import Cluster, routes_document
from tests.large_packet import file_chunks, write_large_packet
from tests.servers import PostgresServer

MB: Final = 1024 * 1024
KEY: Final = "dev-eoffice-key"


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


def run(folder: Path, content_mb: int, repeats: int, database_url: str = ""
        ) -> list[dict[str, float]]:
    sink = HashingSink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    rows = []
    try:
        with Cluster(folder / "bus", routes=routes_document(sink),  # type: ignore[arg-type]
                     database_url=database_url,
                     max_body_bytes=1024 * MB, max_attachment_bytes=1024 * MB,
                     body_idle_timeout_s=120.0) as cluster:
            bus = cluster.add("embedded")
            bus.start()
            bus.wait_ready(60)
            assert bus.pid is not None
            warm = folder / "warm.xml"
            size, _ = write_large_packet(warm, 9 * MB)
            _send(bus.url, warm, size, sink, 1)
            time.sleep(1.0)
            for repeat in range(repeats):
                packet = folder / "packet.xml"
                size, _ = write_large_packet(packet, content_mb * MB)
                base = {f: status_bytes(bus.pid, f) for f in ("VmRSS", "RssAnon")}
                with Sampler(bus.pid) as sampler:
                    accepted, delivered = _send(bus.url, packet, size, sink, repeat + 2)
                got = sink.received[repeat + 1][0]
                rows.append({"body_mb": size / MB, "delivered_mb": got / MB,
                             "base_rss_mb": base["VmRSS"] / MB,
                             "rss_rise_mb": (sampler.peak["VmRSS"] - base["VmRSS"]) / MB,
                             "anon_rise_mb": (sampler.peak["RssAnon"] - base["RssAnon"]) / MB,
                             "accept_s": accepted, "delivered_s": delivered})
                packet.unlink()
    finally:
        sink.shutdown()
    return rows


def _send(url: str, path: Path, size: int, sink: HashingSink, count: int
          ) -> tuple[float, float]:
    began = time.monotonic()
    answer = httpx.post(url + "/api/v1/edocs", content=file_chunks(path),
                        headers={"X-API-Key": KEY, "Content-Length": str(size),
                                 "Content-Type": "application/xml"}, timeout=900)
    accepted = time.monotonic() - began
    if answer.status_code != 202:
        raise SystemExit(f"refused: {answer.status_code} {answer.text}")
    deadline = time.monotonic() + 900
    while len(sink.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    if len(sink.received) < count:
        raise SystemExit("not delivered within 900 s")
    return accepted, time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=500, help="attachment size in MiB")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--postgresql", action="store_true",
                        help="on a private PostgreSQL (payloads as large objects)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="lgsp-bench-large-"))
    server = PostgresServer() if args.postgresql else None
    try:
        if server is not None:
            server.start()
        rows = run(folder, args.mb, args.repeats, server.url if server else "")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"embedded lgsp serve on {'PostgreSQL' if server else 'SQLite'}, "
          f"{os.cpu_count()} CPUs\n")
    print("| body MB | delivered MB | RSS before MB | RSS rise MB | anon rise MB | "
          "202 after s | delivered after s | MB/s end to end | rise ≤ 256 MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['body_mb']:.0f} | {r['delivered_mb']:.0f} | {r['base_rss_mb']:.0f} | "
              f"{r['rss_rise_mb']:.0f} | {r['anon_rise_mb']:.0f} | {r['accept_s']:.1f} | "
              f"{r['delivered_s']:.1f} | {r['body_mb'] / r['delivered_s']:.0f} | "
              f"{'yes' if r['rss_rise_mb'] <= 256 else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

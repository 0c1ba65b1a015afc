"""Ingest latency beside a retention purge, at any size (the suite runs 2,000 documents).

    python tests/bench/purge_beside_ingest.py --documents 50000 [--payload-kib 32]
        [--database-url postgresql+psycopg://...] [--batch 500] [--batch-kib 65536]
        [--pause 0.01] [--batch-ms 100] [--max-slowdown 0.5] [--live-ms 10]
        [--min-docs-per-s 30] [--as-cli] [--quiet-s 10]

Seeds old, finished documents, measures REST submits for --quiet-s seconds, then again
while the purge runs, and prints both p50/p99 and their ratio (same run, same machine).
The defaults are the settings' (bus.settings); the purge runs as the scheduled one of
``lgsp serve`` does, judging its harm by the bus's own accept latency, or with --as-cli
as ``lgsp purge`` from another process does (purge_live_ms and the probes only).
The database must be empty (a new data directory, or a new PostgreSQL database).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bus.edxml import EdocBuilder, packet_bytes
from bus.maintenance.retention import Policy, Report, purge
from bus.settings import Settings
from tests.api_server import api_key, running_bus
from tests.retention_seed import seed_finished


def _posts(url: str, seconds: float, until: threading.Thread | None,
           counter: list[int]) -> list[float]:
    took = []
    key = api_key("eoffice")
    with httpx.Client(base_url=url, timeout=60) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end or (until is not None and until.is_alive()):
            counter[0] += 1
            packet = (EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("Giấy mời")
                      .signer("Nguyễn Văn A", "Giám đốc").code(str(counter[0]), "GM").build())
            began = time.perf_counter()
            response = client.post("/api/v1/edocs", content=packet_bytes(packet), headers=key)
            took.append(time.perf_counter() - began)
            response.raise_for_status()
    return took


def _describe(name: str, values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"{name}: {len(values)} posts, p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def main() -> None:
    d = Settings.model_fields
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--payload-kib", type=int, default=32)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--batch", type=int, default=d["purge_batch"].default)
    parser.add_argument("--batch-kib", type=int,
                        default=d["purge_batch_bytes"].default // 1024)
    parser.add_argument("--pause", type=float, default=d["purge_pause_s"].default)
    parser.add_argument("--batch-ms", type=float, default=d["purge_batch_ms"].default,
                        help="pace batches to this duration (settings.purge_batch_ms)")
    parser.add_argument("--max-slowdown", type=float,
                        default=d["purge_max_slowdown"].default,
                        help="pace by the delay a probe write meets (settings."
                             "purge_max_slowdown; needs --batch-ms)")
    parser.add_argument("--live-ms", type=float, default=d["purge_live_ms"].default,
                        help="a live request's quiet p99 at least (settings.purge_live_ms)")
    parser.add_argument("--min-docs-per-s", type=float,
                        default=d["purge_min_docs_per_s"].default,
                        help="the progress floor (settings.purge_min_docs_per_s)")
    parser.add_argument("--as-cli", action="store_true",
                        help="no live reference: as `lgsp purge` from another process")
    parser.add_argument("--quiet-s", type=float, default=10.0)
    parser.add_argument("--control-s", type=float, default=0.0,
                        help="no purge: a second quiet window this long, for the ratio "
                             "the machine's own load gives between two windows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, \
            running_bus(Path(scratch) / "bus", database_url=args.database_url) as server:
        engine = server.bus.store.engine
        began = time.monotonic()
        for start in range(0, args.documents, 5000):
            seed_finished(engine, min(5000, args.documents - start),
                          payload_bytes=args.payload_kib * 1024)
        print(f"seeded {args.documents} documents in {time.monotonic() - began:.1f}s")
        counter = [0]
        quiet = _posts(server.url, args.quiet_s, None, counter)
        if args.control_s > 0:
            again = _posts(server.url, args.control_s, None, counter)
            control = statistics.quantiles(again, n=100)[98] / statistics.quantiles(
                quiet, n=100)[98]
            print(_describe("ingest, quiet      ", quiet))
            print(_describe("ingest, quiet again", again))
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"control p99 ratio (no purge): {control:.2f} (load average {load})")
            return
        result: list[Report] = []
        worker = threading.Thread(target=lambda: result.append(purge(
            engine, Policy.from_settings({"edoc": "3650d"}), actor="bench", batch=args.batch,
            batch_bytes=args.batch_kib * 1024, pause_s=args.pause, batch_ms=args.batch_ms,
            max_slowdown=args.max_slowdown, live_ms=args.live_ms,
            min_docs_per_s=args.min_docs_per_s,
            live=None if args.as_cli else server.bus.live)))
        began = time.monotonic()
        worker.start()
        busy = _posts(server.url, 1.0, worker, counter)
        worker.join()
        took = time.monotonic() - began
    report = result[0]
    print(f"purged {report.documents} documents, {report.payloads} payloads in "
          f"{report.batches} batches, {took:.1f}s ({report.documents / took:.0f}/s), "
          f"{report.floor_batches} held to the floor; bus accept p99 "
          f"{_ms(report.live_quiet_ms)} before, {_ms(report.live_during_ms)} during")
    print(_describe("ingest, quiet      ", quiet))
    print(_describe("ingest, purge beside", busy))
    ratio = statistics.quantiles(busy, n=100)[98] / statistics.quantiles(quiet, n=100)[98]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"p99 ratio: {ratio:.2f} (load average {load})")


if __name__ == "__main__":
    main()

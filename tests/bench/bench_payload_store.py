"""Benchmark: where a large payload should live — a row, a file, a PostgreSQL large object.

    python tests/bench/bench_payload_store.py [--mb 100]

Each candidate stores one payload of ``--mb`` MiB and reads it back, in a fresh child
process, on a private PostgreSQL this script starts (and a temporary directory):

* ``bytea row``: the old way, ``payloads.data`` (Store without payload files);
* ``large object``: :class:`bus.store.large_objects.LargeObjects` (lo_put / lo_get
  pieces of 1 MiB), the shared store a scale-out bus uses;
* ``local file``: :class:`bus.store.blobs.PayloadFiles` (written, fsynced, renamed), the
  embedded default, for reference.

Prints seconds to store, seconds to read, and the child's peak resident size (VmHWM)
above what it held before. An S3-compatible store is not measured: the only one on this
machine is moto, an in-memory mock written in Python, whose figures would describe moto.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers import PostgresServer

MB = 1024 * 1024

_CHILD = r"""
import hashlib, json, os, sys, time
from pathlib import Path
import sqlalchemy as sa
from bus.store import Store
from bus.store.blobs import PayloadFiles
from bus.store.large_objects import LargeObjects
from bus.store.tables import create_engine, payloads

kind, url, folder, mb = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

engine = create_engine(url)
Store(engine).create_schema()
block = os.urandom(1 << 20)
before = hwm()
began = time.perf_counter()
if kind == "bytea row":
    data = block * mb
    with engine.begin() as conn:
        conn.execute(payloads.insert().values(sha256=hashlib.sha256(data).hexdigest(), data=data))
    digest = hashlib.sha256(data).hexdigest()
    del data
    stored = time.perf_counter() - began
    began = time.perf_counter()
    got = Store(engine).payload(digest)
    size = len(got)
    del got
else:
    files = (LargeObjects(folder, engine) if kind == "large object" else PayloadFiles(folder))
    staged = files.stage(block for _ in range(mb))
    stored = time.perf_counter() - began
    began = time.perf_counter()
    size = 0
    with files.open(staged.location) as f:
        while piece := f.read(1 << 20):
            size += len(piece)
read = time.perf_counter() - began
print(json.dumps({"kind": kind, "stored_s": stored, "read_s": read, "size": size,
                  "peak_rise": hwm() - before}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args(argv)
    server = PostgresServer()
    server.start()
    rows = []
    try:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        for kind in ("bytea row", "large object", "local file"):
            with tempfile.TemporaryDirectory(prefix="lgsp-bench-store-") as folder:
                import psycopg

                name = "bench_" + hashlib.sha256(f"{kind}{time.time()}".encode()).hexdigest()[:8]
                with psycopg.connect(server.dsn, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                url = server.url.rsplit("/", 1)[0] + "/" + name
                out = subprocess.run([sys.executable, "-c", _CHILD, kind, url, folder,
                                      str(args.mb)], env=env, check=True,
                                     capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        server.stop()
    print(f"one payload of {args.mb} MiB, stored then read back, private PostgreSQL "
          f"on loopback, {os.cpu_count()} CPUs\n")
    print("| store | store s | MB/s | read s | MB/s | client peak rise MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['stored_s']:.2f} | {args.mb / r['stored_s']:.0f} | "
              f"{r['read_s']:.2f} | {args.mb / r['read_s']:.0f} | "
              f"{r['peak_rise'] / MB:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

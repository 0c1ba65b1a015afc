"""Benchmark: what a payload costs kept in its row against kept as a file, by size.

    python tests/bench/bench_inline_threshold.py

Sets ``payload_inline_below``: on the embedded default (SQLite, WAL, synchronous=FULL)
300 documents per size are accepted through :meth:`bus.store.Store.accept` with the
payload kept as a row, then as a file (written, fsynced, renamed, directory fsynced),
best of two runs; then 100 are read back whole. Prints wall and CPU ms per accept and
ms per read.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bus.store import NewDelivery, Store
from bus.store.blobs import PayloadFiles
from bus.store.tables import create_engine

TARGETS = [NewDelivery("000.00.00.H37", "000.00.00.H37", "vnpt", "r")]


def run(size: int, inline_below: int, n: int = 300) -> tuple[float, float, float]:
    folder = Path(tempfile.mkdtemp(prefix="lgsp-bench-inline-"))
    store = Store(create_engine(f"sqlite:///{folder / 'bus.db'}"),
                  PayloadFiles(folder / "payloads", inline_below=inline_below))
    store.create_schema()
    payloads = [os.urandom(size) for _ in range(n)]
    began, cpu = time.perf_counter(), time.process_time()
    for i, payload in enumerate(payloads):
        store.accept(kind="edoc", sender="000.00.12.H37", document_id=f"D{i}",
                     dedup_key=f"k{i}", content_sha256="c" * 64, payload=payload,
                     system="eoffice", targets=TARGETS,
                     summary={"subject": "s", "code": "c", "business": "new"})
    wall = (time.perf_counter() - began) / n * 1000
    cpu_ms = (time.process_time() - cpu) / n * 1000
    began = time.perf_counter()
    for payload in payloads[:100]:
        store.body(hashlib.sha256(payload).hexdigest()).read()
    read = (time.perf_counter() - began) / 100 * 1000
    store.engine.dispose()
    return wall, cpu_ms, read


def main() -> int:
    print("| payload | kept as | accept ms | accept CPU ms | read ms |")
    print("|---|---|---:|---:|---:|")
    for size in (10_000, 100_000, 256_000, 512_000, 1_000_000):
        for mode, inline_below in (("row", 1 << 40), ("file", 0)):
            wall, cpu, read = min(run(size, inline_below) for _ in range(2))
            print(f"| {size // 1000} KB | {mode} | {wall:.2f} | {cpu:.2f} | {read:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: what sealing and verifying cost per audit event.

    python tests/bench/bench_evidence.py [--events N] [--url SQLALCHEMY_URL]

The sealer runs beside ingest, not in it; this is its CPU per event (a document makes
four or five: accepted, routed, attempt, delivered), to compare with the CPU per document
bench_bus.py reports. Uses a temporary SQLite database unless --url is given (it must be
an empty database). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bus.evidence.chain import Sealer  # noqa: E402
from bus.evidence.verify import verify  # noqa: E402
from bus.store import Store  # noqa: E402
from bus.store.tables import create_engine, events  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(create_engine(args.url or f"sqlite:///{folder}/bench.db"))
        store.create_schema()
        row = {"document": "d" * 32, "delivery": "e" * 32, "actor": "worker-1",
               "action": "attempt", "digest": None,
               "detail": json.dumps({"attempt": 1, "reason": None})}
        with store.engine.begin() as conn:
            conn.execute(events.insert(), [{**row, "at": time.time()}
                                           for _ in range(args.events)])
        cpu, wall = time.process_time(), time.perf_counter()
        sealed = Sealer(store.engine).seal_all(budget_s=3600)
        print(f"seal: {sealed} events, {1e6 * (time.process_time() - cpu) / sealed:.1f} us "
              f"CPU and {1e6 * (time.perf_counter() - wall) / sealed:.1f} us wall per event")
        cpu = time.process_time()
        report = verify(store.engine)
        print(f"verify: {report.events} events, ok={report.ok}, "
              f"{1e6 * (time.process_time() - cpu) / max(report.events, 1):.1f} us CPU "
              "per event")
        store.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the overdue gauge costs per scrape, as history grows.

    python tests/bench/bench_overdue.py [--documents 50000] [--open 0.02] [--pg URL]

Fills a fresh database with documents, two recipient deliveries each, their deadlines
(all past due) and the statuses that settle most of them, then times
``DeadlineBook.counts()`` (the gauge's one query) and ``overdue()`` (the listing).
Settled rows are skipped by the query, so the time should follow the open deliveries,
not the documents ever received.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bus.lifecycle.deadlines import load_policy
from bus.lifecycle.overdue import DeadlineBook
from bus.settings import REPO_ROOT
from bus.store.queries import Viewer
from bus.store.tables import (
    business_statuses,
    create_engine,
    deliveries,
    delivery_deadlines,
    documents,
    metadata,
)


def fill(engine: sa.Engine, count: int, open_share: float, seed: int = 7) -> int:
    rng = random.Random(seed)
    now = time.time()
    opened = 0
    docs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    dues: list[dict[str, Any]] = []
    said: list[dict[str, Any]] = []
    for n in range(count):
        doc = f"d{n:031d}"
        start = now - 86400 * rng.uniform(30, 3 * 365)
        docs.append({"id": doc, "kind": "edoc", "sender": "000.00.12.H37", "document_id": doc,
                     "dedup_key": doc, "sha256": "0" * 64, "payload_sha256": "0" * 64,
                     "size": 1, "system": "eoffice", "received_at": start, "receipt": "{}"})
        for k, (organ, dest) in enumerate((("000.00.00.H37", "vnpt_ioffice"),
                                           ("000.00.31.H37", "hcm_egov"))):
            delivery = f"v{n:030d}{k}"
            rows.append({"id": delivery, "document": doc, "recipient": organ,
                         "effective_recipient": organ, "destination": dest, "rule": "r",
                         "is_copy": False, "state": "delivered", "attempts": 1,
                         "next_attempt_at": start, "created_at": start, "updated_at": start})
            is_open = rng.random() < open_share
            opened += is_open
            dues.append({"delivery": delivery, "document": doc, "rule": "normal",
                         "started_at": start, "arrival_due": start + 4 * 3600,
                         "acceptance_due": start + 86400, "completion_due": start + 14 * 86400,
                         "computed_at": start, "settled_at": None if is_open else start + 3600})
            for code in ("01", "03") + (() if is_open else ("06",)):
                said.append({"document": doc, "organ_id": organ, "code": code,
                             "received_at": start + 600, "status_document": doc})
    with engine.begin() as conn:
        for table, data in ((documents, docs), (deliveries, rows),
                            (delivery_deadlines, dues), (business_statuses, said)):
            for i in range(0, len(data), 5000):
                conn.execute(table.insert(), data[i:i + 5000])
    return opened


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=50_000)
    parser.add_argument("--open", type=float, default=0.02, help="share never completed")
    parser.add_argument("--pg", help="PostgreSQL URL of an empty database (default: SQLite)")
    args = parser.parse_args()
    url = args.pg or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    engine = create_engine(url)
    metadata.create_all(engine)
    opened = fill(engine, args.documents, args.open)
    policy = load_policy(REPO_ROOT / "config" / "calendar.yaml",
                         REPO_ROOT / "config" / "deadlines.yaml", ZoneInfo("Asia/Ho_Chi_Minh"))
    book = DeadlineBook(engine, lambda: policy)
    book.counts()
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        counts = book.counts()
        runs.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    listed = book.overdue(Viewer(system="bench", operator=True), limit=500)
    listing = time.perf_counter() - t0
    total = sum(c for _, _, c in counts)
    print(f"{engine.dialect.name}: {args.documents} documents, {2 * args.documents} deliveries, "
          f"{opened} open; gauge query median {sorted(runs)[2] * 1000:.1f} ms "
          f"({total} overdue stage counts); listing of {len(listed)} in {listing * 1000:.1f} ms")


if __name__ == "__main__":
    main()

"""Benchmark: the bus's database when it already holds years of documents.

    python tests/bench/bench_scale.py [--documents N] [--backends sqlite postgresql]
                                      [--sqlite FILE] [--postgres URL] [--json OUT]

Fills (tests/bench/fill_db.py) an SQLite file and a private PostgreSQL, unless given
already filled ones, then measures on each:

* ingest: :meth:`Store.accept` of documents with three recipients, one after another,
  on the filled database against a fresh empty one of the same backend (target ≥ 0.8×).
  This is the database's share of ingest only — parse and XSD do not depend on the
  database's size — so the ratio is stricter than POST-to-receipt would be;
* every search form of the REST list (``GET /api/v1/documents``) and of the console,
  for an operator and for a connected system (whose visibility rule is part of every
  query), each with varied parameters: p50 and p99 (target p99 < 100 ms);
* the metrics scrape (queue depth, oldest age, overdue) as Prometheus calls it
  (target < 1 s);
* a retention purge of 100,000 documents (the oldest half-year) beside live traffic
  (an accept and a recipient's list search in a loop): the live p99 during the purge
  against without it (target: up by at most half). The purge runs with the settings'
  defaults (``--purge-batch``, ``--purge-bytes``, ``--purge-pause``, ``--purge-ms``,
  ``--purge-slowdown``, ``--purge-live-ms``, ``--purge-min-rate`` change them), judged by
  the live loop's latency as serve's scheduled purge is by its accepts (``--purge-as-cli``:
  as ``lgsp purge`` from another process), and stops after ``--purge-cap`` seconds; its
  rate is reported.

Prints Markdown tables; ``--json`` writes the figures for run_all.py. Not collected by
pytest; the suite's small version is tests/unit/test_scale_plans.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: tests/ is not an installed package
    sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from bus.maintenance.livelatency import LiveLatency  # noqa: E402
from bus.maintenance.retention import Policy, purge  # noqa: E402
from bus.settings import Settings  # noqa: E402
from bus.store import NewDelivery, Store  # noqa: E402
from bus.store.queries import Viewer, list_documents, list_query  # noqa: E402
from bus.store.tables import create_engine  # noqa: E402
from tests.bench import fill_db  # noqa: E402

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ROUNDS = 40
PARTS = ("searches", "scrape", "ingest", "purge")
CAP_S = 10.0
"""A search slower than this is stopped and recorded as the cap: before the indexes, some
plans were quadratic and would have run for hours."""
_deadline = [float("inf")]


def capped_engine(url: str) -> sa.Engine:
    """An engine whose statements stop at the current deadline (SQLite: a progress
    handler; PostgreSQL: statement_timeout)."""
    if url.startswith("sqlite"):
        engine = create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _handler(dbapi: Any, _record: Any) -> None:
            dbapi.set_progress_handler(lambda: int(time.monotonic() > _deadline[0]), 20_000)

        return engine
    return create_engine(url, connect_args={"options": f"-c statement_timeout={CAP_S * 1000:.0f}"})


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figures:
    backend: str
    documents: int = 0
    ingest_empty: float = 0.0
    ingest_full: float = 0.0
    searches: dict[str, tuple[float, float]] = field(default_factory=dict)
    scrape_s: float = 0.0
    scrape_first_s: float = 0.0
    scrape_slowest: str = ""
    purge: dict[str, float] = field(default_factory=dict)


def accept_one(store: Store, rng: random.Random, agencies: list[str]) -> None:
    sender = rng.choice(agencies)
    document_id = f"{rng.getrandbits(128):032x}"
    store.accept(
        kind="edoc", sender=sender, document_id=document_id,
        dedup_key=f"edoc|{sender}|{document_id}", content_sha256=f"{rng.getrandbits(256):064x}",
        payload=rng.randbytes(2048), system="bench",
        targets=[NewDelivery(a, a, rng.choice(fill_db.DESTINATIONS), "default")
                 for a in rng.sample(agencies, 3)],
        summary={"subject": "Về việc triển khai chuyển đổi số trên địa bàn tỉnh năm 2026",
                 "code": f"{rng.randrange(9999)}/UBND-VX"})


def ingest_rate(store: Store, count: int, seed: int) -> float:
    rng = random.Random(seed)
    agencies = fill_db.agencies()
    for _ in range(10):
        accept_one(store, rng, agencies)
    began = time.perf_counter()
    for _ in range(count):
        accept_one(store, rng, agencies)
    return count / (time.perf_counter() - began)


class Forms:
    """The search forms, each a function of a random generator, with realistic values."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        with engine.connect() as conn:
            low, high = conn.execute(sa.text(
                "SELECT min(received_at), max(received_at) FROM documents")).one()
            picks = [conn.execute(sa.text(
                "SELECT document_id, code FROM documents WHERE received_at >= :t "
                "AND code IS NOT NULL ORDER BY received_at LIMIT 1"),
                {"t": low + (high - low) * i / 200}).one() for i in range(200)]
        self.low, self.high = float(low), float(high)
        self.document_ids = [p[0] for p in picks]
        self.codes = [p[1] for p in picks]
        self.agencies = fill_db.agencies()

    def day(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high - 8 * 86400)

    def api(self) -> dict[str, Callable[[random.Random], dict[str, Any]]]:
        iso = "{:.0f}".format
        return {
            "first page": lambda r: {},
            "sender": lambda r: {"sender": r.choice(self.agencies)},
            "recipient": lambda r: {"recipient": r.choice(self.agencies)},
            "state parked": lambda r: {"state": "parked"},
            "state pending": lambda r: {"state": "pending"},
            "kind status": lambda r: {"kind": "status"},
            "week range": lambda r: (lambda t: {"since": iso(t), "until": iso(t + 7 * 86400)})(
                self.day(r)),
            "sender+range": lambda r: (lambda t: {"sender": r.choice(self.agencies),
                                                  "since": iso(t),
                                                  "until": iso(t + 30 * 86400)})(self.day(r)),
        }

    def console(self) -> dict[str, Callable[[random.Random], dict[str, Any]]]:
        from datetime import datetime

        def day(r: random.Random) -> str:
            return datetime.fromtimestamp(self.day(r), ZONE).date().isoformat()

        return {
            "DocumentId": lambda r: {"document_id": r.choice(self.document_ids)},
            "code": lambda r: {"code": r.choice(self.codes)},
            "code lower case": lambda r: {"code": r.choice(self.codes).lower()},
            "code partial": lambda r: {"code": r.choice(self.codes).split("/")[0] + "/"},
            "sender": lambda r: {"sender": r.choice(self.agencies)},
            "recipient": lambda r: {"recipient": r.choice(self.agencies)},
            "subject word": lambda r: {"words": r.choice(fill_db._TOPICS).split()[-1]},
            "subject words": lambda r: {"words": r.choice(fill_db._TOPICS)},
            "rare word": lambda r: {"words": "Quỳnh Lưu 2021"},
            "date range": lambda r: (lambda d: {"since": d, "until": d})(day(r)),
            "state": lambda r: {"state": r.choice(("parked", "pending", "awaiting"))},
        }


def viewers(engine: sa.Engine) -> dict[str, Viewer]:
    hosted = frozenset(fill_db.agencies()[5:8])
    return {"operator": Viewer(system="ops", operator=True),
            "system": Viewer(system="qlvb-h05", hosted=hosted)}


def time_calls(call: Callable[[random.Random], object], rounds: int,
               seed: int) -> tuple[float, float]:
    rng = random.Random(seed)
    spent: list[float] = []
    for n in range(rounds + 1):
        began = time.perf_counter()
        _deadline[0] = time.monotonic() + CAP_S
        try:
            call(rng)
        except sa.exc.OperationalError:
            spent.append(CAP_S)
            break
        finally:
            _deadline[0] = float("inf")
        if n:  # the first call warms the caches
            spent.append(time.perf_counter() - began)
        if sum(spent) > 2 * CAP_S:
            break
    return statistics.median(spent) * 1000, quantile(spent, 0.99) * 1000


def measure_searches(engine: sa.Engine, rounds: int,
                     only: str = "") -> dict[str, tuple[float, float]]:
    forms = Forms(engine)
    out: dict[str, tuple[float, float]] = {}
    for who, viewer in viewers(engine).items():
        for name, params in forms.api().items():
            if only not in f"api {name}":
                continue
            out[f"api {name} ({who})"] = time_calls(
                lambda r, p=params, v=viewer: list_documents(engine, list_query(**p(r)), v),
                rounds, zlib.crc32(name.encode()))
        try:
            from bus.console.views import Search, search
        except ImportError:
            continue
        for name, params in forms.console().items():
            if only not in f"console {name}":
                continue
            out[f"console {name} ({who})"] = time_calls(
                lambda r, p=params, v=viewer: search(engine, Search(**p(r)), v, ZONE),
                rounds, zlib.crc32(name.encode()))
    return out


def scrape_seconds(url: str, folder: str, repeats: int = 5) -> tuple[float, float, str]:
    """The /metrics registry a serve process answers with (bus.app.Bus builds it: queue
    depth, overdue with its settings' cache, lifecycle, evidence, reconcile, destinations),
    on this database: (first scrape s, slowest of ``repeats`` later ones s, each
    collector's share of the first and of the slowest later scrape)."""
    from bus.app import Bus
    from bus.settings import load_settings

    bus = Bus(load_settings(environ={}, data_dir=Path(folder) / "scrape-bus", database_url=url))

    def scrape() -> tuple[float, dict[str, float]]:
        took: dict[str, float] = {}
        began = time.perf_counter()
        for collector in list(bus.metrics.registry._collector_to_names):
            one = time.perf_counter()
            list(collector.collect())
            name = type(collector).__name__
            took[name] = took.get(name, 0.0) + time.perf_counter() - one
        return time.perf_counter() - began, took

    def shares(took: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in sorted(took.items(), key=lambda i: -i[1])
                         if v >= 0.005)

    try:
        first, first_took = scrape()
        later = []
        for _ in range(repeats):
            time.sleep(0.2)
            later.append(scrape())
        slowest = max(later, key=lambda pair: pair[0])
        return first, slowest[0], f"first: {shares(first_took)}; later: {shares(slowest[1])}"
    finally:
        bus.close()


def live_loop(store: Store, stop: threading.Event, out: list[float], seed: int) -> None:
    rng = random.Random(seed)
    agencies = fill_db.agencies()
    viewer = Viewer(system="ops", operator=True)
    while not stop.is_set():
        began = time.perf_counter()
        accept_one(store, rng, agencies)
        out.append(time.perf_counter() - began)
        began = time.perf_counter()
        list_documents(store.engine, list_query(recipient=rng.choice(agencies)), viewer)
        out.append(time.perf_counter() - began)
        time.sleep(0.02)


def purge_beside_traffic(store: Store, documents: int, target: int, baseline_s: float,
                         args: argparse.Namespace) -> dict[str, float]:
    """Purges the oldest ``target`` documents (the fill spreads them evenly over five
    years) with a live loop beside it; the loop's p99 without and during the purge."""
    keep_years = 5 * (1 - target / documents)
    policy = Policy.from_settings({"edoc": f"{keep_years * 365:.0f}d",
                                   "status": f"{keep_years * 365:.0f}d"})
    quiet: list[float] = []
    stop = threading.Event()
    worker = threading.Thread(target=live_loop, args=(store, stop, quiet, 1))
    worker.start()
    time.sleep(baseline_s)
    stop.set()
    worker.join()
    live = LiveLatency()
    for took in quiet:
        live.record(took)

    class Recorded(list[float]):
        """The loop's timings, also handed to the purge as serve's accepts are."""

        def append(self, took: float) -> None:
            super().append(took)
            live.record(took)

    busy: list[float] = Recorded()
    stop = threading.Event()
    worker = threading.Thread(target=live_loop, args=(store, stop, busy, 2))
    worker.start()
    began = time.perf_counter()
    halt = threading.Event()
    timer = threading.Timer(args.purge_cap, halt.set)
    timer.start()
    try:
        report = purge(store.engine, policy, actor="bench", batch=args.purge_batch,
                       batch_bytes=args.purge_bytes, pause_s=args.purge_pause,
                       batch_ms=args.purge_ms, max_slowdown=args.purge_slowdown,
                       live_ms=args.purge_live_ms, min_docs_per_s=args.purge_min_rate,
                       live=None if args.purge_as_cli else live, stop=halt)
    finally:
        timer.cancel()
        stop.set()
        worker.join()
    return {"purged": report.documents, "seconds": time.perf_counter() - began,
            "p99_quiet_ms": quantile(quiet, 0.99) * 1000,
            "p99_purge_ms": quantile(busy, 0.99) * 1000}


def run_backend(backend: str, url: str, empty_url: str, args: argparse.Namespace) -> Figures:
    figures = Figures(backend)
    engine = capped_engine(url)
    store = Store(engine)
    store.create_schema()
    with engine.connect() as conn:
        figures.documents = int(conn.execute(sa.text("SELECT count(*) FROM documents"))
                                .scalar_one())
    print(f"[{backend}] {figures.documents:,} documents", file=sys.stderr, flush=True)
    if "searches" in args.parts:
        figures.searches = measure_searches(engine, args.rounds, args.forms)
    if "scrape" in args.parts:
        figures.scrape_first_s, figures.scrape_s, figures.scrape_slowest = scrape_seconds(
            url, args.folder)
        print(f"[{backend}] scrape first {figures.scrape_first_s:.3f} s, then "
              f"{figures.scrape_s:.3f} s ({figures.scrape_slowest})",
              file=sys.stderr, flush=True)
    if "ingest" in args.parts:
        empty = Store(create_engine(empty_url))
        empty.create_schema()
        rates_empty, rates_full = [], []
        for n in range(3):
            rates_empty.append(ingest_rate(empty, args.ingest, 10 + n))
            rates_full.append(ingest_rate(store, args.ingest, 20 + n))
        figures.ingest_empty = statistics.median(rates_empty)
        figures.ingest_full = statistics.median(rates_full)
        empty.engine.dispose()
    if args.purge and "purge" in args.parts:
        figures.purge = purge_beside_traffic(store, figures.documents, args.purge,
                                             args.baseline, args)
    engine.dispose()
    return figures


def report(all_figures: list[Figures]) -> str:
    lines = ["| measure | " + " | ".join(f.backend for f in all_figures) + " |",
             "|---|" + "---|" * len(all_figures)]

    def row(name: str, cell: Callable[[Figures], str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(f) for f in all_figures) + " |")

    row("documents in the database", lambda f: f"{f.documents:,}")
    row("ingest docs/s, empty → filled (ratio, target ≥ 0.8)",
        lambda f: f"{f.ingest_empty:.0f} → {f.ingest_full:.0f} "
                  f"({f.ingest_full / f.ingest_empty:.2f})" if f.ingest_empty else "—")
    row("metrics scrape s (target < 1)", lambda f: f"{f.scrape_s:.3f}")
    row("first scrape s (before any cached count)", lambda f: f"{f.scrape_first_s:.3f}")
    if all_figures[0].purge:
        row("purge: documents, seconds (docs/s)",
            lambda f: f"{f.purge['purged']:,.0f} in {f.purge['seconds']:.0f} s "
                      f"({f.purge['purged'] / f.purge['seconds']:.0f})")
        row("live p99 ms quiet → during purge (target ≤ 1.5×)",
            lambda f: f"{f.purge['p99_quiet_ms']:.1f} → {f.purge['p99_purge_ms']:.1f}")
    for name in all_figures[0].searches:
        row(f"{name} p50/p99 ms", lambda f, n=name: "{:.1f} / {:.1f}".format(
            *f.searches.get(n, (float("nan"), float("nan")))))
    return "\n".join(lines)


def as_json(all_figures: list[Figures]) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in all_figures:
        if f.ingest_empty:
            out[f"{f.backend} ingest ratio"] = round(f.ingest_full / f.ingest_empty, 3)
        if f.scrape_s:
            out[f"{f.backend} scrape s"] = round(f.scrape_s, 3)
        if f.searches:
            out[f"{f.backend} worst search p99 ms"] = round(
                max(p99 for _, p99 in f.searches.values()), 1)
        for name, (_p50, p99) in f.searches.items():
            out[f"{f.backend} {name} p99 ms"] = round(p99, 1)
        if f.purge:
            out[f"{f.backend} purge p99 ratio"] = round(
                f.purge["p99_purge_ms"] / f.purge["p99_quiet_ms"], 2)
    return out


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[tuple[str, str, bool]]:
    """(filled URL, empty URL, fill needed): a given server, or a private one."""
    if url:
        base = url.rsplit("/", 1)[0]
        _create_database(url, "lgsp_empty")
        yield url, f"{base}/lgsp_empty", False
        return
    from tests.servers import PostgresServer
    server = PostgresServer()
    server.start()
    try:
        _create_database(server.url, "lgsp_empty")
        yield server.url, server.url.rsplit("/", 1)[0] + "/lgsp_empty", True
    finally:
        server.stop()


def _create_database(url: str, name: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--sqlite", help="an SQLite file fill_db.py filled (kept)")
    parser.add_argument("--postgres", help="a PostgreSQL URL fill_db.py filled")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--ingest", type=int, default=200, help="documents per ingest round")
    parser.add_argument("--purge", type=int, default=100_000,
                        help="documents to purge beside live traffic (0: skip)")
    parser.add_argument("--purge-batch", type=int, default=_default("purge_batch"),
                        help="documents per purge transaction (settings.purge_batch)")
    parser.add_argument("--purge-bytes", type=int, default=_default("purge_batch_bytes"),
                        help="payload bytes per purge transaction (settings.purge_batch_bytes)")
    parser.add_argument("--purge-pause", type=float, default=_default("purge_pause_s"),
                        help="seconds between purge batches (settings.purge_pause_s)")
    parser.add_argument("--purge-ms", type=float, default=_default("purge_batch_ms"),
                        help="a batch's longest duration (settings.purge_batch_ms; 0: fixed)")
    parser.add_argument("--purge-slowdown", type=float, default=_default("purge_max_slowdown"),
                        help="pace by a probe write's delay (settings.purge_max_slowdown; 0: not)")
    parser.add_argument("--purge-live-ms", type=float, default=_default("purge_live_ms"),
                        help="a live request's quiet p99 at least (settings.purge_live_ms)")
    parser.add_argument("--purge-min-rate", type=float,
                        default=_default("purge_min_docs_per_s"),
                        help="the purge's floor, documents/s (settings.purge_min_docs_per_s)")
    parser.add_argument("--purge-as-cli", action="store_true",
                        help="no live reference, as `lgsp purge` from another process")
    parser.add_argument("--purge-cap", type=float, default=600.0,
                        help="stop the purge after this many seconds (its rate is reported)")
    parser.add_argument("--baseline", type=float, default=20.0,
                        help="seconds of live traffic without the purge")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--forms", default="", help="only the search forms whose name "
                        "contains this (e.g. 'console code')")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS,
                        help="what to measure (default: all)")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="lgsp-scale-") as folder:
        args.folder = folder
        for backend in args.backends:
            if backend == "sqlite":
                path = Path(args.sqlite) if args.sqlite else Path(folder) / "filled.db"
                if not path.exists():
                    print(f"[sqlite] filling {args.documents:,} documents", file=sys.stderr)
                    print(fill_db.fill(f"sqlite:///{path}", args.documents,
                                       log=lambda m: print(m, file=sys.stderr)),
                          file=sys.stderr)
                results.append(run_backend("sqlite", f"sqlite:///{path}",
                                           f"sqlite:///{folder}/empty.db", args))
            else:
                with postgres(args.postgres) as (url, empty, needed):
                    if needed:
                        print(f"[postgresql] filling {args.documents:,} documents",
                              file=sys.stderr)
                        print(fill_db.fill(url, args.documents,
                                           log=lambda m: print(m, file=sys.stderr)),
                              file=sys.stderr)
                    results.append(run_backend("postgresql", url, empty, args))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(as_json(results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

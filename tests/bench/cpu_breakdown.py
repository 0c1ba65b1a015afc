"""Where one document's CPU goes inside the bus, step by step, on the embedded default.

    python tests/bench/cpu_breakdown.py [--documents N] [--size BYTES] [--profile submit|deliver]

``bench_bus.py`` says how much CPU the whole ``lgsp serve`` process spends per document
against the bare pipeline; this says which step spends it, in one process and without
HTTP in front: ``Bus.submit`` (parse, validate, route, deadlines, the accept
transaction) and ``DeliveryWorker.handle`` split into the claim transaction, the HTTP
adapter's POST to a loopback sink, the outcome transaction and the log line. Figures are
the CPU time of the calling thread (``time.thread_time``: user and system, the fsync of a
commit included, nothing another thread spends), so other load on the machine hardly
moves them. ``--profile`` prints cProfile's top functions for one of the two halves,
timed on the same thread clock. The HTTP door's own cost (uvicorn, FastAPI, the thread
hop) is what ``bench_bus.py``'s serve figure adds on top of these.

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: tests/ is not an installed package
    sys.path.insert(0, str(REPO))

from tests.bench.bench_bus import Packets, write_routes  # noqa: E402
from tests.http_sink import HttpSink  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])


class Clock:
    """Thread CPU per named step, summed over calls."""

    def __init__(self) -> None:
        self.spent: collections.Counter[str] = collections.Counter()

    def wrap(self, name: str, fn: F) -> F:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] += time.thread_time() - started
        return timed  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--size", type=int, default=10 * 1024, help="packet bytes")
    parser.add_argument("--profile", choices=("submit", "deliver"))
    args = parser.parse_args(argv)

    import adapters.http.adapter as http_adapter
    from bus.delivery import worker as worker_module
    from bus.delivery.worker import DeliveryWorker
    from bus.logging import configure
    from bus.runtime import build_bus
    from bus.settings import load_settings
    from bus.store import Store

    configure(file=open("/dev/null", "w", encoding="utf-8"))  # noqa: SIM115 - for the run
    clock = Clock()
    with HttpSink() as sink, tempfile.TemporaryDirectory(prefix="lgsp-cpu-") as tmp:
        sink.ok()
        folder = Path(tmp)
        routes = write_routes(folder, sink)  # type: ignore[arg-type]
        bus = build_bus(load_settings(environ={}, data_dir=folder / "bus", routes=str(routes)))
        worker = DeliveryWorker.from_bus(bus, name="cpu-breakdown")
        Store.claim = clock.wrap("claim", Store.claim)  # type: ignore[method-assign]
        Store.finish = clock.wrap("finish", Store.finish)  # type: ignore[method-assign]
        http_adapter.HttpAdapter.deliver = clock.wrap(  # type: ignore[method-assign]
            "http POST", http_adapter.HttpAdapter.deliver)
        real_log = worker_module.log

        class Log:
            def __getattr__(self, name: str) -> Any:
                return clock.wrap("log line", getattr(real_log, name))

        worker_module.log = Log()  # type: ignore[assignment]
        packets = Packets({"size": args.size})
        try:
            def submit(count: int, profiler: cProfile.Profile | None = None) -> list[Any]:
                items = packets.take("size", count)
                started = time.thread_time()
                if profiler:
                    profiler.enable()
                out = [bus.submit(data, system="eoffice", channel="rest") for _, data in items]
                if profiler:
                    profiler.disable()
                clock.spent["Bus.submit"] += time.thread_time() - started
                return out

            def deliver(accepted: list[Any], profiler: cProfile.Profile | None = None) -> None:
                started = time.thread_time()
                if profiler:
                    profiler.enable()
                for one in accepted:
                    for delivery, _ in one.deliveries:
                        worker.handle(delivery)
                if profiler:
                    profiler.disable()
                clock.spent["DeliveryWorker.handle"] += time.thread_time() - started

            deliver(submit(30))  # compiled statements, open connections, warm caches
            clock.spent.clear()
            profiler = cProfile.Profile(time.thread_time) if args.profile else None
            accepted = submit(args.documents, profiler if args.profile == "submit" else None)
            deliver(accepted, profiler if args.profile == "deliver" else None)
        finally:
            worker.close()
            bus.close()
    n = args.documents
    print(f"thread CPU per document, {n} documents of {args.size} bytes:")
    for name in ("Bus.submit", "DeliveryWorker.handle", "claim", "http POST", "finish",
                 "log line"):
        print(f"  {name:<24} {clock.spent[name] / n * 1000:7.3f} ms")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

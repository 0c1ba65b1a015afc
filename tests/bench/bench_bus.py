"""Benchmark: the whole bus, POST to delivered, against a bare pipeline of the same steps.

    python tests/bench/bench_bus.py [--seconds N] [--repeats R] [--clients K] [--quick]
                                    [--configs a b] [--profile]

The issue's target is relative: the bus must move at least half as many documents per
second as the smallest honest program doing the same work (bare_pipeline.py beside this
file: hardened parse, XSD, one transaction, a queue, an HTTP POST). An absolute figure
would say more about this machine than about the bus.

Two deployments, each beside its bare twin:

* (a) ``lgsp serve --no-workers`` and ``lgsp worker`` as separate processes on a private
  RabbitMQ and PostgreSQL that this script starts and deletes; the bare twin is an
  ingress process and a pika worker process on the same servers (its own database and
  queue);
* (b) the embedded default, ``lgsp serve`` on SQLite in a temporary folder; the bare
  twin is one process with polling delivery threads, as the embedded bus is one process.

Everything else is shared so that only the pipeline differs: one HTTP sink (a real
destination on a loopback socket) receives every delivery and stamps its arrival; one
client of K threads posts the same packets (same bytes but for a unique DocumentId) with
the same API key; the bus's route for the recipient is the ``http`` adapter pointed at
the sink. Latency is from the moment a client thread starts its POST to the moment the
sink has the delivery, matched through the ``X-LGSP-Document`` header both pipelines
send. Throughput is a fixed number of documents over the wall time from the first POST
to the last delivery, so a pipeline cannot look fast by accepting work it has not done.
Those rounds post as fast as the clients can, so their latencies are mostly queueing;
paced rounds then offer half the slower pipeline's rate to both, for a latency that
describes the pipeline. CPU time per document of every process involved (and of the
servers) is read around each round too: unlike docs/s, other load on the machine hardly
moves it, and its breakdown shows which process the cost is in.

The machine is shared and has two cores, so every pipeline is warmed up first, and the
rounds interleave bus and bare (ABBA) and the two deployments, each repeated; a rate is
the median of its rounds, latencies are pooled over them. All four pipelines stay up for
the whole run (idle ones only poll), because restarting them per round would cost more
time than the measurement itself.

Prints a Markdown table and the verdict per row; exits 0 whatever the verdict (it is a
measurement), 1 if it could not measure, 130 when interrupted. Every process and server
it started is stopped on the way out, also on Ctrl-C or SIGTERM. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import itertools
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: tests/ is not an installed package
    sys.path.insert(0, str(REPO))

from tests.bench.bench_bus_report import (  # noqa: E402
    CLIENT,
    CONFIGS,
    CPU_TARGET,
    SERVERS,
    TARGET,
    Round,
    Row,
    cpu_table,
    paced_table,
    quantile,
    table,
)
from tests.bench.bench_procs import (  # noqa: E402
    Child,
    CpuGroups,
    child_env,
    cpu_snapshot,
    cpu_spent,
    free_port,
    log_line,
    wait_healthy,
)
from tests.bench.profile_summary import summarise_profile  # noqa: E402
from tests.http_sink import HttpSink  # noqa: E402
from tests.servers import PostgresServer, RabbitMQServer, ServerNotInstalledError  # noqa: E402

BARE = Path(__file__).resolve().parent / "bare_pipeline.py"

KB = 1024
SIZES: dict[str, int] = {"10 KB": 10 * KB, "100 KB": 100 * KB}
SENDER = "000.00.12.H37"  # hosted by eoffice in config/directory.yaml
RECIPIENT = "000.00.00.H37"  # hosted by vnpt_ioffice
DESTINATION = "vnpt_ioffice"
API_KEY = "dev-eoffice-key"
PLACEHOLDER = "Z" * 12
START_TIMEOUT_S = 90.0
HTTP_TIMEOUT_S = 60.0
PACE = 0.5  # paced latency rounds offer this share of the slower pipeline's capacity
SETTLE_S = 0.5  # after a round: let the last "delivered" commits land before the next


# ---------------------------------------------------------------- the sink


class TimingSink(HttpSink):
    """The tests' destination, plus the arrival time of each document it is waiting for.

    Bodies are dropped after each round: the parent keeps every request, which over a run
    of thousands of 100 KB packets is memory the measurement does not need.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition()
        self.arrived: dict[str, float] = {}
        self.waiting: set[str] = set()

    def expect(self, ids: Sequence[str]) -> None:
        with self.cond:
            self.arrived = {}
            self.waiting = set(ids)
        with self._lock:
            self.requests.clear()
            self._effects.clear()

    def answer(self, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
        now = time.perf_counter()
        document = headers.get("x-lgsp-document", "")
        with self.cond:
            if document in self.waiting:
                self.waiting.discard(document)
                self.arrived[document] = now
                if not self.waiting:
                    self.cond.notify_all()
        return super().answer(path, headers, body)

    def forget(self, ids: Sequence[str]) -> None:
        """Refused POSTs: nothing will arrive for them, so nothing is to be waited for."""
        with self.cond:
            self.waiting.difference_update(ids)
            self.cond.notify_all()

    def wait_all(self, timeout: float) -> dict[str, float]:
        with self.cond:
            self.cond.wait_for(lambda: not self.waiting, timeout)
            return dict(self.arrived)


# ---------------------------------------------------------------- packets


class Packets:
    """One template per size, copied with a new DocumentId for every POST.

    The bus refuses a second document with the same sender and DocumentId, and the sink
    matches deliveries by it, so each POST needs its own; building each packet anew
    would make the client, not the pipelines, the thing measured.
    """

    def __init__(self, sizes: dict[str, int]) -> None:
        self.tag = secrets.token_hex(2)
        self.counter = itertools.count()
        self.templates = {name: self._template(target) for name, target in sizes.items()}

    @staticmethod
    def _build(attachment: bytes) -> bytes:
        from bus.edxml import EdocBuilder, packet_bytes

        edoc = (EdocBuilder(SENDER).to(RECIPIENT)
                .code("1", "BENCH")
                .promulgated("Lạng Sơn", date(2024, 5, 17))
                .document_type(1, "Công văn")
                .subject("V/v đo hiệu năng trục liên thông", "Nội dung công văn")
                .signer("Nguyễn Văn An", "Giám đốc")
                .document_id(f"{SENDER},2024/05/17,BENCH-{PLACEHOLDER}")
                .trace(SENDER, datetime(2024, 5, 17, 9, 30, 0))
                .attach("van-ban.pdf", attachment)
                .build(check=False))
        return packet_bytes(edoc)

    def _template(self, target: int) -> bytes:
        from bus.edxml import read_packet

        overhead = len(self._build(b""))
        raw = max(0, (target - overhead) * 3 // 4)
        data = self._build(random.Random(target).randbytes(raw))
        assert abs(len(data) - target) <= max(64, target // 100), (len(data), target)
        assert data.count(PLACEHOLDER.encode()) == 1
        read_packet(data)  # the bus must accept what is measured, or the run is void
        return data

    def take(self, size: str, count: int) -> list[tuple[str, bytes]]:
        template = self.templates[size]
        out = []
        for _ in range(count):
            unique = f"{self.tag}{next(self.counter):08d}"
            out.append((f"{SENDER},2024/05/17,BENCH-{unique}",
                        template.replace(PLACEHOLDER.encode(), unique.encode())))
        return out


# ---------------------------------------------------------------- one round


def post_all(url: str, packets: list[tuple[str, bytes]], clients: int,
             started: dict[str, float], errors: list[str],
             pace: float | None = None) -> list[str]:
    """K threads, each on its own keep-alive connection, taking the next packet in turn,
    as fast as they can or, with ``pace``, packet i not before i/pace seconds; returns the
    DocumentIds that were not accepted."""
    host, port = url.removeprefix("http://").split(":")
    lock = threading.Lock()
    index = iter(range(len(packets)))
    refused: list[str] = []
    begin = time.perf_counter()

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=HTTP_TIMEOUT_S)
        try:
            while True:
                with lock:
                    i = next(index, None)
                if i is None:
                    return
                if pace:
                    time.sleep(max(0.0, begin + i / pace - time.perf_counter()))
                document, body = packets[i]
                started[document] = time.perf_counter()
                try:
                    conn.request("POST", "/api/v1/edocs", body=body, headers={
                        "X-API-Key": API_KEY, "Content-Type": "application/xml"})
                    response = conn.getresponse()
                    reply = response.read()
                    if response.status != 202:
                        refused.append(document)
                        errors.append(f"HTTP {response.status}: {reply[:300]!r}")
                except (OSError, http.client.HTTPException) as exc:
                    refused.append(document)
                    errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port),
                                                      timeout=HTTP_TIMEOUT_S)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"bench-client-{n}", daemon=True)
               for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HTTP_TIMEOUT_S * 2 + len(packets))
    return refused


def run_round(url: str, sink: TimingSink, packets: list[tuple[str, bytes]], clients: int,
              timeout: float, groups: CpuGroups | None = None,
              settle: float = SETTLE_S, pace: float | None = None) -> Round:
    """CPU is read around the round as well as wall time: on a machine shared with other
    work, CPU per document is the figure that other load disturbs least."""
    groups = groups or {}
    sink.expect([document for document, _ in packets])
    started: dict[str, float] = {}
    errors: list[str] = []
    cpu_before = cpu_snapshot(groups)
    begin = time.perf_counter()
    refused = post_all(url, packets, clients, started, errors, pace)
    sink.forget(refused)
    accepted = len(packets) - len(refused)
    arrived = sink.wait_all(timeout)
    end = max(arrived.values()) if arrived and len(arrived) == accepted \
        else time.perf_counter()
    latencies = [(at - started[doc]) * 1000.0 for doc, at in arrived.items() if doc in started]
    missing = accepted - len(arrived)
    if missing:
        errors.append(f"{missing} of {accepted} accepted not delivered within {timeout:.0f}s")
    time.sleep(settle)
    spent = cpu_spent(cpu_before, cpu_snapshot(groups))
    cpu_ms = {name: 1000.0 * t / max(len(arrived), 1) for name, t in spent.items()}
    return Round(len(packets), len(arrived), end - begin, latencies, errors, cpu_ms)


# ---------------------------------------------------------------- the pipelines


@dataclass
class Pipeline:
    kind: str  # "bus" | "bare"
    config: str  # "a" | "b"
    url: str
    children: list[Child]
    servers: Callable[[], list[int]] = list

    @property
    def label(self) -> str:
        return f"{self.kind} {self.config}"

    @property
    def cpu_groups(self) -> CpuGroups:
        """One group per process of the pipeline (named as in the logs, less the prefix),
        then the servers, then this script (client and sink, the same for bus and bare)."""
        groups: CpuGroups = {}
        for child in self.children:
            groups[child.name.removeprefix(f"{self.kind}-{self.config}-")] = \
                functools.partial(list, [child.pid])
        if self.config == "a":
            groups[SERVERS] = self.servers
        groups[CLIENT] = lambda: [os.getpid()]
        return groups

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise RuntimeError(f"{child.name} died (exit {child.proc.returncode}):\n"
                                   f"{child.tail()}")


def write_routes(folder: Path, sink: TimingSink) -> Path:
    """The repository's routes with every destination pointed at the sink, so the run
    uses the real rules and nothing can leave this machine."""
    raw = yaml.safe_load((REPO / "routes.yaml").read_text(encoding="utf-8"))
    for name, destination in raw["destinations"].items():
        destination["adapter"] = "http"
        destination["options"] = {"url": sink.url(f"/{name}"), "timeout_s": 30}
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Servers:
    """The private RabbitMQ and PostgreSQL of configuration (a)."""

    broker: str = ""
    database: str = ""
    bare_database: str = ""
    pids: Callable[[], list[int]] = list


def bus_pipeline(config: str, folder: Path, routes: Path, env: dict[str, str],
                 servers: Servers, stack: contextlib.ExitStack) -> Pipeline:
    port = free_port()
    settings: dict[str, Any] = {"data_dir": str(folder / f"bus-{config}"),
                                "routes": str(routes), "host": "127.0.0.1", "port": port}
    if config == "a":
        settings.update(database_url=servers.database, broker_url=servers.broker)
    path = folder / f"bus-{config}.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    lgsp = [sys.executable, "-m", "bus.cli"]
    children = []
    serve = [*lgsp, "serve", "--config", str(path)] + (["--no-workers"] if config == "a" else [])
    children.append(Child(f"bus-{config}-serve", serve, folder, env))
    stack.callback(children[-1].stop)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, children, START_TIMEOUT_S)
    if config == "a":
        children.append(Child("bus-a-worker", [*lgsp, "worker", "--config", str(path)],
                              folder, env))
        stack.callback(children[-1].stop)
    return Pipeline("bus", config, url, children, servers.pids if config == "a" else list)


def bare_pipeline(config: str, folder: Path, sink: TimingSink, env: dict[str, str],
                  servers: Servers, stack: contextlib.ExitStack) -> Pipeline:
    from bus.settings import Settings

    threads = max(Settings().delivery_threads, 1)
    port = free_port()
    bare = [sys.executable, str(BARE)]
    target = sink.url(f"/{DESTINATION}")
    children = []
    if config == "a":
        ingress = [*bare, "ingress", "--port", str(port), "--pg", servers.bare_database,
                   "--amqp", servers.broker]
    else:
        # the embedded bus lets one destination use all its threads but one
        ingress = [*bare, "ingress", "--port", str(port), "--sqlite",
                   str(folder / "bare-b.db"), "--sink", target,
                   "--threads", str(threads - 1 if threads > 1 else 1)]
    children.append(Child(f"bare-{config}-ingress", ingress, folder, env))
    stack.callback(children[-1].stop)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, children, START_TIMEOUT_S)
    if config == "a":
        children.append(Child("bare-a-worker", [
            *bare, "worker", "--pg", servers.bare_database, "--amqp", servers.broker,
            "--sink", target, "--threads", str(threads)], folder, env))
        stack.callback(children[-1].stop)
    return Pipeline("bare", config, url, children, servers.pids if config == "a" else list)


def start_servers(stack: contextlib.ExitStack) -> Servers:
    mq = RabbitMQServer()
    stack.callback(mq.stop)
    mq.start()
    pg = PostgresServer()
    stack.callback(pg.stop)
    pg.start()
    import psycopg

    with psycopg.connect(pg.libpq_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bare")
    return Servers(broker=mq.url, database=pg.url,
                   bare_database=pg.libpq_url.rsplit("/", 1)[0] + "/bare",
                   pids=lambda: [*mq.pids(), *pg.pids()])


# ---------------------------------------------------------------- measuring


def warm_up(pipeline: Pipeline, sink: TimingSink, packets: Packets, size: str,
            clients: int) -> float:
    """Returns docs/s of the last warm batch, which sizes the measured rounds.

    The first, single document only proves the pipeline delivers at all (a worker may
    still be connecting), so it waits long and its rate means nothing. It goes alone
    because a bus process compiles its XSDs on its first request, and concurrent first
    requests can fail there (reported separately): that is not what is measured here.
    """
    for count, threads, timeout in ((1, 1, START_TIMEOUT_S), (4, clients, 60.0),
                                     (10 * clients, clients, 120.0)):
        result = run_round(pipeline.url, sink, packets.take(size, count), threads, timeout)
        if result.errors:
            logs = "\n".join(f"--- last lines of {c.log_path.name} ---\n{c.tail(12)}"
                             for c in pipeline.children)
            raise RuntimeError(f"{pipeline.label} {size}: warm-up failed: "
                               f"{result.errors[:2]}\n{logs}")
    return result.rate


def measure(pipelines: dict[tuple[str, str], Pipeline], sink: TimingSink, packets: Packets,
            args: argparse.Namespace) -> list[Row]:
    configs = sorted({config for _, config in pipelines})
    rates: dict[tuple[str, str, str], float] = {}
    for size in SIZES:
        for config in configs:
            for kind in ("bus", "bare"):
                pipe = pipelines[(kind, config)]
                rates[(kind, config, size)] = warm_up(pipe, sink, packets, size, args.clients)
                log_line(f"warm: {pipe.label} {size}: {rates[(kind, config, size)]:.1f} docs/s")
    counts = {(config, size): max(4 * args.clients, min(5000, int(args.seconds * min(
        rates[("bus", config, size)], rates[("bare", config, size)]))))
        for config in configs for size in SIZES}
    rows = {(config, size): Row(config, size, pace=PACE * min(
        rates[("bus", config, size)], rates[("bare", config, size)]))
        for size in SIZES for config in configs}
    flip = False
    for repeat in range(args.repeats):
        for size in SIZES:
            for config in configs:
                flip = not flip
                order = ("bus", "bare") if flip else ("bare", "bus")
                n = counts[(config, size)]
                slowest = min(rates[(k, config, size)] for k in order)
                timeout = max(30.0, 8 * n / max(slowest, 0.1))
                for kind in order:
                    pipe = pipelines[(kind, config)]
                    pipe.check_alive()
                    result = run_round(pipe.url, sink, packets.take(size, n), args.clients,
                                       timeout, pipe.cpu_groups)
                    getattr(rows[(config, size)], kind).append(result)
                    log_line(f"round {repeat + 1}/{args.repeats}: {pipe.label} {size}: "
                         f"{result.rate:.1f} docs/s, {result.delivered}/{result.posted} in "
                         f"{result.seconds:.1f}s" + (f", {len(result.errors)} error(s): "
                                                     f"{result.errors[0]}"
                                                     if result.errors else ""))
                row = rows[(config, size)]
                paced_n = max(2 * args.clients, int(row.pace * args.seconds / 2))
                for kind in order:
                    pipe = pipelines[(kind, config)]
                    result = run_round(pipe.url, sink, packets.take(size, paced_n),
                                       args.clients, timeout, pace=row.pace)
                    getattr(row, f"{kind}_paced").append(result)
                    log_line(f"paced {repeat + 1}/{args.repeats}: {pipe.label} {size} at "
                         f"{row.pace:.0f}/s: p50 {quantile(result.latencies_ms, 0.5):.0f} ms"
                         + (f", error: {result.errors[0]}" if result.errors else ""))
    return [rows[(config, size)] for config in configs for size in SIZES]


# ---------------------------------------------------------------- profiling


def profile(pipelines: dict[tuple[str, str], Pipeline], sink: TimingSink, packets: Packets,
            args: argparse.Namespace, folder: Path, env: dict[str, str]) -> None:
    """A loaded spell per bus deployment with py-spy on each bus process, GIL-holding
    samples only: the Python core is what the bus runs out of, and waiting on a socket
    or a disk does not use it."""
    import shutil

    spy = shutil.which("py-spy")
    if spy is None:
        print("\n(--profile: py-spy is not installed; `pip install py-spy` to profile)")
        return
    duration = max(5, int(args.seconds) + 2)
    for size in SIZES:
        for (kind, config), pipe in sorted(pipelines.items()):
            if kind != "bus":
                continue
            spies = []
            for child in pipe.children:
                out = folder / f"{child.name}-{size.replace(' ', '')}.pyspy.txt"
                spies.append((child, out, Child(f"{child.name}-pyspy", [
                    spy, "record", "--pid", str(child.pid), "--duration", str(duration),
                    "--rate", "250", "--gil", "--format", "raw", "--output", str(out),
                    "--nonblocking"], folder, env)))
            try:
                deadline = time.monotonic() + duration + 1.0
                while time.monotonic() < deadline:
                    run_round(pipe.url, sink, packets.take(size, 10 * args.clients),
                              args.clients, 60.0, settle=0.0)
                for _, _, recorder in spies:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        recorder.proc.wait(30)
            finally:
                for _, _, recorder in spies:
                    recorder.stop()
            for child, out, recorder in spies:
                print(f"\n### py-spy --gil: {child.name}, {CONFIGS[config]}, {size}, "
                      "under load\n")
                if out.exists():
                    print("```\n" + summarise_profile(out) + "\n```")
                else:
                    print(f"(no profile written; py-spy said:)\n```\n{recorder.tail(10)}\n```")


# ---------------------------------------------------------------- main


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _ignore_signals() -> None:
    """From here on the script is cleaning up: a second Ctrl-C must not cut that short
    and leave servers or bus processes behind."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lgsp-bench-bus-") as tmp, \
            contextlib.ExitStack() as stack:
        try:
            bench(args, Path(tmp), stack)
        finally:
            _ignore_signals()
    return 0


def bench(args: argparse.Namespace, folder: Path, stack: contextlib.ExitStack) -> None:
    env = child_env()
    began = time.monotonic()
    packets = Packets(SIZES)
    sink = TimingSink()
    sink.start()
    stack.callback(sink.stop)
    routes = write_routes(folder, sink)
    servers = Servers()
    configs = list(args.configs)
    if "a" in configs:
        try:
            servers = start_servers(stack)
        except ServerNotInstalledError as exc:
            print(f"configuration (a) skipped: {exc}")
            configs.remove("a")
    pipelines: dict[tuple[str, str], Pipeline] = {}
    for config in configs:
        pipelines[("bus", config)] = bus_pipeline(config, folder, routes, env, servers, stack)
        pipelines[("bare", config)] = bare_pipeline(config, folder, sink, env, servers, stack)
    log_line(f"started in {time.monotonic() - began:.0f}s; logs in {folder}")
    rows = measure(pipelines, sink, packets, args)
    print(f"\nlgsp-bus POST → delivered at an HTTP sink; {args.clients} client threads, "
          f"~{args.seconds:g} s per round, {args.repeats} interleaved rounds per cell "
          f"(rate: median; latency: pooled); {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}; run took {time.monotonic() - began:.0f} s")
    print("Latencies here are those of the throughput rounds: every document is posted at "
          "once, so they include the wait behind the documents posted before it.\n")
    print(table(rows))
    print(f"\nLatency at a paced load ({PACE:g}× the slower pipeline's warm-up rate, the same "
          "for bus and bare), so that it measures the pipeline rather than a queue:\n")
    print(paced_table(rows))
    print("\nCPU per delivered document, ms, median of rounds (servers = RabbitMQ + "
          "PostgreSQL); unlike docs/s, hardly moved by other load on the machine:\n")
    print(cpu_table(rows))
    print(f"\nTargets: bus ≥ {TARGET}× bare throughput, bus CPU per document ≤ {CPU_TARGET}× "
          "bare's")
    for row in rows:
        spread = ", ".join(f"{r.rate:.0f}" for r in row.bus) + " vs " + \
            ", ".join(f"{r.rate:.0f}" for r in row.bare)
        cpu_met = row.cpu_ratio <= CPU_TARGET
        print(f"- {CONFIGS[row.config]}, {row.size}: throughput {row.ratio:.2f} → "
              f"{'met' if row.met else 'NOT met'} (rounds docs/s, bus vs bare: {spread}); "
              f"CPU {row.cpu_ratio:.2f}× → {'met' if cpu_met else 'NOT met'}")
        for error in sorted(set(row.errors))[:5]:
            print(f"    error: {error}")
    sys.stdout.flush()
    if args.profile:
        profile(pipelines, sink, packets, args, folder, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="approximate length of one measured round (default 8; quick 3)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="measured rounds per cell (default 4; quick 2)")
    parser.add_argument("--clients", type=int, default=6, help="client threads (default 6)")
    parser.add_argument("--quick", action="store_true", help="about two minutes in all")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["a", "b"])
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, one more loaded spell per bus deployment under "
                             "py-spy, and its top functions")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 8.0
    if args.repeats is None:
        args.repeats = 2 if args.quick else 4
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"\nbenchmark could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

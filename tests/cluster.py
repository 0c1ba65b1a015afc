"""The bus as real, separate processes, for tests that kill things.

The reliability battery must crash what production crashes: a process, by SIGKILL, with
its sockets, threads and half-written transactions. Threads inside the test process cannot
be killed like that, so every bus process here is a child started exactly as an operator
starts it (``lgsp serve``, ``lgsp serve --no-workers``, ``lgsp worker``), configured only
through a settings file, and killed or stopped only through its own pid.

Isolation: each test gets its own PostgreSQL database (:func:`fresh_database`), its own
RabbitMQ virtual host (:func:`fresh_vhost`; the bus has no queue-prefix setting, so a
vhost is the only way to keep tests from consuming each other's tasks) or its own SQLite
file, and a routes.yaml whose every destination is a loopback :class:`HttpSink`.

Diagnosis: each process writes its stderr (the bus's JSON log) to its own file. A
:class:`Cluster` used as a context manager attaches the tail of every log to whatever
exception leaves the block, so a CI failure says which process did what.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
import psycopg
import sqlalchemy as sa
import yaml
from psycopg import sql

from bus.routing import RetryPolicy
from bus.settings import Settings
from tests.http_sink import HttpSink
from tests.servers import PostgresServer, RabbitMQServer, free_port, pid_alive

__all__ = [
    "DESTINATIONS",
    "REPO_ROOT",
    "SOAK_SCALE",
    "TERMINAL",
    "TEST_RETRY",
    "BusProcess",
    "Cluster",
    "DeliveryRow",
    "Outgoing",
    "Progress",
    "Sender",
    "Submission",
    "all_terminal",
    "background",
    "delivery_rows",
    "delivery_states",
    "fresh_database",
    "fresh_vhost",
    "routes_document",
    "soak",
    "wait_until",
    "write_routes",
]

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DESTINATIONS: Final = ("eoffice", "vnpt_ioffice", "hcm_egov", "national_axis", "archive")
TEST_RETRY: Final = RetryPolicy(attempts=30, first_delay_s=0.2, max_delay_s=2.0)
TERMINAL: Final = frozenset({"delivered", "refused", "parked"})
SOAK_SCALE: Final = max(float(os.environ.get("LGSP_SOAK_SCALE", "1") or 1), 0.1)
"""``LGSP_SOAK_SCALE=10`` turns the outage scenarios into soaks: ten times the documents
and the deadlines, the same outages and assertions."""


def soak(value: float) -> int:
    """A volume or a deadline of a reliability scenario, times :data:`SOAK_SCALE`."""
    return max(int(value * SOAK_SCALE), 1)

T = TypeVar("T")


# --------------------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float, *, step: float = 0.1,
               what: str = "the condition",
               explain: Callable[[], str] | None = None) -> T:
    """The predicate's first truthy value; TimeoutError naming ``what`` at the deadline.

    A reliability test that hangs tells nobody anything, so every wait has a deadline and
    the error carries ``explain()`` (current counts, say) to show how far it got.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = ""
            if explain is not None:
                with contextlib.suppress(Exception):
                    detail = f"; {explain()}"
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s{detail}")
        time.sleep(step)


# --------------------------------------------------------------------------------------
# Per-test database, vhost and configuration files
# --------------------------------------------------------------------------------------


def fresh_database(postgres: PostgresServer, prefix: str = "lgsp") -> str:
    """SQLAlchemy URL of a new, empty database on the session's server.

    Counting "0 lost" means counting every row, so no other test's rows may be there.
    """
    name = f"{prefix}_{secrets.token_hex(5)}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return postgres.url.rsplit("/", 1)[0] + "/" + name


def fresh_vhost(rabbitmq: RabbitMQServer, prefix: str = "lgsp-test") -> str:
    """AMQP URL of a new virtual host that guest may use fully.

    The bus names its queues ``lgsp.deliver.<destination>`` with no setting to change
    that, so two tests on one broker would share queues; a vhost separates them.
    """
    name = f"{prefix}-{secrets.token_hex(4)}"
    for args in (("add_vhost", name), ("set_permissions", "-p", name, "guest", ".*", ".*", ".*")):
        result = rabbitmq.rabbitmqctl(*args)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: "
                               f"{(result.stdout + result.stderr).strip()}")
    return f"amqp://guest:guest@{rabbitmq.host}:{rabbitmq.port}/{quote(name, safe='')}"


def routes_document(sinks: HttpSink | Mapping[str, HttpSink], *,
                    retry: RetryPolicy = TEST_RETRY,
                    retry_for: Mapping[str, RetryPolicy] | None = None,
                    rules: Sequence[Mapping[str, Any]] = (),
                    timeout_s: float = 10.0) -> dict[str, Any]:
    """routes.yaml as data: every destination is the ``http`` adapter aimed at a sink.

    One sink serves all destinations on different paths (``/eoffice`` …) unless a mapping
    gives a destination its own sink, so a test can take one destination down alone.
    """
    destinations: dict[str, Any] = {}
    for name in DESTINATIONS:
        sink = sinks.get(name) if isinstance(sinks, Mapping) else sinks
        if sink is None:
            raise KeyError(f"no sink for destination {name!r}")
        entry: dict[str, Any] = {"adapter": "http",
                                 "options": {"url": sink.url("/" + name),
                                             "timeout_s": timeout_s}}
        own = (retry_for or {}).get(name)
        if own is not None:
            entry["retry"] = _retry_dict(own)
        destinations[name] = entry
    return {"version": 1, "destinations": destinations,
            "defaults": {"outside": "national_axis", "retry": _retry_dict(retry)},
            "rules": [dict(rule) for rule in rules]}


def _retry_dict(policy: RetryPolicy) -> dict[str, float]:
    return {"attempts": policy.attempts, "first_delay_s": policy.first_delay_s,
            "max_delay_s": policy.max_delay_s}


def write_routes(path: Path, document: Mapping[str, Any]) -> Path:
    """Writes atomically (rename), so a watcher or a SIGHUP never reads half a file."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(yaml.safe_dump(dict(document), allow_unicode=True, sort_keys=False),
                       encoding="utf-8")
    scratch.replace(path)
    return path


# --------------------------------------------------------------------------------------
# One bus process
# --------------------------------------------------------------------------------------

Role = Literal["ingress", "worker", "embedded"]
_ARGV: Final[Mapping[Role, tuple[str, ...]]] = {
    "ingress": ("serve", "--no-workers"),
    "worker": ("worker",),
    "embedded": ("serve",),
}


class BusProcess:
    """One ``lgsp`` process, restartable under the same name, port and log file.

    The command is ``python -m bus.cli`` with this interpreter and the working tree on
    PYTHONPATH: that is the ``lgsp`` console script's own entry point, and it guarantees
    the code under test is this checkout whatever PATH holds. LGSP_* variables of the
    test's environment are dropped so that only the settings file configures the process.
    """

    def __init__(self, name: str, role: Role, config: Path, log_dir: Path, *,
                 delivery_threads: int = 1, extra_env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.role = role
        self.config = config
        self.log_path = log_dir / f"{name}.log"
        self.delivery_threads = delivery_threads
        self.port = free_port() if role != "worker" else 0
        self.extra_env = dict(extra_env or {})
        self.starts = 0
        self.kills = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        if not self.port:
            raise AttributeError(f"{self.name} is a worker; it has no HTTP endpoint")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and pid_alive(self._proc.pid)

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "bus.cli", *_ARGV[self.role], "--config", str(self.config)]
        if self.port:
            args += ["--port", str(self.port)]
        return args

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== {self.name}: start #{self.starts} at {time.time():.3f} ===\n"
                      .encode())
            log.flush()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(self.argv(), cwd=REPO_ROOT, env=self._env(),
                                          stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """HTTP processes: /healthz answers. Workers: every consumer reported ready.

        /healthz answers only after the delivery loops were started (runtime.serve), and
        ``consumer.ready`` is logged after the consumer declared and subscribed to every
        destination's queue, which is what a broker kill must not precede.
        """
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.returncode()} while "
                                   f"starting\n{self.log_tail()}")
            if self.role == "worker":
                return self.log_since_start().count('"consumer.ready"') >= self.delivery_threads
            try:
                return httpx.get(self.url + "/healthz", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, step=0.05, what=f"{self.name} ready",
                   explain=lambda: self.log_tail(20))

    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def kill9(self) -> None:
        """SIGKILL by pid, as the OOM killer or a power cut would; reaps the child."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running")
        os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(10)
        self.kills += 1
        with self.log_path.open("ab") as log:
            log.write(f"=== {self.name}: SIGKILL at {time.time():.3f} ===\n".encode())

    def send(self, signum: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running")
        os.kill(self._proc.pid, signum)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if the process has not ended within ``timeout``."""
        if self._proc is None or self._proc.poll() is not None:
            return self.returncode()
        os.kill(self._proc.pid, signal.SIGTERM)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self._proc.pid, signal.SIGKILL)
            return self._proc.wait(10)

    def restart(self, timeout: float = 30.0) -> None:
        self.start()
        self.wait_ready(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log records named ``event``, across every start of this process."""
        found = []
        for line in self.log_text().splitlines():
            if f'"{event}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
        return found

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- last {len(text)} lines of {self.log_path} ---\n" + "\n".join(text)

    def __repr__(self) -> str:
        return f"<BusProcess {self.name} {self.role} pid={self.pid} alive={self.alive()}>"


# --------------------------------------------------------------------------------------
# A cluster: settings, processes, database view
# --------------------------------------------------------------------------------------

_SETTINGS_DEFAULTS: Final[Mapping[str, Any]] = {
    "delivery_threads": 2,
    "lease_s": 5.0,
    "requeue_unclaimed_after_s": 10.0,
    "sweep_interval_s": 1.0,
    "poll_interval_s": 0.2,
    "reload_check_s": 2.0,
    "log_json": True,
    "log_level": "INFO",
}


class Cluster:
    """A set of bus processes sharing one settings file, database and broker vhost.

    Leave ``broker_url`` empty for the embedded default (SQLite under the temp dir, the
    database as the queue). Settings are validated here with the bus's own model, so a
    typo fails the test at once instead of crashing every child.
    """

    def __init__(self, root: Path, *, routes: Mapping[str, Any], database_url: str = "",
                 broker_url: str = "", **settings: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.routes_path = write_routes(root / "routes.yaml", routes)
        values: dict[str, Any] = {**_SETTINGS_DEFAULTS, **settings}
        values.update(
            data_dir=str(root / "var"), database_url=database_url, broker_url=broker_url,
            routes=str(self.routes_path),
            directory=str(REPO_ROOT / "config" / "directory.yaml"),
            credentials=str(REPO_ROOT / "config" / "credentials.yaml"),
        )
        self.settings = Settings.model_validate(values)
        self.config_path = root / "settings.yaml"
        self.config_path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
        self.processes: list[BusProcess] = []
        self._engine: sa.Engine | None = None

    @property
    def database_url(self) -> str:
        return self.settings.effective_database_url

    def add(self, role: Role, name: str | None = None) -> BusProcess:
        name = name or f"{role}-{sum(p.role == role for p in self.processes) + 1}"
        process = BusProcess(name, role, self.config_path, self.root / "logs",
                             delivery_threads=self.settings.delivery_threads)
        self.processes.append(process)
        return process

    def launch(self, role: Role, count: int = 1, timeout: float = 60.0) -> list[BusProcess]:
        """Starts ``count`` processes in parallel, then waits for every one to be ready.

        The very first process of a cluster is started alone: processes that start
        together on an empty PostgreSQL database race in CREATE TABLE and one of them
        dies (test_startup.py proves it). That bug has its own test; the battery measures
        delivery, so it does not let the bug decide whether a scenario can start.
        """
        started = [self.add(role) for _ in range(count)]
        if len(self.processes) == len(started):
            started[0].start()
            started[0].wait_ready(timeout)
        for process in started:
            if not process.alive():
                process.start()
        for process in started:
            process.wait_ready(timeout)
        return started

    def by_role(self, role: Role) -> list[BusProcess]:
        return [p for p in self.processes if p.role == role]

    def urls(self) -> list[str]:
        return [p.url for p in self.processes if p.role != "worker"]

    @property
    def engine(self) -> sa.Engine:
        """A reader on the bus's database: plain engine, so SQLite reads never take the
        write lock (the bus's own engine begins every transaction IMMEDIATE)."""
        if self._engine is None:
            self._engine = sa.create_engine(self.database_url, pool_pre_ping=True,
                                            pool_size=2)
        return self._engine

    def states(self) -> dict[str, int]:
        return delivery_states(self.engine)

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.stop()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(p.log_tail(lines) for p in self.processes)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            with contextlib.suppress(Exception):
                exc.add_note(self.log_tails())
        self.stop()


# --------------------------------------------------------------------------------------
# Reading the truth from the database
# --------------------------------------------------------------------------------------

_DELIVERIES = sa.table("deliveries", sa.column("id"), sa.column("document"),
                       sa.column("recipient"), sa.column("effective_recipient"),
                       sa.column("destination"), sa.column("state"), sa.column("attempts"),
                       sa.column("last_error"))


def delivery_states(engine: sa.Engine) -> dict[str, int]:
    """Deliveries per transport state: what "nothing lost" is counted on."""
    d = _DELIVERIES.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.state, sa.func.count()).group_by(d.state)).all()
    return {str(state): int(count) for state, count in rows}


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    document: str
    recipient: str
    effective_recipient: str
    destination: str
    state: str
    attempts: int
    last_error: str | None

    @property
    def key(self) -> str:
        """The idempotency key the worker sends (bus.delivery.worker.idempotency_key)."""
        return f"{self.document}:{self.effective_recipient}:{self.destination}"


def delivery_rows(engine: sa.Engine) -> list[DeliveryRow]:
    """Every delivery, read with a table stub so the audit does not trust bus.store."""
    d = _DELIVERIES.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.id, d.document, d.recipient, d.effective_recipient,
                                      d.destination, d.state, d.attempts, d.last_error)).all()
    return [DeliveryRow(*row) for row in rows]


def all_terminal(engine: sa.Engine) -> bool:
    """Whether delivery is over; an empty table is not "over", it is "not started"."""
    states = delivery_states(engine)
    return bool(states) and all(state in TERMINAL for state in states)


# --------------------------------------------------------------------------------------
# A sender that keeps the contract
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One packet and the system whose key submits it."""

    data: bytes
    system: str
    path: str = "/api/v1/edocs"


@dataclass
class Submission:
    """What the sender knows about one packet: its last answer and how it got there."""

    outgoing: Outgoing
    status: int | None = None
    receipt: dict[str, Any] | None = None
    attempts: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: list[int] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def document(self) -> str | None:
        return None if self.receipt is None else str(self.receipt["id"])


class Sender:
    """An agency system that keeps the contract: until it has a 2xx it sends the same bytes
    again (on a connection error, a timeout or a 5xx), round-robin over the ingress URLs.

    A 4xx is final (the packet is wrong, sending it again cannot help) and is kept on the
    submission for the test to assert on. ``urls`` is re-read on every attempt so a test
    may change which processes are up.
    """

    def __init__(self, urls: Callable[[], Sequence[str]] | Sequence[str], *,
                 timeout_s: float = 15.0, pause_s: float = 0.05,
                 max_pause_s: float = 1.0) -> None:
        self._urls = urls if callable(urls) else (lambda: list(urls))
        self.timeout_s = timeout_s
        self.pause_s = pause_s
        self.max_pause_s = max_pause_s
        self._turn = itertools.count()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.slowest_s: dict[str, float] = {}
        """The longest wait for each kind of answer (``http_503``, ``ReadTimeout``…)."""
        self.samples: dict[str, Any] = {}
        """The first body of each kind of 5xx answer, to assert its code and message."""

    def _seen(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.slowest_s[kind] = max(self.slowest_s.get(kind, 0.0), seconds)

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=self.timeout_s, trust_env=False)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def post_once(self, outgoing: Outgoing, url: str | None = None) -> httpx.Response:
        urls = self._urls()
        base = url or urls[next(self._turn) % len(urls)]
        return self._client().post(base + outgoing.path, content=outgoing.data,
                                   headers={"X-API-Key": f"dev-{outgoing.system}-key",
                                            "Content-Type": "application/xml"})

    def submit(self, submission: Submission, deadline: float) -> Submission:
        """Sends until a final answer (2xx or 4xx) or the deadline; never raises."""
        pause = self.pause_s
        while time.monotonic() < deadline:
            submission.attempts += 1
            began = time.monotonic()
            try:
                response = self.post_once(submission.outgoing)
            except httpx.HTTPError as exc:
                self._seen(type(exc).__name__, time.monotonic() - began)
                submission.failures[type(exc).__name__] += 1
                with self._lock:
                    self.counts["connection_errors"] += 1
            else:
                self._seen(f"http_{response.status_code}", time.monotonic() - began)
                if response.status_code >= 500 and f"http_{response.status_code}" \
                        not in self.samples:
                    with contextlib.suppress(ValueError):
                        self.samples[f"http_{response.status_code}"] = response.json()
                submission.statuses.append(response.status_code)
                if response.status_code < 500:
                    submission.status = response.status_code
                    with contextlib.suppress(ValueError):
                        submission.receipt = response.json()
                    with self._lock:
                        self.counts[f"http_{response.status_code}"] += 1
                    return submission
                submission.failures[f"http_{response.status_code}"] += 1
                with self._lock:
                    self.counts[f"http_{response.status_code}"] += 1
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, self.max_pause_s)
        return submission

    def submit_all(self, submissions: Sequence[Submission], *, threads: int,
                   deadline: float, progress: Callable[[int], None] | None = None,
                   stop: threading.Event | None = None) -> None:
        """Submits with ``threads`` threads until all are done or ``stop`` is set.

        ``stop`` ends the taking of new packets only: a packet already sent once is still
        sent until it has a final answer, since its sender cannot know whether it was
        committed. ``progress`` sees the count of packets with a final answer.
        """
        queue = iter(submissions)
        lock = threading.Lock()
        done = [0]

        def run() -> None:
            while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                self.submit(item, deadline)
                with lock:
                    done[0] += 1
                    count = done[0]
                if progress is not None:
                    progress(count)

        pool = [threading.Thread(target=run, name=f"sender-{i}", daemon=True)
                for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(max(0.0, deadline - time.monotonic()) + 30)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Progress:
    """A counter other threads can wait on (e.g. "kill the broker at 25 % submitted")."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.value = 0

    def __call__(self, value: int) -> None:
        with self._cond:
            self.value = max(self.value, value)
            self._cond.notify_all()

    def wait_for(self, target: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.value >= target, timeout)


@contextlib.contextmanager
def background(target: Callable[[], None], name: str) -> Iterator[threading.Thread]:
    """Runs ``target`` in a thread beside the block (a client posting while the block kills
    processes) and re-raises its exception on exit: a client that died must fail the test,
    not leave it waiting for progress that never comes."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(600)
    if failure:
        raise failure[0]


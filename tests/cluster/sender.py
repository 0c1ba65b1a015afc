"""A sender that keeps the contract while the cluster is being killed, and the threads
beside it."""

from __future__ import annotations

import collections
import contextlib
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx


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

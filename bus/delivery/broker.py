"""Scale-out delivery through RabbitMQ: the broker distributes work, the database decides.

The broker carries small tasks (``{"delivery": id}``), never packets, one durable quorum
queue per destination (``lgsp.deliver.<destination>``) so that a destination that is down
fills only its own queue. Nothing here needs the broker to be exactly-once:

* :class:`RabbitDispatcher` publishes each committed delivery, from its own thread, with
  publisher confirms, and only then marks the row ``queued``. If the broker is
  unreachable the row stays ``pending`` and the ingress is neither failed nor slowed:
  the document is already committed.
* :class:`Relay` (in every worker process) returns lost work to ``pending`` and publishes
  whatever is pending and due — rows whose first publish failed, retries whose time has
  come, leases that expired. It may publish a row twice; that is harmless.
* :class:`RabbitConsumer` acks a task only after :meth:`DeliveryWorker.handle` returned,
  i.e. after the outcome is committed. A crash before the ack means redelivery, and the
  lease turns the duplicate into ``skipped``.

pika's BlockingConnection is not thread-safe, so every thread has its own connection.
"""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
import structlog
import tenacity

from bus.delivery.worker import DeliveryWorker
from bus.settings import Settings
from bus.store import Accepted, Store

if TYPE_CHECKING:
    from bus.app import Bus

__all__ = [
    "AMQP_ERRORS",
    "QUEUE_PREFIX",
    "Publisher",
    "RabbitConsumer",
    "RabbitDispatcher",
    "Relay",
    "WorkerPool",
    "connect",
    "declare",
    "endpoints",
    "parameters",
    "ping",
    "queue_name",
]

log = structlog.get_logger("lgsp.broker")

QUEUE_PREFIX: Final = "lgsp.deliver."
AMQP_ERRORS: Final = (pika.exceptions.AMQPError, OSError)


def queue_name(destination: str, prefix: str = QUEUE_PREFIX) -> str:
    return f"{prefix}{destination}"


def parameters(url: str, *, timeout_s: float = 5.0, heartbeat_s: int = 60) -> Any:
    """Connection parameters that fail fast: the callers own every retry decision."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = timeout_s
    params.stack_timeout = timeout_s * 2
    params.blocked_connection_timeout = timeout_s * 6
    params.heartbeat = heartbeat_s
    return params


def endpoints(url: str) -> list[str]:
    """One URL per node of a ``broker_url`` that lists several, comma-separated::

        amqp://user:pass@10.0.0.1:5672,10.0.0.2:5672,10.0.0.3/vhost

    Credentials, virtual host and query apply to every node; a node without a port
    uses the scheme's default. A plain single-node URL comes back unchanged.
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [url]
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host.strip()}"))
            for host in hosts.split(",") if host.strip()]


def connect(url: str, *, timeout_s: float = 5.0, heartbeat_s: int = 60) -> Any:
    """A blocking connection to the first node of ``url`` that answers.

    The nodes are tried in a random order, so the processes of a bus spread over a
    cluster and none depends on one node being up; a node that is down refuses at once
    (or within ``timeout_s``) and the next is tried. Raises one of AMQP_ERRORS when no
    node takes the connection.
    """
    nodes = endpoints(url)
    random.shuffle(nodes)
    return pika.BlockingConnection(
        [parameters(node, timeout_s=timeout_s, heartbeat_s=heartbeat_s) for node in nodes])


def declare(channel: Any, queue: str) -> None:
    """Idempotent: a quorum queue replicates and survives a node crash with its messages."""
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


def ping(url: str, *, timeout_s: float = 2.0) -> str | None:
    """None when the broker accepts a connection (readiness), else the reason."""
    try:
        connection = connect(url, timeout_s=timeout_s)
    except AMQP_ERRORS as exc:
        return f"RabbitMQ unreachable: {type(exc).__name__}: {exc}"
    with contextlib.suppress(*AMQP_ERRORS):
        connection.close()
    return None


def _task(delivery: str) -> bytes:
    return json.dumps({"delivery": delivery}).encode()


def _delivery_of(body: bytes) -> str:
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("delivery"), str):
        raise ValueError("task body is not {\"delivery\": \"<id>\"}")
    return str(data["delivery"])


class _Link:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.channel.confirm_delivery()
        self.declared: set[str] = set()


class Publisher:
    """Confirmed, persistent, mandatory publishing over one connection per thread."""

    def __init__(self, url: str, *, queue_prefix: str = QUEUE_PREFIX,
                 timeout_s: float = 5.0) -> None:
        self.url = url
        self.queue_prefix = queue_prefix
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: list[_Link] = []
        self._lock = threading.Lock()

    def _link(self) -> tuple[_Link, bool]:
        link: _Link | None = getattr(self._local, "link", None)
        if link is not None and link.connection.is_open:
            return link, False
        connection = connect(self.url, timeout_s=self.timeout_s)
        try:
            link = _Link(connection)
        except AMQP_ERRORS:
            with contextlib.suppress(*AMQP_ERRORS):
                connection.close()
            raise
        self._local.link = link
        with self._lock:
            self._all.append(link)
        return link, True

    def _drop(self) -> None:
        link: _Link | None = getattr(self._local, "link", None)
        self._local.link = None
        if link is not None:
            with self._lock:
                if link in self._all:
                    self._all.remove(link)
            with contextlib.suppress(*AMQP_ERRORS):
                link.connection.close()

    def publish(self, delivery: str, destination: str) -> None:
        """Returns once the broker confirmed the task; raises one of AMQP_ERRORS otherwise.

        A connection that went stale (broker restarted since) is replaced once.
        """
        target = queue_name(destination, self.queue_prefix)
        for retry_stale in (True, False):
            link, fresh = self._link()
            try:
                if target not in link.declared:
                    declare(link.channel, target)
                    link.declared.add(target)
                link.channel.basic_publish(
                    "", target, _task(delivery),
                    pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                         message_id=delivery),
                    mandatory=True)
                return
            except AMQP_ERRORS:
                self._drop()
                if fresh or not retry_stale:
                    raise

    def close(self) -> None:
        """Closes every thread's connection; call when no thread publishes any more."""
        with self._lock:
            links, self._all = self._all, []
        for link in links:
            with contextlib.suppress(*AMQP_ERRORS):
                link.connection.close()
        self._local = threading.local()


class RabbitDispatcher:
    """The :class:`~bus.app.Dispatcher` of the scaled-out bus: never raises, never blocks.

    ``notify`` runs in the sender's request, after the commit; it only queues the ids in
    memory. A publisher thread (started on first use) publishes them with confirms and
    marks each row ``queued``. A broker that is down, or up but unable to confirm (a
    quorum queue without a leader nacks only after about a minute), therefore delays
    nothing but the tasks themselves: while publishing fails, ids are dropped for
    ``pause_after_failure_s`` and the rows stay ``pending`` for the relay.
    """

    def __init__(self, store: Store, url: str, *, queue_prefix: str = QUEUE_PREFIX,
                 pause_after_failure_s: float = 5.0, backlog: int = 10_000) -> None:
        self.store = store
        self.publisher = Publisher(url, queue_prefix=queue_prefix)
        self.pause_after_failure_s = pause_after_failure_s
        self.counts: collections.Counter[str] = collections.Counter()
        self._tasks: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=backlog)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._paused_until = 0.0

    def notify(self, accepted: Accepted) -> None:
        try:
            self._ensure_thread()
            for task in accepted.deliveries:
                self._tasks.put_nowait(task)
        except queue.Full:
            self.counts["deferred"] += 1
            log.warning("dispatch.backlog_full", document=accepted.document,
                        note="left pending; the relay will publish it")
        except Exception:
            log.exception("dispatch.notify_failed", document=accepted.document)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="lgsp-dispatch",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batch = [self._tasks.get(timeout=0.2)]
                except queue.Empty:
                    continue
                while len(batch) < 200:
                    try:
                        batch.append(self._tasks.get_nowait())
                    except queue.Empty:
                        break
                try:
                    # New deliveries, never attempted: published at attempt count 0.
                    published = [(d, 0) for d, destination in batch
                                 if self._publish(d, destination)]
                    if published:
                        self._mark_queued(published)
                finally:
                    for _ in batch:
                        self._tasks.task_done()
        finally:
            self.publisher.close()

    def _publish(self, delivery: str, destination: str) -> bool:
        if time.monotonic() < self._paused_until:
            self.counts["deferred"] += 1
            return False
        try:
            self.publisher.publish(delivery, destination)
        except Exception as exc:
            self._paused_until = time.monotonic() + self.pause_after_failure_s
            self.counts["failed"] += 1
            log.warning("dispatch.publish_failed", delivery=delivery, destination=destination,
                        error=f"{type(exc).__name__}: {exc}",
                        note="left pending; the relay will publish it")
            return False
        self.counts["published"] += 1
        return True

    def _mark_queued(self, published: list[tuple[str, int]]) -> None:
        """One transaction for a batch of confirmed publishes, not one per delivery."""
        try:
            self.store.mark_queued(published)
        except Exception:
            log.exception("dispatch.mark_queued_failed", deliveries=len(published))

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until every notified id was published or deferred (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._tasks.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._tasks.unfinished_tasks == 0

    def close(self, timeout: float = 10.0) -> bool:
        """Stops the publisher thread; ids not yet published stay pending for the relay."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()


class _Loop:
    """A stoppable background thread; subclasses implement ``run``."""

    name = "lgsp-loop"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> threading.Thread:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was already started")
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self._thread

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Asks the loop to end and waits; True when it ended within ``timeout``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


class RabbitConsumer(_Loop):
    """Consumes every destination's queue; acks each task after its outcome is committed."""

    def __init__(self, url: str, worker: DeliveryWorker,
                 destinations: Callable[[], Iterable[str]], *,
                 queue_prefix: str = QUEUE_PREFIX, prefetch: int = 2,
                 reconnect_max_s: float = 5.0, name: str = "lgsp-consumer") -> None:
        super().__init__()
        self.url = url
        self.worker = worker
        self.destinations = destinations
        self.queue_prefix = queue_prefix
        self.prefetch = max(prefetch, 1)
        self.reconnect_max_s = reconnect_max_s
        self.name = name
        self.counts: collections.Counter[str] = collections.Counter()

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                connection = self._connect()
                if connection is None:
                    break
                try:
                    self._consume(connection)
                except AMQP_ERRORS as exc:
                    self.counts["connection_lost"] += 1
                    log.warning("consumer.connection_lost", consumer=self.name,
                                error=f"{type(exc).__name__}: {exc}")
                finally:
                    with contextlib.suppress(*AMQP_ERRORS):
                        connection.close()
        finally:
            self.worker.close()

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _connect(self) -> Any:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(AMQP_ERRORS),
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=self.reconnect_max_s),
            stop=tenacity.stop_when_event_set(self._stop),
            sleep=self._sleep,
            before_sleep=lambda state: log.info(
                "consumer.reconnecting", consumer=self.name, attempt=state.attempt_number),
            reraise=True,
        )
        try:
            connection = retrying(connect, self.url)
        except AMQP_ERRORS:
            return None
        self.counts["connections"] += 1
        return connection

    def _subscribe(self, channel: Any, subscribed: set[str]) -> None:
        for destination in self.destinations():
            queue = queue_name(destination, self.queue_prefix)
            if queue not in subscribed:
                declare(channel, queue)
                channel.basic_consume(queue, on_message_callback=self._on_message)
                subscribed.add(queue)

    def _consume(self, connection: Any) -> None:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=self.prefetch)
        subscribed: set[str] = set()
        self._subscribe(channel, subscribed)
        log.info("consumer.ready", consumer=self.name, queues=sorted(subscribed))
        next_check = time.monotonic() + 5.0
        while not self._stop.is_set():
            connection.process_data_events(time_limit=0.5)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 5.0
                self._subscribe(channel, subscribed)

    def _on_message(self, channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        tag = method.delivery_tag
        self.counts["messages"] += 1
        try:
            delivery = _delivery_of(body)
        except ValueError:
            self.counts["malformed"] += 1
            log.error("consumer.malformed_task", consumer=self.name, body=body[:200])
            channel.basic_reject(tag, requeue=False)
            return
        if self._stop.is_set():
            channel.basic_nack(tag, requeue=True)
            return
        try:
            outcome = self.worker.handle(delivery)
        except Exception:
            self.counts["errors"] += 1
            log.exception("consumer.handle_failed", consumer=self.name, delivery=delivery)
            channel.basic_nack(tag, requeue=True)
            self._stop.wait(1.0)
            return
        self.counts[outcome] += 1
        channel.basic_ack(tag)


class Relay(_Loop):
    """Sweeps lost work back to pending and publishes what is pending and due."""

    name = "lgsp-relay"

    def __init__(self, store: Store, url: str, settings: Settings, *,
                 queue_prefix: str = QUEUE_PREFIX, batch: int = 500,
                 grace_s: float = 1.0) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.grace_s = grace_s
        self.publisher = Publisher(url, queue_prefix=queue_prefix)
        self.batch = batch
        self.counts: collections.Counter[str] = collections.Counter()
        self._next_sweep = 0.0

    def sweep(self) -> int:
        returned = self.store.sweep(
            queued_older_than_s=self.settings.requeue_unclaimed_after_s)
        self.counts["swept"] += returned
        return returned

    def run_once(self) -> int:
        """One pass; returns how many tasks were published. Raises on broker failure.

        Rows younger than ``grace_s`` are left to the dispatcher that is publishing them.
        """
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.settings.sweep_interval_s
            self.sweep()
        published = 0
        due = self.store.due(limit=self.batch, now=time.time() - self.grace_s)
        done: list[tuple[str, int]] = []
        try:
            for row in due:
                self.publisher.publish(row.id, row.destination)
                done.append((row.id, row.attempts))
                published += 1
        finally:
            self.store.mark_queued(done)
        self.counts["published"] += published
        return published

    def run(self) -> None:
        pause = self.settings.poll_interval_s
        try:
            while not self._stop.is_set():
                try:
                    published = self.run_once()
                    pause = self.settings.poll_interval_s
                except Exception as exc:
                    self.counts["failures"] += 1
                    pause = min(max(pause * 2, 0.5), 5.0)
                    log.warning("relay.failed", error=f"{type(exc).__name__}: {exc}",
                                retry_in_s=pause)
                    published = 0
                if published < self.batch:
                    self._stop.wait(pause)
        finally:
            self.publisher.close()


class WorkerPool:
    """What a worker process runs: ``delivery_threads`` consumers and one relay."""

    def __init__(self, bus: Bus, *, consumers: int | None = None, relay: bool = True,
                 queue_prefix: str = QUEUE_PREFIX) -> None:
        settings = bus.settings
        count = consumers if consumers is not None else max(settings.delivery_threads, 1)

        def destinations() -> Iterable[str]:
            return bus.reloader.current().table.destinations

        self.consumers = [
            RabbitConsumer(settings.broker_url,
                           DeliveryWorker.from_bus(bus, name=f"consumer-{index}"),
                           destinations, queue_prefix=queue_prefix,
                           name=f"lgsp-consumer-{index}")
            for index in range(count)
        ]
        self.relay = (Relay(bus.store, settings.broker_url, settings,
                            queue_prefix=queue_prefix)
                      if relay else None)

    def start(self) -> None:
        for consumer in self.consumers:
            consumer.start()
        if self.relay is not None:
            self.relay.start()

    def stop(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        loops: list[_Loop] = [*self.consumers, *([self.relay] if self.relay else [])]
        for loop in loops:
            loop.request_stop()
        return all([loop.stop(max(0.0, deadline - time.monotonic())) for loop in loops])

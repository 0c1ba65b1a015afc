"""What a worker process runs: consumers that ack after the commit, and the relay."""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pika.exceptions
import tenacity

from bus.delivery.broker.amqp import (
    AMQP_ERRORS,
    QUEUE_PREFIX,
    _delivery_of,
    connect,
    declare,
    log,
    queue_name,
)
from bus.delivery.broker.publishing import Publisher
from bus.delivery.worker import DeliveryWorker
from bus.settings import Settings
from bus.store import Store

if TYPE_CHECKING:
    from bus.app import Bus


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
        due = self.store.due(limit=self.batch, now=time.time() - self.grace_s)
        confirmed = set(self.publisher.publish_many([(row.id, row.destination)
                                                     for row in due]))
        self.store.mark_queued([(row.id, row.attempts) for row in due
                                if row.id in confirmed])
        self.counts["published"] += len(confirmed)
        if len(confirmed) < len(due):
            raise pika.exceptions.NackError([])  # the rest stay pending: back off
        return len(confirmed)

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

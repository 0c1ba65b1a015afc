"""Publishing tasks: confirmed publishes per thread; the dispatcher that never blocks ingress."""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from typing import Any

import pika

from bus.delivery.broker.amqp import (
    AMQP_ERRORS,
    QUEUE_PREFIX,
    _task,
    connect,
    declare,
    log,
    queue_name,
)
from bus.store import Accepted, Store


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

"""Publishing tasks: confirmed publishes per thread; the dispatcher that never blocks ingress."""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import pika
import pika.exceptions
import pika.spec

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

# Pauses before a task the broker nacked or returned is sent again (see publish_many).
RESEND_AFTER_S: Final = (0.05, 0.25, 1.0)


class _Link:
    """One connection and its confirming channel, with the confirms collected here.

    ``BlockingChannel.confirm_delivery`` makes every ``basic_publish`` wait for its own
    confirm before the next task is sent: measured on loopback against a quorum queue,
    1–3.3 ms and about 200 µs of CPU per task, so one dispatcher thread could not publish
    more than about 300 tasks a second. Here confirm mode is turned on on pika's
    asynchronous channel underneath, so a batch of tasks is sent at once and its
    confirms (which the broker coalesces with ``multiple``) are awaited together, the way
    ``BlockingChannel`` awaits one: by running the connection's I/O loop until the last
    confirm is in (a ``process_data_events`` loop woken by each ack cost 40–80 µs more
    per task when batches are of one).
    """

    def __init__(self, connection: Any, timeout_s: float) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.declared: set[str] = set()
        self._sent = 0
        self._unconfirmed: dict[int, str] = {}
        self._acked: list[str] = []
        self._refused: set[str] = set()
        self._selected = False
        impl = self.channel._impl  # pika's asynchronous channel under the blocking one
        impl.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_selected)
        impl.add_on_return_callback(self._on_return)
        self._wait(lambda: self._selected, timeout_s)
        if not self._selected:
            raise pika.exceptions.AMQPChannelError("the broker did not turn confirms on")

    def _on_selected(self, _frame: Any) -> None:
        self._selected = True

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.multiple:
            tags = [tag for tag in self._unconfirmed if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        acked = isinstance(method, pika.spec.Basic.Ack)
        for tag in tags:
            delivery = self._unconfirmed.pop(tag, None)
            if delivery is not None:
                (self._acked.append if acked else self._refused.add)(delivery)

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        # An unroutable task comes back before its ack: it was not queued, and its queue
        # is gone (deleted behind our back), so it is declared again before the next send.
        self._refused.add(properties.message_id)
        self.declared.discard(method.routing_key)

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Runs the connection's I/O (confirms, returns, heartbeats) until ``done`` or
        ``timeout_s``; raises one of AMQP_ERRORS if the channel or connection closes."""
        if done():
            return
        expired: list[bool] = []
        ioloop = self.connection._impl.ioloop
        timer = ioloop.call_later(timeout_s, lambda: expired.append(True))
        try:
            # BlockingChannel's own wait (as in its basic_publish): it raises when the
            # broker closes the channel or the connection drops.
            self.channel._flush_output(lambda: done() or bool(expired))
        finally:
            ioloop.remove_timeout(timer)
        if not self.channel.is_open:
            raise pika.exceptions.ChannelWrongStateError(
                "the channel closed while waiting for the broker's confirms")

    def publish(self, tasks: Sequence[tuple[str, str]], prefix: str,
                timeout_s: float) -> tuple[list[str], set[str], bool]:
        """(the deliveries the broker confirmed, in order; those it nacked or returned;
        whether every confirm came)."""
        self._acked, self._refused = [], set()
        for delivery, destination in tasks:
            target = queue_name(destination, prefix)
            if target not in self.declared:
                declare(self.channel, target)
                self.declared.add(target)
            self._sent += 1
            self._unconfirmed[self._sent] = delivery
            self.channel.basic_publish(
                "", target, _task(delivery),
                pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                     message_id=delivery),
                mandatory=True)
        self._wait(lambda: not self._unconfirmed, timeout_s)
        confirmed = [d for d in self._acked if d not in self._refused]
        return confirmed, set(self._refused), not self._unconfirmed


class Publisher:
    """Confirmed, persistent, mandatory publishing over one connection per thread."""

    def __init__(self, url: str, *, queue_prefix: str = QUEUE_PREFIX,
                 timeout_s: float = 5.0, confirm_timeout_s: float = 120.0,
                 resend_after_s: Sequence[float] = RESEND_AFTER_S) -> None:
        self.url = url
        self.queue_prefix = queue_prefix
        self.timeout_s = timeout_s
        self.confirm_timeout_s = confirm_timeout_s
        self.resend_after_s = tuple(resend_after_s)
        self._local = threading.local()
        self._all: list[_Link] = []
        self._lock = threading.Lock()

    def _link(self) -> tuple[_Link, bool]:
        link: _Link | None = getattr(self._local, "link", None)
        if link is not None and link.connection.is_open:
            return link, False
        connection = connect(self.url, timeout_s=self.timeout_s)
        try:
            link = _Link(connection, self.timeout_s)
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

    def publish_many(self, tasks: Sequence[tuple[str, str]]) -> list[str]:
        """Sends every (delivery, destination) task, then waits for the broker's confirms
        together; returns the deliveries it confirmed.

        A task the broker nacked or returned is sent again after each pause of
        ``resend_after_s``: RabbitMQ nacks the first publish of a channel to a quorum
        queue that another connection is still creating (the consumer and the dispatcher
        declare a new destination's queue at the same moment), and returns a task whose
        queue was deleted, which is declared again first. A task still refused after
        that, or left unanswered for ``confirm_timeout_s`` (its connection is then
        replaced), is not among the returned ids: its row stays ``pending`` for the relay.
        Raises one of AMQP_ERRORS when the connection fails before anything was
        confirmed; a connection that went stale (broker restarted since) is replaced
        once, the batch sent again (a task queued twice is harmless: the lease makes the
        second a ``skipped``).
        """
        if not tasks:
            return []
        confirmed, refused = self._send(tasks)
        for pause in self.resend_after_s:
            if not refused:
                break
            again = [task for task in tasks if task[0] in refused]
            log.info("publish.resend", deliveries=len(again), first=again[0][0],
                     after_s=pause, note="the broker nacked or returned them")
            time.sleep(pause)
            try:
                more, refused = self._send(again)
            except AMQP_ERRORS as exc:
                log.warning("publish.resend_failed", deliveries=len(again),
                            error=f"{type(exc).__name__}: {exc}")
                break
            confirmed += more
        return confirmed

    def _send(self, tasks: Sequence[tuple[str, str]]) -> tuple[list[str], set[str]]:
        """One round: (confirmed ids, ids the broker nacked or returned)."""
        for retry_stale in (True, False):
            link, fresh = self._link()
            try:
                confirmed, refused, complete = link.publish(tasks, self.queue_prefix,
                                                            self.confirm_timeout_s)
            except AMQP_ERRORS:
                self._drop()
                if fresh or not retry_stale:
                    raise
                continue
            if not complete:
                self._drop()
            return confirmed, refused
        raise AssertionError("unreachable")  # pragma: no cover

    def publish(self, delivery: str, destination: str) -> None:
        """Returns once the broker confirmed the task; raises one of AMQP_ERRORS otherwise."""
        if not self.publish_many([(delivery, destination)]):
            raise pika.exceptions.NackError([])

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
    memory. A publisher thread (started on first use) publishes what has gathered, waits
    for the broker's confirms of the whole batch, and marks the confirmed rows ``queued``
    in one statement. A broker that is down, or up but unable to confirm (a
    quorum queue without a leader nacks only after about a minute), therefore delays
    nothing but the tasks themselves: after a failure nothing is published for
    ``pause_after_failure_s``; the tasks of that time and those the broker did not
    confirm are tried again after it, ``retries`` times at most (at most ``backlog`` of
    them held), then their rows stay ``pending`` for the relay. The relay runs in every
    worker process (``lgsp serve`` runs one unless ``--no-workers``), so the rows are
    published even when this process stops; trying again here spares them its wait.
    """

    def __init__(self, store: Store, url: str, *, queue_prefix: str = QUEUE_PREFIX,
                 pause_after_failure_s: float = 5.0, backlog: int = 10_000,
                 retries: int = 3) -> None:
        self.store = store
        self.publisher = Publisher(url, queue_prefix=queue_prefix)
        self.pause_after_failure_s = pause_after_failure_s
        self.retries = retries
        self.backlog = backlog
        self.counts: collections.Counter[str] = collections.Counter()
        self._tasks: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=backlog)
        self._later: list[tuple[tuple[str, str], int]] = []  # (task, failed tries)
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
                batch: list[tuple[tuple[str, str], int]] = []
                if self._later and time.monotonic() >= self._paused_until:
                    batch, self._later = self._later[:200], self._later[200:]
                fresh = 0
                try:
                    if not batch:
                        batch.append((self._tasks.get(timeout=0.2), 0))
                        fresh += 1
                    while len(batch) < 200:
                        batch.append((self._tasks.get_nowait(), 0))
                        fresh += 1
                except queue.Empty:
                    if not batch:
                        continue
                try:
                    # New deliveries, never attempted: published at attempt count 0.
                    published = [(d, 0) for d in self._publish(batch)]
                    if published:
                        self._mark_queued(published)
                finally:
                    for _ in range(fresh):
                        self._tasks.task_done()
        finally:
            self.publisher.close()

    def _publish(self, batch: list[tuple[tuple[str, str], int]]) -> list[str]:
        """The deliveries of ``batch`` the broker confirmed, all sent before any confirm
        is awaited; the others are held to be tried again after the pause."""
        tasks = [task for task, _ in batch]
        if time.monotonic() < self._paused_until:
            self._hold(batch, failed=False)
            return []
        try:
            confirmed = self.publisher.publish_many(tasks)
        except Exception as exc:
            self._paused_until = time.monotonic() + self.pause_after_failure_s
            self.counts["failed"] += len(batch)
            log.warning("dispatch.publish_failed", deliveries=len(batch),
                        first=tasks[0][0], error=f"{type(exc).__name__}: {exc}",
                        note=self._note)
            self._hold(batch, failed=True)
            return []
        self.counts["published"] += len(confirmed)
        if len(confirmed) < len(batch):
            self._paused_until = time.monotonic() + self.pause_after_failure_s
            self.counts["failed"] += len(batch) - len(confirmed)
            done = set(confirmed)
            missing = [(task, tries) for task, tries in batch if task[0] not in done]
            log.warning("dispatch.publish_failed", deliveries=len(missing),
                        first=missing[0][0][0],
                        error="not confirmed by the broker (nacked, unroutable or no answer)",
                        note=self._note)
            self._hold(missing, failed=True)
        return confirmed

    @property
    def _note(self) -> str:
        return (f"tried again in {self.pause_after_failure_s:g} s, {self.retries} times "
                "at most; then left pending for the relay")

    def _hold(self, batch: list[tuple[tuple[str, str], int]], *, failed: bool) -> None:
        """Keeps tasks for after the pause; those out of tries or room go to the relay."""
        for task, tries in batch:
            tries += failed
            if tries > self.retries or len(self._later) >= self.backlog:
                self.counts["deferred"] += 1
            else:
                self._later.append((task, tries))

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

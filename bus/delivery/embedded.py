"""The embedded default: the database is the queue, a few threads are the workers.

A single-machine bus should not need a broker to keep the delivery contract, and it does
not: a delivery row is written in the same transaction as its document, so "queued" is
simply "pending and due". One feeder thread finds due rows (woken at once by
:meth:`EmbeddedDispatcher.notify`, otherwise every ``poll_interval_s``), returns lost
leases to pending every ``sweep_interval_s``, and hands ids to ``delivery_threads``
delivery threads, each with its own :class:`~bus.delivery.worker.DeliveryWorker`.

The hand-over is per destination and round-robin, and no destination may occupy every
thread, so a destination that is down or slow delays only its own packets. A crash
loses nothing: whatever was in memory here is still ``pending`` (or ``delivering`` with
a lease that will expire) in the database.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from bus.delivery.worker import DeliveryWorker
from bus.settings import Settings
from bus.store import Accepted, Store

if TYPE_CHECKING:
    from bus.app import Bus

__all__ = ["EmbeddedDispatcher"]

log = structlog.get_logger("lgsp.embedded")


class _Scheduler:
    """Ids waiting for a thread, per destination, with a cap on threads per destination."""

    def __init__(self, per_destination: int) -> None:
        self.per_destination = max(per_destination, 1)
        self.cond = threading.Condition()
        self._ready: dict[str, tuple[collections.deque[str], collections.deque[str]]] = {}
        self._order: collections.deque[str] = collections.deque()
        self._busy: collections.Counter[str] = collections.Counter()
        self._known: set[str] = set()
        self.closed = False

    def offer(self, rows: Iterable[tuple[str, str]], *, urgent: bool = False) -> int:
        """Queues ids for their destination; ``urgent`` ones (a document just accepted
        by this process) go before those the feeder found (retries coming due, rows
        other processes committed such as a migration's), so a live document waits only
        for the attempts in flight, not for a backlog."""
        added = 0
        with self.cond:
            for delivery, destination in rows:
                if delivery in self._known:
                    continue
                self._known.add(delivery)
                if destination not in self._ready:
                    self._ready[destination] = (collections.deque(), collections.deque())
                    self._order.append(destination)
                self._ready[destination][0 if urgent else 1].append(delivery)
                added += 1
            if added:
                self.cond.notify(added)
        return added

    def backlog(self, destination: str) -> int:
        with self.cond:
            lanes = self._ready.get(destination)
            return len(lanes[0]) + len(lanes[1]) if lanes else 0

    def _pick(self) -> tuple[str, str] | None:
        for _ in range(len(self._order)):
            destination = self._order[0]
            self._order.rotate(-1)
            if self._busy[destination] >= self.per_destination:
                continue
            first, second = self._ready[destination]
            delivery = (first or second).popleft()
            if not first and not second:
                del self._ready[destination]
                self._order.remove(destination)
            self._busy[destination] += 1
            return delivery, destination
        return None

    def take(self, timeout: float) -> tuple[str, str] | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.closed:
                job = self._pick()
                if job is not None:
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
        return None

    def done(self, delivery: str, destination: str) -> None:
        with self.cond:
            self._busy[destination] -= 1
            self._known.discard(delivery)
            if destination in self._ready:
                # Its backlog may have been held back by the cap: a thread can take it
                # now. Otherwise no thread is woken for nothing after every delivery.
                self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class EmbeddedDispatcher:
    """The :class:`~bus.app.Dispatcher` of the embedded default, with its thread pool."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        make_worker: Callable[[str], DeliveryWorker],
        *,
        destinations: Callable[[], Iterable[str]] = tuple,
        batch: int = 100,
    ) -> None:
        self.store = store
        self.settings = settings
        self.make_worker = make_worker
        self.destinations = destinations
        self.batch = batch
        threads = max(settings.delivery_threads, 1)
        self._scheduler = _Scheduler(threads - 1 if threads > 1 else 1)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.workers: list[DeliveryWorker] = []
        self.sweeps = 0

    @classmethod
    def from_bus(cls, bus: Bus) -> EmbeddedDispatcher:
        return cls(bus.store, bus.settings,
                   lambda name: DeliveryWorker.from_bus(bus, name=name),
                   destinations=lambda: bus.reloader.current().table.destinations)

    def notify(self, accepted: Accepted) -> None:
        """Hands the new rows straight to the threads. The feeder is not woken: its
        query would only find these rows again; it is there for retries coming due and
        for rows left by an earlier process, and polls for those on its own."""
        self._scheduler.offer(accepted.deliveries, urgent=True)

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("EmbeddedDispatcher was already started")
        self._threads.append(threading.Thread(target=self._feed, name="lgsp-feeder",
                                              daemon=True))
        for index in range(max(self.settings.delivery_threads, 1)):
            self._threads.append(threading.Thread(target=self._serve, args=(index,),
                                                  name=f"lgsp-delivery-{index}", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stops after the attempts in progress; True when every thread has ended in time."""
        self._stop.set()
        self._wake.set()
        self._scheduler.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("embedded.stop_timeout", threads=alive)
        return not alive

    def _serve(self, index: int) -> None:
        worker = self.make_worker(f"embedded-{index}")
        self.workers.append(worker)
        try:
            while not self._stop.is_set():
                job = self._scheduler.take(self.settings.poll_interval_s)
                if job is None:
                    continue
                delivery, destination = job
                try:
                    worker.handle(delivery)
                except Exception:
                    log.exception("embedded.handle_failed", delivery=delivery)
                    self._stop.wait(1.0)
                finally:
                    self._scheduler.done(delivery, destination)
        finally:
            worker.close()

    def _feed(self) -> None:
        next_sweep = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.settings.sweep_interval_s
                self._sweep()
            try:
                self._refill()
            except Exception:
                log.exception("embedded.refill_failed")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def _sweep(self) -> None:
        try:
            returned = self.store.sweep(
                queued_older_than_s=self.settings.requeue_unclaimed_after_s)
            self.sweeps += 1
            if returned:
                log.info("embedded.swept", returned=returned)
        except Exception:
            log.exception("embedded.sweep_failed")

    def _refill(self) -> None:
        rows = self.store.due(limit=self.batch)
        self._scheduler.offer((row.id, row.destination) for row in rows)
        if len(rows) < self.batch:
            return
        for destination in self.destinations():
            if self._scheduler.backlog(destination) < self.batch:
                self._scheduler.offer(
                    (row.id, row.destination)
                    for row in self.store.due(limit=self.batch, destinations=[destination]))

"""The long-running processes: ``lgsp serve`` (HTTP, and by default delivery too) and
``lgsp worker`` (delivery only).

Which pieces run follows from two facts: whether a broker is configured, and whether this
process should deliver. Embedded (no broker): the database is the queue and delivery
threads poll it. Scaled out: ingress publishes each committed delivery to RabbitMQ and
workers consume it, with a relay in each worker catching what a crash left unpublished.
Every process reloads routes, the directory and credentials.yaml on SIGHUP and when any of
them changes; each is swapped whole, and an invalid edit keeps what was in force.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

import structlog

from bus import memory, registry
from bus.app import Bus
from bus.delivery import broker
from bus.evidence import Keeper
from bus.maintenance import retention
from bus.settings import Settings
from bus.store import text_indexer

log = structlog.get_logger("lgsp.runtime")


class _Stoppable(Protocol):
    def start(self) -> None: ...

    def stop(self, timeout: float = 30.0) -> bool: ...


def build_bus(settings: Settings) -> Bus:
    """A Bus whose routes are checked against the adapters actually installed."""
    bus = Bus(settings, known_adapters=sorted(registry.available()),
              validate_routes=registry.build_adapters)
    if not settings.embedded:
        url = settings.broker_url
        bus.readiness_checks.append(lambda: broker.ping(url))
    return bus


def delivery_loops(bus: Bus, *, deliver: bool) -> list[_Stoppable]:
    """Wires the dispatcher for this process and returns the loops it must run."""
    from bus.delivery.pollers import Pollers
    from bus.reconcile.schedule import ReconcileSchedule

    inbound: list[_Stoppable] = [Pollers(bus), ReconcileSchedule(bus)] if deliver else []
    if bus.settings.embedded:
        from bus.delivery.embedded import EmbeddedDispatcher

        embedded = EmbeddedDispatcher.from_bus(bus)
        if deliver:
            bus.dispatcher = embedded
            return [embedded, *inbound]
        return []
    bus.dispatcher = broker.RabbitDispatcher(bus.store, bus.settings.broker_url)
    return [broker.WorkerPool(bus), *inbound] if deliver else []


class _Watcher(threading.Thread):
    """Polls the configuration files' modification times; SIGHUP reloads all at once."""

    def __init__(self, bus: Bus) -> None:
        super().__init__(name="lgsp-config-watch", daemon=True)
        self.bus = bus
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.bus.settings.reload_check_s):
            try:
                self.bus.reload_if_changed()
            except Exception:
                log.exception("routes.watch_failed")

    def start(self) -> None:
        super().start()

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        self.join(timeout)
        return not self.is_alive()


def _on_sighup(bus: Bus) -> Callable[[int, object], None]:
    def handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=bus.reload, name="lgsp-sighup-reload", daemon=True).start()
    return handler


@contextlib.contextmanager
def running(bus: Bus, *, deliver: bool) -> Iterator[list[_Stoppable]]:
    """Starts the delivery loops and the config watcher; stops them on exit."""
    memory.tune()
    loops: list[_Stoppable] = [Keeper(bus.evidence), *delivery_loops(bus, deliver=deliver),
                               _Watcher(bus), memory.Releaser(),
                               *text_indexer.loops(bus.store.engine),
                               *retention.scheduled(bus.settings, bus.store.engine, bus.live)]
    if bus.settings.directory_sync_interval_s > 0 and deliver:
        from bus.directory.sync_cli import SyncSchedule

        loops.append(SyncSchedule(bus))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, _on_sighup(bus))
    for loop in loops:
        loop.start()
    bus.destinations.results()  # the first round of destination checks, before /readyz asks
    log.info("bus.started", embedded=bus.settings.embedded, deliver=deliver,
             database=bus.settings.effective_database_url.split("@")[-1])
    try:
        yield loops
    finally:
        for loop in reversed(loops):
            loop.stop(30.0)
        close = getattr(bus.dispatcher, "close", None)
        if close is not None:
            close()
        bus.close()
        log.info("bus.stopped")


def serve(settings: Settings, *, deliver: bool = True) -> None:
    """Runs the HTTP endpoints until SIGINT/SIGTERM, delivering too unless told not to.
    The server's limits, TLS and proxy trust come from the settings (:mod:`bus.server`)."""
    from bus.api.rest import create_app
    from bus.server import build_server

    bus = build_bus(settings)
    with running(bus, deliver=deliver):
        build_server(create_app(bus), settings).run()


def work(settings: Settings) -> None:
    """Delivers until SIGINT/SIGTERM; no HTTP."""
    bus = build_bus(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with running(bus, deliver=True):
        while not stop.wait(1.0):
            pass

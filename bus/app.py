"""The assembled bus: one object holding every long-lived component of a process.

``lgsp serve`` and ``lgsp worker`` both build a :class:`Bus` from :class:`Settings`;
what they then run on it (HTTP endpoints, delivery workers, or both) is their only
difference. Tests build one the same way, so they exercise the wiring production uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import structlog

from bus import errors
from bus.auth import Credentials, CredentialsFile
from bus.edxml import Limits
from bus.evidence import Evidence
from bus.ingress import Ingress, IngressSettings
from bus.lifecycle import metrics as lifecycle_metrics
from bus.lifecycle.overdue import DeadlineBook, OverdueCollector
from bus.maintenance.livelatency import LiveLatency
from bus.metrics import Metrics
from bus.ratelimit import RateLimiter
from bus.readiness import DestinationChecks
from bus.readiness import watch as watch_destinations
from bus.reloader import Reloader, RoutingConfig
from bus.routing import RouteTable
from bus.schemas import default_schemas
from bus.settings import Settings
from bus.store import Accepted, Store, outage_refused
from bus.store.blobs import Spool
from bus.store.large_objects import payload_store
from bus.store.tables import create_engine

log = structlog.get_logger("lgsp.app")


def _engine_bounds(url: str) -> dict[str, object]:
    """Bounds on waiting for a PostgreSQL server: a sender's request must be answered
    (503 Unavailable) within seconds when the database is down or unreachable, not hang
    on a TCP connect to a silent host or on a pool whose connections are all stuck."""
    if not url.startswith("postgresql"):
        return {}
    return {"connect_args": {"connect_timeout": 5}, "pool_timeout": 5}


class Dispatcher(Protocol):
    """Told about each committed document so delivery can start without waiting for a poll."""

    def notify(self, accepted: Accepted) -> None: ...


class _NoDispatch:
    def notify(self, accepted: Accepted) -> None:
        return None


class Bus:
    def __init__(self, settings: Settings, *, metrics: Metrics | None = None,
                 known_adapters: list[str] | None = None,
                 validate_routes: Callable[[RouteTable], object] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.effective_database_url,
                               **_engine_bounds(settings.effective_database_url))
        self.store = Store(engine, payload_store(settings, engine))
        self.store.create_schema()
        default_schemas()  # compiled now: a broken XSD stops start-up, not a request
        self.metrics.watch(self.store.depth)
        self.evidence = Evidence(self.store.engine, registry=self.metrics.registry)
        lifecycle_metrics.watch(self.metrics.registry, self.store.engine)
        self.credentials_file = CredentialsFile(settings.credentials)
        self.rate_limiter = RateLimiter()
        self.reloader = Reloader(settings.routes, settings.directory,
                                 known_adapters=known_adapters, on_change=self._reloaded,
                                 validate=validate_routes,
                                 lifecycle=settings.lifecycle_files(), zone=settings.zone)
        self.deadlines = DeadlineBook(self.store.engine,
                                      lambda: self.reloader.current().deadlines,
                                      payload_files=self.store.files)
        self.metrics.registry.register(OverdueCollector(
            self.deadlines, lambda: self.reloader.current().table.destinations,
            max_age_s=settings.overdue_gauge_max_age_s))
        self.dispatcher: Dispatcher = _NoDispatch()
        self.live = LiveLatency()  # accept latency: what a scheduled purge judges harm by
        self.readiness_checks: list[Callable[[], str | None]] = []
        self.destinations = DestinationChecks(lambda: self.reloader.current().table)
        watch_destinations(self.destinations, self.metrics.registry)
        self._seen_fingerprint = self.reloader.current().fingerprint
        self.change_listeners: list[Callable[[RoutingConfig], None]] = []
        self.ingress = Ingress(
            self.store, self.reloader,
            IngressSettings(
                bus_organ_id=settings.bus_organ_id, zone=settings.zone,
                limits=Limits(max_bytes=settings.max_body_bytes,
                              max_attachment_bytes=settings.max_attachment_bytes,
                              max_elements=settings.max_elements),
            ),
            on_accepted=self._accepted, on_committed=self.deadlines.settle,
            prepare=self.deadlines.prepare,
        )

    @property
    def credentials(self) -> Credentials:
        """Those in force now: read it once per request, a reload may swap it any time."""
        return self.credentials_file.current()

    @property
    def operator_systems(self) -> frozenset[str]:
        return self.credentials.operators

    def _accepted(self, accepted: Accepted) -> None:
        if not accepted.existing:
            self.dispatcher.notify(accepted)

    def _reloaded(self, config: RoutingConfig) -> None:
        self.metrics.config_reloads.labels("ok").inc()
        for listener in self.change_listeners:
            listener(config)

    def reload(self) -> bool:
        """SIGHUP: routes with the directory, and credentials; each kept if invalid."""
        credentials_ok = self.credentials_file.reload()
        return self._reload_routes() and credentials_ok

    def _reload_routes(self) -> bool:
        ok = self.reloader.reload()
        if not ok:
            self.metrics.config_reloads.labels("refused").inc()
        return ok

    def reload_if_changed(self) -> bool:
        """Reloads each file that changed since the last attempt, refused or not; True
        when a reload took effect."""
        reloaded = self.credentials_file.reload_if_changed() is True
        try:
            fingerprint = self.reloader.fingerprint()
        except OSError:
            return reloaded
        if fingerprint == self._seen_fingerprint:
            return reloaded
        self._seen_fingerprint = fingerprint
        return self._reload_routes() or reloaded

    def submit(self, data: bytes | Spool, *, system: str, channel: str, expect: str | None = None,
               source: tuple[str, str] | None = None) -> Accepted:
        """Ingress plus the door's metrics; every channel (REST, SOAP, pollers) calls this."""
        began = time.perf_counter()
        try:
            with outage_refused():
                accepted = self.ingress.submit(data, system=system, expect=expect,
                                               source=source)
        except errors.LgspError as exc:
            self.metrics.refused.labels(exc.code, channel).inc()
            if isinstance(data, bytes):
                self.evidence.refused(exc, channel, system=system, body=data)
            else:
                self.evidence.refused(exc, channel, system=system,
                                      spooled=(data.size, data.sha256))
            raise
        self.metrics.received.labels(accepted.receipt.get("kind", "edoc"), channel).inc()
        self.live.record(time.perf_counter() - began)
        return accepted

    def close(self) -> None:
        self.store.engine.dispose()

"""Evidence: a tamper-evident audit trail, door refusals in it, and per-document bundles.

* :mod:`bus.evidence.chain` seals the events table into a hash chain, off the ingest path;
* :mod:`bus.evidence.refusals` records door refusals as events, bounded per minute;
* :mod:`bus.evidence.verify` is ``lgsp audit verify``;
* :mod:`bus.evidence.purge` is how a retention purge records what it removes;
* :mod:`bus.evidence.bundle` builds and checks (offline) one document's evidence bundle.

:class:`Evidence` is what a :class:`~bus.app.Bus` holds; :class:`Keeper` is the loop
``lgsp serve`` and ``lgsp worker`` run: every second it writes buffered refusals and
seals, and once more when the process stops.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from bus.evidence.chain import Sealer
from bus.evidence.gauges import ChainCollector
from bus.evidence.purge import record_purge
from bus.evidence.refusals import RefusalLog, current_system

__all__ = ["Evidence", "Keeper", "record_purge"]

log = structlog.get_logger("lgsp.evidence")


class Evidence:
    def __init__(self, engine: Engine, *, margin_s: float = 10.0,
                 registry: CollectorRegistry | None = None) -> None:
        self.engine = engine
        self.refusals = RefusalLog()
        self.sealer = Sealer(engine, margin_s=margin_s)
        if registry is not None:
            registry.register(ChainCollector(engine))

    def refused(self, exc: Any, channel: str, *, system: str | None = None,
                body: bytes | None = None) -> None:
        """Notes a refusal at a door (an :class:`~bus.errors.LgspError`, or anything with
        ``code`` and ``message``); never raises, so it cannot turn a refusal into a 500."""
        try:
            self.refusals.record(str(getattr(exc, "code", type(exc).__name__)), channel,
                                 system=system or current_system(), body=body,
                                 message=str(getattr(exc, "message", "")) or None)
        except Exception:  # pragma: no cover - a bookkeeping failure must not refuse
            log.warning("evidence.refusal_not_recorded", exc_info=True)

    def tick(self, *, final: bool = False) -> int:
        """Writes buffered refusals, then seals what is ready; events sealed."""
        self.refusals.flush(self.engine, final=final)
        return self.sealer.seal_all()


class Keeper(threading.Thread):
    """The loop: a tick a second; a failing tick logs one line and is tried again."""

    def __init__(self, evidence: Evidence, interval_s: float = 1.0) -> None:
        super().__init__(name="lgsp-evidence", daemon=True)
        self.evidence = evidence
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self._tick(final=False)

    def _tick(self, *, final: bool) -> None:
        try:
            self.evidence.tick(final=final)
        except Exception as exc:
            if not self._failing:
                log.warning("evidence.seal_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self._failing = True
        else:
            self._failing = False

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        self.join(timeout)
        self._tick(final=True)
        return not self.is_alive()

"""The daily reconciliation, run by whichever delivering process gets the lease.

Every ``lgsp serve`` (with workers) and ``lgsp worker`` process runs this thread; each
minute it asks whether the previous day (in the bus's ``timezone``) has a finished
scheduled run once ``reconcile_at`` has passed. Only the process holding the database
lease runs it, and it checks again under the lease, so N processes make one run a day.
A failed run (axis down) is tried again every ``RETRY_S`` until one finishes.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import TYPE_CHECKING, Final

import structlog

from bus import registry
from bus.reconcile import engine, runs

if TYPE_CHECKING:
    from bus.app import Bus

log = structlog.get_logger("lgsp.reconcile.schedule")

LEASE: Final = "reconcile-axis"
LEASE_S: Final = 3600.0
RETRY_S: Final = 900.0
CHECK_S: Final = 60.0


def due_day(now: datetime, at: str) -> date:
    """The day a scheduled run should cover at ``now``: yesterday once ``at`` has passed
    today, else the day before (covered by yesterday's run, if the bus was up)."""
    hours, minutes = (int(part) for part in at.split(":"))
    passed = now.timetz().replace(tzinfo=None) >= clock(hours, minutes)
    return now.date() - timedelta(days=1 if passed else 2)


def has_axis(bus: Bus) -> bool:
    table = bus.reloader.current().table
    return any(callable(getattr(registry.adapter_class(d.adapter), "ledger", None))
               for d in table.destinations.values())


class ReconcileSchedule(threading.Thread):
    def __init__(self, bus: Bus, *, now: Callable[[], datetime] | None = None,
                 check_s: float = CHECK_S, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="lgsp-reconcile", daemon=True)
        self.bus = bus
        self.now = now or (lambda: datetime.now(bus.settings.zone))
        # Runs record their start on the wall clock; the retry interval is measured on it
        # too, whatever day ``now`` says it is.
        self.clock = clock
        self.check_s = check_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()

    def tick(self) -> str | None:
        """One check; returns the id of the run it made, if it made one."""
        at = self.bus.settings.reconcile_at
        if not at or not has_axis(self.bus):
            return None
        now = self.now()
        day = due_day(now, at).isoformat()
        store = self.bus.store.engine
        if runs.scheduled_done(store, day):
            return None
        last = runs.last_scheduled_attempt(store, day)
        if last is not None and self.clock() - last < RETRY_S:
            return None
        if not runs.acquire(store, LEASE, self.holder, LEASE_S):
            return None
        try:
            if runs.scheduled_done(store, day):
                return None
            result = engine.run(self.bus, date.fromisoformat(day), trigger="schedule",
                                actor=f"schedule:{self.holder}",
                                grace_s=self.bus.settings.reconcile_grace_s)
            return result.id
        finally:
            runs.release(store, LEASE, self.holder)

    def run(self) -> None:
        while not self.stopping.wait(self.check_s):
            try:
                self.tick()
            except Exception:
                log.exception("reconcile.schedule_failed")

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        self.join(timeout)
        return not self.is_alive()

"""A probe write: the smallest transaction that waits and commits as a live write does.

The purge's harm is what a live accept feels: on SQLite it queues for the one write lock
(``BEGIN IMMEDIATE``, then the busy handler's sleeps of 1, 2, 5, 10… ms) and then
commits with an fsync of the WAL; on PostgreSQL it shares the WAL flush and the disk with
the batch. The probe does the same without touching any table: on SQLite it takes the
write lock and writes the header's ``user_version`` back unchanged (a page in the WAL and
a durable commit), on PostgreSQL it takes a transaction id (``txid_current()``) so its
commit flushes a WAL record. No schema is needed and nothing a reader sees changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

Probe = Callable[[], float]
"""Runs one probe transaction; returns how long it took, waiting included (seconds)."""


def write_probe(engine: Engine) -> Probe:
    """A probe on ``engine``'s database (its own pooled connection each time)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
        statement = sa.text(f"PRAGMA user_version = {version}")
    else:
        statement = sa.text("SELECT txid_current()")

    def probe() -> float:
        began = time.perf_counter()
        with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, as every writer
            conn.execute(statement)
        return time.perf_counter() - began

    return probe


class Meeting:
    """A probe started beside a batch, so that it waits behind it as a live write would.

    :meth:`result` is None when the probe failed or outlived ``timeout_s``: no measure
    then, rather than a made-up one.
    """

    def __init__(self, probe: Probe, timeout_s: float = 30.0) -> None:
        self._probe, self._timeout_s = probe, timeout_s
        self._took: float | None = None
        self._thread = threading.Thread(target=self._run, name="lgsp-purge-probe",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._took = self._probe()
        except Exception:  # a probe that could not commit measures nothing
            self._took = None

    def result(self) -> float | None:
        self._thread.join(self._timeout_s)
        return None if self._thread.is_alive() else self._took

"""The serve process's recent accept latency, for the purge to judge its harm against.

A purge inside ``lgsp serve`` can see what matters: how long this process's live
submissions take. Each accepted submission (:meth:`bus.app.Bus.submit`, every channel)
adds its duration here; a purge starting in the same process takes the p99 of the
submissions of the last minutes *before* it as its reference (what "+50 %" is a fraction
of), and the submissions made while it runs are kept apart, so that the harm it causes
never raises its own reference, and its report can say what the live p99 became.

Recording is one monotonic clock read and one deque append (no lock: CPython's
``deque.append`` is atomic); at most :data:`KEEP` samples a side are kept, so memory is
bounded whatever the traffic.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Final

KEEP: Final = 4096
HORIZON_S: Final = 900.0
"""Quiet samples older than this do not count: the reference is the traffic of now."""
ENOUGH: Final = 100
"""Fewer samples give no p99 (the purge then keeps ``purge_live_ms``, its floor)."""


def p99(values: list[float]) -> float | None:
    """The 99th percentile by rank, or None with fewer than :data:`ENOUGH` values."""
    if len(values) < ENOUGH:
        return None
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, int(0.99 * len(ranked)))]


class LiveLatency:
    def __init__(self, keep: int = KEEP, horizon_s: float = HORIZON_S) -> None:
        self._quiet: deque[tuple[float, float]] = deque(maxlen=keep)
        self._during: deque[tuple[float, float]] = deque(maxlen=keep)
        self._purging = 0
        self._judged = float("-inf")
        self._lock = threading.Lock()
        self.horizon_s = horizon_s

    def record(self, seconds: float) -> None:
        """One accepted submission took ``seconds`` (called on every request)."""
        (self._during if self._purging else self._quiet).append((time.monotonic(), seconds))

    def _recent(self, side: deque[tuple[float, float]], since: float) -> list[float]:
        return [took for at, took in side.copy() if at >= since]

    def quiet_p99(self) -> float | None:
        """The p99 of the submissions of the last :attr:`horizon_s` with no purge running."""
        return p99(self._recent(self._quiet, time.monotonic() - self.horizon_s))

    def during_p99(self) -> float | None:
        """The p99 of the submissions made while the current (or last) purge ran."""
        return p99(self._recent(self._during, float("-inf")))

    def fresh_p99(self) -> float | None:
        """The p99 of the submissions made during the purge since the last call that gave
        one; None until there are :data:`ENOUGH` new ones (a window never overlaps the
        last, so each judgement is of the pacing's latest state)."""
        fresh = [(at, took) for at, took in self._during.copy() if at > self._judged]
        if len(fresh) < ENOUGH:
            return None
        self._judged = max(at for at, _ in fresh)
        return p99([took for _, took in fresh])

    @contextlib.contextmanager
    def purging(self) -> Iterator[None]:
        """Submissions from now until the end go to the purge's side, not the quiet one."""
        with self._lock:
            if not self._purging:
                self._during.clear()
                self._judged = float("-inf")
            self._purging += 1
        try:
            yield
        finally:
            with self._lock:
                self._purging -= 1

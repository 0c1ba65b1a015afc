"""Per-system request rates: a token bucket for each authenticated system.

One system in a retry loop must not take the bus from the others. Each system gets
``burst`` requests at once and ``per_second`` after that; a request over the rate is
refused with TooManyRequests and the seconds until the next one would pass (Retry-After).

The buckets live in this process: N ``lgsp serve`` processes behind a balancer admit up
to N times the configured rate. Buckets are keyed by authenticated system names only,
so their number is bounded by credentials.yaml, never by what callers send.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bus import errors


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


@dataclass
class _Bucket:
    rate: Rate
    tokens: float
    stamp: float


class RateLimiter:
    """Safe from the event loop and the threadpool alike (one short lock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def check(self, system: str, rate: Rate | None) -> None:
        """Takes one token from ``system``'s bucket or raises TooManyRequests.

        ``rate`` is the one in force now: a reload that changes it takes effect at once,
        keeping what the system had left (never more than the new burst).
        """
        if rate is None:
            return
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(system)
            if bucket is None:
                bucket = self._buckets[system] = _Bucket(rate, float(rate.burst), now)
            elif bucket.rate != rate:
                bucket.rate = rate
            bucket.tokens = min(float(rate.burst),
                                bucket.tokens + (now - bucket.stamp) * rate.per_second)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / rate.per_second
        retry_after = max(1, math.ceil(wait))
        raise errors.TooManyRequests(
            f"this system sent more than {rate.per_second:g} requests per second (burst "
            f"{rate.burst}); retry after {retry_after} s, and spread requests out or ask "
            "the bus operator for a higher rate", details={"retry_after": retry_after})

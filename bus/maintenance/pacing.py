"""How fast a retention purge may go beside live traffic: by the time it holds the database.

A fixed batch size is wrong in both directions: the same 50 documents take 3 ms on an
idle PostgreSQL and 300 ms on an SQLite file whose pages are cold, and the live writers
waiting behind a batch (SQLite has one writer; PostgreSQL's writers share index pages
and the disk) feel the batch's duration, not its size. So the purger sizes each batch
from the time the last ones held the database (from the lock taken to the commit done;
waiting for the lock is not holding it) — aiming at ``target_s`` per transaction, growing
at most twofold and shrinking at most fourfold per step — and then pauses at least as long as the
batch took: the purge holds the database at most half of the time and never for long at
a stretch, and on SQLite a writer that found the lock taken (its busy handler retries
after 1, 2, 5, 10, 15, 20, 25 ms…) finds it free at its next try.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Final

FIRST: Final = 8
"""Documents in the first batch: cheap everywhere, and the pacer's first measurement."""
GROW: Final = 2.0
SHRINK: Final = 4.0
MEMORY: Final = 5
"""Batches whose cost per document is remembered: the median of the last few, so one
fsync stall on a busy disk does not cut the next batches to a single document."""


@dataclass
class Pacer:
    target_s: float
    """A batch's transaction, commit included, should take about this long."""
    most: int
    """Documents per batch at most (settings.purge_batch)."""
    pause_s: float
    """Between two batches at least this long (settings.purge_pause_s)."""
    size: int = field(init=False)
    costs: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self.size = max(1, min(self.most, FIRST))
        self.costs = deque(maxlen=MEMORY)

    def after(self, documents: int, took_s: float) -> float:
        """Records a batch that removed ``documents`` in ``took_s``; returns the pause
        before the next one and sets :attr:`size` for it."""
        if documents > 0:
            self.costs.append(took_s / documents)
            ideal = self.target_s / max(statistics.median(self.costs), 1e-9)
            ideal = min(max(ideal, self.size / SHRINK), self.size * GROW)
            self.size = max(1, min(self.most, int(ideal)))
        return max(self.pause_s, took_s)

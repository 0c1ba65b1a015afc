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

import math
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


RARE: Final = 0.005
"""When even a one-document batch delays a live write beyond the budget, the purge makes
its batches rare instead: a live write meets one at most this often (1 in 200), below
what a p99 can see. (1 in 50 was tried: beside steady ingest at load 5, p99 3.1x at 14
documents/s, against 1.5x at 12 documents/s for 1 in 200.)"""

START_S: Final = 0.005
"""The first batches' length (at most the ceiling): short, until the probes have spoken."""
FLOOR_S: Final = 0.0005
QUIET: Final = 32
"""Idle probes remembered: the quiet baseline follows the machine's load."""
GROWTH: Final = 1.25
REFERENCE: Final = 0.97
"""The idle probes' percentile that stands for a live write's quiet p99."""


@dataclass
class HarmPacer:
    """Paces a purge by the delay its batches cause to a write of the live kind.

    A probe write (:mod:`bus.maintenance.probe`) is started the moment a batch holds the
    database, so it waits behind the batch as a live write arriving then would (on SQLite
    the busy handler's sleeps included); another is run at the end of each pause, with no
    batch in flight. The idle ones give the quiet baseline (their median) and the
    reference the slowdown is a fraction of (their 97th percentile, which carries the
    machine's fsync tail as a live write's p99 does, or ``live_s`` if more); the excess
    of a probe that met a batch over the baseline is the harm. Two batches in a row over
    ``max_slowdown`` × reference halve the batch's target length (sizing stays
    :class:`Pacer`'s), and once a batch is one document, double the pause instead, up to
    the point where one live write in 200 meets a batch; a batch within the budget undoes
    the pause first, then lengthens the batches by a quarter up to ``ceiling_s``.

    Beside unbroken ingest even one document a batch is harm, and rarity alone would
    never finish a large purge; so ``min_rate`` (documents/s) is a floor the pacing never
    goes below: the pause is cut to what keeps each batch's cycle at ``min_rate``, and when
    even the shortest pause cannot, the batch takes more documents (:attr:`held` tells that
    the floor decided, so the purge can say so).
    """

    max_slowdown: float
    ceiling_s: float
    """No batch is sized to hold the database longer than this (settings.purge_batch_ms)."""
    most: int
    pause_s: float
    live_s: float = 0.0
    """A live request's quiet p99 at least (settings.purge_live_ms): the probe is the
    database's part of a live request only, and the slowdown is a fraction of the whole."""
    sizer: Pacer = field(init=False)
    quiet: deque[float] = field(init=False)
    excess: deque[float] = field(init=False)
    min_rate: float = 0.0
    """Documents a second at least, whatever the harm (settings.purge_min_docs_per_s)."""
    stretch: float = field(init=False, default=1.0)
    """The pause is this many times the batch's duration (1: the purge holds the database
    at most half of the time)."""
    held: bool = field(init=False, default=False)
    """The last pause and size were set by the floor, not by the harm."""

    def __post_init__(self) -> None:
        self.sizer = Pacer(min(self.ceiling_s, START_S), self.most, self.pause_s)
        self.quiet = deque(maxlen=QUIET)
        self.excess = deque(maxlen=2)

    @property
    def size(self) -> int:
        return self.sizer.size

    @property
    def target_s(self) -> float:
        return self.sizer.target_s

    def idle(self, probe_s: float) -> None:
        """Records a probe taken with no batch in flight."""
        self.quiet.append(probe_s)

    def baseline(self) -> float:
        return statistics.median(self.quiet) if self.quiet else 0.0

    def budget(self) -> float:
        """How much longer than quietly a live write may take because of a batch."""
        ranked = sorted(self.quiet) or [0.0]
        return self.max_slowdown * max(self.live_s,
                                       ranked[int(REFERENCE * (len(ranked) - 1))])

    def after(self, documents: int, took_s: float, probe_s: float | None) -> float:
        """Records a batch and what the probe that met it took (None: no probe); returns
        the pause before the next batch and sets :attr:`size` for it."""
        self.sizer.after(documents, took_s)
        if probe_s is not None:
            self.excess.append(probe_s - self.baseline())
            budget = self.budget()
            if len(self.excess) == self.excess.maxlen and min(self.excess) > budget:
                self._harmful(took_s)
            elif self.excess[-1] <= budget:
                self._harmless()
        return self._floor(max(self.pause_s, took_s * self.stretch))

    def judge_live(self, p99_s: float) -> None:
        """Records the p99 of the live submissions made since the last judgement (inside
        serve, where they are known): over (1 + max_slowdown) × the quiet p99 (``live_s``)
        is harm whatever the probes said (the harm may be CPU, which a probe barely
        feels on a loaded machine), within it lets the pacing relax a step."""
        if p99_s > (1 + self.max_slowdown) * self.live_s:
            self._harmful(0.0)
        else:
            self._harmless()

    def _floor(self, pause: float) -> float:
        """The pause, cut (and the next batch enlarged) so the purge keeps ``min_rate``."""
        self.held = False
        if self.min_rate <= 0 or not self.sizer.costs:
            return pause
        per_doc = statistics.median(self.sizer.costs)
        size = self.sizer.size
        room = size / self.min_rate - size * per_doc
        if room >= pause:
            return pause
        self.held = True
        if room < self.pause_s:  # the cycle is too long even with the shortest pause
            size = max(size + 1, math.ceil(self.min_rate * (size * per_doc + self.pause_s)))
            self.sizer.size = min(self.most, size)
            room = self.sizer.size / self.min_rate - self.sizer.size * per_doc
        return max(self.pause_s, room)

    def _harmful(self, took_s: float) -> None:
        self.excess.clear()
        if self.sizer.size > 1 and self.sizer.target_s > FLOOR_S:
            self.sizer.target_s = max(FLOOR_S, self.sizer.target_s / 2)
            self.sizer.size = max(1, self.sizer.size // 2)
        else:
            self.stretch = min(self.stretch * 2, 1 / RARE)

    def _harmless(self) -> None:
        if self.stretch > 1:
            self.stretch = max(1.0, self.stretch / 2)
        else:
            self.sizer.target_s = min(self.ceiling_s, self.sizer.target_s * GROWTH)

"""Items a polled platform keeps answering badly are fetched less and less often.

A document the national axis or HCM Egov holds broken (cut short, bad base64) stays
listed: without this, every poll would download it again, which for a 500 MB scan is
667 MB a minute for as long as nobody mends it. The first failure is retried at the next
poll (a blip on the line should cost nothing); from the second on, the item waits twice
as many poll intervals each time, up to ``cap_s``. Memory only: after a restart each
item gets its free retry again, which is cheap next to keeping state about the
platform's items.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

CAP_S: Final = 3600.0


@dataclass
class _Failing:
    failures: int
    next_try: float


class ItemBackoff:
    def __init__(self, interval_s: float, *, cap_s: float = CAP_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.cap_s = cap_s
        self.clock = clock
        self._failing: dict[str, _Failing] = {}

    def due(self, item: str) -> bool:
        failing = self._failing.get(item)
        return failing is None or self.clock() >= failing.next_try

    def failed(self, item: str) -> float:
        """Records a failed fetch; the seconds before the item is tried again."""
        failing = self._failing.setdefault(item, _Failing(0, 0.0))
        failing.failures += 1
        wait = 0.0 if failing.failures == 1 else min(
            self.cap_s, self.interval_s * 2 ** (failing.failures - 1))
        failing.next_try = self.clock() + wait
        return wait

    def settled(self, item: str) -> None:
        """Taken, or refused for good: nothing more to wait for."""
        self._failing.pop(item, None)

    def listed(self, items: Iterable[str]) -> None:
        """Forgets items the axis no longer lists (taken by another poller, withdrawn)."""
        keep = set(items)
        for item in [i for i in self._failing if i not in keep]:
            del self._failing[item]

    def waiting(self) -> int:
        return sum(1 for failing in self._failing.values() if self.clock() < failing.next_try)

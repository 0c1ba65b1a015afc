"""The embedded queue's hand-over (bus.delivery.embedded._Scheduler): wake-ups cost CPU.

Every wake-up of a delivery thread is a context switch and a fight for the GIL with the
request threads; a wake-up with nothing to take is pure cost, paid after every delivery
when ``done`` woke a thread regardless. ``done`` must wake one only when the finished
destination has a backlog its cap held back, and then it must, promptly.
"""

from __future__ import annotations

import threading
import time

from bus.delivery.embedded import _Scheduler


class CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def _scheduler(per_destination: int) -> tuple[_Scheduler, CountingCondition]:
    scheduler = _Scheduler(per_destination)
    cond = CountingCondition()
    scheduler.cond = cond
    return scheduler, cond


def test_finishing_with_no_backlog_wakes_nobody() -> None:
    scheduler, cond = _scheduler(per_destination=3)
    scheduler.offer([("d1", "office")], urgent=True)
    assert scheduler.take(timeout=1.0) == ("d1", "office")
    before = cond.notified
    scheduler.done("d1", "office")
    assert cond.notified == before


def test_a_backlog_held_by_the_cap_is_taken_as_soon_as_a_slot_frees() -> None:
    scheduler, _ = _scheduler(per_destination=1)
    scheduler.offer([("d1", "office"), ("d2", "office")], urgent=True)
    assert scheduler.take(timeout=1.0) == ("d1", "office")
    taken: list[tuple[tuple[str, str] | None, float]] = []

    def second() -> None:
        job = scheduler.take(timeout=5.0)
        taken.append((job, time.monotonic()))

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.2)  # the second thread waits: the destination is at its cap
    assert not taken
    freed = time.monotonic()
    scheduler.done("d1", "office")
    thread.join(5.0)
    assert taken and taken[0][0] == ("d2", "office")
    assert taken[0][1] - freed < 1.0  # woken by done, not by its own timeout
    scheduler.done("d2", "office")
    scheduler.close()

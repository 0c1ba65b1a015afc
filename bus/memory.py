"""Giving memory back to the operating system after large requests.

The bus legitimately holds a large body for the length of one request (scanned
attachments of 10–100 MB, the cap is 150 MB), and refuses large hostile ones just as
often. What it must not do is keep that memory afterwards, and with the defaults it did:
an outside battery of large refused inputs took a ``lgsp serve`` process from 96 MB to
791 MB, and it stayed there. Two things held it, and both must be handled:

* reference cycles. A refusal raised in a worker thread reaches the endpoint through
  the asyncio future anyio awaits; future → exception → traceback → the awaiting frame
  → future is a cycle, and the traceback's frames hold the packet (the endpoint's, the
  ingress's, the reader's). Only the cyclic collector frees it, and it runs on counts
  of allocated objects, not bytes: an idle server after a burst keeps every such body;
* glibc's allocator. Its mmap threshold is dynamic (freeing one 30 MB buffer raises it
  to 30 MB, so later large buffers come from heaps that return pages only from their
  top), and every thread gets its own arena (up to eight per core) with its own
  high-water mark.

So, at process start (:func:`tune`), a fixed mmap threshold of 1 MiB (a large buffer is
its own mapping, unmapped when freed) and at most two arenas (the GIL serialises most
allocation anyway); and while running, a :class:`Releaser` that collects cycles and
calls ``malloc_trim(0)`` while the process sits above its floor. Each half alone left
the battery's process 50–130 MB up; together it comes back within a few MB. An
operator's own ``MALLOC_ARENA_MAX``/``MALLOC_MMAP_THRESHOLD_``/``GLIBC_TUNABLES`` win.
Without glibc only the collection runs; without /proc (to read the resident size),
nothing does.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from functools import cache
from typing import Final

import structlog

log = structlog.get_logger("lgsp.memory")

M_MMAP_THRESHOLD: Final = -3   # glibc's mallopt parameter numbers (malloc.h)
M_ARENA_MAX: Final = -8
MMAP_THRESHOLD: Final = 1 << 20
ARENA_MAX: Final = 2
CHECK_S: Final = 1.0
SLACK_BYTES: Final = 32 << 20
MAX_DELAY_S: Final = 300.0


@cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def _operator_set(variable: str, tunable: str) -> bool:
    return variable in os.environ or tunable in os.environ.get("GLIBC_TUNABLES", "")


def tune() -> dict[str, int]:
    """Sets the allocator for a long-running server; call before threads start.
    Returns what was set (empty when not glibc or the operator chose)."""
    libc = _glibc()
    if libc is None:
        return {}
    done: dict[str, int] = {}
    if not _operator_set("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold") \
            and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1:
        done["mmap_threshold"] = MMAP_THRESHOLD
    if not _operator_set("MALLOC_ARENA_MAX", "glibc.malloc.arena_max") \
            and libc.mallopt(M_ARENA_MAX, ARENA_MAX) == 1:
        done["arena_max"] = ARENA_MAX
    log.info("memory.tuned", **done)
    return done


def trim() -> bool:
    """Returns the allocator's free pages to the system; True if any were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def resident_bytes() -> int:
    """This process's resident set size, 0 where /proc is not available."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Releaser(threading.Thread):
    """Collects reference cycles and trims the allocator while the process sits above
    its floor (the lowest resident size seen) by more than ``slack``.

    An attempt that does not bring the process back near its floor is retried after a
    delay that doubles up to ``max_delay_s``, so memory the process really uses costs
    one collection (tens of milliseconds) per ``max_delay_s``; a move of more than
    ``slack`` since the last attempt starts the schedule again. A process that holds
    still near its floor is never touched.
    """

    def __init__(self, *, interval_s: float = CHECK_S, slack: int = SLACK_BYTES,
                 max_delay_s: float = MAX_DELAY_S) -> None:
        super().__init__(name="lgsp-memory", daemon=True)
        self.interval_s = interval_s
        self.slack = slack
        self.max_delay_s = max_delay_s
        self.stopping = threading.Event()
        self.releases = 0

    def run(self) -> None:
        if resident_bytes() == 0:
            return
        floor = resident_bytes()
        tried_at = floor
        delay = self.interval_s
        due = time.monotonic()
        while not self.stopping.wait(self.interval_s):
            now = resident_bytes()
            if now <= floor + self.slack:
                floor, delay = min(floor, now), self.interval_s
                continue
            moment = time.monotonic()
            if abs(now - tried_at) > self.slack:
                delay, due = self.interval_s, moment
            if moment < due:
                continue
            tried_at = self.release()
            log.debug("memory.released", before=now, after=tried_at, floor=floor)
            if tried_at <= floor + self.slack:
                delay = self.interval_s
            else:
                delay = min(delay * 2, self.max_delay_s)
            due = moment + delay

    def release(self) -> int:
        """One full collection and a trim; returns the resident size after them."""
        gc.collect()
        trim()
        self.releases += 1
        return resident_bytes()

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
        return not self.is_alive()

"""A process's resident size, read from /proc, for the tests that bound memory.

The memory tests watch a real ``lgsp serve`` (or the test process itself) from outside,
so they read what the kernel charges it rather than what Python's allocator thinks.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import threading
from typing import Final

MB: Final = 1024 * 1024
BOUND: Final = 256 * MB
"""Issue 16: the serve process's resident size rises by at most this, whatever the size."""


def resident(pid: int | str) -> int:
    """Bytes resident; ``"self"`` is this process (the fuzz tests' audit hook allows
    /proc/self, and flags any other path the process opens)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class PeakRss:
    """Samples a process's resident size every 10 ms until stopped; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = resident(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, resident(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def own_mb() -> float:
    """This process's resident size in MiB."""
    return resident("self") / MB


def settled_mb() -> float:
    """This process's resident size after a full collection and, with glibc, a heap trim,
    so that what is measured is what the process holds, not what malloc keeps cached."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return own_mb()

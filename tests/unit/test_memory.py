"""bus.memory: the allocator settings and the thread that gives memory back.

The end-to-end proof is tests/reliability/test_memory.py (a real ``lgsp serve`` and a
hostile battery); these check the pieces in this process, with automatic collection off
so that only the Releaser can free what the test leaves in a reference cycle.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator

import pytest

from bus import memory

MB = 1024 * 1024

pytestmark = pytest.mark.skipif(memory.resident_bytes() == 0 or memory._glibc() is None,
                                reason="needs Linux /proc and glibc")


class Cycle:
    """Holds a large buffer and itself, as a refused request's traceback did."""

    def __init__(self, size: int) -> None:
        self.me = self
        self.data = b"\x5a" * size


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_cycle_holding_a_large_buffer_is_released(no_automatic_gc: None) -> None:
    # A bus still running in this process (a fixture of another test module) has its
    # own Releaser, which may get to the cycle first: any Releaser's release counts.
    others = {t: t.releases for t in threading.enumerate() if isinstance(t, memory.Releaser)}
    releaser = memory.Releaser(interval_s=0.05, slack=16 * MB)
    releaser.start()
    try:
        time.sleep(0.2)
        before = memory.resident_bytes()
        cycle = Cycle(96 * MB)
        alive = weakref.ref(cycle)
        assert memory.resident_bytes() > before + 64 * MB
        del cycle
        def released() -> int:   # counted once the release (collect + trim) is done
            return releaser.releases + sum(t.releases - n for t, n in others.items())

        deadline = time.monotonic() + 10
        while (alive() is not None or released() < 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive() is None and released() >= 1
        assert memory.resident_bytes() < before + 32 * MB
    finally:
        assert releaser.stop(5)


def test_a_process_that_holds_still_is_left_alone(no_automatic_gc: None) -> None:
    releaser = memory.Releaser(interval_s=0.05, slack=16 * MB)
    releaser.start()
    try:
        time.sleep(0.5)
        assert releaser.releases == 0
    finally:
        assert releaser.stop(5)


def test_memory_really_in_use_is_retried_with_a_growing_delay(no_automatic_gc: None) -> None:
    releaser = memory.Releaser(interval_s=0.02, slack=16 * MB, max_delay_s=0.32)
    releaser.start()
    try:
        time.sleep(0.1)
        kept = b"\x5a" * (64 * MB)
        time.sleep(1.5)
        # 0.02 s ticks for 1.5 s would be 75 attempts; doubling delays give about eight
        assert 2 <= releaser.releases <= 12
        assert len(kept) == 64 * MB
    finally:
        assert releaser.stop(5)


def test_tune_sets_glibc_and_leaves_an_operators_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert memory.tune() == {"mmap_threshold": memory.MMAP_THRESHOLD,
                             "arena_max": memory.ARENA_MAX}
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert memory.tune() == {}

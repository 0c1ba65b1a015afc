"""bus.memory: the allocator settings and the thread that gives memory back.

The end-to-end proof is tests/reliability/test_memory.py (a real ``lgsp serve`` and a
hostile battery); these check the pieces. Each scenario runs in a fresh interpreter with
automatic collection off, so that only the Releaser can free what it leaves in a
reference cycle: inside the test process, the heap and threads of other modules' buses
(their own Releasers, their garbage, their frees) moved the resident size the Releaser
measures its floor against, and the scenario failed one run in a few hundred.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from bus import memory

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(memory.resident_bytes() == 0 or memory._glibc() is None,
                                reason="needs Linux /proc and glibc")


class Cycle:
    """Holds a large buffer and itself, as a refused request's traceback did."""

    def __init__(self, size: int) -> None:
        self.me = self
        self.data = b"\x5a" * size


def cycle_is_released() -> None:
    releaser = memory.Releaser(interval_s=0.05, slack=16 * MB)
    releaser.start()
    try:
        time.sleep(0.2)
        before = memory.resident_bytes()
        cycle = Cycle(96 * MB)
        alive = weakref.ref(cycle)
        assert memory.resident_bytes() > before + 64 * MB
        del cycle
        deadline = time.monotonic() + 10
        while (alive() is not None or releaser.releases < 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive() is None and releaser.releases >= 1
        assert memory.resident_bytes() < before + 32 * MB
    finally:
        assert releaser.stop(5)


def still_process_is_left_alone() -> None:
    releaser = memory.Releaser(interval_s=0.05, slack=16 * MB)
    releaser.start()
    try:
        time.sleep(0.5)
        assert releaser.releases == 0
    finally:
        assert releaser.stop(5)


def memory_in_use_is_retried_with_a_growing_delay() -> None:
    releaser = memory.Releaser(interval_s=0.02, slack=16 * MB, max_delay_s=0.32)
    releaser.start()
    try:
        time.sleep(0.1)
        kept = b"\x5a" * (64 * MB)
        time.sleep(1.5)
        # 0.02 s ticks for 1.5 s would be 75 attempts; doubling delays give about eight
        assert 2 <= releaser.releases <= 12, releaser.releases
        assert len(kept) == 64 * MB
    finally:
        assert releaser.stop(5)


def _in_fresh_interpreter(scenario: str) -> None:
    code = ("import gc, sys; gc.collect(); gc.disable(); "
            f"from tests.unit.test_memory import {scenario}; {scenario}()")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("scenario", ["cycle_is_released", "still_process_is_left_alone",
                                      "memory_in_use_is_retried_with_a_growing_delay"])
def test_releaser(scenario: str) -> None:
    _in_fresh_interpreter(scenario)


"""The purge's progress floor and its judgement by the live submissions: whatever the
harm, the pacing never goes below purge_min_docs_per_s; inside serve, the p99 of the
process's own submissions during the purge counts as harm beyond (1 + max_slowdown) × the
quiet p99."""

from __future__ import annotations

import pytest

from bus.maintenance.pacing import RARE, HarmPacer

MS = 0.001


def _pacer(min_rate: float, pause_s: float = 0.0, live_s: float = 10 * MS) -> HarmPacer:
    pacer = HarmPacer(0.5, 100 * MS, 500, pause_s, live_s, min_rate)
    for _ in range(8):
        pacer.idle(2 * MS)
    pacer.sizer.size = 1
    return pacer


def _harmed(pacer: HarmPacer, took_s: float, times: int = 40) -> list[float]:
    """Every batch of one document delays the probe beside it by 20 ms (harm)."""
    return [pacer.after(1, took_s, 22 * MS) for _ in range(times)]


def test_without_a_floor_harm_spaces_the_batches_out_to_one_write_in_200() -> None:
    pacer = _pacer(min_rate=0)
    assert _harmed(pacer, 10 * MS)[-1] == pytest.approx(10 * MS / RARE)
    assert not pacer.held


def test_the_floor_cuts_the_pause_to_what_keeps_its_rate() -> None:
    pacer = _pacer(min_rate=30)
    pauses = _harmed(pacer, 10 * MS)
    assert pacer.held
    assert max(pauses) == pytest.approx(1 / 30 - 10 * MS)  # one document every 1/30 s
    assert pacer.size == 1
    # the harm is remembered (the floor only caps the pause it asks for), so batches stay
    # at the floor while harm lasts, instead of growing back at the first quiet probe
    assert pacer.stretch == 1 / RARE
    pacer.after(1, 10 * MS, 3 * MS)
    assert pacer.after(1, 10 * MS, 3 * MS) == pytest.approx(1 / 30 - 10 * MS)


def test_when_even_the_shortest_pause_misses_the_floor_batches_take_more_documents() -> None:
    pacer = _pacer(min_rate=60, pause_s=10 * MS)
    pauses = _harmed(pacer, 20 * MS, times=4)  # 20 ms a document: 1 per 30 ms < 60/s
    assert pacer.held
    assert pacer.size == 2  # ceil(60 × (20 ms + 10 ms))
    assert pauses[-1] == pytest.approx(10 * MS)


def test_a_floor_that_does_not_bind_changes_nothing() -> None:
    slow, floored = _pacer(min_rate=0), _pacer(min_rate=0.01)
    assert _harmed(slow, 10 * MS) == _harmed(floored, 10 * MS)
    assert not floored.held


def test_live_submissions_slowed_beyond_the_budget_are_harm_whatever_the_probes_say() -> None:
    pacer = _pacer(min_rate=0)
    for _ in range(3):
        pacer.judge_live(16 * MS)  # 1.6 × the quiet 10 ms
    assert pacer.stretch == 8.0  # one document a batch: the pause doubles each time
    pacer.judge_live(14 * MS)  # within 1.5 ×: a step back
    assert pacer.stretch == 4.0

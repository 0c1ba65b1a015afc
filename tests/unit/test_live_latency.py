"""The serve process's accept latency as a purge's reference: the quiet p99 before the
purge, the submissions during it kept apart, fresh windows that never overlap."""

from __future__ import annotations

import timeit

import pytest

from bus.maintenance.livelatency import ENOUGH, LiveLatency, p99

MS = 0.001


def test_no_p99_from_fewer_than_enough_submissions() -> None:
    live = LiveLatency()
    for _ in range(ENOUGH - 1):
        live.record(5 * MS)
    assert live.quiet_p99() is None
    live.record(5 * MS)
    assert live.quiet_p99() == pytest.approx(5 * MS)


def test_p99_is_the_rank_of_the_slowest_hundredth() -> None:
    values = [i * MS for i in range(1, 201)]  # 1..200 ms
    assert p99(values) == pytest.approx(199 * MS)


def test_what_the_purge_slows_down_never_raises_its_own_reference() -> None:
    live = LiveLatency()
    for _ in range(200):
        live.record(5 * MS)
    with live.purging():
        for _ in range(200):
            live.record(50 * MS)
        assert live.quiet_p99() == pytest.approx(5 * MS)
        assert live.during_p99() == pytest.approx(50 * MS)
    live.record(5 * MS)
    assert live.during_p99() == pytest.approx(50 * MS)  # the last purge's, for its report


def test_fresh_windows_judge_only_what_came_since_the_last() -> None:
    live = LiveLatency()
    with live.purging():
        for _ in range(ENOUGH):
            live.record(40 * MS)
        assert live.fresh_p99() == pytest.approx(40 * MS)
        assert live.fresh_p99() is None
        for _ in range(ENOUGH):
            live.record(6 * MS)
        assert live.fresh_p99() == pytest.approx(6 * MS)


def test_old_quiet_submissions_do_not_count() -> None:
    live = LiveLatency(horizon_s=0.0)
    for _ in range(200):
        live.record(5 * MS)
    assert live.quiet_p99() is None


def test_recording_costs_next_to_nothing_per_request() -> None:
    live = LiveLatency()
    per_call = min(timeit.repeat(lambda: live.record(5 * MS), number=10_000, repeat=3)) / 10_000
    assert per_call < 20e-6  # measured ~0.2 µs; a request is milliseconds

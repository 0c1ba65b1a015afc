"""The benchmark's small version: 120 records beside live traffic, verified."""

from __future__ import annotations

from tests.bench.bench_migrate import measure


def test_a_small_archive_migrates_beside_live_traffic() -> None:
    figures = measure(120, live_rate=4.0, small=True, baseline_s=2.0)
    assert figures.verified
    assert figures.live_without and figures.live_during
    assert 0 < figures.peak_rss_mb < 400
    assert figures.run_s > 0 and figures.plan_s > 0

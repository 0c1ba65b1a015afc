"""The purge's pacer: batches sized by the time they take, pauses at least as long."""

from __future__ import annotations

from bus.maintenance.pacing import FIRST, Pacer


def test_batches_grow_towards_the_target_time_and_no_faster_than_twofold() -> None:
    pacer = Pacer(target_s=0.020, most=500, pause_s=0.0)
    sizes = [pacer.size]
    for _ in range(6):  # 1 ms a document: the target is 20 documents
        pacer.after(pacer.size, pacer.size * 0.001)
        sizes.append(pacer.size)
    assert sizes == [FIRST, 16, 20, 20, 20, 20, 20]


def test_a_slow_batch_shrinks_the_next_at_most_fourfold_down_to_one() -> None:
    pacer = Pacer(target_s=0.020, most=500, pause_s=0.0)
    pacer.size = 200
    pacer.after(200, 2.0)  # 10 ms a document: 2 would do, a quarter at most
    assert pacer.size == 50
    pacer.after(50, 0.5)
    assert pacer.size == 12
    for _ in range(5):
        pacer.after(pacer.size, pacer.size * 1.0)  # 1 s a document
    assert pacer.size == 1


def test_the_batch_never_exceeds_the_configured_most() -> None:
    pacer = Pacer(target_s=1.0, most=30, pause_s=0.0)
    for _ in range(10):
        pacer.after(pacer.size, 0.0)
    assert pacer.size == 30
    assert Pacer(target_s=0.02, most=3, pause_s=0.0).size == 3


def test_the_pause_is_at_least_the_batch_and_at_least_the_setting() -> None:
    pacer = Pacer(target_s=0.020, most=500, pause_s=0.05)
    assert pacer.after(8, 0.3) == 0.3
    assert pacer.after(8, 0.01) == 0.05


def test_a_batch_that_removed_nothing_leaves_the_size() -> None:
    pacer = Pacer(target_s=0.020, most=500, pause_s=0.0)
    pacer.after(0, 5.0)
    assert pacer.size == FIRST


def test_one_stalled_commit_does_not_cut_the_batches() -> None:
    """A busy disk stalls an fsync now and then (300 ms here, against 20 ms per batch)."""
    pacer = Pacer(target_s=0.020, most=500, pause_s=0.0)
    for _ in range(4):
        pacer.after(pacer.size, pacer.size * 0.001)
    assert pacer.size == 20
    pacer.after(20, 0.3)
    assert pacer.size == 20
    pacer.after(20, 0.3)
    pacer.after(20, 0.3)  # slow for good now: the median follows
    assert pacer.size == 5

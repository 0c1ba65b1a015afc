"""The purge's harm pacer: batches shrink, then pauses lengthen, while a probe write that
met a batch waited longer than the budget; both come back when it did not."""

from __future__ import annotations

import pytest

from bus.maintenance.pacing import RARE, HarmPacer

MS = 0.001


def _quiet(pacer: HarmPacer, probe_s: float = 2 * MS, times: int = 8) -> None:
    for _ in range(times):
        pacer.idle(probe_s)


def _pacer(**overrides: float) -> HarmPacer:
    values: dict[str, float] = {"max_slowdown": 0.5, "ceiling_s": 100 * MS, "most": 500,
                                "pause_s": 0.0, "live_s": 10 * MS}
    values.update(overrides)
    pacer = HarmPacer(values["max_slowdown"], values["ceiling_s"], int(values["most"]),
                      values["pause_s"], values["live_s"])
    _quiet(pacer)
    return pacer


def test_the_budget_is_a_fraction_of_the_live_latency_or_of_the_probes_tail() -> None:
    pacer = _pacer()
    assert pacer.budget() == pytest.approx(5 * MS)  # 0.5 × the 10 ms floor
    _quiet(pacer, 40 * MS, times=32)  # a busy disk: every live write is slow too
    assert pacer.budget() == pytest.approx(20 * MS)
    assert pacer.baseline() == pytest.approx(40 * MS)


def test_batches_grow_while_the_probes_meet_no_harm() -> None:
    pacer = _pacer()
    targets = [pacer.target_s]
    for _ in range(12):  # 0.1 ms a document; a probe behind the batch waits 1 ms more
        pacer.after(pacer.size, pacer.size * 0.1 * MS, 3 * MS)
        targets.append(pacer.target_s)
    assert targets == sorted(targets)
    assert targets[-1] > 4 * targets[0]
    assert pacer.stretch == 1.0


def test_batches_shrink_when_two_probes_in_a_row_waited_beyond_the_budget() -> None:
    pacer = _pacer()
    pacer.sizer.target_s, pacer.sizer.size = 40 * MS, 400
    pacer.after(400, 40 * MS, 44 * MS)  # one slow probe: a stall, not yet harm
    assert pacer.target_s == pytest.approx(40 * MS)
    pacer.after(400, 40 * MS, 44 * MS)
    assert pacer.target_s == pytest.approx(20 * MS)
    assert pacer.size == 200
    assert pacer.stretch == 1.0


def test_at_one_document_the_pause_lengthens_until_batches_are_rare() -> None:
    pacer = _pacer()
    pacer.sizer.size = 1
    pauses = []
    for _ in range(40):  # every batch, one document, delays a live write by 20 ms
        pauses.append(pacer.after(1, 10 * MS, 22 * MS))
    assert pacer.size == 1
    assert pauses[1] == pytest.approx(20 * MS)
    assert pauses[-1] == pytest.approx(10 * MS / RARE)
    assert max(pauses) == pauses[-1]


def test_without_harm_the_pause_comes_back_before_the_batches_grow() -> None:
    pacer = _pacer()
    pacer.sizer.size = 1
    for _ in range(20):
        pacer.after(1, 10 * MS, 22 * MS)
    assert pacer.stretch > 1
    target = pacer.target_s
    for _ in range(12):  # bounded: a pause that never comes back fails below
        if pacer.stretch == 1:
            break
        pacer.after(1, 1 * MS, 3 * MS)
        assert pacer.target_s == target
    assert pacer.stretch == 1
    assert pacer.after(1, 1 * MS, 3 * MS) == pytest.approx(1 * MS)
    assert pacer.target_s > target


def test_no_probe_no_judgement_and_the_pause_stays_at_least_the_setting() -> None:
    pacer = _pacer(pause_s=0.05)
    target = pacer.target_s
    assert pacer.after(8, 1 * MS, None) == 0.05
    assert pacer.after(8, 1 * MS, None) == 0.05
    assert pacer.target_s == target


def test_batches_are_never_sized_beyond_the_ceiling() -> None:
    pacer = _pacer(ceiling_s=8 * MS)
    for _ in range(40):
        pacer.after(pacer.size, pacer.size * 0.1 * MS, 2 * MS)
    assert pacer.target_s == pytest.approx(8 * MS)
    assert pacer.size == 80

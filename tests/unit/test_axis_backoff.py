"""The national axis adapter's back-off for items whose fetch keeps failing."""

from __future__ import annotations

from adapters._backoff import ItemBackoff


def backoff(cap_s: float = 3600.0) -> tuple[ItemBackoff, list[float]]:
    now = [0.0]
    return ItemBackoff(60.0, cap_s=cap_s, clock=lambda: now[0]), now


def test_the_wait_doubles_from_the_second_failure_up_to_the_cap() -> None:
    items, _ = backoff(cap_s=1000.0)
    assert [items.failed("a") for _ in range(6)] == [0.0, 120.0, 240.0, 480.0, 960.0, 1000.0]


def test_an_item_is_due_again_when_its_wait_is_over() -> None:
    items, now = backoff()
    items.failed("a")
    assert items.due("a")
    items.failed("a")
    assert not items.due("a") and items.due("b")
    now[0] = 119.9
    assert not items.due("a") and items.waiting() == 1
    now[0] = 120.0
    assert items.due("a") and items.waiting() == 0


def test_a_taken_item_starts_afresh() -> None:
    items, _ = backoff()
    items.failed("a")
    items.failed("a")
    items.settled("a")
    assert items.due("a") and items.failed("a") == 0.0


def test_items_no_longer_listed_are_forgotten() -> None:
    items, _ = backoff()
    for item in ("a", "b"):
        items.failed(item)
        items.failed(item)
    items.listed(["b", "c"])
    assert items.due("a") and not items.due("b")

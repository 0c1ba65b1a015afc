"""The canonical bytes the evidence chain hashes do not depend on how they are encoded:
the shared encoder gives exactly what ``json.dumps`` with the same options gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bus.evidence.canonical import _dumps, event_bytes, leaf

VALUES: list[Any] = [
    [1, 1765000000.123456, "a" * 32, None, "qlvb-a", "accepted", "b" * 64,
     '{"sender":"000.00.01.H53","recipients":["000.00.02.H53"]}'],
    {"z": 1, "a": [1.5, -0.0, 1e300], "m": {"b": "Đà Nẵng", "a": True}},
    ["Nguyễn Văn A", "\u2028", "\x00", "😀"],
    {"number": 7, "absent": [[3, 4]], "late": [], "sealed_at": 0.1},
]


@pytest.mark.parametrize("value", VALUES)
def test_canonical_bytes_are_json_dumps_compact_sorted_utf8(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          sort_keys=True).encode("utf-8")
    assert _dumps(value) == expected


def test_an_events_leaf_is_stable() -> None:
    row = {"id": "12", "at": "1765000000.5", "document": "d", "delivery": None,
           "actor": "router", "action": "routed", "digest": None, "detail": "{}"}
    assert event_bytes(row) == b'[12,1765000000.5,"d",null,"router","routed",null,"{}"]'
    assert leaf(row) == "92eff40f59351909d8e4d52451c8c179376743edd6c309f2854ccfd8a334f4e8"

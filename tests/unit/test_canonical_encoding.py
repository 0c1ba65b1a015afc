"""The canonical bytes the evidence chain hashes do not depend on how they are encoded:
the shared encoder gives exactly what ``json.dumps`` with the same options gives."""

from __future__ import annotations

import hashlib
import json
import json.encoder
from typing import Any

import pytest

from bus.evidence.canonical import (
    EVENT_FIELDS,
    _dumps,
    event_bytes,
    events_hash,
    leaf,
    values_bytes,
    values_leaf,
)

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


EVENTS: list[tuple[Any, ...]] = [
    (12, 1765000000.5, "d", None, "router", "routed", None, "{}"),
    (7, 1765000000.123456, "a" * 32, "b" * 32, "embedded-1", "delivered", None,
     '{"attempt": 1, "reason": null, "reference": "Số 12/UBND", "retry_at": null}'),
    ("9", "1765000001", "x", None, "qlvb-a", "accepted", "c" * 64, '{"s":"\u2028\\u0000😀"}'),
]


@pytest.mark.parametrize("values", EVENTS)
def test_a_leaf_from_a_tuple_is_the_leaf_from_the_row(values: tuple[Any, ...]) -> None:
    row = dict(zip(EVENT_FIELDS, values, strict=True))
    expected = json.dumps([int(values[0]), float(values[1]), *values[2:]],
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert values_bytes(values) == event_bytes(row) == expected
    assert values_leaf(values) == leaf(row) == hashlib.sha256(expected).hexdigest()


def test_a_delivered_events_leaf_is_pinned() -> None:
    """The bytes an existing chain was sealed over must never change."""
    assert values_bytes(EVENTS[1]) == (
        '[7,1765000000.123456,"' + "a" * 32 + '","' + "b" * 32 + '","embedded-1",'
        '"delivered",null,"{\\"attempt\\": 1, \\"reason\\": null, \\"reference\\": '
        '\\"Số 12/UBND\\", \\"retry_at\\": null}"]').encode("utf-8")
    assert values_leaf(EVENTS[1]) == \
        "acfb8fc67dc6afeb493a2f58a63f3ffb24a12b7821573eacbdc309a8a9e6bafd"


def test_the_canonical_encoder_is_built_once_not_per_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    make = json.encoder.c_make_encoder
    assert make is not None

    def counting(*args: Any) -> Any:
        built.append(args)
        return make(*args)

    monkeypatch.setattr(json.encoder, "c_make_encoder", counting)
    for value in [*VALUES, *EVENTS]:
        _dumps(value)
    for values in EVENTS:
        values_leaf(values)
    assert built == []


def test_the_events_hash_is_over_the_leaves_raw_digests() -> None:
    leaves = [values_leaf(v) for v in EVENTS]
    assert events_hash(leaves) == hashlib.sha256(
        b"".join(bytes.fromhex(x) for x in leaves)).hexdigest()
    assert events_hash([]) == hashlib.sha256(b"").hexdigest()

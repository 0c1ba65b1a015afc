"""The bytes that are hashed: one definition, shared by the sealer, ``lgsp audit verify``
and the offline bundle check (which has no database, so nothing here imports one).

An event's canonical form is the JSON array of its columns in table order, compact, UTF-8,
floats in Python's shortest round-trip form (SQLite REAL and PostgreSQL double precision
both give back the float that was stored). A seal's hash covers every field of its header
but the hash itself, so changing a range, a leaf or a link breaks it.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

EVENT_FIELDS: Final = ("id", "at", "document", "delivery", "actor", "action", "digest",
                       "detail")
SEAL_FIELDS: Final = ("number", "first_id", "last_id", "absent", "late", "count",
                      "events_hash", "prev_hash", "skip_hash", "sealed_at")
GENESIS: Final = "0" * 64
SKIP: Final = 1000
"""Every SKIP-th seal also links to the seal SKIP before it, so a bundle proves the path
from a document's seals to the head with about 2*SKIP + span/SKIP headers, not span."""

Ranges = list[list[int]]


_CANONICAL: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
"""One encoder for every hash: ``json.dumps`` with these options builds a new one per call,
which was a third of the sealer's cost per event."""


def _one_encoder() -> Callable[[Any], str]:
    """``_CANONICAL.encode`` without building a C encoder object on every call (which
    ``JSONEncoder.encode`` does: it was half the sealer's cost per event). The same C
    function with the same options, so the same bytes; without circular-reference
    markers, which flat event rows and seal headers do not need."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return _CANONICAL.encode
    iterencode = make(None, _CANONICAL.default, json.encoder.encode_basestring, None,
                      _CANONICAL.key_separator, _CANONICAL.item_separator,
                      _CANONICAL.sort_keys, _CANONICAL.skipkeys, _CANONICAL.allow_nan)

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return json.encoder.encode_basestring(value)
        return "".join(iterencode(value, 0))

    return encode


_ENCODE: Final = _one_encoder()


def _dumps(value: Any) -> bytes:
    return _ENCODE(value).encode("utf-8")


def event_bytes(row: Mapping[str, Any]) -> bytes:
    return values_bytes([row[name] for name in EVENT_FIELDS])


def values_bytes(values: Sequence[Any]) -> bytes:
    """An event's canonical bytes from its column values in :data:`EVENT_FIELDS` order
    (a row read as a tuple, as the sealer reads them)."""
    ident, at, *rest = values
    return _ENCODE([int(ident), float(at), *rest]).encode("utf-8")


def leaf(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(event_bytes(row)).hexdigest()


def values_leaf(values: Sequence[Any], _encode: Callable[[Any], str] = _ENCODE,
                _sha256: Callable[[bytes], Any] = hashlib.sha256) -> str:
    """:func:`leaf` of a row read as a tuple; the sealer's per-event call, kept flat."""
    ident, at, *rest = values
    digest: str = _sha256(_encode([int(ident), float(at), *rest]).encode("utf-8")).hexdigest()
    return digest


def events_hash(leaves: Sequence[str]) -> str:
    return hashlib.sha256(bytes.fromhex("".join(leaves))).hexdigest()


def seal_hash(header: Mapping[str, Any]) -> str:
    return hashlib.sha256(_dumps({name: header[name] for name in SEAL_FIELDS})).hexdigest()


def to_ranges(ids: Iterable[int]) -> Ranges:
    out: Ranges = []
    for i in sorted(set(ids)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def in_ranges(ranges: Ranges, i: int) -> bool:
    return any(a <= i <= b for a, b in ranges)


def covered_ids(header: Mapping[str, Any]) -> list[int]:
    """The event ids a seal covers, in leaf order (ascending)."""
    own: list[int] = []
    at, last = int(header["first_id"]), int(header["last_id"])
    for a, b in [*sorted(header["absent"]), [last + 1, last + 1]]:
        own.extend(range(at, min(a, last + 1)))
        at = max(at, b + 1)
    return sorted({*own, *(int(i) for i in header["late"])})


def header_problems(header: Mapping[str, Any], leaves: Sequence[str],
                    previous: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with one seal taken with its predecessor (None for seal 1)."""
    number = int(header["number"])
    problems = []
    if seal_hash(header) != header["hash"]:
        problems.append(f"seal {number}: its hash does not match its contents (the seal "
                        "row was edited)")
    if len(leaves) != int(header["count"]) or events_hash(leaves) != header["events_hash"]:
        problems.append(f"seal {number}: its event digests do not match its events hash")
    expected_prev = GENESIS if previous is None else previous["hash"]
    if previous is not None and int(previous["number"]) != number - 1:
        problems.append(f"seal {number}: follows seal {previous['number']}; seals "
                        f"{int(previous['number']) + 1}..{number - 1} are missing")
    elif header["prev_hash"] != expected_prev:
        problems.append(f"seal {number}: broken link, prev_hash is not the hash of seal "
                        f"{number - 1}")
    if previous is not None and int(header["first_id"]) != int(previous["last_id"]) + 1:
        problems.append(f"seal {number}: starts at event {header['first_id']}, seal "
                        f"{previous['number']} ended at {previous['last_id']}")
    if len(covered_ids(header)) != int(header["count"]):
        problems.append(f"seal {number}: covers {len(covered_ids(header))} events but "
                        f"counts {header['count']}")
    return problems

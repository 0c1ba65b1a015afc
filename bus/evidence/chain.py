"""The sealer: chains the events table after the fact, off the ingest path.

Events are inserted as they always were (``Store.accept`` and friends stay one
transaction with no extra lock). About once a second one process at a time (a
PostgreSQL advisory transaction lock; SQLite's single writer) reads the events after
the last seal, in id order, and appends a seal: the range of ids, each event's digest,
the hash over them and the previous seal's hash.

Ids are not committed in order on PostgreSQL: a transaction that took id 41 may commit
after the one that took 42, and one that rolled back leaves 41 missing for ever. So a
seal stops before the first missing id, and a missing id is declared absent only after
this sealer has seen it missing for ``margin_s`` seconds. An id that commits later still
(a transaction longer than the margin) is adopted by the next seal as *late*, so nothing
committed is ever left unsealed. What the chain cannot see is a row removed in the second
before it was sealed; what it finds is any sealed row changed or removed, any seal edited,
removed or reordered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from bus.evidence.canonical import (
    EVENT_FIELDS,
    GENESIS,
    SKIP,
    Ranges,
    covered_ids,
    events_hash,
    seal_hash,
    values_leaf,
)
from bus.store.tables import audit_seals, events

log = structlog.get_logger("lgsp.evidence")

LOCK_KEY: Final = 0x4C475345
LATE_WINDOW_S: Final = 3600.0
"""How long after an id was declared absent the sealer still looks for it."""


def seal_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored seal as a header dict (ranges decoded), with its leaves and hash."""
    out = {name: row[name] for name in ("number", "first_id", "last_id", "count",
                                         "events_hash", "prev_hash", "skip_hash",
                                         "sealed_at", "hash")}
    out["number"], out["first_id"], out["last_id"] = (int(row["number"]), int(row["first_id"]),
                                                      int(row["last_id"]))
    out["sealed_at"] = float(row["sealed_at"])
    out["absent"] = json.loads(row["absent"])
    out["late"] = json.loads(row["late"])
    out["leaves"] = split_leaves(row["leaves"])
    return out


def split_leaves(text: str) -> list[str]:
    return [text[i:i + 64] for i in range(0, len(text), 64)]


def head(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(sa.select(audit_seals).order_by(audit_seals.c.number.desc())
                       .limit(1)).mappings().first()
    return seal_row(row) if row is not None else None


def _link(conn: Connection) -> dict[str, Any] | None:
    """What the sealer needs of the last seal (number, last event, hash): not its
    leaves, which are 64 characters per event it sealed."""
    s = audit_seals.c
    row = conn.execute(sa.select(s.number, s.last_id, s.hash).order_by(s.number.desc())
                       .limit(1)).first()
    if row is None:
        return None
    return {"number": int(row[0]), "last_id": int(row[1]), "hash": row[2]}


def event_rows(conn: Connection, where: sa.ColumnElement[bool],
               limit: int | None = None) -> list[dict[str, Any]]:
    query = sa.select(events).where(where).order_by(events.c.id)
    if limit is not None:
        query = query.limit(limit)
    result = conn.execute(query)
    keys = tuple(result.keys())
    # Not .mappings(): a RowMapping and its key view per row cost the sealer (which runs
    # beside ingest, over every event) more than the hashing does.
    return [dict(zip(keys, row, strict=True)) for row in result]


_LEAF_COLUMNS: Final = tuple(events.c[name] for name in EVENT_FIELDS)

Values = tuple[Any, ...]


def event_values(conn: Connection, where: sa.ColumnElement[bool],
                 limit: int | None = None) -> list[Values]:
    """The columns an event's leaf is made of, in :data:`EVENT_FIELDS` order, as tuples:
    what the sealer reads (no per-row dict or key view; its reading cost more than its
    hashing)."""
    query = sa.select(*_LEAF_COLUMNS).where(where).order_by(events.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [tuple(row) for row in conn.execute(query).all()]


class Sealer:
    def __init__(self, engine: Engine, *, margin_s: float = 10.0, batch: int = 5000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.margin_s = margin_s
        self.batch = batch
        self.clock = clock
        self._gaps: dict[int, float] = {}

    def seal_all(self, budget_s: float = 2.0) -> int:
        """Seals until caught up or ``budget_s`` is spent; the number of events sealed."""
        total = 0
        until = time.monotonic() + budget_s
        while time.monotonic() < until:
            done = self.seal_once()
            if not done:
                break
            total += done
        return total

    def seal_once(self) -> int:
        """One seal. On PostgreSQL the whole of it runs under the lease (an advisory
        transaction lock, so a second process does not repeat the work; reading in a
        transaction blocks no writer there); on SQLite it is planned on a reader and
        written in a short write transaction, since any write transaction there holds
        the database's one write lock and would stall ingest while it hashed."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:
                if not conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"),
                                    {"k": LOCK_KEY}).scalar():
                    return 0
                plan = self._plan(conn)
                return self._write(conn, plan) if plan is not None else 0
        with self.engine.connect() as conn:
            plan = self._plan(conn)
        if plan is None:
            return 0
        with self.engine.begin() as conn:
            return self._write(conn, plan)

    def _plan(self, conn: Connection) -> tuple[dict[str, Any], list[str]] | None:
        """The next seal's header (without its hash) and leaves, or None if none is due."""
        last = _link(conn)
        base = last["last_id"] if last else 0
        rows = event_values(conn, events.c.id > base, self.batch)
        late = self._late(conn, base)
        taken, absent = self._contiguous(base, rows)
        if not taken and not late:
            return None
        covered = sorted([*late, *taken], key=lambda r: int(r[0])) if late else taken
        leaves = [values_leaf(r) for r in covered]
        header: dict[str, Any] = {
            "number": (last["number"] if last else 0) + 1, "first_id": base + 1,
            "last_id": int(taken[-1][0]) if taken else base, "absent": absent,
            "late": [int(r[0]) for r in late], "count": len(leaves),
            "events_hash": events_hash(leaves), "prev_hash": last["hash"] if last else GENESIS,
            "skip_hash": "", "sealed_at": time.time()}
        assert covered_ids(header) == [int(r[0]) for r in covered]
        return header, leaves

    def _write(self, conn: Connection, plan: tuple[dict[str, Any], list[str]]) -> int:
        """Appends the planned seal unless another sealer appended one since."""
        header, leaves = plan
        number = header["number"]
        now = _link(conn)
        if (now["number"] if now else 0) != number - 1 or (now and now["hash"]
                                                           != header["prev_hash"]):
            return 0
        if number % SKIP == 0 and number > SKIP:
            header["skip_hash"] = conn.execute(sa.select(audit_seals.c.hash).where(
                audit_seals.c.number == number - SKIP)).scalar() or ""
        header["hash"] = seal_hash(header)
        conn.execute(audit_seals.insert().values(
            {**header, "absent": json.dumps(header["absent"]),
             "late": json.dumps(header["late"]), "leaves": "".join(leaves)}))
        for gap in [g for g in self._gaps if g <= header["last_id"]]:
            del self._gaps[gap]
        return len(leaves)

    def _contiguous(self, base: int, rows: list[Values]) -> tuple[list[Values], Ranges]:
        """The rows to seal now: up to the first missing id not yet old enough to be
        declared absent; and the absent ranges declared."""
        now = self.clock()
        expected = base + 1
        for row in rows:
            if int(row[0]) > expected:
                self._gaps.setdefault(expected, now)
            expected = int(row[0]) + 1
        taken: list[Values] = []
        absent: list[int] = []
        expected = base + 1
        for row in rows:
            i = int(row[0])
            if i > expected:
                if now - self._gaps.get(expected, now) < self.margin_s:
                    break
                absent.extend((expected, i - 1))
            taken.append(row)
            expected = i + 1
        return taken, [[absent[k], absent[k + 1]] for k in range(0, len(absent), 2)]

    def _late(self, conn: Connection, base: int) -> list[Values]:
        """Events committed after their id was sealed as absent, within LATE_WINDOW_S."""
        s = audit_seals.c
        recent = conn.execute(sa.select(s.absent, s.late).where(
            s.sealed_at > time.time() - LATE_WINDOW_S,
            sa.or_(s.absent != "[]", s.late != "[]")).order_by(s.number)).all()
        ranges: Ranges = []
        adopted: set[int] = set()
        for absent, late in recent:
            ranges.extend(json.loads(absent))
            adopted.update(json.loads(late))
        if not ranges:
            return []
        ranges = ranges[-200:]
        rows = event_values(conn, sa.or_(*(events.c.id.between(a, b) for a, b in ranges)))
        return [r for r in rows if int(r[0]) not in adopted and int(r[0]) <= base]


def head_summary(engine: Engine) -> dict[str, Any] | None:
    """The chain head for an operator to write down: number, last event, hash, time."""
    with engine.connect() as conn:
        last = head(conn)
    if last is None:
        return None
    return {"number": last["number"], "last_event": last["last_id"], "hash": last["hash"],
            "sealed_at": last["sealed_at"]}


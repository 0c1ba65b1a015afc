"""The store's precompiled statements (bus.store.statements): multi-row inserts."""

from __future__ import annotations

import sqlalchemy as sa

from bus.store import EVENT_COLUMNS, event_row
from bus.store.statements import Statements
from bus.store.tables import create_engine, events, metadata


def test_a_multi_row_insert_on_sqlite_binds_by_position_and_lands_in_its_columns() -> None:
    """On SQLite the values go to the driver as they come, row by row, without a name
    per value (most of the Python an insert of a document's events cost); they must
    still land in their own columns and rows."""
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    statements = Statements(engine)
    rows = [event_row("router", "routed", 1.5 + n, document=f"doc{n}", delivery=f"del{n}",
                      detail={"n": n}) for n in range(3)]
    with statements.begin() as tx:
        tx.insert(events, EVENT_COLUMNS, rows)
    key = ("insert", events.name, tuple(EVENT_COLUMNS), 3)
    assert statements.compiled(key, lambda: sa.select(1)).rowwise
    with engine.connect() as conn:
        stored = [dict(r) for r in conn.execute(
            sa.select(*(events.c[c] for c in EVENT_COLUMNS)).order_by(events.c.id)).mappings()]
    assert stored == rows

"""The store's precompiled statements (bus.store.statements): multi-row inserts, and the
one connection SQLite writers share."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.store import EVENT_COLUMNS, event_row
from bus.store import statements as statements_module
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


def _file_store(tmp_path: Path) -> tuple[sa.Engine, Statements]:
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    metadata.create_all(engine)
    return engine, Statements(engine)


def _write(statements: Statements, n: int, seen: list[object],
           hold: threading.Event | None = None) -> None:
    with statements.begin() as tx:
        seen.append(tx._cursor.connection)
        tx.insert(events, EVENT_COLUMNS, [event_row("t", "x", float(n), detail={"n": n})])
        if hold is not None:
            hold.wait(5)


def test_writers_on_a_sqlite_file_take_turns_on_one_connection(tmp_path: Path) -> None:
    """A connection drops its page cache whenever another has written: writers that took
    turns on pooled connections read every inner page of every index again (70 reads per
    accepted document). A second writer waits for the first and then uses its connection."""
    engine, statements = _file_store(tmp_path)
    seen: list[object] = []
    hold = threading.Event()
    first = threading.Thread(target=_write, args=(statements, 1, seen, hold))
    first.start()
    while not seen:
        time.sleep(0.01)
    second = threading.Thread(target=_write, args=(statements, 2, seen))
    second.start()
    time.sleep(0.2)
    assert len(seen) == 1, "the second writer must wait for the first"
    hold.set()
    first.join(5)
    second.join(5)
    _write(statements, 3, seen)
    assert len(seen) == 3 and seen[0] is seen[1] is seen[2]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 3
    engine.dispose()


def test_a_writer_that_waits_too_long_gets_database_is_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, statements = _file_store(tmp_path)
    monkeypatch.setattr(statements_module, "WRITE_WAIT_S", 0.2)
    hold = threading.Event()
    seen: list[object] = []
    first = threading.Thread(target=_write, args=(statements, 1, seen, hold))
    first.start()
    while not seen:
        time.sleep(0.01)
    try:
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            _write(statements, 2, [])
    finally:
        hold.set()
        first.join(5)
    _write(statements, 3, seen)  # the turn passes on once the first is done
    engine.dispose()


def _open_files(folder: Path) -> int:
    fds = Path(f"/proc/{os.getpid()}/fd")
    return sum(1 for fd in fds.iterdir()
               if os.path.realpath(fd).startswith(str(folder)))


def test_the_kept_connection_is_closed_with_the_engine_and_after_a_failure(
        tmp_path: Path) -> None:
    engine, statements = _file_store(tmp_path)
    _write(statements, 1, [])
    engine.dispose()
    assert _open_files(tmp_path) == 0, "Bus.close() (engine.dispose) must close every file"
    seen: list[object] = []
    _write(statements, 2, seen)
    with pytest.raises(ZeroDivisionError), statements.begin() as tx:
        tx.insert(events, EVENT_COLUMNS, [event_row("t", "x", 3.0)])
        raise ZeroDivisionError
    _write(statements, 4, seen)
    assert seen[0] is not seen[1], "a failed block's connection is not kept"
    with pytest.raises(sa.exc.IntegrityError), statements.begin() as tx:
        tx.insert(events, EVENT_COLUMNS, [{**event_row("t", "x", 5.0), "at": None}])
    _write(statements, 6, seen)
    assert seen[1] is seen[2], "a refused duplicate or constraint keeps the connection"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 4
    engine.dispose()
    assert _open_files(tmp_path) == 0


def test_a_store_made_for_one_task_does_not_live_as_long_as_its_engine(
        tmp_path: Path) -> None:
    import gc
    import weakref

    engine, statements = _file_store(tmp_path)
    _write(statements, 1, [])
    gone = weakref.ref(statements)
    del statements
    gc.collect()
    assert gone() is None
    engine.dispose()
    assert _open_files(tmp_path) == 0

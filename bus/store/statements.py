"""The store's hot statements, compiled once per database and run on the driver's cursor.

Every accepted document costs the store three short transactions (accept, claim,
finish). Built and executed through SQLAlchemy Core on each call, their statements cost
60–240 µs of Python apiece before the database sees them — more than the database's own
work, and most of the bus's CPU per document (``tests/bench/bench_bus.py``). The tables
and the statements stay Core (one definition, both dialects); what this module removes is
the per-call construction, cache-key and execution-context work: a statement is compiled
the first time it is needed, and thereafter only its parameters travel, through the DBAPI
cursor of a pooled connection.

Values must be plain driver types (str, int, float, bytes, bool, None): no type
processors run on this path. Errors leave as SQLAlchemy's own exception classes
(:class:`sqlalchemy.exc.IntegrityError`, :class:`~sqlalchemy.exc.OperationalError`, …),
and a connection the server dropped is invalidated in the pool as SQLAlchemy would.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["Compiled", "Statements", "Transaction"]

Params = Mapping[str, Any]
_ROWS_PER_INSERT = 50
WRITE_WAIT_S = 30.0
"""How long a SQLite writer waits for its turn: the engines' busy timeout
(:func:`bus.store.tables.create_engine`)."""


class Compiled:
    """One statement as its dialect's SQL, with the literal values it carries."""

    __slots__ = ("defaults", "order", "required", "rowwise", "sql")

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        if any(p.expanding for p in compiled.binds.values()):
            raise ValueError("IN lists that expand per call cannot be precompiled")
        self.sql = compiled.string
        self.required = frozenset(b.key for b in compiled.binds.values() if b.required)
        self.defaults = {k: v for k, v in compiled.params.items() if k not in self.required}
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None)
        self.rowwise = False
        """Set by :meth:`Transaction.insert`'s statements whose positional parameters are
        ``column__row`` in row-major order and carry no defaults."""

    def bind(self, values: Params) -> Sequence[Any] | Mapping[str, Any]:
        """The driver's parameters; a missing one is a KeyError, never a silent NULL."""
        merged = {**self.defaults, **values} if self.defaults else values
        if self.order is not None:
            return tuple(merged[name] for name in self.order)
        if not self.required <= merged.keys():
            raise KeyError(", ".join(repr(k) for k in sorted(self.required - merged.keys())))
        return merged


class Transaction:
    """A cursor inside BEGIN … COMMIT; used by one thread for one unit of work."""

    __slots__ = ("_cursor", "_statements")

    def __init__(self, cursor: Any, statements: Statements) -> None:
        self._cursor = cursor
        self._statements = statements

    def execute(self, key: Hashable, build: Callable[[], ClauseElement],
                values: Params) -> int:
        """Runs the statement ``key`` (built by ``build`` the first time); the row count."""
        compiled = self._statements.compiled(key, build)
        self._cursor.execute(compiled.sql, compiled.bind(values))
        return int(self._cursor.rowcount or 0)

    def insert(self, table: sa.Table, columns: Sequence[str],
               rows: Sequence[Params]) -> None:
        """``rows`` as one multi-row INSERT of ``columns``: a single statement and round
        trip, where the driver's executemany would open a pipeline for two rows."""
        for first in range(0, len(rows), _ROWS_PER_INSERT):
            batch = rows[first:first + _ROWS_PER_INSERT]
            count = len(batch)
            compiled = self._statements.compiled(
                ("insert", table.name, tuple(columns), count),
                functools.partial(_multi_row_insert, table, columns, count))
            if compiled.rowwise:
                # Positional and in row order (SQLite): the values as they come, without
                # naming each one first.
                self._cursor.execute(compiled.sql, tuple(
                    row[column] for row in batch for column in columns))
                continue
            values = {f"{column}__{index}": row[column]
                      for index, row in enumerate(batch) for column in columns}
            self._cursor.execute(compiled.sql, compiled.bind(values))

    def one(self, key: Hashable, build: Callable[[], ClauseElement],
            values: Params) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        compiled = self._statements.compiled(key, build)
        self._cursor.execute(compiled.sql, compiled.bind(values))
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def all(self, key: Hashable, build: Callable[[], ClauseElement],
            values: Params) -> list[tuple[Any, ...]]:
        compiled = self._statements.compiled(key, build)
        self._cursor.execute(compiled.sql, compiled.bind(values))
        return [tuple(r) for r in self._cursor.fetchall()]


def _multi_row_insert(table: sa.Table, columns: Sequence[str], count: int) -> ClauseElement:
    statement: ClauseElement = table.insert().inline().values([
        {table.c[column]: sa.bindparam(f"{column}__{index}") for column in columns}
        for index in range(count)])
    return statement


class Statements:
    """Compiled statements of one engine, and transactions on its pooled connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self._sqlite = self.dialect == "sqlite"
        self._cache: dict[Hashable, Compiled] = {}
        self._writer: Any = None
        self._writing = threading.Lock()
        self._generation = 0
        self._writer_generation = 0
        # A file's connections are pooled; an in-memory database is one connection per
        # thread (SingletonThreadPool), which must not be taken out of its pool.
        self._one_writer = self._sqlite and isinstance(engine.pool, QueuePool)
        if self._one_writer:
            # Through a weak reference: a Store made for one task must not live as long
            # as its engine.
            alive = weakref.ref(self)

            def disposed(disposed_engine: Engine) -> None:
                statements = alive()
                if statements is not None:
                    statements._writer_disposed(disposed_engine)

            event.listen(engine, "engine_disposed", disposed)

    def compiled(self, key: Hashable, build: Callable[[], ClauseElement]) -> Compiled:
        found = self._cache.get(key)
        if found is None:
            found = Compiled(build(), self.engine)
            if isinstance(key, tuple) and key[:1] == ("insert",):
                _, _, columns, count = key
                found.rowwise = not found.defaults and found.order == tuple(
                    f"{column}__{index}" for index in range(count) for column in columns)
            self._cache[key] = found
        return found

    @contextmanager
    def begin(self, *, write: bool = True, alone: bool = False) -> Iterator[Transaction]:
        """Commits when the block ends, rolls back when it raises.

        SQLite connections are in autocommit mode (see :func:`bus.store.tables.create_engine`),
        so the write lock is taken up front with ``BEGIN IMMEDIATE`` as the Core path
        does, and a single read (``write=False``) takes no lock at all; PostgreSQL's
        driver opens its transaction with the first statement.

        ``alone`` promises that the block runs exactly one statement, which is then its own
        transaction: no BEGIN and COMMIT (on PostgreSQL, two round trips). SQLite's busy
        timeout serves a single statement's lock upgrade as it does ``BEGIN IMMEDIATE``.

        On a SQLite file every writing block runs on one connection kept for them
        (:meth:`_writing_on`).
        """
        if write and self._one_writer:
            with self._writing_on() as connection, self._transaction(
                    connection, write=write, alone=alone, keep=True) as tx:
                yield tx
            return
        with self._transaction(self.engine.raw_connection(), write=write, alone=alone,
                               keep=False) as tx:
            yield tx

    @contextmanager
    def _writing_on(self) -> Iterator[Any]:
        """The SQLite connection every writing block uses, one block at a time.

        SQLite writes one transaction at a time whatever the number of connections, and a
        connection drops its whole page cache whenever another connection has written.
        With writers taking turns on pooled connections, each accept, claim and finish
        began by reading again, one system call per page, the root and inner pages of
        every table and index it touched (about 70 reads per accepted document, strace).
        On one connection they stay cached. Writers now queue on a lock in this process
        instead of in SQLite's busy handler, which polls by sleeping (1, 2, 5, 10 ms ...);
        the wait is bounded by the same 30 s as the busy timeout and ends in the same
        "database is locked" error. Other writers (the sealer, a purge) use other
        connections and still meet this one in SQLite's own lock."""
        if not self._writing.acquire(timeout=WRITE_WAIT_S):
            raise sa.exc.OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
        try:
            connection = self._writer
            if connection is not None and (self._writer_generation != self._generation
                                           or not connection.is_valid):
                self._drop_writer()
                connection = None
            if connection is None:
                connection = self.engine.raw_connection()
                # Out of the pool: this object's for good, closed (not returned) when the
                # engine is disposed.
                connection.detach()
                self._writer, self._writer_generation = connection, self._generation
            try:
                yield connection
            except sa.exc.IntegrityError:
                # A re-submission meets the unique key: rolled back, the connection is as
                # good as before and keeps its cache.
                if not connection.is_valid or connection.dbapi_connection.in_transaction:
                    self._drop_writer()
                raise
            except BaseException:
                # Any other failure (locked, disk full, a bug) keeps nothing: the next block
                # starts on a fresh connection.
                self._drop_writer()
                raise
            if self._writer_generation != self._generation:
                self._drop_writer()
        finally:
            self._writing.release()

    def _drop_writer(self) -> None:
        connection, self._writer = self._writer, None
        if connection is not None:
            with suppress(Exception):  # closing is all that is left to do with it
                connection.close()

    def _writer_disposed(self, _engine: Engine) -> None:
        """``Engine.dispose``: the kept connection is closed now if idle, else by the
        block using it when that ends."""
        self._generation += 1
        if self._writing.acquire(blocking=False):
            try:
                self._drop_writer()
            finally:
                self._writing.release()

    @contextmanager
    def _transaction(self, connection: Any, *, write: bool, alone: bool,
                     keep: bool) -> Iterator[Transaction]:
        cursor: Any = None
        locked = self._sqlite and write and not alone
        single = alone and not self._sqlite
        try:
            if single:
                connection.dbapi_connection.autocommit = True
            cursor = connection.cursor()
            if locked:
                cursor.execute("BEGIN IMMEDIATE")
            yield Transaction(cursor, self)
            if locked:
                cursor.execute("COMMIT")
            elif not self._sqlite and not single:
                connection.commit()
        except BaseException as exc:
            self._rollback(connection, cursor)
            dbapi = self.engine.dialect.loaded_dbapi
            if isinstance(exc, dbapi.Error):
                dropped = self.engine.dialect.is_disconnect(
                    exc, connection.dbapi_connection, cursor)
                if dropped:
                    # As SQLAlchemy does: the server went away for every pooled
                    # connection, so the next checkouts open fresh ones.
                    connection.invalidate(exc)
                    self.engine.dispose(close=False)
                raise sa.exc.DBAPIError.instance(
                    None, None, exc, dbapi.Error, connection_invalidated=dropped,
                    dialect=self.engine.dialect) from exc
            raise
        finally:
            if cursor is not None:
                with suppress(Exception):  # the connection's state is what matters
                    cursor.close()
            if single:
                with suppress(Exception):  # a dead connection is discarded by the pool
                    connection.dbapi_connection.autocommit = False
            if not keep:
                connection.close()

    def _rollback(self, connection: Any, cursor: Any) -> None:
        with suppress(Exception):  # a dead connection has nothing left to roll back
            if self._sqlite:
                if cursor is not None and connection.dbapi_connection.in_transaction:
                    cursor.execute("ROLLBACK")
            else:
                connection.rollback()

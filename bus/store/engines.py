"""How engines are made: the per-backend settings the delivery contract needs.

Re-exported by :mod:`bus.store.tables`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from bus.store import fold


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings each backend needs for the delivery contract.

    SQLite gets WAL (readers never block the writer), ``synchronous=FULL`` (a committed
    document survives power loss, not only a process kill) and a busy timeout so several
    threads of one process queue up rather than fail.
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30,
                                                     "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            dbapi_connection.isolation_level = None
            # The subject text index's triggers fold what they index (bus.store.fold).
            fold.register(dbapi_connection)

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # A search (READ_ONLY) reads a WAL snapshot: taking the write lock would queue
            # it behind every writer, a purge batch included, and block them in turn.
            if conn.get_execution_options().get("lgsp_read_only"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it is a round trip per checkout. A connection the server dropped fails
    # its statement once and the pool is invalidated; the caller's retry (a sender's,
    # a worker's) then runs on a fresh connection.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_size", 10)
    return sa.create_engine(url, **kwargs)

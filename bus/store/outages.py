"""When the database, not the packet, failed: the refusal a sender gets (503/507)."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from bus import errors

# PostgreSQL SQLSTATE class 53 "insufficient resources": 53100 is disk_full.
_PG_DISK_FULL = "53100"
_UNREACHABLE = ("the bus's database is unreachable; nothing was stored; retry later "
                "(operators: check the database server and /readyz)")
_BUSY = ("the bus's database is busy; nothing was stored; retry later")
_DISK_FULL = ("the disk of the bus's data directory is full; nothing was stored; retry "
              "later (operators: free space on the data directory's disk)")


def outage(exc: BaseException) -> errors.Unavailable | None:
    """The refusal a sender should get when the database, not the packet, failed.

    A full disk (SQLite's SQLITE_FULL, PostgreSQL's disk_full) is StorageFull (507); a
    server that is down, restarting or dropped the connection, or a pool with no free
    connection, is Unavailable (503). Anything else (a constraint, a bug) is not an
    outage and returns None, so it is not disguised as one. Either way the transaction
    was rolled back, which is why the message can promise "nothing was stored".
    """
    orig = getattr(exc, "orig", None) or exc
    if _no_space(exc):  # a payload file or a spooled body, written beside the database
        return errors.StorageFull(_DISK_FULL)
    if isinstance(orig, sqlite3.Error):
        if getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL \
                or "database or disk is full" in str(orig):
            return errors.StorageFull(_DISK_FULL)
        if isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig):
            return errors.Unavailable(_BUSY)
        return None
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return errors.StorageFull(_DISK_FULL)
    if isinstance(exc, sa.exc.TimeoutError):
        return errors.Unavailable(_UNREACHABLE)
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return errors.Unavailable(_UNREACHABLE)
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return errors.Unavailable(_UNREACHABLE)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the PostgreSQL driver is optional
        return None
    if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)):
        return errors.Unavailable(_UNREACHABLE)
    return None


def _no_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` or what caused it is the file system saying it is full."""
    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def outage_refused() -> Iterator[None]:
    """Turns a database outage inside the block into :func:`outage`'s refusal."""
    try:
        yield
    except Exception as exc:
        refusal = outage(exc)
        if refusal is None:
            raise
        raise refusal from exc

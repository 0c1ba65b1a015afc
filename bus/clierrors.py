"""What an operator sees when an ``lgsp`` command cannot do its job: one line, never a
traceback.

The person typing ``lgsp deliveries list`` at night is not debugging the bus; a 100-line
SQLAlchemy traceback hides the one fact they need (the data directory is wrong, the
settings file has a typo, the database is down). :func:`report` is the single place that
turns any exception escaping a sub-command into one line on stderr naming what to fix,
and an exit code a script can test:

====  =====================================================================
 1    the input or the configuration is wrong (the line says which and where)
 3    a service the command needs (the database, the broker) cannot be reached
 4    a bug in the bus: the line says so; ``LGSP_DEBUG=1`` shows the traceback
130   interrupted (Ctrl-C)
====  =====================================================================

(2 stays argparse's: the command line itself was not understood.)

Commands that only read the bus's state must not create it: :func:`existing_engine`
refuses a data directory that holds no bus database instead of leaving an empty
``lgsp.db`` behind, which is how a mistyped ``--data-dir`` used to look like "no
deliveries".
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TYPE_CHECKING, Final, TextIO

import sqlalchemy as sa

from bus import errors

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bus.settings import Settings

BAD_INPUT: Final = 1
UNREACHABLE: Final = 3
BUG: Final = 4
INTERRUPTED: Final = 130

_MARKER_TABLE: Final = "deliveries"
"""A table every bus database has since the first release; its absence means "not ours"."""


def _redacted(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _config_line(exc: errors.ConfigInvalid) -> str:
    problems = exc.problems or [errors.Problem(exc.message, file=exc.location.file)]
    line = str(problems[0])
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more problem(s): `lgsp routes check` lists " \
                "routes and directory problems)"
    return line


def explain(exc: BaseException) -> tuple[str, int]:
    """The one line and the exit code for ``exc``."""
    from bus.store import outage

    if isinstance(exc, errors.ConfigInvalid):
        return _config_line(exc), BAD_INPUT
    if isinstance(exc, errors.Unavailable):
        return f"{exc.code}: {exc.message}", UNREACHABLE
    if isinstance(exc, errors.LgspError):
        where = str(exc.location)
        return f"{exc.code}: {exc.message}" + (f" ({where})" if where else ""), BAD_INPUT
    if isinstance(exc, (sa.exc.DBAPIError, sa.exc.TimeoutError)):
        refusal = outage(exc)
        url = getattr(exc, "lgsp_url", None)
        at = f" at {_redacted(url)}" if url else ""
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        if refusal is not None or isinstance(exc, sa.exc.OperationalError):
            return (f"the database{at} cannot be reached: {cause}; check database_url "
                    "(or --data-dir) and that the server runs"), UNREACHABLE
        return f"database error{at}: {cause}", BUG
    if isinstance(exc, FileExistsError):
        return f"{exc.filename or exc}: exists but is not a directory", BAD_INPUT
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc}: no such file or directory", BAD_INPUT
    if isinstance(exc, PermissionError):
        return f"{exc.filename or exc}: permission denied", BAD_INPUT
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        return f"{name}{exc.strerror or exc}", BAD_INPUT
    return (f"internal error {type(exc).__name__}: {str(exc)[:300]} — this is a bug in the "
            "bus; run again with LGSP_DEBUG=1 for the traceback and report it"), BUG


def report(exc: BaseException, *, stream: TextIO | None = None) -> int:
    """Writes ``exc`` as one line to stderr and returns the exit code; ``SystemExit``
    (argparse, an explicit exit) passes through untouched."""
    if isinstance(exc, SystemExit):
        raise exc
    stream = stream or sys.stderr
    if isinstance(exc, KeyboardInterrupt):
        print("lgsp: interrupted", file=stream)
        return INTERRUPTED
    if os.environ.get("LGSP_DEBUG"):
        traceback.print_exception(exc, file=stream)
    line, code = explain(exc)
    print(f"lgsp: {' '.join(line.split())}", file=stream)
    return code


def existing_engine(settings: Settings) -> Engine:
    """An engine on the bus database that ``lgsp serve`` created; never a new one.

    Embedded: the data directory must exist and hold ``lgsp.db`` with the bus's tables.
    PostgreSQL: the server must answer (within 5 s) and the tables must exist.
    Raises ConfigInvalid (what to fix) or the database error (reported as unreachable).
    """
    from bus.app import _engine_bounds
    from bus.store.tables import create_engine

    url = settings.effective_database_url
    if not settings.database_url:
        data_dir = settings.data_dir.resolve()
        hint = ("give the data directory `lgsp serve` uses (--data-dir or LGSP_DATA_DIR; "
                "the default var/ is relative to the directory serve was started in)")
        if not data_dir.is_dir():
            raise errors.ConfigInvalid([errors.Problem(
                f"data directory {data_dir} does not exist: {hint}")])
        if not (data_dir / "lgsp.db").is_file():
            raise errors.ConfigInvalid([errors.Problem(
                f"no bus database (lgsp.db) in {data_dir}: {hint}")])
    engine = create_engine(url, **_engine_bounds(url))
    try:
        with engine.connect() as conn:
            initialised = sa.inspect(conn).has_table(_MARKER_TABLE)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        exc.lgsp_url = url  # type: ignore[attr-defined]
        raise
    if not initialised:
        engine.dispose()
        raise errors.ConfigInvalid([errors.Problem(
            f"the database at {_redacted(url)} has no bus tables: it was never used by "
            "`lgsp serve`, or it is another application's database")])
    return engine

"""``lgsp db upgrade|current``: the schema migrations of :mod:`bus.store.schema`.

On PostgreSQL run ``upgrade`` once per release, as the database's owner role (the
application role has no right to alter tables), before starting the new processes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bus import errors


def _engine(args: argparse.Namespace, *, create: bool) -> Any:
    from bus.settings import load_settings
    from bus.store.tables import create_engine

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    url = getattr(args, "database_url", None) or settings.effective_database_url
    if url == settings.effective_database_url and not settings.database_url:
        if not create and not (settings.data_dir / "lgsp.db").is_file():
            raise errors.NotFound(f"no bus database (lgsp.db) in the data directory "
                                  f"{settings.data_dir.resolve()} (give --data-dir or --config)")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return create_engine(url)


def cmd_current(args: argparse.Namespace) -> int:
    from bus.store.schema import state

    engine = _engine(args, create=False)
    try:
        found = state(engine)
    finally:
        engine.dispose()
    print(found.describe())
    return 0 if found.up_to_date else 1


def cmd_upgrade(args: argparse.Namespace) -> int:
    from bus.store.schema import upgrade

    engine = _engine(args, create=True)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        print(f"already at {after}")
    else:
        print(f"upgraded {before or 'a database without revision'} -> {after}")
    return 0


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    db = sub.add_parser("db", help="the database schema: its revision, migrations")
    dsub = db.add_subparsers(dest="db_command", required=True)
    for name, func, helptext in (
            ("current", cmd_current, "the database's schema revision against this release's"),
            ("upgrade", cmd_upgrade, "apply the migrations this release needs (PostgreSQL: "
                                     "as the owner role, before starting the new release)")):
        cmd = dsub.add_parser(name, help=helptext)
        common(cmd)
        cmd.add_argument("--database-url", dest="database_url",
                         help="connect as another role than the bus's (the owner role)")
        cmd.set_defaults(func=func)

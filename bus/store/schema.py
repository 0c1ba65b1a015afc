"""Which schema a database has, and bringing it to the one this release runs on (Alembic).

The revisions live in the package (``bus/store/migrations``) so an installed wheel can
migrate without a source tree. A process starting on a database finds one of:

- nothing at all: the tables are created from :mod:`bus.store.tables` and stamped with
  the head revision (several processes starting at once on PostgreSQL serialise on an
  advisory lock);
- the schema of a release before migrations (tables, no ``alembic_version``), or an older
  revision: the embedded default (SQLite) copies its file aside and upgrades by itself,
  since it is one process owning one file with no one else to run a migration; on
  PostgreSQL the process refuses to start with one line naming ``lgsp db upgrade``,
  because migrations there run as the owner role, once, while the application role has
  no right to alter tables and several serve/worker processes would race;
- a revision this release does not know (a newer release migrated it): refused on both.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from bus import errors
from bus.store.tables import metadata

__all__ = ["SchemaState", "alembic_config", "ensure", "head", "state", "upgrade"]

log = structlog.get_logger("lgsp.schema")

SCHEMA_LOCK_KEY = 0x4C475350
_UPGRADE_HINT = "run `lgsp db upgrade` (as the database's owner role) and start again"


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: ``current`` is None for an empty or pre-migration one."""

    current: str | None
    head: str
    has_tables: bool

    @property
    def empty(self) -> bool:
        return self.current is None and not self.has_tables

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def known(self) -> bool:
        return self.current is None or self.current in _revisions()

    def describe(self) -> str:
        if self.empty:
            return f"empty database (this release's schema: {self.head})"
        if self.current is None:
            return (f"schema of a release before migrations (no revision); this release's "
                    f"schema: {self.head}")
        if self.up_to_date:
            return f"{self.current} (head, up to date)"
        if not self.known:
            return f"{self.current}: unknown to this release (head {self.head}); a newer " \
                   "release migrated this database"
        return f"{self.current}, behind this release's {self.head}"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "bus.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads; merge them: {heads}")
    return str(heads[0])


def _state(conn: Connection) -> SchemaState:
    current = MigrationContext.configure(conn).get_current_revision()
    has_tables = sa.inspect(conn).has_table("documents")
    return SchemaState(current=current, head=head(), has_tables=has_tables)


def state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return _state(conn)


def _locked(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def upgrade(engine: Engine, *, target: str = "head") -> tuple[str | None, str]:
    """Runs the missing revisions (or creates an empty database); (before, after)."""
    with engine.begin() as conn:
        _locked(conn)
        before = _state(conn)
        if not before.known:
            raise errors.SchemaOutdated(
                f"the database is at revision {before.current}, which this release does not "
                f"know; run the release that migrated it, or a newer one")
        if before.empty and target == "head":
            metadata.create_all(conn)
            command.stamp(alembic_config(conn), "head")
        else:
            command.upgrade(alembic_config(conn), target)
        after = MigrationContext.configure(conn).get_current_revision()
    return before.current, str(after)


def _copy_aside(engine: Engine, revision: str | None) -> Path | None:
    """A consistent copy of an SQLite file before it is upgraded (SQLite's backup API)."""
    path = engine.url.database
    if not path or path == ":memory:":
        return None
    target = Path(f"{path}.before-{revision or 'migrations'}-{int(time.time())}")
    with sqlite3.connect(path) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return target


def ensure(engine: Engine) -> SchemaState:
    """At start-up: creates an empty database, upgrades the embedded one, refuses otherwise."""
    with engine.begin() as conn:
        _locked(conn)
        found = _state(conn)
        if found.empty:
            try:
                metadata.create_all(conn)
            except sa.exc.ProgrammingError as exc:
                raise errors.SchemaOutdated(
                    f"the database is empty and this role may not create tables; "
                    f"{_UPGRADE_HINT}") from exc
            command.stamp(alembic_config(conn), "head")
            return _state(conn)
    if found.up_to_date:
        return found
    if not found.known:
        raise errors.SchemaOutdated(
            f"the database is at revision {found.current}, newer than this release "
            f"({found.head}); run the release that migrated it, or a newer one")
    if engine.dialect.name != "sqlite":
        raise errors.SchemaOutdated(f"the database schema is {found.describe()}; "
                                    f"{_UPGRADE_HINT}")
    copy = _copy_aside(engine, found.current)
    before, after = upgrade(engine)
    log.warning("schema.upgraded", before=before or "a release before migrations",
                after=after, copy_before_upgrade=str(copy) if copy else None)
    return state(engine)

"""A database as a release before schema migrations left it, for upgrade tests.

Such a database has the tables of ``0001_baseline`` and no ``alembic_version``; every
table a later revision added is dropped here, so each new revision is covered without
editing the tests that fake an old database.
"""

from __future__ import annotations

import sqlalchemy as sa

from bus.store.tables import metadata

BASELINE_TABLES = frozenset({"documents", "deliveries", "payloads", "events",
                             "business_statuses", "inbound_sources", "agency_requests"})


def strip_to_pre_migration(conn: sa.Connection) -> None:
    conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    for table in reversed(metadata.sorted_tables):
        if table.name not in BASELINE_TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))

"""A database as a release before schema migrations left it, for upgrade tests.

Such a database has the tables of ``0001_baseline`` and no ``alembic_version``; every
table a later revision added is dropped here (and the indexes later revisions added to
the baseline tables), so each new revision is covered without editing the tests that
fake an old database.
"""

from __future__ import annotations

import sqlalchemy as sa

from bus.store.tables import metadata

BASELINE_TABLES = frozenset({"documents", "deliveries", "payloads", "events",
                             "business_statuses", "inbound_sources", "agency_requests"})


# Indexes a later revision added to the baseline tables (0009_scale_indexes).
LATER_INDEXES = ("ix_documents_sender_received", "ix_documents_system_received",
                 "ix_documents_payload_sha256", "ix_documents_original_sha256",
                 "ix_deliveries_recipient", "ix_deliveries_effective_recipient",
                 "ix_deliveries_state")


def strip_to_pre_migration(conn: sa.Connection) -> None:
    conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    for index in LATER_INDEXES:
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {index}"))
    for table in reversed(metadata.sorted_tables):
        if table.name not in BASELINE_TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))

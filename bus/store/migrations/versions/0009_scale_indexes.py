"""Indexes for searches and the purge on a database of millions of rows (issue 16).

Revision ID: 0009_scale_indexes
Revises: 0008_payload_files
Create Date: 2026-12-06

Built in the upgrade's transaction: the bus runs its migrations inside one transaction
under its advisory lock, where PostgreSQL cannot build CONCURRENTLY, so writes to the two
tables wait while they build (about a minute for a million documents, see the dbscale
report); run ``lgsp db upgrade`` at a quiet hour.
"""

from __future__ import annotations

from alembic import op

revision = '0009_scale_indexes'
down_revision = "0008_payload_files"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_documents_sender_received", "documents", ["sender", "received_at"]),
    ("ix_documents_system_received", "documents", ["system", "received_at"]),
    ("ix_documents_payload_sha256", "documents", ["payload_sha256"]),
    ("ix_documents_original_sha256", "documents", ["original_sha256"]),
    ("ix_deliveries_recipient", "deliveries", ["recipient", "created_at", "document"]),
    ("ix_deliveries_effective_recipient", "deliveries",
     ["effective_recipient", "created_at", "document"]),
    ("ix_deliveries_state", "deliveries", ["state", "created_at", "document"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, if_not_exists=True)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table, if_exists=True)

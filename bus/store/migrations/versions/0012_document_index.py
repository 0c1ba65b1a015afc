"""ix_deliveries_document dropped: a prefix of another index (issue 16).

Revision ID: 0012_document_index
Revises: 0011_search_drive
Create Date: 2026-12-06

0011's ix_deliveries_document_recipients (document, recipient, effective_recipient)
begins with the same column, and so does the deliveries' unique constraint; EXPLAIN of
every lookup, IN list and delete by document on the million-document databases (SQLite
and PostgreSQL) shows one of those, never this one. Every accepted document wrote it once
per delivery for nothing.
"""

from __future__ import annotations

from alembic import op

revision = '0012_document_index'
down_revision = '0011_search_drive'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_deliveries_document', 'deliveries', if_exists=True)


def downgrade() -> None:
    op.create_index('ix_deliveries_document', 'deliveries', ['document'], if_not_exists=True)

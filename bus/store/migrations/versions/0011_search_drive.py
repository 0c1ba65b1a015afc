"""Searches driven by a recipient, a sender or a rare state (issue 16).

Revision ID: 0011_search_drive
Revises: 0010_code_index
Create Date: 2026-12-06

A connected system's search for a sender or a recipient it rarely sees widened its windows
to the whole history (bus.store.window); such a search now walks that filter's own index
newest first and tests each document's visibility through its deliveries. Two indexes
serve it: (document, recipient, effective_recipient) answers that test from the index
alone (each of a document's delivery rows was read), and a partial index of the
deliveries resolved to another organisation than the one addressed (successor
resolution: few) is the second walk of a recipient's documents, where re-walking
ix_deliveries_effective_recipient read nearly every delivery twice.

Built in the upgrade's transaction like 0009's: writes to deliveries wait while they
build (about a minute for three million deliveries); run ``lgsp db upgrade`` at a quiet
hour.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011_search_drive'
down_revision = '0010_code_index'
branch_labels = None
depends_on = None

_RESOLVED = sa.text("effective_recipient != recipient")


def upgrade() -> None:
    op.create_index('ix_deliveries_document_recipients', 'deliveries',
                    ['document', 'recipient', 'effective_recipient'], if_not_exists=True)
    op.create_index('ix_deliveries_resolved', 'deliveries',
                    ['effective_recipient', 'created_at', 'document'], if_not_exists=True,
                    sqlite_where=_RESOLVED, postgresql_where=_RESOLVED)


def downgrade() -> None:
    op.drop_index('ix_deliveries_resolved', 'deliveries', if_exists=True)
    op.drop_index('ix_deliveries_document_recipients', 'deliveries', if_exists=True)

"""The console's exact code search and the queue-depth gauge go through indexes (issue 16).

Revision ID: 0010_code_index
Revises: 0009_scale_indexes
Create Date: 2026-12-06

A full code ("123/QĐ-UBND") is looked up through (code, received_at), newest first; before,
every code search folded every code of the history (0.5–5 s at a million documents).
ix_deliveries_state (0009) gets destination as a last column, so it covers the queue-depth
gauge's query, which fetched every parked delivery of the history on each scrape (rebuilt:
10–20 s at three million deliveries).
Built in the upgrade's transaction like 0009's: writes to documents wait while it builds
(seconds per million documents); run ``lgsp db upgrade`` at a quiet hour.
"""

from __future__ import annotations

from alembic import op

revision = '0010_code_index'
down_revision = '0009_scale_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_documents_code_received', 'documents', ['code', 'received_at'],
                    if_not_exists=True)
    op.drop_index('ix_deliveries_state', 'deliveries')
    op.create_index('ix_deliveries_state', 'deliveries',
                    ['state', 'created_at', 'document', 'destination'])


def downgrade() -> None:
    op.drop_index('ix_deliveries_state', 'deliveries')
    op.create_index('ix_deliveries_state', 'deliveries', ['state', 'created_at', 'document'])
    op.drop_index('ix_documents_code_received', 'documents')

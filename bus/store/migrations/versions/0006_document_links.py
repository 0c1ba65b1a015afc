"""Recalls, updates and replacements linked to their originals (bus.lifecycle).

Revision ID: 0006_document_links
Revises: 0005_console
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_document_links'
down_revision = '0005_console'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('document_links',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('original', sa.String(length=32), nullable=False),
    sa.Column('superseding', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('withdrawn', sa.Integer(), nullable=False),
    sa.Column('unnamed', sa.Text(), nullable=True),
    sa.Column('added', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['original'], ['documents.id'], ),
    sa.ForeignKeyConstraint(['superseding'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('original', 'superseding', name='uq_document_link')
    )
    with op.batch_alter_table('document_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_links_original'), ['original'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_links_superseding'), ['superseding'],
                              unique=False)



def downgrade() -> None:
    with op.batch_alter_table('document_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_links_superseding'))
        batch_op.drop_index(batch_op.f('ix_document_links_original'))

    op.drop_table('document_links')

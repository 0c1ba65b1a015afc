"""The seals that hash-chain the events table (bus.evidence).

Revision ID: 0004_audit_seals
Revises: 0003_reconcile_deadlines
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_audit_seals'
down_revision = '0003_reconcile_deadlines'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_seals',
    sa.Column('number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('first_id', sa.BigInteger(), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.Column('absent', sa.Text(), nullable=False),
    sa.Column('late', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('leaves', sa.Text(), nullable=False),
    sa.Column('events_hash', sa.String(length=64), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('skip_hash', sa.String(length=64), nullable=False),
    sa.Column('sealed_at', sa.Float(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('number'),
    sa.UniqueConstraint('hash')
    )
    with op.batch_alter_table('audit_seals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_seals_last_id'), ['last_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_seals_sealed_at'), ['sealed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('audit_seals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_seals_sealed_at'))
        batch_op.drop_index(batch_op.f('ix_audit_seals_last_id'))

    op.drop_table('audit_seals')

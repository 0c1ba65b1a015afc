"""Reconciliation runs with the national axis, and working-day deadlines per delivery.

Revision ID: 0003_reconcile_deadlines
Revises: 0002_legal_holds
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_reconcile_deadlines'
down_revision = '0002_legal_holds'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reconcile_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('until', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('reconcile_runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.Column('counts', sa.Text(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reconcile_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconcile_runs_day'), ['day'], unique=False)
        batch_op.create_index(batch_op.f('ix_reconcile_runs_started_at'), ['started_at'],
                              unique=False)

    op.create_table('reconcile_mismatches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('axis_doc_id', sa.String(length=255), nullable=True),
    sa.Column('message_type', sa.String(length=8), nullable=True),
    sa.Column('document', sa.String(length=32), nullable=True),
    sa.Column('delivery', sa.String(length=32), nullable=True),
    sa.Column('organ_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run'], ['reconcile_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('reconcile_mismatches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconcile_mismatches_run'), ['run'], unique=False)

    op.create_table('delivery_deadlines',
    sa.Column('delivery', sa.String(length=32), nullable=False),
    sa.Column('document', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=120), nullable=True),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('arrival_due', sa.Float(), nullable=True),
    sa.Column('acceptance_due', sa.Float(), nullable=True),
    sa.Column('completion_due', sa.Float(), nullable=True),
    sa.Column('due_date', sa.String(length=10), nullable=True),
    sa.Column('computed_at', sa.Float(), nullable=False),
    sa.Column('settled_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['delivery'], ['deliveries.id'], ),
    sa.ForeignKeyConstraint(['document'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('delivery')
    )
    with op.batch_alter_table('delivery_deadlines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_deadlines_document'), ['document'],
                              unique=False)
        batch_op.create_index('ix_delivery_deadlines_open', ['settled_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_deadlines', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_deadlines_open')
        batch_op.drop_index(batch_op.f('ix_delivery_deadlines_document'))

    op.drop_table('delivery_deadlines')
    with op.batch_alter_table('reconcile_mismatches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconcile_mismatches_run'))

    op.drop_table('reconcile_mismatches')
    with op.batch_alter_table('reconcile_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconcile_runs_started_at'))
        batch_op.drop_index(batch_op.f('ix_reconcile_runs_day'))

    op.drop_table('reconcile_runs')
    op.drop_table('reconcile_leases')

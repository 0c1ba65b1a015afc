"""Legacy archive migration jobs and their records (bus.migrate).

Revision ID: 0007_migration
Revises: 0006_document_links
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_migration'
down_revision = '0006_document_links'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('migration_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=True),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('heartbeat_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('migration_records',
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('record_id', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('register', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('files', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('document', sa.String(length=32), nullable=True),
    sa.Column('packets', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['job'], ['migration_jobs.id'], ),
    sa.PrimaryKeyConstraint('job', 'record_id')
    )
    with op.batch_alter_table('migration_records', schema=None) as batch_op:
        batch_op.create_index('ix_migration_records_state', ['job', 'state', 'seq'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('migration_records', schema=None) as batch_op:
        batch_op.drop_index('ix_migration_records_state')

    op.drop_table('migration_records')
    op.drop_table('migration_jobs')

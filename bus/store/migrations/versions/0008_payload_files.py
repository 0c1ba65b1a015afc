"""Payloads kept outside rows (issue 16): files or PostgreSQL large objects.

Revision ID: 0008_payload_files
Revises: 0007_migration
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_payload_files"
down_revision = "0007_migration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payload_files',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('location', sa.String(length=255), nullable=False),
    sa.Column('stored_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('payload_staging',
    sa.Column('oid', sa.BigInteger(), nullable=False),
    sa.Column('staged_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('oid')
    )
    op.create_index(op.f('ix_payload_staging_staged_at'), 'payload_staging', ['staged_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_payload_staging_staged_at'), table_name='payload_staging')
    op.drop_table('payload_staging')
    op.drop_table('payload_files')

"""Legal holds: documents the retention purge must keep.

Revision ID: 0002_legal_holds
Revises: 0001_baseline
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_legal_holds"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("document", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_by", sa.String(64), nullable=False),
        sa.Column("held_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("document"),
    )


def downgrade() -> None:
    op.drop_table("legal_holds")

"""Baseline: the schema of the last release made with ``create_all`` (commit 43ac388).

Databases of those releases have no ``alembic_version`` table. This revision adopts them
as well as creating an empty database: each table, column and index is created only when
missing, so a database made by ``create_all`` (with or without ``original_sha256``, which
``_add_missing_columns`` used to add) ends here exactly as a fresh one does. Later
revisions are ordinary ones.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list[sa.schema.SchemaItem], list[tuple[str, list[str], bool]]]]:
    """(name, columns and constraints, indexes as (name, columns, unique)) in FK order."""
    return [
        ("documents", [
            sa.Column("id", sa.String(32), nullable=False),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("sender", sa.String(64), nullable=False),
            sa.Column("document_id", sa.String(255), nullable=False),
            sa.Column("dedup_key", sa.String(400), nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("payload_sha256", sa.String(64), nullable=False),
            sa.Column("original_sha256", sa.String(64), nullable=True),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("system", sa.String(64), nullable=False),
            sa.Column("subject", sa.Text(), nullable=True),
            sa.Column("code", sa.String(120), nullable=True),
            sa.Column("business", sa.String(8), nullable=True),
            sa.Column("status_code", sa.String(4), nullable=True),
            sa.Column("refers_to", sa.String(32), nullable=True),
            sa.Column("received_at", sa.Float(), nullable=False),
            sa.Column("receipt", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("dedup_key"),
        ], [("ix_documents_document_id", ["document_id"], False),
            ("ix_documents_received_at", ["received_at"], False),
            ("ix_documents_refers_to", ["refers_to"], False)]),
        ("deliveries", [
            sa.Column("id", sa.String(32), nullable=False),
            sa.Column("document", sa.String(32), nullable=False),
            sa.Column("recipient", sa.String(64), nullable=False),
            sa.Column("effective_recipient", sa.String(64), nullable=False),
            sa.Column("destination", sa.String(64), nullable=False),
            sa.Column("rule", sa.String(120), nullable=False),
            sa.Column("is_copy", sa.Boolean(), nullable=False),
            sa.Column("state", sa.String(12), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", sa.Float(), nullable=False),
            sa.Column("lease_until", sa.Float(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("receipt_reference", sa.String(255), nullable=True),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.Column("delivered_at", sa.Float(), nullable=True),
            sa.ForeignKeyConstraint(["document"], ["documents.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("document", "effective_recipient", "destination",
                                name="uq_delivery_target"),
        ], [("ix_deliveries_document", ["document"], False),
            ("ix_deliveries_due", ["state", "next_attempt_at"], False)]),
        ("payloads", [
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("sha256"),
        ], []),
        ("events", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.Column("document", sa.String(32), nullable=True),
            sa.Column("delivery", sa.String(32), nullable=True),
            sa.Column("actor", sa.String(64), nullable=False),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("digest", sa.String(64), nullable=True),
            sa.Column("detail", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        ], [("ix_events_document", ["document"], False)]),
        ("business_statuses", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("document", sa.String(32), nullable=False),
            sa.Column("organ_id", sa.String(64), nullable=False),
            sa.Column("code", sa.String(4), nullable=False),
            sa.Column("reported_at", sa.String(32), nullable=True),
            sa.Column("received_at", sa.Float(), nullable=False),
            sa.Column("status_document", sa.String(32), nullable=False),
            sa.ForeignKeyConstraint(["document"], ["documents.id"]),
            sa.PrimaryKeyConstraint("id"),
        ], [("ix_business_statuses_document", ["document"], False)]),
        ("inbound_sources", [
            sa.Column("source", sa.String(64), nullable=False),
            sa.Column("source_id", sa.String(255), nullable=False),
            sa.Column("document", sa.String(32), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("source", "source_id"),
        ], []),
        ("agency_requests", [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("action", sa.String(8), nullable=False),
            sa.Column("code", sa.String(64), nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("parent", sa.String(64), nullable=True),
            sa.Column("mail", sa.String(254), nullable=True),
            sa.Column("system", sa.String(64), nullable=False),
            sa.Column("requested_by", sa.String(64), nullable=False),
            sa.Column("state", sa.String(12), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("decided_at", sa.Float(), nullable=True),
            sa.Column("decided_by", sa.String(64), nullable=True),
            sa.Column("note", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        ], [("ix_agency_requests_code", ["code"], False),
            ("ix_agency_requests_state", ["state", "created_at"], False)]),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, items, indexes in _tables():
        if name not in existing:
            op.create_table(name, *items)
            present_indexes: set[str] = set()
        else:
            columns = {c["name"] for c in inspector.get_columns(name)}
            for item in items:
                if isinstance(item, sa.Column) and item.name not in columns:
                    # Only nullable columns were ever added after a table shipped.
                    op.add_column(name, item)
            present_indexes = {i["name"] for i in inspector.get_indexes(name) if i["name"]}
        for index, columns_of, unique in indexes:
            if index not in present_indexes:
                op.create_index(index, name, columns_of, unique=unique)


def downgrade() -> None:
    for name, _items, _indexes in reversed(_tables()):
        op.drop_table(name)

"""The transport's own tables on the one ``metadata``: documents, their deliveries,
payloads, events, business statuses, inbound sources; the delivery states and the
read-only option. Every other table joins this ``metadata`` in :mod:`bus.store.tables`,
which re-exports every name here.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("document_id", sa.String(255), nullable=False, index=True),
    sa.Column("dedup_key", sa.String(400), nullable=False, unique=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    # The sender's own bytes, kept for evidence when the bus forwards corrected ones
    # (a normalised date, a translated dialect); NULL when it forwards them as sent.
    sa.Column("original_sha256", sa.String(64)),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("code", sa.String(120)),
    sa.Column("business", sa.String(8)),
    sa.Column("status_code", sa.String(4)),
    sa.Column("refers_to", sa.String(32), index=True),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
    sa.Column("receipt", sa.Text, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # Indexed by ix_deliveries_document_recipients (tables.py; revision 0012 dropped
    # ix_deliveries_document, its prefix).
    sa.Column("document", sa.String(32), sa.ForeignKey("documents.id"), nullable=False),
    sa.Column("recipient", sa.String(64), nullable=False),
    sa.Column("effective_recipient", sa.String(64), nullable=False),
    sa.Column("destination", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(120), nullable=False),
    sa.Column("is_copy", sa.Boolean, nullable=False, default=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("receipt_reference", sa.String(255)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("delivered_at", sa.Float),
    sa.UniqueConstraint("document", "effective_recipient", "destination",
                        name="uq_delivery_target"),
    sa.Index("ix_deliveries_due", "state", "next_attempt_at"),
)

payloads = sa.Table(
    "payloads",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("document", sa.String(32), index=True),
    sa.Column("delivery", sa.String(32)),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(64)),
    sa.Column("detail", sa.Text),
)

business_statuses = sa.Table(
    "business_statuses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document", sa.String(32), sa.ForeignKey("documents.id"), nullable=False,
              index=True),
    sa.Column("organ_id", sa.String(64), nullable=False),
    sa.Column("code", sa.String(4), nullable=False),
    sa.Column("reported_at", sa.String(32)),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("status_document", sa.String(32), nullable=False),
)

inbound_sources = sa.Table(
    "inbound_sources",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("source_id", sa.String(255), primary_key=True),
    sa.Column("document", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

TERMINAL = frozenset({"delivered", "refused", "parked", "cancelled", "withdrawn"})
STATES = ("pending", "queued", "delivering", "awaiting", "delivered", "refused", "parked",
          "cancelled", "withdrawn")


READ_ONLY: dict[str, Any] = {"lgsp_read_only": True}
"""Execution options for a connection that only reads (``engine.connect()
.execution_options(**READ_ONLY)``): on SQLite its transaction does not take the write lock."""


def new_id() -> str:
    return uuid.uuid4().hex

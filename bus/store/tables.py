"""The database the bus keeps its truth in: its tables and how engines are made.

One schema for both backends: SQLite (WAL, the embedded default) and PostgreSQL
(scale-out). :mod:`bus.store` writes through these tables, :mod:`bus.store.queries` reads
them; operators' SQL reads them too, so column names are part of the contract.
"""

from __future__ import annotations

import sqlalchemy as sa

from bus.store.engines import create_engine
from bus.store.transport_tables import (
    READ_ONLY,
    STATES,
    TERMINAL,
    business_statuses,
    deliveries,
    documents,
    events,
    inbound_sources,
    metadata,
    new_id,
    payloads,
)

__all__ = ["READ_ONLY", "STATES", "TERMINAL", "agency_requests", "audit_seals", "business_statuses",
           "console_sessions", "console_switches", "console_users", "create_engine",
           "deliveries", "delivery_deadlines", "document_links", "documents", "events",
           "inbound_sources", "legal_holds", "metadata", "migration_jobs",
           "migration_records", "new_id", "payloads",
           "reconcile_leases", "reconcile_mismatches", "reconcile_runs"]


# What local systems asked of the directory (the axis facade's registerAgency and
# deleteAgency): kept for an administrator, who decides (`lgsp directory requests`).
agency_requests = sa.Table(
    "agency_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action", sa.String(8), nullable=False),
    sa.Column("code", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("parent", sa.String(64)),
    sa.Column("mail", sa.String(254)),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("requested_by", sa.String(64), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("decided_at", sa.Float),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("note", sa.Text),
    sa.Index("ix_agency_requests_state", "state", "created_at"),
)

# The operator console (bus.console): its local users, their sessions, and the switches
# operators flip for every process at once (the bulk-action stop switch).
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(12), nullable=False),
    # An agency officer sees what this connected system sent or its organisations received.
    sa.Column("system", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    # SHA-256 of the cookie's token: a copy of the table does not open sessions.
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(64), nullable=False, index=True),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

console_switches = sa.Table(
    "console_switches",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("on", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
)


# Reconciliation with the national axis (bus/reconcile): each run for one day, what it
# found that the two sides disagree on, and the lease that lets one process of many run
# the scheduled job.
reconcile_runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("day", sa.String(10), nullable=False, index=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False, index=True),
    sa.Column("finished_at", sa.Float),
    sa.Column("counts", sa.Text, nullable=False),
    sa.Column("notes", sa.Text),
    sa.Column("error", sa.Text),
)

reconcile_mismatches = sa.Table(
    "reconcile_mismatches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run", sa.String(32), sa.ForeignKey("reconcile_runs.id"), nullable=False,
              index=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("destination", sa.String(64), nullable=False),
    sa.Column("axis_doc_id", sa.String(255)),
    sa.Column("message_type", sa.String(8)),
    sa.Column("document", sa.String(32)),
    sa.Column("delivery", sa.String(32)),
    sa.Column("organ_id", sa.String(64)),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("action", sa.Text),
)

reconcile_leases = sa.Table(
    "reconcile_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("until", sa.Float, nullable=False),
)

# ---------------------------------------------------------------- payloads kept as files
# (concern: large payloads streamed end to end, issue 16). A payload at or above the
# store's inline threshold is a content-addressed file (bus.store.blobs); this row says
# where, and is written in the accept transaction only after the file is durable, so a
# row never points to a missing file. Small payloads stay in ``payloads``.
payload_files = sa.Table(
    "payload_files",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("location", sa.String(255), nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
)

# Large objects uploaded for payloads on PostgreSQL (bus.store.large_objects), each
# recorded in its upload's transaction so one no payload_files row names is swept.
payload_staging = sa.Table(
    "payload_staging",
    metadata,
    sa.Column("oid", sa.BigInteger, primary_key=True),
    sa.Column("staged_at", sa.Float, nullable=False, index=True),
)


# Working-day deadlines (bus.lifecycle): each recipient delivery's three deadlines, fixed
# when the document was accepted so that a later calendar or rule change never rewrites
# what a recipient was held to. Copies a route adds (the archive) have none.
delivery_deadlines = sa.Table(
    "delivery_deadlines",
    metadata,
    sa.Column("delivery", sa.String(32), sa.ForeignKey("deliveries.id"), primary_key=True),
    sa.Column("document", sa.String(32), sa.ForeignKey("documents.id"), nullable=False,
              index=True),
    sa.Column("rule", sa.String(120)),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("arrival_due", sa.Float),
    sa.Column("acceptance_due", sa.Float),
    sa.Column("completion_due", sa.Float),
    sa.Column("due_date", sa.String(10)),
    sa.Column("computed_at", sa.Float, nullable=False),
    # Set when the recipient's 06, 02 or 15 arrives: nothing more can fall due, so the
    # overdue gauge skips the row and its cost follows open deliveries, not history.
    sa.Column("settled_at", sa.Float),
    sa.Index("ix_delivery_deadlines_open", "settled_at"),
)


# Retention (lgsp purge): documents an operator holds against purging, e.g. for a dispute
# or an inspection (`lgsp hold add|remove|list`). No foreign key: a hold names documents
# by id and outlives nothing, and the purge's generic delete of rows that reference a
# document must never touch it.
legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("document", sa.String(32), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("held_by", sa.String(64), nullable=False),
    sa.Column("held_at", sa.Float, nullable=False),
)


# Evidence (bus.evidence): the seals that hash-chain the events table. A seal covers the
# events with ids first_id..last_id except those listed absent (never committed, or
# removed by a recorded purge before sealing), plus late ids (committed after their range
# was sealed); ``leaves`` is the SHA-256 of each covered event's canonical bytes, in id
# order, so a verifier can say which row changed and a bundle can prove one document's
# events without revealing the others'.
audit_seals = sa.Table(
    "audit_seals",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_id", sa.BigInteger, nullable=False),
    sa.Column("last_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("absent", sa.Text, nullable=False),
    sa.Column("late", sa.Text, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("leaves", sa.Text, nullable=False),
    sa.Column("events_hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("skip_hash", sa.String(64), nullable=False),
    sa.Column("sealed_at", sa.Float, nullable=False, index=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
)


# Document lifecycle (bus.lifecycle): a revoke/update/replace edoc linked to the original
# it names. ``unnamed`` is the JSON list of the original's recipients the superseding
# document does not address; ``added`` those a route's recall_follows_original added to it.
document_links = sa.Table(
    "document_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("original", sa.String(32), sa.ForeignKey("documents.id"), nullable=False,
              index=True),
    sa.Column("superseding", sa.String(32), sa.ForeignKey("documents.id"), nullable=False,
              index=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("withdrawn", sa.Integer, nullable=False, default=0),
    sa.Column("unnamed", sa.Text),
    sa.Column("added", sa.Text),
    sa.UniqueConstraint("original", "superseding", name="uq_document_link"),
)


# ---- Legacy archive migration (bus/migrate): a job per archive moved, and one row per
# legacy record: its manifest entry (files and their SHA-256 taken at plan time) and how
# far it went. Deliveries themselves are ordinary rows of ``deliveries``.
migration_jobs = sa.Table(
    "migration_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("options", sa.Text, nullable=False),
    sa.Column("manifest", sa.Text),
    sa.Column("manifest_sha256", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("finished_at", sa.Float),
)

migration_records = sa.Table(
    "migration_records",
    metadata,
    sa.Column("job", sa.String(32), sa.ForeignKey("migration_jobs.id"), primary_key=True),
    sa.Column("record_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("register", sa.String(64), nullable=False),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("document", sa.String(32)),
    sa.Column("packets", sa.Integer),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_migration_records_state", "job", "state", "seq"),
)


# Searches and the purge on a database that is never small again (issue 16; figures and
# plans in tests/bench/bench_scale.py's report). Each index serves a query that otherwise
# walked every document or delivery: a sender's or system's documents newest first, the
# documents addressed to an organisation or with a delivery in a state, and the purge's
# "is this payload still used" check.
sa.Index("ix_documents_sender_received", documents.c.sender, documents.c.received_at)
sa.Index("ix_documents_system_received", documents.c.system, documents.c.received_at)
sa.Index("ix_documents_payload_sha256", documents.c.payload_sha256)
sa.Index("ix_documents_original_sha256", documents.c.original_sha256)
# Searches go newest first through windows of time (bus.store.window). A delivery row is
# created in its document's transaction with created_at EQUAL to the document's
# received_at (Store.accept; tests/integration/test_scale_plans.py holds it to that), so
# a window on documents.received_at is the same window on deliveries.created_at. Code
# that ever adds a delivery to an older document must keep that, or widen the windows.
sa.Index("ix_deliveries_recipient", deliveries.c.recipient, deliveries.c.created_at,
         deliveries.c.document)
sa.Index("ix_deliveries_effective_recipient", deliveries.c.effective_recipient,
         deliveries.c.created_at, deliveries.c.document)
# destination (revision 0010): the queue-depth gauge (Store.depth, every scrape) groups the
# open deliveries by it, and read every parked one of the history from the table (0.2-0.7 s
# at 3 million deliveries); with it the gauge reads this index only.
sa.Index("ix_deliveries_state", deliveries.c.state, deliveries.c.created_at,
         deliveries.c.document, deliveries.c.destination)
# The console's code search (issue 16): a full code ("123/QĐ-UBND") is looked up here,
# newest first; only a partial code falls back to "contains", over a bounded number of
# the newest documents (bus.console.views).
sa.Index("ix_documents_code_received", documents.c.code, documents.c.received_at)


# Searches driven by a sender, a recipient or a rare state (issue 16, revision 0011;
# bus.store.window.newest_delivered). A connected system's visibility is tested per
# document through its deliveries' recipients, read from this index alone (each delivery
# row was fetched). A recipient's documents are walked through ix_deliveries_recipient,
# then through the few deliveries resolved to it from another recipient (successor
# resolution) here: walking ix_deliveries_effective_recipient again would read all its
# deliveries twice, since nearly every delivery reaches whom it was addressed to.
sa.Index("ix_deliveries_document_recipients", deliveries.c.document, deliveries.c.recipient,
         deliveries.c.effective_recipient)
sa.Index("ix_deliveries_resolved", deliveries.c.effective_recipient, deliveries.c.created_at,
         deliveries.c.document,
         sqlite_where=deliveries.c.effective_recipient != deliveries.c.recipient,
         postgresql_where=deliveries.c.effective_recipient != deliveries.c.recipient)


# The subject text index (issue 16, revision 0013): FTS5 trigrams on SQLite, a pg_trgm
# GIN index on PostgreSQL, created with these tables and kept in step by triggers; its
# objects are not declared here (bus.store.text_index.hidden).
import bus.store.text_index  # noqa: E402, F401

"""The statements of the hot paths, built once per shape and cached by Statements."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ClauseElement

from bus.store.rows import _EVENT_COLUMNS
from bus.store.tables import (
    business_statuses,
    deliveries,
    document_links,
    documents,
    events,
    inbound_sources,
    payload_files,
    payloads,
)


def _values(table: sa.Table, *names: str) -> dict[Any, Any]:
    return {table.c[name]: sa.bindparam(name) for name in names}


def _insert_payload(dialect: str) -> ClauseElement:
    """A payload already stored (the same bytes sent to two documents) is kept as is."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: ClauseElement = insert(payloads).values(
        _values(payloads, "sha256", "data")).on_conflict_do_nothing(index_elements=["sha256"])
    return statement


def _insert_payload_file(dialect: str) -> ClauseElement:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: ClauseElement = insert(payload_files).values(
        _values(payload_files, "sha256", "size", "location", "stored_at")
    ).on_conflict_do_nothing(index_elements=["sha256"])
    return statement


def _select_payload_file() -> ClauseElement:
    return sa.select(payload_files.c.size, payload_files.c.location).where(
        payload_files.c.sha256 == sa.bindparam("sha256"))


def _insert_document() -> ClauseElement:
    return documents.insert().values(_values(documents, *documents.c.keys()))




def _insert_source() -> ClauseElement:
    return inbound_sources.insert().values(_values(
        inbound_sources, "source", "source_id", "document", "at"))


def _insert_business_status() -> ClauseElement:
    return business_statuses.insert().inline().values(_values(
        business_statuses, "document", "organ_id", "code", "reported_at", "received_at",
        "status_document"))


def _find_source() -> ClauseElement:
    return sa.select(inbound_sources.c.document).where(
        inbound_sources.c.source == sa.bindparam("source"),
        inbound_sources.c.source_id == sa.bindparam("source_id"))


def _select_payload() -> ClauseElement:
    return sa.select(payloads.c.data).where(payloads.c.sha256 == sa.bindparam("sha256"))


def _due() -> ClauseElement:
    return (sa.select(deliveries.c.id, deliveries.c.destination, deliveries.c.attempts)
            .where(deliveries.c.state == "pending",
                   deliveries.c.next_attempt_at <= sa.bindparam("now"))
            .order_by(deliveries.c.next_attempt_at).limit(sa.bindparam("limit")))


def _mark_queued(dialect: str) -> ClauseElement:
    """pending → queued for a batch of (delivery, attempts) pairs, in one statement: the
    pairs travel as two arrays on PostgreSQL and as one JSON array on SQLite."""
    if dialect == "postgresql":
        return sa.text(
            "UPDATE deliveries SET state = 'queued', updated_at = :now "
            "FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:attempts AS INTEGER[])) "
            "AS published(id, attempts) "
            "WHERE deliveries.id = published.id AND deliveries.attempts = published.attempts "
            "AND deliveries.state = 'pending'")
    return sa.text(
        "UPDATE deliveries SET state = 'queued', updated_at = :now "
        "WHERE state = 'pending' AND id IN ("
        "SELECT json_extract(value, '$[0]') FROM json_each(:pairs) "
        "WHERE json_extract(value, '$[1]') = deliveries.attempts)")


def _claim() -> ClauseElement:
    d = deliveries.c
    return deliveries.update().where(
        d.id == sa.bindparam("delivery"),
        sa.or_(d.state == "pending", d.state == "queued",
               sa.and_(d.state == "delivering", d.lease_until < sa.bindparam("now"))),
    ).values(state="delivering", lease_until=sa.bindparam("lease_until"),
             attempts=d.attempts + 1, updated_at=sa.bindparam("now"))


def _claimed() -> ClauseElement:
    """The columns of :class:`Claim`, in its field order, then the payload.

    SQLite runs this after :func:`_claim` in the claim's transaction: there an UPDATE …
    RETURNING with the document's columns as subqueries was measured 10–15 µs *slower*
    per claim than the two statements (no round trip to save in-process, and RETURNING
    copies the payload through a temporary table)."""
    d = deliveries.c
    return (sa.select(d.id, d.document, d.recipient, d.effective_recipient, d.destination,
                      d.attempts, documents.c.kind, documents.c.sender,
                      documents.c.document_id, documents.c.payload_sha256, d.created_at,
                      payloads.c.data)
            .join(documents, documents.c.id == d.document)
            .outerjoin(payloads, payloads.c.sha256 == documents.c.payload_sha256)
            .where(d.id == sa.bindparam("delivery")))


def _claim_audited() -> ClauseElement:
    """PostgreSQL: the claim, its ``attempt`` event and the columns of :class:`Claim`
    (then the payload) as one statement, data-modifying CTEs, so that it runs on its own
    without BEGIN and COMMIT: one round trip where there were five. The event's detail
    is the JSON :func:`bus.store.rows._event` writes for it, byte for byte."""
    d = deliveries.c
    update: Any = _claim()
    claimed = update.returning(d.id, d.document, d.recipient, d.effective_recipient,
                               d.destination, d.attempts, d.created_at).cte("claimed")
    c = claimed.c
    audit = events.insert().from_select(list(_EVENT_COLUMNS), sa.select(
        sa.bindparam("now"), c.document, c.id, sa.bindparam("actor"),
        sa.literal_column("'attempt'"), sa.null(),
        sa.func.concat(sa.literal_column("'{\"attempt\": '"), c.attempts,
                       sa.literal_column("'}'")))).cte("audit")
    return (sa.select(c.id, c.document, c.recipient, c.effective_recipient, c.destination,
                      c.attempts, documents.c.kind, documents.c.sender,
                      documents.c.document_id, documents.c.payload_sha256, c.created_at,
                      payloads.c.data)
            .select_from(claimed.join(documents, documents.c.id == c.document)
                         .outerjoin(payloads,
                                    payloads.c.sha256 == documents.c.payload_sha256))
            .add_cte(audit))


def _finish(shape: tuple[str, ...]) -> ClauseElement:
    """The outcome of attempt ``attempts``, only if that attempt still holds the lease."""
    d = deliveries.c
    settable = [name for name in shape if not name.startswith("d_")]
    return deliveries.update().where(
        d.id == sa.bindparam("d_id"), d.state == "delivering",
        d.attempts == sa.bindparam("d_attempts"),
    ).values({d[name]: sa.bindparam(name) for name in settable} | {d.lease_until: None})


def _finish_audited(shape: tuple[str, ...]) -> ClauseElement:
    """PostgreSQL: the outcome and its event as one statement, the event written only if
    the outcome was (its row count is the outcome's)."""
    done = _finish(shape)
    assert isinstance(done, sa.Update)
    recorded = done.returning(deliveries.c.id).cte("recorded")
    statement: ClauseElement = events.insert().from_select(
        list(_EVENT_COLUMNS), sa.select(*(
            recorded.c.id if column == "delivery" else sa.bindparam(f"e_{column}")
            for column in _EVENT_COLUMNS))).add_cte(recorded)
    return statement


def _withdraw_recalled() -> ClauseElement:
    """An attempt under way when its document was revoked or replaced, which then failed,
    ends ``withdrawn`` instead of going round again (bus.lifecycle)."""
    d, link = deliveries.c, document_links.c
    return deliveries.update().where(
        d.id == sa.bindparam("delivery"),
        sa.or_(d.state == "pending", d.state == "parked", d.state == "awaiting"),
        sa.exists().where(link.original == d.document,
                          sa.or_(link.kind == "revoke", link.kind == "replace")),
    ).values(state="withdrawn", lease_until=None)

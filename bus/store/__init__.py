"""The truth about documents and deliveries: the transport state machine and its writes.

The database, not the broker, decides what has happened. A success answer to a sender
is given only after :meth:`Store.accept` has committed the document with one delivery row
per recipient; from then on every (document, recipient) walks the transport state
machine below until it reaches a terminal state, and every step is an audit event::

    pending ──publish──► queued ──claim──► delivering ──► delivered   (terminal)
       ▲                                      │ ├──────► refused     (terminal)
       └──────────── retry at t ◄─────────────┘ ├──────► parked      (terminal until
                                                │                      an operator requeues)
                                                └──────► awaiting ──ack──► delivered
                                                         (in a mailbox   └─fail──► refused
                                                          the system polls)

    pending, queued, awaiting ──recall accepted──► withdrawn   (terminal; bus.lifecycle)

Transitions are conditional ``UPDATE … WHERE state = …`` statements, so two workers (or
a worker and a sweeper) racing on the same delivery cannot both win: broker duplicates
and crashes are absorbed here. Business statuses (01…16) are a separate table: they
describe what the recipient's clerk did, not whether the bytes arrived.

The same code runs on SQLite (WAL, the embedded default) and PostgreSQL (scale-out); the
tables are in :mod:`bus.store.tables`, the hot statements run through :mod:`bus.store.statements`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ClauseElement

from bus import errors
from bus.store.blobs import PayloadBody, PayloadFiles, Staged
from bus.store.statements import Statements, Transaction
from bus.store.tables import (
    READ_ONLY,
    business_statuses,
    deliveries,
    document_links,
    documents,
    events,
    inbound_sources,
    new_id,
    payload_files,
    payloads,
)

log = structlog.get_logger("lgsp.store")

# PostgreSQL SQLSTATE class 53 "insufficient resources": 53100 is disk_full.
_PG_DISK_FULL = "53100"
_UNREACHABLE = ("the bus's database is unreachable; nothing was stored; retry later "
                "(operators: check the database server and /readyz)")
_BUSY = ("the bus's database is busy; nothing was stored; retry later")
_DISK_FULL = ("the disk of the bus's data directory is full; nothing was stored; retry "
              "later (operators: free space on the data directory's disk)")


def outage(exc: BaseException) -> errors.Unavailable | None:
    """The refusal a sender should get when the database, not the packet, failed.

    A full disk (SQLite's SQLITE_FULL, PostgreSQL's disk_full) is StorageFull (507); a
    server that is down, restarting or dropped the connection, or a pool with no free
    connection, is Unavailable (503). Anything else (a constraint, a bug) is not an
    outage and returns None, so it is not disguised as one. Either way the transaction
    was rolled back, which is why the message can promise "nothing was stored".
    """
    orig = getattr(exc, "orig", None) or exc
    if _no_space(exc):  # a payload file or a spooled body, written beside the database
        return errors.StorageFull(_DISK_FULL)
    if isinstance(orig, sqlite3.Error):
        if getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL \
                or "database or disk is full" in str(orig):
            return errors.StorageFull(_DISK_FULL)
        if isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig):
            return errors.Unavailable(_BUSY)
        return None
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return errors.StorageFull(_DISK_FULL)
    if isinstance(exc, sa.exc.TimeoutError):
        return errors.Unavailable(_UNREACHABLE)
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return errors.Unavailable(_UNREACHABLE)
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return errors.Unavailable(_UNREACHABLE)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the PostgreSQL driver is optional
        return None
    if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)):
        return errors.Unavailable(_UNREACHABLE)
    return None


def _no_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` or what caused it is the file system saying it is full."""
    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def outage_refused() -> Iterator[None]:
    """Turns a database outage inside the block into :func:`outage`'s refusal."""
    try:
        yield
    except Exception as exc:
        refusal = outage(exc)
        if refusal is None:
            raise
        raise refusal from exc


@dataclass(frozen=True)
class NewDelivery:
    recipient: str
    effective_recipient: str
    destination: str
    rule: str
    is_copy: bool = False


@dataclass(frozen=True)
class Accepted:
    """The outcome of :meth:`Store.accept`: the receipt and whether it already existed."""

    receipt: dict[str, Any]
    document: str
    deliveries: tuple[tuple[str, str], ...]
    existing: bool


class Due(NamedTuple):
    """A pending delivery whose time has come."""

    id: str
    destination: str
    attempts: int


@dataclass(frozen=True)
class Claim:
    """A delivery a worker now holds the lease on."""

    id: str
    document: str
    recipient: str
    effective_recipient: str
    destination: str
    attempts: int
    kind: str
    sender: str
    document_id: str
    payload_sha256: str
    created_at: float
    payload: bytes | None = None


_CLAIM_FIELDS = tuple(f.name for f in fields(Claim) if f.name != "payload")


class Store:
    def __init__(self, engine: Engine, files: PayloadFiles | None = None) -> None:
        """``files``: where payloads at or above its threshold are kept; without it every
        payload is a row (tests, tools that open a database on its own)."""
        self.engine = engine
        self.statements = Statements(engine)
        self.files = files
        self._next_file_sweep = 0.0

    def create_schema(self) -> None:
        """Brings the database to this release's schema, or refuses (see
        :func:`bus.store.schema.ensure`): an empty one is created, the embedded one is
        upgraded, a PostgreSQL one behind this release needs ``lgsp db upgrade``."""
        from bus.store.schema import ensure

        ensure(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @staticmethod
    def audit(conn: Connection, actor: str, action: str, *, document: str | None = None,
              delivery: str | None = None, digest: str | None = None,
              detail: dict[str, Any] | None = None, at: float | None = None) -> None:
        conn.execute(events.insert(), [_event(actor, action, at or time.time(),
                                              document=document, delivery=delivery,
                                              digest=digest, detail=detail)])

    def accept(
        self,
        *,
        kind: str,
        sender: str,
        document_id: str,
        dedup_key: str,
        content_sha256: str,
        payload: bytes | Staged,
        system: str,
        targets: Sequence[NewDelivery],
        summary: dict[str, Any],
        refers_to: str | None = None,
        source: tuple[str, str] | None = None,
        status: tuple[str, str, str | None] | None = None,
        original: bytes | Staged | None = None,
        notices: Sequence[dict[str, Any]] = (),
        within: Callable[[Transaction, str, float], Sequence[dict[str, Any]]] | None = None,
        with_deliveries: Callable[[Transaction, str, Sequence[dict[str, Any]]], None]
        | None = None,
    ) -> Accepted:
        """Commits a document and its deliveries in one transaction, or returns the original.

        Re-submission with the same key and content gives the original receipt; the same key
        with other content is :class:`~bus.errors.DuplicateDocumentId`. ``source`` is an
        inbound poller's (name, item id) so an axis item fetched twice is accepted once.
        ``status`` is (organ_id, code, reported_at) for status packets about ``refers_to``.
        ``content_sha256`` is the digest of the bytes as submitted (what re-submission is
        compared on); ``payload`` is what will be forwarded, with the bus's TraceHeader.
        ``original`` is the sender's bytes when ``payload`` was corrected from them (kept as a
        payload row, ``documents.original_sha256``); ``notices`` are the tolerance policy's
        findings, recorded on the accepted event. Either may come already :class:`Staged`
        as a file (a large body spooled as it arrived); bytes at or above the files'
        threshold are staged here. Files are durable before the transaction begins.
        ``within(tx, document, now)`` runs in the same transaction after the deliveries
        are written (a recall withdraws the original's deliveries there, so no worker can
        claim one after the recall is accepted) and returns event rows
        (:func:`event_row`) to record after the accepted one. ``with_deliveries(tx,
        document, rows)`` also runs in it, with the delivery rows as written (their ids),
        for rows of other tables that hang off them (a document's deadlines).
        """
        digest = content_sha256
        kept = self._keep(payload)
        payload_digest, size = kept.sha256, kept.size
        kept_original = self._keep(original) if original is not None else None
        original_digest = kept_original.sha256 if kept_original is not None else None
        now = time.time()
        doc = new_id()
        rows: list[dict[str, Any]] = [
            {"id": new_id(), "document": doc, "recipient": t.recipient,
             "effective_recipient": t.effective_recipient, "destination": t.destination,
             "rule": t.rule, "is_copy": t.is_copy, "state": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now, "updated_at": now}
            for t in _unique_targets(targets)
        ]
        receipt = {"id": doc, "document_id": document_id, "kind": kind,
                   "recipients": [
                       {"recipient": r["recipient"], "delivered_to": r["effective_recipient"],
                        "destination": r["destination"], "delivery": r["id"]}
                       for r in rows]}
        if notices:
            receipt["notices"] = list(notices)
        try:
            if source is not None:
                with self.statements.begin(write=False) as tx:
                    found = tx.one("source", _find_source,
                                   {"source": source[0], "source_id": source[1]})
                if found is not None:
                    return self._existing(str(found[0]), digest, dedup_key)
            with self.statements.begin() as tx:
                for item in (kept, kept_original):
                    if item is not None:
                        item.insert(tx, self.engine.dialect.name, now)
                tx.execute("document", _insert_document, {
                    "id": doc, "kind": kind, "sender": sender, "document_id": document_id,
                    "dedup_key": dedup_key, "sha256": digest, "payload_sha256": payload_digest,
                    "original_sha256": original_digest,
                    "size": size, "system": system,
                    "subject": summary.get("subject"), "code": summary.get("code"),
                    "business": summary.get("business"),
                    "status_code": summary.get("status_code"), "refers_to": refers_to,
                    "received_at": now, "receipt": json.dumps(receipt, ensure_ascii=False)})
                if rows:
                    tx.insert(deliveries, _DELIVERY_COLUMNS, rows)
                if with_deliveries is not None:
                    with_deliveries(tx, doc, rows)
                if source is not None:
                    tx.execute("inbound", _insert_source, {
                        "source": source[0], "source_id": source[1], "document": doc,
                        "at": now})
                if status is not None and refers_to is not None:
                    tx.execute("business_status", _insert_business_status, {
                        "document": refers_to, "organ_id": status[0], "code": status[1],
                        "reported_at": status[2], "received_at": now,
                        "status_document": doc})
                extra = list(within(tx, doc, now)) if within is not None else []
                tx.insert(events, _EVENT_COLUMNS, [
                    _event(system, "accepted", now, document=doc, digest=digest,
                           detail={"sender": sender, "document_id": document_id,
                                   "recipients": [r["effective_recipient"] for r in rows],
                                   "payload_sha256": payload_digest,
                                   **({"tolerated": list(notices)} if notices else {}),
                                   **({"original_sha256": original_digest}
                                      if original_digest else {})}),
                    *(_event("router", "routed", now, document=doc, delivery=r["id"],
                             detail={"recipient": r["recipient"],
                                     "effective": r["effective_recipient"],
                                     "destination": r["destination"], "rule": r["rule"]})
                      for r in rows),
                    *extra,
                ])
        except sa.exc.IntegrityError:
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(documents.c.id).where(
                    documents.c.dedup_key == dedup_key)).scalar()
            if found is None:
                raise
            existing = self._existing(found, digest, dedup_key)
            if source is not None:
                self._link_source(source, found)
            return existing
        return Accepted(receipt, doc, tuple((r["id"], r["destination"]) for r in rows), False)

    def _link_source(self, source: tuple[str, str], doc: str) -> None:
        """A polled item that is a document already held (it came by another door, or the
        far side holds one packet under two ids) is linked to it, so the item is known as
        received and is neither fetched nor reported missing again."""
        try:
            with self.statements.begin() as tx:
                tx.execute("inbound", _insert_source, {"source": source[0],
                           "source_id": source[1], "document": doc, "at": time.time()})
        except sa.exc.IntegrityError:
            pass  # linked by a concurrent fetch of the same item

    def _existing(self, doc: str, digest: str, dedup_key: str) -> Accepted:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(documents.c.sha256, documents.c.receipt,
                                         documents.c.dedup_key)
                               .where(documents.c.id == doc)).one()
        if row.sha256 != digest or row.dedup_key != dedup_key:
            raise errors.DuplicateDocumentId(
                "a different document was already accepted with this sender and DocumentId; "
                "give a corrected document a new DocumentId",
                details={"original": doc})
        receipt = json.loads(row.receipt)
        pairs = tuple((r["delivery"], r["destination"]) for r in receipt["recipients"])
        return Accepted(receipt, doc, pairs, True)

    def original(self, document: str) -> bytes | None:
        """The sender's own bytes of ``document`` when the bus forwarded corrected ones."""
        with self.engine.connect() as conn:
            digest = conn.execute(sa.select(documents.c.original_sha256).where(
                documents.c.id == document)).scalar()
        return self.payload(digest) if digest else None

    def payload(self, digest: str) -> bytes:
        """Every byte at once: for small payloads and callers that need them in memory;
        streams read :meth:`body` instead."""
        return self.body(digest).read()

    def body(self, digest: str) -> PayloadBody:
        """The payload as a stream: its row's bytes, or its file opened when read."""
        with self.statements.begin(write=False) as tx:
            row = tx.one("payload", _select_payload, {"sha256": digest})
            found = None if row is not None else tx.one(
                "payload_file", _select_payload_file, {"sha256": digest})
        if row is not None:
            return PayloadBody.of(bytes(row[0]))
        if found is None:
            raise errors.NotFound(f"payload {digest} is missing from the store")
        files = self.files
        if files is None:
            raise errors.NotFound(
                f"payload {digest} is a file and this process has no payload directory")
        location = str(found[1])
        return PayloadBody(int(found[0]), opener=lambda: files.open(location))

    def sweep_payload_files(self, *, older_than_s: float = 3600.0) -> int:
        """Removes payload files no row names (see :meth:`PayloadFiles.sweep`)."""
        if self.files is None:
            return 0

        def named(digests: list[str]) -> set[str]:
            with self.engine.connect() as conn:
                return set(conn.execute(sa.select(payload_files.c.sha256).where(
                    payload_files.c.sha256.in_(digests))).scalars())

        return self.files.sweep(named, older_than_s=older_than_s)

    def _keep(self, content: bytes | Staged) -> _Kept:
        if isinstance(content, Staged):
            return _Kept(content.sha256, content.size, None, content)
        if self.files is not None and len(content) >= self.files.inline_below:
            staged = self.files.stage((content,))
            return _Kept(staged.sha256, staged.size, None, staged)
        return _Kept(hashlib.sha256(content).hexdigest(), len(content), content, None)

    def due(self, *, limit: int = 100, now: float | None = None,
            destinations: Iterable[str] | None = None) -> list[Due]:
        """Pending deliveries whose time has come, oldest first."""
        now = now or time.time()
        if destinations is None:
            with self.statements.begin(write=False) as tx:
                return [Due(*r) for r in tx.all("due", _due, {"now": now, "limit": limit})]
        d = deliveries.c
        query = (sa.select(d.id, d.destination, d.attempts)
                 .where(d.state == "pending", d.next_attempt_at <= now,
                        d.destination.in_(list(destinations)))
                 .order_by(d.next_attempt_at).limit(limit))
        with self.engine.connect() as conn:
            return [Due(*r) for r in conn.execute(query)]

    def mark_queued(self, published: Iterable[tuple[str, int]]) -> int:
        """pending → queued for tasks the broker confirmed: (delivery, its attempts when
        it was published); returns how many moved.

        A row whose attempt count moved on since its publication was claimed from that
        very task and may already be pending again for a retry, with no task in flight;
        marking it queued would leave it waiting for the sweeper, so it is left alone.
        """
        rows = [{"delivery": delivery, "attempts": attempts, "now": time.time()}
                for delivery, attempts in published]
        if not rows:
            return 0
        moved = 0
        with self.statements.begin() as tx:
            for row in rows:
                moved += tx.execute("mark_queued", _mark_queued, row)
        return moved

    def claim(self, delivery: str, *, lease_s: float, worker: str) -> Claim | None:
        """Takes the lease on a delivery, or None if it is terminal or leased elsewhere.

        The payload comes with the claim, in the same transaction, so an attempt costs
        the database one round of statements before the destination is called.
        """
        now = time.time()
        with self.statements.begin() as tx:
            done = tx.execute("claim", _claim, {"delivery": delivery, "now": now,
                                                "lease_until": now + lease_s})
            if not done:
                return None
            row = tx.one("claimed", _claimed, {"delivery": delivery})
            if row is None:
                return None
            data = row[-1]
            claim = Claim(**dict(zip(_CLAIM_FIELDS, row[:-1], strict=True)),
                          payload=bytes(data) if data is not None else None)
            tx.insert(events, _EVENT_COLUMNS, [_event(
                worker, "attempt", now, document=claim.document, delivery=delivery,
                detail={"attempt": claim.attempts})])
        return claim

    def finish(self, claim: Claim, state: str, *, worker: str, reason: str | None = None,
               reference: str | None = None, retry_at: float | None = None) -> bool:
        """Records the outcome of a claimed attempt; False when the lease was lost meanwhile."""
        now = time.time()
        values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": reason,
                                  "d_id": claim.id, "d_attempts": claim.attempts}
        if state == "delivered":
            values.update(delivered_at=now, receipt_reference=reference)
        if state == "awaiting":
            values["receipt_reference"] = reference
        if state == "pending":
            values["next_attempt_at"] = retry_at or now
        shape = tuple(sorted(values))
        with self.statements.begin() as tx:
            done = tx.execute(("finish", shape), lambda: _finish(shape), values)
            if done:
                action = "retry" if state == "pending" else state
                trail = [_event(
                    worker, action, now, document=claim.document, delivery=claim.id,
                    detail={"attempt": claim.attempts, "reason": reason,
                            "reference": reference, "retry_at": retry_at})]
                if state in ("pending", "parked", "awaiting") and tx.execute(
                        "withdraw_recalled", _withdraw_recalled, {"delivery": claim.id}):
                    trail.append(_event(worker, "withdrawn", now, document=claim.document,
                                        delivery=claim.id,
                                        detail={"reason": "the document was recalled while "
                                                          "this attempt was under way"}))
                tx.insert(events, _EVENT_COLUMNS, trail)
        return bool(done)

    def acknowledge(self, delivery: str, *, ok: bool, actor: str,
                    reason: str | None = None) -> bool:
        """A mailbox system confirmed (or refused) a delivery it collected; idempotent."""
        now = time.time()
        state = "delivered" if ok else "refused"
        values: dict[str, Any] = {"state": state, "updated_at": now, "last_error": reason}
        if ok:
            values["delivered_at"] = now
        with self.begin() as conn:
            row = conn.execute(sa.select(deliveries.c.document).where(
                deliveries.c.id == delivery)).first()
            if row is None:
                return False
            done = conn.execute(deliveries.update().where(
                deliveries.c.id == delivery, deliveries.c.state == "awaiting"
            ).values(**values)).rowcount
            if done:
                self.audit(conn, actor, "acknowledged" if ok else "refused",
                           document=row.document, delivery=delivery, at=now,
                           detail={"reason": reason} if reason else None)
        return bool(done)

    def sweep(self, *, queued_older_than_s: float, now: float | None = None) -> int:
        """Returns lost work to ``pending``: expired leases and long-unclaimed queued tasks.

        Every ten minutes it also removes orphan payload files (see
        :meth:`sweep_payload_files`); their count is not part of the answer."""
        if self.files is not None and time.monotonic() >= self._next_file_sweep:
            self._next_file_sweep = time.monotonic() + 600.0
            try:
                self.sweep_payload_files()
            except Exception:  # another node sweeping at once; the next round will do
                log.warning("store.payload_sweep_failed", exc_info=True)
        now = now or time.time()
        with self.begin() as conn:
            expired = conn.execute(deliveries.update().where(
                deliveries.c.state == "delivering", deliveries.c.lease_until < now
            ).values(state="pending", lease_until=None, updated_at=now,
                     last_error="worker lease expired")).rowcount
            stale = conn.execute(deliveries.update().where(
                deliveries.c.state == "queued",
                deliveries.c.updated_at < now - queued_older_than_s,
            ).values(state="pending", updated_at=now)).rowcount
        return int(expired or 0) + int(stale or 0)

    def depth(self) -> list[tuple[str, str, int, float | None]]:
        """(destination, state, count, oldest created_at) for every non-final state."""
        query = (sa.select(deliveries.c.destination, deliveries.c.state, sa.func.count(),
                           sa.func.min(deliveries.c.created_at))
                 .where(deliveries.c.state.in_(("pending", "queued", "delivering", "awaiting",
                                                "parked")))
                 .group_by(deliveries.c.destination, deliveries.c.state))
        with self.engine.connect().execution_options(**READ_ONLY) as conn:
            return [(r[0], r[1], int(r[2]), r[3]) for r in conn.execute(query)]

    def requeue(self, delivery: str, *, actor: str) -> bool:
        """Operator action: a parked (or refused) delivery goes round again from attempt 0."""
        now = time.time()
        with self.begin() as conn:
            row = conn.execute(sa.select(deliveries.c.document).where(
                deliveries.c.id == delivery,
                deliveries.c.state.in_(("parked", "refused")))).first()
            if row is None:
                return False
            conn.execute(deliveries.update().where(deliveries.c.id == delivery).values(
                state="pending", attempts=0, next_attempt_at=now, updated_at=now,
                last_error=None))
            self.audit(conn, actor, "requeued", document=row.document, delivery=delivery,
                       at=now)
        return True


class _Kept(NamedTuple):
    """A payload as the accept transaction records it: a row's bytes or a staged file."""

    sha256: str
    size: int
    data: bytes | None
    staged: Staged | None

    def insert(self, tx: Transaction, dialect: str, now: float) -> None:
        if self.staged is None:
            tx.execute(("payload", dialect), lambda: _insert_payload(dialect),
                       {"sha256": self.sha256, "data": self.data})
            return
        tx.execute(("payload_file", dialect), lambda: _insert_payload_file(dialect),
                   {"sha256": self.sha256, "size": self.size,
                    "location": self.staged.location, "stored_at": now})


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


_DELIVERY_COLUMNS = ("id", "document", "recipient", "effective_recipient", "destination",
                     "rule", "is_copy", "state", "attempts", "next_attempt_at", "created_at",
                     "updated_at")
_EVENT_COLUMNS = ("at", "document", "delivery", "actor", "action", "digest", "detail")


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


def _mark_queued() -> ClauseElement:
    d = deliveries.c
    return deliveries.update().where(
        d.id == sa.bindparam("delivery"), d.state == "pending",
        d.attempts == sa.bindparam("attempts"),
    ).values(state="queued", updated_at=sa.bindparam("now"))


def _claim() -> ClauseElement:
    d = deliveries.c
    return deliveries.update().where(
        d.id == sa.bindparam("delivery"),
        sa.or_(d.state == "pending", d.state == "queued",
               sa.and_(d.state == "delivering", d.lease_until < sa.bindparam("now"))),
    ).values(state="delivering", lease_until=sa.bindparam("lease_until"),
             attempts=d.attempts + 1, updated_at=sa.bindparam("now"))


def _claimed() -> ClauseElement:
    """The columns of :class:`Claim`, in its field order, then the payload."""
    d = deliveries.c
    return (sa.select(d.id, d.document, d.recipient, d.effective_recipient, d.destination,
                      d.attempts, documents.c.kind, documents.c.sender,
                      documents.c.document_id, documents.c.payload_sha256, d.created_at,
                      payloads.c.data)
            .join(documents, documents.c.id == d.document)
            .outerjoin(payloads, payloads.c.sha256 == documents.c.payload_sha256)
            .where(d.id == sa.bindparam("delivery")))


def _finish(shape: tuple[str, ...]) -> ClauseElement:
    """The outcome of attempt ``attempts``, only if that attempt still holds the lease."""
    d = deliveries.c
    settable = [name for name in shape if not name.startswith("d_")]
    return deliveries.update().where(
        d.id == sa.bindparam("d_id"), d.state == "delivering",
        d.attempts == sa.bindparam("d_attempts"),
    ).values({d[name]: sa.bindparam(name) for name in settable} | {d.lease_until: None})


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


def _event(actor: str, action: str, at: float, *, document: str | None = None,
           delivery: str | None = None, digest: str | None = None,
           detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"at": at, "document": document, "delivery": delivery, "actor": actor,
            "action": action, "digest": digest,
            "detail": json.dumps(detail, ensure_ascii=False) if detail else None}


def event_row(actor: str, action: str, at: float, *, document: str | None = None,
              delivery: str | None = None, digest: str | None = None,
              detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ``events`` row for :meth:`Store.accept`'s ``within`` hook (the one event format)."""
    return _event(actor, action, at, document=document, delivery=delivery, digest=digest,
                  detail=detail)


EVENT_COLUMNS = _EVENT_COLUMNS


def _unique_targets(targets: Sequence[NewDelivery]) -> list[NewDelivery]:
    seen: set[tuple[str, str]] = set()
    out = []
    for t in targets:
        key = (t.effective_recipient, t.destination)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out

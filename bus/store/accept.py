"""The accept path: one transaction commits a document, its payload and its deliveries."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from bus import errors
from bus.store.blobs import Staged
from bus.store.core import StoreCore
from bus.store.rows import (
    _DELIVERY_COLUMNS,
    _EVENT_COLUMNS,
    Accepted,
    NewDelivery,
    _event,
)
from bus.store.sql import (
    _find_source,
    _insert_business_status,
    _insert_document,
    _insert_payload,
    _insert_payload_file,
    _insert_source,
)
from bus.store.statements import Transaction
from bus.store.tables import (
    deliveries,
    documents,
    events,
    new_id,
)


class Accepting(StoreCore):
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
        receipt_json = json.dumps(receipt, ensure_ascii=False, separators=(",", ":"))
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
                    "received_at": now, "receipt": receipt_json})
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
        return Accepted(receipt, doc, tuple((r["id"], r["destination"]) for r in rows), False,
                        receipt_json)

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
        return Accepted(receipt, doc, pairs, True, row.receipt)

    def _keep(self, content: bytes | Staged) -> _Kept:
        if isinstance(content, Staged):
            return _Kept(content.sha256, content.size, None, content)
        if self.files is not None and len(content) >= self.files.inline_below:
            staged = self.files.stage((content,))
            return _Kept(staged.sha256, staged.size, None, staged)
        return _Kept(hashlib.sha256(content).hexdigest(), len(content), content, None)


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



def _unique_targets(targets: Sequence[NewDelivery]) -> list[NewDelivery]:
    seen: set[tuple[str, str]] = set()
    out = []
    for t in targets:
        key = (t.effective_recipient, t.destination)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out

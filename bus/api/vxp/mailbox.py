"""Sending and the mailbox: what a system sends, and what waits for it to collect.

* **sendEdoc** goes through the same door as REST and SOAP; ``DocId`` is the bus
  document id, given only after the commit (contract.md, rule 1).
* **Receiving** is the mailbox: deliveries to the system's destination that the worker
  left ``awaiting`` are counted by countReceiveEdoc / countReceiveStatus, listed by
  getReceivedEdocList (``docId`` = the delivery id), fetched by getEdoc (base64 in JSON)
  or downloadEdoc (the bytes themselves, identical), and ended by updateStatus:
  ``done`` → delivered, ``fail`` → refused, ``processing`` → recorded, no change.
  Acknowledging twice is harmless.
"""

from __future__ import annotations

import base64
from typing import Any, Final
from urllib.parse import unquote

import sqlalchemy as sa
import structlog

from bus import errors, vxp
from bus.api.vxp.facade import Action, Facade
from bus.api.vxp_systems import VxpSystem
from bus.store import Store
from bus.store.tables import deliveries, documents, events

__all__ = ["OPERATIONS"]

MAILBOX_PAGE: Final = 500
REASON_CHARS: Final = 500
MailboxRow = sa.Row[Any, Any, Any, Any]
# What getSentEdocList says per transport state: (receiveStatus, its description).
_RECEIVE: Final = {
    "pending": ("processing", "in transit at the provincial bus"),
    "queued": ("processing", "in transit at the provincial bus"),
    "delivering": ("processing", "being delivered"),
    "awaiting": ("processing", "waiting for the recipient system to collect it"),
    "delivered": ("done", "received by the recipient system"),
    "refused": ("fail", "refused by the recipient system"),
    "parked": ("processing", "held for an operator of the provincial bus"),
    "cancelled": ("fail", "cancelled by an operator of the provincial bus"),
    "withdrawn": ("fail", "withdrawn: the sender revoked or replaced the document first"),
}
_MAILBOX_STATES: Final = ("awaiting", "delivered", "refused")


def send_edoc(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
    f.param(verified, "hash-file")
    expect = f.message_type(verified)
    key = f.param(verified, vxp.IDEMPOTENCY_KEY, required=False)
    source = (entry.actor, key[:255]) if key else None
    structlog.contextvars.bind_contextvars(system=entry.system)
    accepted = f.bus.submit(verified.packet, system=entry.system, channel="vxp",
                            expect=expect, source=source)
    structlog.contextvars.bind_contextvars(document=accepted.document)
    desc = "already accepted: the original DocId" if accepted.existing else "accepted"
    return vxp.ok_answer(desc, DocId=accepted.document)


def received_list(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
    kind = f.message_type(verified)
    d, doc = deliveries.c, documents.c
    query = (sa.select(d.id, d.effective_recipient, d.created_at, d.updated_at, doc.kind,
                       doc.sender)
             .join(documents, doc.id == d.document)
             .where(d.destination == f.destination(entry), d.state == "awaiting")
             .order_by(d.updated_at, d.id).limit(MAILBOX_PAGE))
    if kind is not None:
        query = query.where(doc.kind == kind)
    with f.store.engine.connect() as conn:
        rows = conn.execute(query).all()
    items = [{"docId": r.id, "serviceType": vxp.SERVICE_TYPE, "messageType": r.kind,
              "created_time": f.time(r.created_at), "updated_time": f.time(r.updated_at),
              "from": r.sender, "to": r.effective_recipient, "status": "initial",
              "status_desc": "waiting to be collected"} for r in rows]
    return vxp.ok_answer(f"{len(items)} item(s)", data=items)


def _count(kind: str) -> Action:
    def count(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
        """The whole pending count (the list shows at most MAILBOX_PAGE); the operation,
        not a (possibly stale) messagetype header, says which kind."""
        d, doc = deliveries.c, documents.c
        query = (sa.select(sa.func.count()).select_from(deliveries)
                 .join(documents, doc.id == d.document)
                 .where(d.destination == f.destination(entry), d.state == "awaiting",
                        doc.kind == kind))
        with f.store.engine.connect() as conn:
            total = int(conn.execute(query).scalar_one())
        return vxp.ok_answer(f"{total} {kind} item(s) waiting", count=total)
    return count


def _delivery(f: Facade, entry: VxpSystem, doc_id: str) -> MailboxRow:
    d, doc = deliveries.c, documents.c
    query = (sa.select(d.id, d.document, d.state, doc.payload_sha256)
             .join(documents, doc.id == d.document)
             .where(d.id == doc_id, d.destination == f.destination(entry)))
    with f.store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.state not in _MAILBOX_STATES:
        raise errors.NotFound(f"no item {doc_id!r} in the mailbox of systemId "
                              f"{entry.system_id}")
    return row


def _audit_once(f: Facade, entry: VxpSystem, row: MailboxRow, action: str,
                detail: dict[str, Any] | None = None) -> None:
    """Repeated fetches (a system that never acknowledges) leave one trace, not one per
    poll; ``processing`` reports are kept each time, they carry news."""
    with f.store.begin() as conn:
        if action == "fetched" and conn.execute(sa.select(events.c.id).where(
                events.c.document == row.document, events.c.delivery == row.id,
                events.c.action == action).limit(1)).first() is not None:
            return
        Store.audit(conn, entry.actor, action, document=row.document, delivery=row.id,
                    detail=detail)


def packet_of(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> bytes:
    """The packet as the bus forwards it; getEdoc and downloadEdoc both serve these bytes."""
    row = _delivery(f, entry, f.param(verified, "docId") or "")
    payload = f.store.payload(row.payload_sha256)
    _audit_once(f, entry, row, "fetched")
    return payload


def get_edoc(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
    payload = packet_of(f, entry, verified)
    return vxp.ok_answer("Success", data=base64.b64encode(payload).decode("ascii"))


def update_status(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
    row = _delivery(f, entry, f.param(verified, "docId") or "")
    status = (f.param(verified, "status") or "").lower()
    if status == vxp.AckStatus.PROCESSING:
        _audit_once(f, entry, row, "processing")
        return vxp.ok_answer("recorded; the item stays in the mailbox")
    if status not in (vxp.AckStatus.DONE, vxp.AckStatus.FAIL):
        raise vxp.MalformedRequest(f"status {status!r} is not done, fail or processing")
    ok = status == vxp.AckStatus.DONE
    reason = None if ok else _reason(f, entry, verified)
    if f.store.acknowledge(row.id, ok=ok, actor=entry.actor, reason=reason):
        return vxp.ok_answer("acknowledged" if ok else "refusal recorded")
    wanted = "delivered" if ok else "refused"
    with f.store.engine.connect() as conn:
        now = conn.execute(sa.select(deliveries.c.state)
                           .where(deliveries.c.id == row.id)).scalar()
    if now == wanted:
        return vxp.ok_answer(f"already {wanted}")
    raise errors.InvalidRequest(f"item {row.id} was already {now}; it cannot become {wanted}")


def _reason(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> str:
    said = ""
    for key in ("description", "reason", "errordesc"):
        if verified.param(key) is not None:
            said = unquote(f.param(verified, key) or "")
            break
    base = f"refused by systemId {entry.system_id} (VXP updateStatus fail)"
    return (f"{base}: {said}" if said else base)[:REASON_CHARS]


def sent_list(f: Facade, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
    doc_id = f.param(verified, "docId") or ""
    d, doc = deliveries.c, documents.c
    query = (sa.select(doc.id, doc.kind, doc.sender, doc.subject, doc.code,
                       doc.received_at, d.id.label("delivery"), d.effective_recipient,
                       d.state, d.last_error, d.delivered_at, d.updated_at)
             .join(deliveries, d.document == doc.id)
             .where(doc.id == doc_id, doc.system == entry.system)
             .order_by(d.created_at, d.effective_recipient))
    with f.store.engine.connect() as conn:
        rows = conn.execute(query).all()
        if not rows and conn.execute(sa.select(doc.id).where(
                doc.id == doc_id, doc.system == entry.system)).first() is None:
            raise errors.NotFound(f"no document {doc_id!r} was sent by systemId "
                                  f"{entry.system_id}")
    data = []
    for r in rows:
        receive, receive_desc = _RECEIVE.get(r.state, ("processing", r.state))
        if r.last_error and r.state in ("refused", "parked"):
            receive_desc = f"{receive_desc}: {r.last_error}"
        data.append({
            "serviceType": vxp.SERVICE_TYPE, "messageType": r.kind, "senderDocId": r.id,
            "receiverDocId": r.delivery, "fromCode": r.sender,
            "toCode": r.effective_recipient, "to": r.effective_recipient,
            "title": r.subject or "", "notation": r.code or "",
            "sentTime": f.time(r.received_at), "receivedTime": f.time(r.delivered_at),
            "sendStatus": "done", "sendStatusDesc": "accepted by the provincial bus",
            "receiveStatus": receive, "receiveStatusDesc": receive_desc,
            "state": r.state, "created_time": f.time(r.received_at),
            "updated_time": f.time(r.updated_at)})
    return vxp.ok_answer(f"{len(data)} recipient(s)", data=data)


OPERATIONS: Final[dict[str, Action]] = {
    vxp.Operation.SEND_EDOC: send_edoc,
    vxp.Operation.GET_RECEIVED_EDOC_LIST: received_list,
    vxp.Operation.COUNT_RECEIVE_EDOC: _count("edoc"),
    vxp.Operation.COUNT_RECEIVE_STATUS: _count("status"),
    vxp.Operation.GET_EDOC: get_edoc,
    vxp.Operation.DOWNLOAD_EDOC: packet_of,
    vxp.Operation.UPDATE_STATUS: update_status,
    vxp.Operation.GET_SENT_EDOC_LIST: sent_list,
}

"""The provincial-axis facade: the national axis's API, so SDK-based systems can connect.

VNPT-iOffice and other systems that embed the vendor's axis SDK can speak nothing else,
so the bus answers ``POST /vxp/<operation>`` exactly as the axis does (edxml.md §7.1):
each registered ``systemId`` (config/vxp_systems.yaml) maps to a directory system.

* **sendEdoc** goes through the same door as REST and SOAP; ``DocId`` is the bus
  document id, given only after the commit (contract.md, rule 1).
* **Receiving** is the mailbox: deliveries to the system's destination that the worker
  left ``awaiting`` are listed by getReceivedEdocList (``docId`` = the delivery id),
  fetched by getEdoc, and ended by updateStatus: ``done`` → delivered, ``fail`` →
  refused, ``processing`` → recorded, no change. Acknowledging twice is harmless.

Every request is verified by :mod:`bus.vxp` (HMAC over the received sign-header,
signed headers equal to the ones sent, hash-file of the body, clock) and the headers an
operation acts on must be among the signed ones. Answers are JSON with ``status``,
``ErrorCode`` ("0" or the stable code) and ``ErrorDesc``, always HTTP 200: the Java SDK
reads the body whatever the status, other SDKs may throw on a 4xx before reading the
code. Only a fault of the bus itself is HTTP 500 (with the same JSON). JSON is written
ASCII-only because the SDK decodes sendEdoc answers as US-ASCII.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bus import errors, vxp
from bus.api import read_capped
from bus.api.vxp_systems import RegistryFile, VxpSystem
from bus.app import Bus
from bus.store import Store
from bus.tables import deliveries, documents, events

__all__ = ["Facade", "vxp_router"]

log = structlog.get_logger("lgsp.api.vxp")

MAILBOX_PAGE: Final = 500
SMALL_BODY: Final = 64 * 1024
REASON_CHARS: Final = 500
_TIME = "%Y-%m-%d %H:%M:%S"
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
}
_MAILBOX_STATES: Final = ("awaiting", "delivered", "refused")
OFFERED: Final = frozenset({vxp.Operation.SEND_EDOC, vxp.Operation.GET_RECEIVED_EDOC_LIST,
                            vxp.Operation.GET_EDOC, vxp.Operation.UPDATE_STATUS,
                            vxp.Operation.GET_SENT_EDOC_LIST, vxp.Operation.GET_AGENCIES_LIST})


def _time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).astimezone(vxp.AXIS_TZ).strftime(_TIME)


def _render(answer: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(answer, ensure_ascii=True, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def _refusal(exc: errors.LgspError) -> dict[str, Any]:
    where = ", ".join(p for p in (f"line {exc.line}" if exc.line else "", exc.path or "") if p)
    desc = f"{exc.message} ({where})" if where else exc.message
    extra = {k: v for k, v in (("line", exc.line), ("path", exc.path)) if v}
    return vxp.fail_answer(exc.code, desc, **extra)


class Facade:
    """The operations, synchronous (database and hashing): run them in the threadpool."""

    def __init__(self, bus: Bus, registry: RegistryFile) -> None:
        self.bus = bus
        self.registry = registry
        self.operations: dict[str, Callable[[VxpSystem, vxp.VerifiedRequest],
                                            dict[str, Any]]] = {
            vxp.Operation.SEND_EDOC: self.send_edoc,
            vxp.Operation.GET_RECEIVED_EDOC_LIST: self.received_list,
            vxp.Operation.GET_EDOC: self.get_edoc,
            vxp.Operation.UPDATE_STATUS: self.update_status,
            vxp.Operation.GET_SENT_EDOC_LIST: self.sent_list,
            vxp.Operation.GET_AGENCIES_LIST: self.agencies,
        }

    @property
    def store(self) -> Store:
        return self.bus.store

    # ---- authentication ----------------------------------------------------------------

    def authenticate(self, operation: str, headers: list[tuple[str, str]],
                     body: bytes) -> tuple[VxpSystem, vxp.VerifiedRequest]:
        registry = self.registry.current()
        presented = next((v.strip() for k, v in headers
                          if k.lower() == "xroadvnpt-systemid"), "")
        entry = registry.systems.get(presented)
        if entry is not None and entry.secret is None:
            raise vxp.UnknownSystem(f"systemId {presented!r} is registered but disabled: the "
                                    f"bus operator must set {entry.secret_env}")
        verified = vxp.verify(
            headers, body, lambda sid: entry.secret if entry and sid == presented else None,
            skew_s=float("inf"), require_hash=operation == vxp.Operation.SEND_EDOC)
        if entry is None:   # verify() already refused it; kept for python -O
            raise vxp.UnknownSystem(f"system {presented!r} is not registered on this axis")
        offset = (verified.timestamp - datetime.now(UTC)).total_seconds()
        if offset > entry.max_clock_skew_s or -offset > entry.max_age_s:
            raise vxp.ClockSkew(
                f"timestamp {verified.param('timestamp')} is {offset:+.0f}s from the bus "
                f"clock (allowed {entry.max_clock_skew_s:.0f}s ahead, {entry.max_age_s:.0f}s "
                "behind): synchronise the system's clock (NTP), and renew the SDK service "
                "object (it stamps its headers once, when built)")
        return entry, verified

    @staticmethod
    def param(verified: vxp.VerifiedRequest, key: str, *, required: bool = True) -> str | None:
        """A header the operation acts on: it must be signed, or anyone could change it."""
        value = verified.param(key)
        if value is None:
            if required:
                raise vxp.MalformedRequest(f"header {vxp.HEADER_PREFIX}{key} is missing")
            return None
        if key.lower() not in {k.lower() for k in verified.signed_keys}:
            raise vxp.MalformedRequest(f"header {vxp.HEADER_PREFIX}{key} is not among the "
                                       "signed headers (sign-header-key)")
        return value.strip()

    def _message_type(self, verified: vxp.VerifiedRequest) -> str | None:
        value = self.param(verified, "messagetype", required=False)
        if value is None or value == "":
            return None
        if value.lower() not in ("edoc", "status"):
            raise vxp.MalformedRequest(f"messagetype {value!r} is neither edoc nor status")
        return value.lower()

    # ---- operations --------------------------------------------------------------------

    def send_edoc(self, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
        self.param(verified, "hash-file")
        expect = self._message_type(verified)
        key = self.param(verified, vxp.IDEMPOTENCY_KEY, required=False)
        source = (entry.actor, key[:255]) if key else None
        structlog.contextvars.bind_contextvars(system=entry.system)
        accepted = self.bus.submit(verified.packet, system=entry.system, channel="vxp",
                                   expect=expect, source=source)
        structlog.contextvars.bind_contextvars(document=accepted.document)
        desc = "already accepted: the original DocId" if accepted.existing else "accepted"
        return vxp.ok_answer(desc, DocId=accepted.document)

    def _destination(self, entry: VxpSystem) -> str:
        destination = self.bus.reloader.current().directory.destination_of(entry.system)
        if destination is None:
            raise errors.ConfigInvalid([errors.Problem(
                f"systemId {entry.system_id} maps to system {entry.system!r}, which the "
                "directory does not list")])
        return destination

    def received_list(self, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
        kind = self._message_type(verified)
        d, doc = deliveries.c, documents.c
        query = (sa.select(d.id, d.effective_recipient, d.created_at, d.updated_at, doc.kind,
                           doc.sender)
                 .join(documents, doc.id == d.document)
                 .where(d.destination == self._destination(entry), d.state == "awaiting")
                 .order_by(d.updated_at, d.id).limit(MAILBOX_PAGE))
        if kind is not None:
            query = query.where(doc.kind == kind)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [{"docId": r.id, "serviceType": vxp.SERVICE_TYPE, "messageType": r.kind,
                  "created_time": _time(r.created_at), "updated_time": _time(r.updated_at),
                  "from": r.sender, "to": r.effective_recipient, "status": "initial",
                  "status_desc": "waiting to be collected"} for r in rows]
        return vxp.ok_answer(f"{len(items)} item(s)", data=items)

    def _delivery(self, entry: VxpSystem, doc_id: str) -> MailboxRow:
        d, doc = deliveries.c, documents.c
        query = (sa.select(d.id, d.document, d.state, doc.payload_sha256)
                 .join(documents, doc.id == d.document)
                 .where(d.id == doc_id, d.destination == self._destination(entry)))
        with self.store.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.state not in _MAILBOX_STATES:
            raise errors.NotFound(f"no item {doc_id!r} in the mailbox of systemId "
                                  f"{entry.system_id}")
        return row

    def _audit_once(self, entry: VxpSystem, row: MailboxRow, action: str,
                    detail: dict[str, Any] | None = None) -> None:
        """Repeated fetches (a system that never acknowledges) leave one trace, not one
        per poll; ``processing`` reports are kept each time, they carry news."""
        with self.store.begin() as conn:
            if action == "fetched" and conn.execute(sa.select(events.c.id).where(
                    events.c.document == row.document, events.c.delivery == row.id,
                    events.c.action == action).limit(1)).first() is not None:
                return
            Store.audit(conn, entry.actor, action, document=row.document, delivery=row.id,
                        detail=detail)

    def get_edoc(self, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
        row = self._delivery(entry, self.param(verified, "docId") or "")
        payload = self.store.payload(row.payload_sha256)
        self._audit_once(entry, row, "fetched")
        return vxp.ok_answer("Success", data=base64.b64encode(payload).decode("ascii"))

    def update_status(self, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
        row = self._delivery(entry, self.param(verified, "docId") or "")
        status = (self.param(verified, "status") or "").lower()
        if status == vxp.AckStatus.PROCESSING:
            self._audit_once(entry, row, "processing")
            return vxp.ok_answer("recorded; the item stays in the mailbox")
        if status not in (vxp.AckStatus.DONE, vxp.AckStatus.FAIL):
            raise vxp.MalformedRequest(f"status {status!r} is not done, fail or processing")
        ok = status == vxp.AckStatus.DONE
        reason = None if ok else self._reason(entry, verified)
        if self.store.acknowledge(row.id, ok=ok, actor=entry.actor, reason=reason):
            return vxp.ok_answer("acknowledged" if ok else "refusal recorded")
        wanted = "delivered" if ok else "refused"
        with self.store.engine.connect() as conn:
            now = conn.execute(sa.select(deliveries.c.state)
                               .where(deliveries.c.id == row.id)).scalar()
        if now == wanted:
            return vxp.ok_answer(f"already {wanted}")
        raise errors.InvalidRequest(f"item {row.id} was already {now}; it cannot become "
                                    f"{wanted}")

    def _reason(self, entry: VxpSystem, verified: vxp.VerifiedRequest) -> str:
        said = ""
        for key in ("description", "reason", "errordesc"):
            if verified.param(key) is not None:
                said = unquote(self.param(verified, key) or "")
                break
        base = f"refused by systemId {entry.system_id} (VXP updateStatus fail)"
        return (f"{base}: {said}" if said else base)[:REASON_CHARS]

    def sent_list(self, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
        doc_id = self.param(verified, "docId") or ""
        d, doc = deliveries.c, documents.c
        query = (sa.select(doc.id, doc.kind, doc.sender, doc.subject, doc.code,
                           doc.received_at, d.id.label("delivery"), d.effective_recipient,
                           d.state, d.last_error, d.delivered_at, d.updated_at)
                 .join(deliveries, d.document == doc.id)
                 .where(doc.id == doc_id, doc.system == entry.system)
                 .order_by(d.created_at, d.effective_recipient))
        with self.store.engine.connect() as conn:
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
                "sentTime": _time(r.received_at), "receivedTime": _time(r.delivered_at),
                "sendStatus": "done", "sendStatusDesc": "accepted by the provincial bus",
                "receiveStatus": receive, "receiveStatusDesc": receive_desc,
                "state": r.state, "created_time": _time(r.received_at),
                "updated_time": _time(r.updated_at)})
        return vxp.ok_answer(f"{len(data)} recipient(s)", data=data)

    def agencies(self, entry: VxpSystem, verified: vxp.VerifiedRequest) -> dict[str, Any]:
        directory = self.bus.reloader.current().directory
        data = [vxp.Agency(code=a.code, name=a.name, id=a.code, pid=a.parent or "").to_json()
                for a in sorted(directory, key=lambda a: a.code)]
        return vxp.ok_answer(f"{len(data)} agencies", data=data)

    # ---- one call ----------------------------------------------------------------------

    def handle(self, operation: str, headers: list[tuple[str, str]],
               body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, answer) for one verified call; never raises."""
        fields: dict[str, Any] = {"DocId": ""} if operation == vxp.Operation.SEND_EDOC else {}
        try:
            action = self.operations.get(operation)
            if action is None:
                raise _unknown(operation)
            entry, verified = self.authenticate(operation, headers, body)
            structlog.contextvars.bind_contextvars(vxp_system=entry.system_id)
            return 200, action(entry, verified)
        except vxp.VxpError as exc:
            self._count(exc.code)
            log.info("vxp.refused", operation=operation, code=exc.code, reason=exc.message)
            return 200, {**exc.answer(), **fields}
        except errors.LgspError as exc:
            if operation != vxp.Operation.SEND_EDOC:
                self._count(exc.code)
            if exc.http_status >= 500:
                log.error("vxp.error", operation=operation, code=exc.code, reason=str(exc))
                return 500, vxp.fail_answer(exc.code, "the provincial bus cannot serve this "
                                            "request now; an operator must check its "
                                            "configuration", **fields)
            log.info("vxp.refused", operation=operation, code=exc.code, reason=exc.message)
            return 200, {**_refusal(exc), **fields}
        except Exception:
            log.exception("vxp.failed", operation=operation)
            return 500, vxp.fail_answer(vxp.ErrorCode.INTERNAL, "the provincial bus failed "
                                        "unexpectedly; the request may be repeated safely",
                                        **fields)

    def _count(self, code: str) -> None:
        self.bus.metrics.refused.labels(str(code), "vxp").inc()


class UnknownOperation(vxp.VxpError):
    code = vxp.ErrorCode.UNKNOWN_OPERATION


def _unknown(operation: str) -> vxp.VxpError:
    return UnknownOperation(
        f"operation {operation!r} is not offered by the provincial bus (it offers "
        f"{', '.join(sorted(OFFERED))}; agencies are registered by the operator in the "
        "directory, not through the API)")


def registry_path(bus: Bus) -> Path:
    """``settings.vxp_systems`` when the setting exists, else next to directory.yaml."""
    configured = getattr(bus.settings, "vxp_systems", None)
    return Path(configured) if configured else bus.settings.directory.parent / "vxp_systems.yaml"


def vxp_router(bus: Bus, registry: RegistryFile | None = None, *,
               readiness: bool = False) -> APIRouter:
    """The facade under ``/vxp``. ``readiness`` adds a ``vxp_systems`` check to /readyz
    (an invalid registry file, a registered system without its secret or missing from
    the directory)."""
    facade = Facade(bus, registry or RegistryFile(registry_path(bus)))
    router = APIRouter(prefix="/vxp", tags=["provincial axis (VXP)"])
    if readiness:
        def vxp_systems() -> str | None:
            return facade.registry.readiness(bus.reloader.current().directory)

        bus.readiness_checks.append(vxp_systems)

    async def call(operation: str, request: Request) -> Response:
        """Signed with XroadVnpt-* headers as the axis SDK does (edxml.md §7.1); JSON
        answer with status, ErrorCode, ErrorDesc; HTTP 200 unless the bus is at fault."""
        cap = bus.settings.max_body_bytes if operation == vxp.Operation.SEND_EDOC \
            else SMALL_BODY
        try:
            body = await read_capped(request, cap)
        except errors.LgspError as exc:
            facade._count(exc.code)
            extra = {"DocId": ""} if operation == vxp.Operation.SEND_EDOC else {}
            return _render({**_refusal(exc), **extra})
        headers = [(k, v) for k, v in request.headers.items()]
        status, answer = await run_in_threadpool(facade.handle, operation, headers, body)
        return _render(answer, status)

    router.add_api_route(
        "/{operation}", call, methods=["POST"], response_class=Response,
        summary="National-axis API for SDK-based systems (sendEdoc, getReceivedEdocList, "
                "getEdoc, updateStatus, getSentEdocList, getAgenciesList)")
    router.add_api_route("/{operation}", call, methods=["GET"], response_class=Response,
                         include_in_schema=False)
    return router

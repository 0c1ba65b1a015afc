"""The door: every packet, whichever protocol brought it, enters through :meth:`Ingress.submit`.

One path for REST, SOAP and pollers keeps the delivery contract in one place: size cap,
hardened parse and validation, the sender check, routing, the check that a status comes
from an organisation entitled to report on its document, and one transaction that
commits the document with a delivery row per recipient. Only after that commit does the
caller get a receipt; any exception before it means the sender must retry and nothing
was stored. After it, the bus owns the document.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog

from bus import errors
from bus.directory import Directory
from bus.edxml import Edoc, Limits, Packet, StatusPacket, TraceHeader
from bus.edxml.dialects import read_from
from bus.edxml.forward import forwarded_bytes, forwarded_stream
from bus.edxml.mapped import Mapped
from bus.edxml.tolerance import corrected, policy_notices
from bus.edxml.writer import format_timestamp
from bus.lifecycle import Plan, plan_for
from bus.reloader import Reloader, RoutingConfig
from bus.routing import RoutingDecision, RoutingFacts, business_from_doctype, route
from bus.store import Accepted, NewDelivery, Store
from bus.store.blobs import Spool, Staged
from bus.store.statements import Transaction
from bus.store.tables import deliveries, documents

log = structlog.get_logger("lgsp.ingress")

WithDeliveries = Callable[[Transaction, str, Sequence[dict[str, Any]]], None]


@dataclass(frozen=True)
class IngressSettings:
    bus_organ_id: str = "00.37.W00"
    limits: Limits = field(default_factory=Limits)
    gateway_systems: frozenset[str] = frozenset({"national_axis"})
    zone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Ho_Chi_Minh"))


def facts_of(packet: Packet) -> RoutingFacts:
    if isinstance(packet, Edoc):
        business = packet.business.bussiness_doc_type if packet.business else 0
        return RoutingFacts(
            kind="edoc", sender=packet.sender, recipients=tuple(packet.recipients),
            business=business_from_doctype(business),
            document_type=packet.document_type.type, priority=packet.priority,
        )
    return RoutingFacts(kind="status", sender=packet.sender, status_code=packet.status_code,
                        response_for=packet.response_for.organ_id or None)


def dedup_key(packet: Packet, digest: str) -> str:
    if isinstance(packet, Edoc):
        return f"edoc|{packet.sender}|{packet.document_id or 'sha:' + digest}"
    rf = packet.response_for
    stamp = format_timestamp(packet.timestamp)
    return f"status|{packet.sender}|{rf.document_id}|{packet.status_code}|{stamp}"


def summary_of(packet: Packet) -> dict[str, str | None]:
    if isinstance(packet, Edoc):
        return {"subject": packet.subject[:500], "code": str(packet.code)[:120],
                "business": packet.business_kind, "status_code": None}
    return {"subject": packet.description, "code": packet.response_for.code,
            "business": None, "status_code": packet.status_code}


class Ingress:
    def __init__(self, store: Store, config: Reloader, settings: IngressSettings | None = None,
                 *, on_accepted: Callable[[Accepted], None] | None = None,
                 on_refused: Callable[[errors.LgspError], None] | None = None,
                 on_committed: Callable[[Accepted, Packet], object] | None = None,
                 prepare: Callable[[Packet, Sequence[str]], WithDeliveries | None]
                 | None = None) -> None:
        """``prepare(packet, destinations)``: rows to write in the accept transaction
        beside the deliveries (the document's deadlines), computed before it begins."""
        self.on_committed = on_committed
        self.prepare = prepare
        self.store = store
        self.config = config
        self.settings = settings or IngressSettings()
        self.on_accepted = on_accepted
        self.on_refused = on_refused
        self.today: Callable[[], date] = lambda: datetime.now(self.settings.zone).date()
        """The day successor codes are resolved for; a test of a reorganisation sets it."""

    def submit(self, data: bytes | Spool, *, system: str, expect: str | None = None,
               source: tuple[str, str] | None = None) -> Accepted:
        """Validates, authorises, routes and commits one packet; raises the refusal code.

        ``data`` may be a body spooled to disk as it arrived (a large one): it is then
        read through a memory map and forwarded as a stream into a payload file, so no
        copy of the whole packet is made in memory; the caller discards the spool."""
        try:
            accepted = self._submit(data, system=system, expect=expect, source=source)
        except errors.LgspError as exc:
            log.info("packet.refused", system=system, code=exc.code, reason=exc.message,
                     line=exc.line, path=exc.path)
            if self.on_refused:
                self.on_refused(exc)
            raise
        if self.on_accepted:
            self.on_accepted(accepted)
        return accepted

    def _submit(self, data: bytes | Spool, *, system: str, expect: str | None,
                source: tuple[str, str] | None) -> Accepted:
        if isinstance(data, bytes):
            return self._submit_bytes(data, None, system=system, expect=expect, source=source)
        data.flush()
        mapped = Mapped.of(data.path)
        try:
            return self._submit_bytes(mapped.as_bytes(), data, system=system, expect=expect,
                                      source=source)
        finally:
            with contextlib.suppress(BufferError):
                mapped.close()

    def _submit_bytes(self, data: bytes, spool: Spool | None, *, system: str,
                      expect: str | None, source: tuple[str, str] | None) -> Accepted:
        cfg = self.config.current()
        door = read_from(data, dialect=cfg.directory.dialect_of(system),
                         limits=self.settings.limits)
        result = door.result
        packet = result.packet
        if expect and packet.kind != expect:
            where = "/api/v1/statuses" if packet.kind == "status" else "/api/v1/edocs"
            raise errors.UnsupportedPacket(
                f"this is a {packet.kind} packet but the endpoint takes {expect} packets; "
                f"send it to {where} (SOAP: Send{'Status' if packet.kind == 'status' else 'Edoc'})")
        self._check_sender(cfg, system, packet.sender)
        decision = route(facts_of(packet), cfg.table, cfg.directory, on=self.today())
        digest = spool.sha256 if spool is not None else hashlib.sha256(data).hexdigest()
        # Receivers get the standard, normalised bytes; the sender's are kept as evidence.
        trace = TraceHeader(self.settings.bus_organ_id,
                            format_timestamp(datetime.now(self.settings.zone)))
        forwarded: bytes | Staged | None = None
        files = self.store.files
        if spool is not None and files is not None:
            pieces = forwarded_stream(door.standard, packet, trace, result.notices)
            forwarded = files.stage(pieces) if pieces is not None else None
        if forwarded is None:
            forwarded = forwarded_bytes(door.standard, packet, trace, result.notices)
        original: bytes | Staged | None = None
        if door.translated or corrected(result.notices):
            original = spool.keep() if spool is not None and files is not None else data
        refers_to, status = None, None
        if isinstance(packet, StatusPacket):
            refers_to = self._find_original(packet, cfg.directory)
            status = (packet.sender, packet.status_code,
                      format_timestamp(packet.timestamp))
        targets = _targets(decision)
        plan = self._lifecycle(cfg, packet, decision, refers_to, targets)
        if plan.recall_of is not None:
            status = None
        also = self.prepare(packet, [t.destination for t in targets]) \
            if self.prepare is not None else None
        accepted = self.store.accept(
            kind=packet.kind, sender=packet.sender,
            document_id=(packet.document_id or "") if isinstance(packet, Edoc)
            else packet.response_for.document_id or "",
            dedup_key=dedup_key(packet, digest), content_sha256=digest, payload=forwarded,
            system=system, targets=targets, summary=summary_of(packet),
            refers_to=refers_to, source=source, status=status,
            original=original,
            notices=policy_notices(result.notices),
            within=None if plan.empty else plan.apply,
            with_deliveries=also,
        )
        log.info("packet.accepted", document=accepted.document, kind=packet.kind,
                 sender=packet.sender, system=system, existing=accepted.existing,
                 routes=[{"recipient": d.effective_recipient, "destination": d.destination,
                          "rule": d.rule} for d in decision.deliveries])
        if self.on_committed:
            self.on_committed(accepted, packet)
        return accepted

    def _lifecycle(self, cfg: RoutingConfig, packet: Packet, decision: RoutingDecision,
                   refers_to: str | None, targets: list[NewDelivery]) -> Plan:
        """What accepting ``packet`` does to other documents (bus.lifecycle); adds to
        ``targets`` the recipients a 13 fans out to and those a route makes a recall
        follow to."""
        if not (isinstance(packet, Edoc) and packet.business_kind != "new") \
                and refers_to is None:
            return Plan()
        today = date.today()

        def canon(code: str) -> str:
            return cfg.directory.resolve(code, today)[0]

        own = [d.effective_recipient for d in decision.deliveries if not d.copy]
        plan = plan_for(self.store.engine, packet, canon, refers_to=refers_to, routed=own)
        facts = facts_of(packet)
        extra: list[str] = []
        if plan.recall_of is not None:
            extra = [c for c in plan.recall_targets
                     if c not in own and canon(c) != canon(packet.sender)]
            for code in extra:
                targets.extend(_also(replace(facts, response_for=code), cfg, today))
        elif plan.kind is not None and cfg.table.defaults.recall_follows_original:
            for code in sorted({c for codes in plan.unnamed.values() for c in codes}):
                more = _also(replace(facts, recipients=(code,)), cfg, today)
                if more:
                    targets.extend(more)
                    plan.added.append(code)
        return plan

    def _check_sender(self, cfg: RoutingConfig, system: str, sender: str) -> None:
        directory = cfg.directory
        if directory.hosts(system, sender):
            return
        if system in self.settings.gateway_systems and directory.host_of(sender) is None:
            return
        raise errors.SenderMismatch(
            f"system '{system}' is not registered as hosting organisation {sender}; a system "
            "may send only as the agencies the directory assigns to it",
            details={"sender": sender, "system": system})

    def _find_original(self, status: StatusPacket, directory: Directory) -> str | None:
        """The document ``status`` answers, None when the bus never saw it, or
        StatusNotAllowed when it is held but ``From`` may not report on it."""
        rf = status.response_for
        if not rf.document_id:
            return None
        d, dl = documents.c, deliveries.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.id, d.sender, dl.recipient, dl.effective_recipient)
                .outerjoin(deliveries, dl.document == d.id)
                .where(d.kind == "edoc", d.document_id == rf.document_id)
                .order_by(d.received_at.desc(), d.id)).all()
        held: dict[str, Original] = {}
        for row in rows:
            found = held.setdefault(row.id, Original(row.id, row.sender, set()))
            found.recipients.update(code for code in (row.recipient, row.effective_recipient)
                                    if code)
        today = self.today()
        return match_status(status, list(held.values()),
                            lambda code: directory.canonical(code, today))


@dataclass(frozen=True)
class Original:
    """An edoc a status may answer: who sent it and every code it was addressed or
    delivered to (copies a route made carry their addressee's codes, so add none)."""

    id: str
    sender: str
    recipients: set[str]


def match_status(status: StatusPacket, held: Sequence[Original],
                 canon: Callable[[str], str]) -> str | None:
    """Which of ``held`` (edocs with the status's DocumentId, newest first) it answers.

    Codes are compared after ``canon`` (successor resolution as of today), so a commune
    merged into another after a document reached it reports as its successor, and the
    successor may answer what the old code received. For 01–06, 15, 16 the document is
    the one ResponseFor/OrganId sent and ``From`` must be among its recipients; for 13
    (recall) the document is the one ``From`` sent, and a 13 from anyone else about a
    document the bus holds for ResponseFor/OrganId is refused. A status about nothing
    held is None: routed as before, shown as unmatched.
    """
    rf = status.response_for
    sender = canon(status.sender)
    if status.status_code == "13":
        own = [o for o in held if canon(o.sender) == sender]
        if own:
            return own[0].id
        addressee = canon(rf.organ_id or "")
        if any(addressee in {canon(r) for r in o.recipients} for o in held):
            raise errors.StatusNotAllowed(
                f"organisation {status.sender} asks to recall document {rf.document_id}, "
                f"which it did not send; only the sender of a document may request its "
                f"recall (status 13)",
                details={"sender": status.sender, "document_id": rf.document_id})
        return None
    origin = canon(rf.organ_id or "")
    answered = [o for o in held if canon(o.sender) == origin]
    if not answered:
        return None
    for original in answered:
        if sender in {canon(r) for r in original.recipients}:
            return original.id
    raise errors.StatusNotAllowed(
        f"organisation {status.sender} reports status {status.status_code} on document "
        f"{rf.document_id} from {rf.organ_id}, which was not sent to it; a status may come "
        "only from an organisation the document was addressed to",
        details={"sender": status.sender, "document_id": rf.document_id})


def _also(facts: RoutingFacts, cfg: RoutingConfig, on: date) -> list[NewDelivery]:
    """Deliveries for a recipient the lifecycle adds (a 13's fan-out, a recall following
    the original). One that can no longer be routed (a rule refuses it, the directory
    dropped it) is left out and logged: it must not cost the packet its other recipients."""
    try:
        return _targets(route(facts, cfg.table, cfg.directory, on=on))
    except errors.LgspError as exc:
        log.warning("lifecycle.recipient_skipped", code=exc.code, reason=exc.message,
                    recipients=facts.recipients or facts.response_for)
        return []


def _targets(decision: RoutingDecision) -> list[NewDelivery]:
    return [NewDelivery(recipient=d.recipient, effective_recipient=d.effective_recipient,
                        destination=d.destination, rule=d.rule, is_copy=d.copy)
            for d in decision.deliveries]


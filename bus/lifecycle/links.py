"""Recall, update, replace: a superseding edoc linked to the original it names.

What a packet names is decided here, before the accepting transaction; what it does to
the store (the link row, the withdrawn deliveries, the business-status rows of a fanned
out 13) happens in :meth:`Plan.apply`, which :meth:`bus.store.Store.accept` runs inside the
very transaction that commits the superseding packet. That is the whole race argument: a
delivery is withdrawn by a conditional ``UPDATE … WHERE state IN (pending, queued,
awaiting)``, the worker's claim is a conditional ``UPDATE … WHERE state IN (pending,
queued)``; the database serialises the two on the row, so either the claim won (the
attempt had started before the recall was accepted, and its outcome is recorded as is)
or the withdrawal won and no claim can ever succeed again (``withdrawn`` is terminal).

Matching: a superseding edoc names its original by DocumentId in ResponseFor, in
ReplacementInfoList or in the Bussiness block's own DocumentId (producers use all
three). Only documents of the same sender (after successor resolution) are candidates:
an organisation can revoke only what it sent. ResponseFor/OrganId is not used as the
original's sender, because the standard's own revocation sample puts another
organisation there. A name that matches nothing the bus holds is accepted with a notice
(``lifecycle.unlinked`` in the history): the original may have travelled by another
route, and refusing would stop the recall from reaching recipients who do hold it.

History events name no other document's internal id (a recipient of the original may
not be one of the recall's): the ids travel only in ``document_links``, which the read
side shows to a caller who may read both documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ClauseElement

from bus.edxml import Edoc, Packet, StatusPacket
from bus.store import event_row
from bus.store.statements import Transaction
from bus.store.tables import business_statuses, deliveries, document_links, documents

WITHDRAWING: Final = frozenset({"revoke", "replace"})
"""Kinds after which the original must not be acted upon: its undelivered copies go."""
SUPERSEDING: Final = frozenset({"revoke", "update", "replace"})
ACKNOWLEDGING: Final = frozenset({"15", "16"})
RECALL_REQUEST: Final = "13"

Canon = Callable[[str], str]


@dataclass(frozen=True)
class Original:
    id: str
    document_id: str
    recipients: tuple[str, ...]
    """Effective codes of the original's own (non-copy) deliveries."""
    written: tuple[str, ...]
    """The same recipients as the original's sender wrote them (what routing takes)."""


@dataclass
class Plan:
    """What accepting one packet does to the document lifecycle, ready to apply."""

    kind: str | None = None
    originals: list[Original] = field(default_factory=list)
    unnamed: dict[str, list[str]] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    recall_of: str | None = None
    recall_targets: tuple[str, ...] = ()
    recall_status: tuple[str, str | None] | None = None
    acknowledged: list[str] = field(default_factory=list)
    ack_status: tuple[str, str, str | None] | None = None
    answered: tuple[str, str, str] | None = None
    """(document, organ, code) of a business status, for the document's history."""

    @property
    def empty(self) -> bool:
        return not (self.kind or self.recall_of or self.acknowledged or self.answered)

    def apply(self, tx: Transaction, doc: str, now: float) -> list[dict[str, Any]]:
        """Writes the lifecycle rows of ``doc`` in its accepting transaction; the events."""
        out: list[dict[str, Any]] = []
        if self.kind is not None:
            out += self._supersede(tx, doc, now)
        if self.answered is not None:
            target, organ, code = self.answered
            out.append(event_row("lifecycle", "business_status", now, document=target,
                                 detail={"organ_id": organ, "code": code}))
        if self.recall_of is not None and self.recall_status is not None:
            code, reported = self.recall_status
            for organ in self.recall_targets:
                tx.execute("lifecycle_status", _insert_status, {
                    "document": self.recall_of, "organ_id": organ, "code": code,
                    "reported_at": reported, "received_at": now, "status_document": doc})
            out.append(event_row("lifecycle", "recall_requested", now, document=self.recall_of,
                                 detail={"recipients": list(self.recall_targets)}))
        if self.ack_status is not None:
            organ, code, reported = self.ack_status
            for original in self.acknowledged:
                tx.execute("lifecycle_status", _insert_status, {
                    "document": original, "organ_id": organ, "code": code,
                    "reported_at": reported, "received_at": now, "status_document": doc})
                out.append(event_row("lifecycle", "recall_acknowledged", now, document=original,
                                     detail={"organ_id": organ, "code": code}))
        return out

    def _supersede(self, tx: Transaction, doc: str, now: float) -> list[dict[str, Any]]:
        assert self.kind is not None
        out: list[dict[str, Any]] = []
        if self.notices:
            out.append(event_row("lifecycle", "unlinked", now, document=doc,
                                 detail={"kind": self.kind, "notices": self.notices}))
        for original in self.originals:
            withdrawn: list[tuple[Any, ...]] = []
            in_flight: list[tuple[Any, ...]] = []
            if self.kind in WITHDRAWING:
                withdrawn = tx.all("lifecycle_withdraw", _withdraw, {
                    "original": original.id, "now": now,
                    "reason": f"withdrawn: the sender's {self.kind} document was accepted "
                              "before this delivery was made"})
                in_flight = tx.all("lifecycle_in_flight", _in_flight, {"original": original.id})
            unnamed = self.unnamed.get(original.id, [])
            tx.execute("lifecycle_link", _insert_link, {
                "original": original.id, "superseding": doc, "kind": self.kind, "at": now,
                "withdrawn": len(withdrawn),
                "unnamed": json.dumps(unnamed, ensure_ascii=False) if unnamed else None,
                "added": json.dumps(self.added, ensure_ascii=False) if self.added else None})
            out.append(event_row("lifecycle", "superseded", now, document=original.id, detail={
                "kind": self.kind, "withdrawn": len(withdrawn),
                "in_flight": [r[1] for r in in_flight], "unnamed_recipients": unnamed,
                "added_recipients": self.added}))
            out += [event_row("lifecycle", "withdrawn", now, document=original.id,
                              delivery=str(r[0]),
                              detail={"recipient": r[1], "kind": self.kind})
                    for r in withdrawn]
            out.append(event_row("lifecycle", "supersedes", now, document=doc,
                                 detail={"kind": self.kind,
                                         "document_id": original.document_id}))
        return out


def plan_for(engine: Engine, packet: Packet, canon: Canon, *,
             refers_to: str | None, routed: Sequence[str]) -> Plan:
    """The lifecycle effects of accepting ``packet``; ``routed`` are the effective codes
    its own routing decision addresses."""
    plan = Plan()
    if isinstance(packet, Edoc):
        kind = packet.business_kind
        if kind not in SUPERSEDING:
            return plan
        plan.kind = kind
        names = named_ids(packet)
        if not names:
            plan.notices.append({"code": "lifecycle.unnamed", "message": (
                f"this {kind} document names no original (no ResponseFor, ReplacementInfo or "
                "Bussiness DocumentId); it was accepted and delivered, linked to nothing")})
            return plan
        plan.originals, foreign = _originals(engine, canon(packet.sender), names, canon)
        for document_id in names:
            if any(o.document_id == document_id for o in plan.originals):
                continue
            why = (f"the bus holds {document_id} only from {', '.join(foreign[document_id])}, "
                   f"not from {packet.sender}; only a document's sender may {kind} it"
                   if document_id in foreign else
                   f"the bus holds no document {document_id} from {packet.sender}")
            plan.notices.append({"code": "lifecycle.unknown_original",
                                 "document_id": document_id,
                                 "message": f"{why}; accepted and delivered, not linked"})
        mine = set(routed)
        for original in plan.originals:
            plan.unnamed[original.id] = [r for r in original.recipients if r not in mine]
        return plan
    if refers_to is None:
        return plan
    if packet.status_code != RECALL_REQUEST:
        plan.answered = (refers_to, packet.sender, packet.status_code)
    if packet.status_code == RECALL_REQUEST:
        plan.recall_of = refers_to
        plan.recall_targets = tuple(recipients_of(engine, refers_to, received=True)[0])
        plan.recall_status = (packet.status_code, _stamp(packet))
    elif packet.status_code in ACKNOWLEDGING:
        plan.acknowledged = superseded_by(engine, refers_to)
        if plan.acknowledged:
            plan.ack_status = (packet.sender, packet.status_code, _stamp(packet))
    return plan


def _stamp(status: StatusPacket) -> str:
    from bus.edxml.writer import format_timestamp

    return format_timestamp(status.timestamp)


def named_ids(edoc: Edoc) -> list[str]:
    """Every DocumentId the packet names as the one it supersedes, first mention first."""
    names: list[str] = [rf.document_id for rf in edoc.response_for if rf.document_id]
    business = edoc.business
    if business is not None:
        names += [r.document_id for r in business.replacements or () if r.document_id]
        if business.document_id and business.document_id != edoc.document_id:
            names.append(business.document_id)
    return [n for n in dict.fromkeys(names) if n != edoc.document_id]


def _originals(engine: Engine, sender: str, names: Sequence[str],
               canon: Canon) -> tuple[list[Original], dict[str, list[str]]]:
    d = documents.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.id, d.document_id, d.sender)
                            .where(d.kind == "edoc", d.document_id.in_(list(names)))
                            .order_by(d.received_at.desc(), d.id)).all()
    found: list[Original] = []
    foreign: dict[str, list[str]] = {}
    for row in rows:
        if canon(row.sender) != sender:
            foreign.setdefault(row.document_id, []).append(row.sender)
            continue
        effective, written = recipients_of(engine, row.id)
        found.append(Original(row.id, row.document_id, tuple(effective), tuple(written)))
    return found, foreign


def recipients_of(engine: Engine, doc: str, *,
                  received: bool = False) -> tuple[list[str], list[str]]:
    """(effective, as written) codes of a document's own deliveries, copies left out;
    with ``received``, also those withdrawn before they went out."""
    dl = deliveries.c
    where = [dl.document == doc, dl.is_copy.is_(False)]
    if received:
        where.append(dl.state != "withdrawn")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(dl.effective_recipient, dl.recipient).where(*where)
                            .order_by(dl.created_at, dl.effective_recipient)).all()
    return (list(dict.fromkeys(r.effective_recipient for r in rows)),
            list(dict.fromkeys(r.recipient for r in rows)))


def superseded_by(engine: Engine, doc: str) -> list[str]:
    """The originals ``doc`` supersedes (empty for an ordinary document)."""
    link = document_links.c
    with engine.connect() as conn:
        return list(conn.execute(sa.select(link.original).where(link.superseding == doc)
                                 .order_by(link.id)).scalars())


_UNDELIVERED = ("pending", "queued", "awaiting")


def _withdrawable(now: sa.BindParameter[Any]) -> sa.ColumnElement[bool]:
    d = deliveries.c
    return sa.or_(*(d.state == s for s in _UNDELIVERED),
                  sa.and_(d.state == "delivering", d.lease_until < now))


def _withdraw() -> ClauseElement:
    """Every undelivered delivery of the original, and one whose worker's lease expired
    (the worker is gone; a live lease is an attempt under way and is left to finish)."""
    d = deliveries.c
    now: sa.BindParameter[Any] = sa.bindparam("now")
    return (deliveries.update()
            .where(d.document == sa.bindparam("original"), _withdrawable(now))
            .values(state="withdrawn", updated_at=now, lease_until=None,
                    last_error=sa.bindparam("reason"))
            .returning(d.id, d.effective_recipient))


def _in_flight() -> ClauseElement:
    d = deliveries.c
    return sa.select(d.id, d.effective_recipient).where(
        d.document == sa.bindparam("original"), d.state == "delivering")


def _insert_link() -> ClauseElement:
    return document_links.insert().values({
        document_links.c[n]: sa.bindparam(n)
        for n in ("original", "superseding", "kind", "at", "withdrawn", "unnamed", "added")})


def _insert_status() -> ClauseElement:
    return business_statuses.insert().inline().values({
        business_statuses.c[n]: sa.bindparam(n)
        for n in ("document", "organ_id", "code", "reported_at", "received_at",
                  "status_document")})


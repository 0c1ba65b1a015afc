"""The proof: the manifest, what the bus sent and what the target acknowledged, compared.

For every record of the manifest, verify reads the packets the bus committed for it (by
their exactly-once keys), decodes the edoc's attachments from the bytes the target was
given and compares each file's SHA-256 with the manifest's, and reads each delivery's
state: ``delivered`` is the target's acknowledgement (VNPT-iOffice's ``updateStatus done``
on its mailbox, HCM Egov's stored reference). The manifest itself is re-hashed from its
rows and compared with the digest fixed at plan time, so an edited manifest is caught.
A record is accounted for when it is acknowledged with identical files, or rejected with
its reason; the job verifies when every record is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.edxml import Edoc, read_packet
from bus.migrate import jobs
from bus.migrate.door import SOURCE
from bus.store import Store
from bus.store.tables import deliveries, documents, inbound_sources

__all__ = ["Outcome", "Verification", "verify"]

OUTCOMES = ("acknowledged", "delivered", "submitted", "rejected", "mismatched", "failed",
            "listed")


@dataclass
class Outcome:
    record_id: str
    register: str
    year: int
    outcome: str
    reason: str = ""
    document: str | None = None
    packets: int = 0
    acknowledged: int = 0
    references: list[str] = field(default_factory=list)


@dataclass
class Verification:
    job: jobs.Job
    manifest_ok: bool
    outcomes: list[Outcome]
    counts: dict[str, int]
    per_register: dict[str, dict[str, dict[str, int]]]

    @property
    def ok(self) -> bool:
        return self.manifest_ok and all(o.outcome in ("acknowledged", "rejected")
                                        for o in self.outcomes)

    @property
    def problems(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.outcome not in ("acknowledged", "rejected")]


def _sent(engine: Engine, prefix: str) -> Iterator[tuple[str, list[Any]]]:
    """(record id, its packets' rows) for every record committed under ``prefix``."""
    s, doc, d = inbound_sources.c, documents.c, deliveries.c
    query = (sa.select(s.source_id, doc.id, doc.kind, doc.payload_sha256, d.state,
                       d.receipt_reference, d.last_error)
             .join(documents, doc.id == s.document)
             .outerjoin(deliveries, d.document == doc.id)
             .where(s.source == SOURCE, s.source_id.like(prefix.replace("%", r"\%") + "%",
                                                         escape="\\"))
             .order_by(s.source_id))
    current: str | None = None
    rows: list[Any] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            record = row.source_id[len(prefix):].rsplit("|", 1)[0]
            if record != current:
                if current is not None:
                    yield current, rows
                current, rows = record, []
            rows.append(row)
    if current is not None:
        yield current, rows


def _files(store: Store, digest: str) -> list[list[Any]]:
    """The edoc's files as the target was given them: a large payload is a file of the
    store (``payload_files``), a small one a row, so both are read through the store."""
    try:
        data = store.body(digest).read()
    except errors.NotFound:
        return []
    packet = read_packet(data).packet
    assert isinstance(packet, Edoc)
    return [[a.attachment_name, a.content.sha256, a.content.size] for a in packet.attachments]


def verify(store: Store, job_id: str) -> Verification:
    engine = store.engine
    job = jobs.get_job(engine, job_id)
    if job.manifest_sha256 is None:
        raise errors.InvalidRequest(f"job {job_id} has no manifest yet; run `lgsp migrate "
                                    "plan` (or `resume`) until planning ends")
    _, digest = jobs.manifest_of(engine, job.id)
    prefix = f"{job.target}|{job.source.get('label', '')}|"
    sent = dict(_sent(engine, prefix))
    outcomes: list[Outcome] = []
    for row in jobs.records(engine, job.id):
        out = Outcome(row.record_id, row.register, row.year, row.state, row.reason or "",
                      row.document, row.packets or 0)
        if row.state == "submitted":
            _judge(store, out, json.loads(row.files), sent.get(row.record_id))
        outcomes.append(out)
    counts = {name: 0 for name in OUTCOMES}
    per: dict[str, dict[str, dict[str, int]]] = {}
    for o in outcomes:
        counts[o.outcome] += 1
        cell = per.setdefault(o.register, {}).setdefault(str(o.year), {"manifest": 0})
        cell["manifest"] += 1
        cell[o.outcome] = cell.get(o.outcome, 0) + 1
    counts["records"] = len(outcomes)
    # Cumulative, as the report states them: converted ⊇ handed to the target ⊇ acknowledged.
    counts["converted"] = sum(1 for o in outcomes if o.document is not None)
    counts["handed_over"] = counts["acknowledged"] + counts["delivered"]
    return Verification(job, digest == job.manifest_sha256, outcomes, counts, per)



def _judge(store: Store, out: Outcome, manifest_files: list[Any],
           rows: list[Any] | None) -> None:
    if not rows:
        out.outcome, out.reason = "mismatched", "marked submitted but the bus holds no packet"
        return
    documents_seen = {r.id for r in rows}
    states = [r.state for r in rows]
    out.acknowledged = sum(1 for s in states if s == "delivered")
    out.references = sorted({r.receipt_reference for r in rows if r.receipt_reference})
    if len(documents_seen) != out.packets:
        out.outcome = "mismatched"
        out.reason = f"{out.packets} packets converted, {len(documents_seen)} held by the bus"
        return
    edoc = next((r for r in rows if r.kind == "edoc"), None)
    if edoc is None or _files(store, edoc.payload_sha256) != manifest_files:
        out.outcome = "mismatched"
        out.reason = "the files the target was sent differ from the manifest"
        return
    bad = [r for r in rows if r.state in ("refused", "parked")]
    if bad:
        out.outcome = "mismatched"
        out.reason = f"the target refused a packet: {bad[0].last_error or bad[0].state}"
    elif all(s == "delivered" for s in states):
        out.outcome = "acknowledged"
    elif all(s in ("awaiting", "delivered") for s in states):
        out.outcome = "delivered"
    else:
        out.outcome = "submitted"


def record_evidence(store: Store, verification: Verification, reports: dict[str, str],
                    *, actor: str) -> None:
    """The verification's result and the reports' digests, as an event of the trail."""
    job = verification.job
    with store.begin() as conn:
        store.audit(conn, actor, "migration_verified", detail={
            "job": job.id, "target": job.target, "owner": job.owner,
            "manifest_sha256": job.manifest_sha256, "manifest_intact": verification.manifest_ok,
            "verified": verification.ok, "counts": verification.counts, "reports": reports})

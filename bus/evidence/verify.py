"""``lgsp audit verify``: recompute the chain and compare it with the tables.

Finds a seal edited, removed or out of order (the first broken link is named), an event
changed, removed or inserted into a sealed range, a document row that disagrees with its
sealed ``accepted`` event or was removed, a payload whose bytes no longer hash to their
digest or that is missing. A removal listed by a sealed purge record (with the digest
the seal holds) is a purge, not a finding; every purge is listed for a human to judge.
Events newer than the head are reported as not yet sealed (a warning, not a finding).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bus.evidence.canonical import SKIP, covered_ids, header_problems, in_ranges, leaf
from bus.evidence.chain import event_rows, seal_row, split_leaves
from bus.evidence.purge import ACTION as PURGED
from bus.store.queries import iso
from bus.store.tables import audit_seals, documents, events, payloads

SHOWN: Final = 200


@dataclass
class Finding:
    kind: str
    message: str


@dataclass
class AuditReport:
    seals: int = 0
    events: int = 0
    purged_events: int = 0
    unsealed: int = 0
    oldest_unsealed: float | None = None
    head: dict[str, Any] | None = None
    first_broken: str | None = None
    purges: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    total_findings: int = 0

    @property
    def ok(self) -> bool:
        return self.total_findings == 0

    def add(self, kind: str, message: str) -> None:
        self.total_findings += 1
        if len(self.findings) < SHOWN:
            self.findings.append(Finding(kind, message))


@dataclass
class _Purges:
    leaves: dict[int, str] = field(default_factory=dict)
    documents: set[str] = field(default_factory=set)
    payloads: set[str] = field(default_factory=set)


def _purges(conn: Connection, report: AuditReport) -> _Purges:
    found = _Purges()
    for row in event_rows(conn, events.c.action == PURGED):
        try:
            detail = json.loads(row["detail"] or "{}")
            ids = [i for a, b in detail.get("events", []) for i in range(int(a), int(b) + 1)]
            found.leaves.update(zip(ids, split_leaves(detail.get("leaves", "")), strict=True))
        except (ValueError, TypeError):
            report.add("purge", f"event {row['id']}: a purge record that cannot be read")
            continue
        found.documents.update(detail.get("documents", []))
        found.payloads.update(detail.get("payloads", []))
        report.purges.append(
            f"event {row['id']} at {iso(row['at'])} by {row['actor']}: {len(ids)} events, "
            f"{len(detail.get('documents', []))} documents, "
            f"{len(detail.get('payloads', []))} payloads ({detail.get('reason', '')})")
    return found


@dataclass
class _Gone:
    """What is missing, judged only at the end against the purge records, which are read
    last: a purge record commits with its deletions, so one whose deletions were seen is
    seen too, even if it committed while verify was running."""

    events: list[tuple[int, int, str | None]] = field(default_factory=list)
    documents: list[tuple[str, int]] = field(default_factory=list)
    payloads: list[tuple[str, str]] = field(default_factory=list)

    def judge(self, report: AuditReport, purges: _Purges) -> None:
        for i, number, sealed in self.events:
            if i not in purges.leaves:
                report.add("removed", f"event {i} (sealed by seal {number}) was removed")
                continue
            report.purged_events += 1
            if purges.leaves[i] != sealed:
                report.add("changed", f"event {i} was changed before the purge that "
                           "removed it (its recorded digest is not the sealed one)")
        for doc, event in self.documents:
            if doc not in purges.documents:
                report.add("document", f"document {doc} was removed (its acceptance is "
                           f"event {event})")
        for doc, digest in self.payloads:
            if digest not in purges.payloads:
                report.add("payload", f"payload {digest} of document {doc} was removed")


def verify(engine: Engine, *, check_payloads: bool = True) -> AuditReport:
    report = AuditReport()
    gone = _Gone()
    with engine.connect() as conn:
        adopted = {int(i) for (late,) in conn.execute(sa.select(audit_seals.c.late).where(
            audit_seals.c.late != "[]")) for i in json.loads(late)}
        _seals(conn, report, gone, adopted)
        _unsealed(conn, report)
        _documents(conn, report, gone)
        if check_payloads:
            _payloads(conn, report, gone)
        gone.judge(report, _purges(conn, report))
    return report


def _seals(conn: Connection, report: AuditReport, gone: _Gone, adopted: set[int]) -> None:
    previous: dict[str, Any] | None = None
    checkpoints: dict[int, str] = {}
    after = 0
    while True:
        batch = [seal_row(r) for r in conn.execute(
            sa.select(audit_seals).where(audit_seals.c.number > after)
            .order_by(audit_seals.c.number).limit(200)).mappings()]
        if not batch:
            break
        rows = _rows_of(conn, batch)
        for seal in batch:
            _seal(rows, report, gone, adopted, seal, previous, checkpoints)
            previous = seal
        after = batch[-1]["number"]
    report.head = previous and {k: previous[k] for k in ("number", "last_id", "hash",
                                                          "sealed_at")}


def _rows_of(conn: Connection, batch: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The events of consecutive seals in one ordered read rather than one per seal
    (a year of one-second seals is millions of them); a read per few thousand events."""
    rows: dict[int, dict[str, Any]] = {}
    start = 0
    while start < len(batch):
        end, total = start, 0
        while end < len(batch) and (end == start or total + batch[end]["count"] <= 20000):
            total += batch[end]["count"]
            end += 1
        group = batch[start:end]
        where: sa.ColumnElement[bool] = events.c.id.between(group[0]["first_id"],
                                                            group[-1]["last_id"])
        late = [i for seal in group for i in seal["late"]]
        if late:
            where = sa.or_(where, events.c.id.in_(late))
        rows.update((int(r["id"]), r) for r in event_rows(conn, where))
        start = end
    return rows


def _seal(all_rows: dict[int, dict[str, Any]], report: AuditReport, gone: _Gone,
          adopted: set[int],
          seal: dict[str, Any], previous: dict[str, Any] | None,
          checkpoints: dict[int, str]) -> None:
    number = seal["number"]
    report.seals += 1
    problems = header_problems(seal, seal["leaves"], previous)
    if previous is None and (number != 1 or seal["first_id"] != 1):
        problems.append(f"seal {number} is the first seal left; the chain must start at "
                        "seal 1 with event 1 (seals were removed)")
    if number % SKIP == 0 and number > SKIP and number - SKIP in checkpoints \
            and checkpoints[number - SKIP] != seal["skip_hash"]:
        problems.append(f"seal {number}: its link to seal {number - SKIP} is broken")
    if number % SKIP == 0:
        checkpoints[number] = seal["hash"]
    for problem in problems:
        report.add("chain", problem)
    if problems and report.first_broken is None:
        report.first_broken = problems[0]
    ids = covered_ids(seal)
    sealed = dict(zip(ids, seal["leaves"], strict=False))
    rows = {i: all_rows[i] for i in (*range(seal["first_id"], seal["last_id"] + 1),
                                     *seal["late"]) if i in all_rows}
    for i in ids:
        row = rows.get(i)
        if row is None:
            gone.events.append((i, number, sealed.get(i)))
            continue
        report.events += 1
        if leaf(row) != sealed.get(i):
            report.add("changed", f"event {i} (sealed by seal {number}) was changed: now "
                       f"{row['action']} by {row['actor']} at {iso(row['at'])}"
                       + (f" on document {row['document']}" if row["document"] else ""))
    for i in sorted(set(rows) - set(ids)):
        if in_ranges(seal["absent"], i) and i not in adopted:
            report.add("added", f"event {i} was inserted after seal {number} sealed its id "
                       "as absent")


def _unsealed(conn: Connection, report: AuditReport) -> None:
    last = report.head["last_id"] if report.head else 0
    count, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(events.c.at))
                                 .where(events.c.id > last)).one()
    report.unsealed, report.oldest_unsealed = int(count), oldest


_CHECKED: Final = (("sha256", None), ("sender", "sender"), ("document_id", "document_id"),
                   ("payload_sha256", "payload_sha256"), ("original_sha256", "original_sha256"))


def _documents(conn: Connection, report: AuditReport, gone: _Gone) -> None:
    d, e = documents.c, events.c
    accepted = (sa.select(e.id.label("event"), e.document.label("doc"), e.digest,
                          e.detail, documents)
                .select_from(events.outerjoin(documents, d.id == e.document))
                .where(e.action == "accepted").order_by(e.id))
    for row in conn.execute(accepted).mappings():
        if row["id"] is None:
            gone.documents.append((row["doc"], row["event"]))
            continue
        try:
            detail = json.loads(row["detail"] or "{}")
        except ValueError:
            continue  # the event itself is reported as changed
        for column, key in _CHECKED:
            said = row["digest"] if key is None else detail.get(key)
            if key in ("payload_sha256", "original_sha256") and key not in detail \
                    and not (key == "original_sha256" and "payload_sha256" in detail):
                continue
            if said != row[column]:
                report.add("document", f"document {row['doc']}: {column} is "
                           f"{row[column]!r} but its accepted event {row['event']} says "
                           f"{said!r}")
    orphans = sa.select(d.id).where(~sa.exists().where(e.document == d.id,
                                                       e.action == "accepted"))
    for (doc,) in conn.execute(orphans):
        report.add("document", f"document {doc} has no accepted event (inserted outside "
                   "the bus, or its event was removed)")


def _payloads(conn: Connection, report: AuditReport, gone: _Gone) -> None:
    d, p = documents.c, payloads.c
    for column in (d.payload_sha256, d.original_sha256):
        missing = (sa.select(d.id, column).where(column.is_not(None), ~sa.exists().where(
            p.sha256 == column)))
        gone.payloads.extend((doc, digest) for doc, digest in conn.execute(missing))
    result = conn.execution_options(yield_per=50).execute(sa.select(p.sha256, p.data))
    for digest, data in result:
        if hashlib.sha256(bytes(data)).hexdigest() != digest:
            report.add("payload", f"payload {digest} was changed: its bytes no longer hash "
                       "to its digest")

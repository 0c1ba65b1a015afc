"""Retention: removing documents past their keeping period, except those on legal hold.

A document goes when (1) a rule of ``retention`` covers its kind (``edoc``, ``status``)
or kind and business type (``edoc.revoke``), the most specific one, and it is older than
that; (2) neither it nor the document it answers is on legal hold; (3) every delivery of
it is terminal (nothing is purged while the bus still owes someone the bytes). With it go
its deliveries, business statuses, poller records and every row another table keeps
about it by foreign key; its payloads go only when no remaining document references them.
The ``events`` rows stay: the audit trail outlives the document, and each batch adds a
``purged`` event listing what went with its hashes.

Batches are short transactions with a pause between them, so ingest (which needs the
same write lock on SQLite, and the same indexes on PostgreSQL) waits at most one batch:
with ``batch_ms`` each batch is sized by the time the last one took and the pause is at
least that long; with ``max_slowdown`` too, a probe write beside each batch measures the
delay it causes a live write and the batches shrink or the pauses lengthen to keep it
within that fraction of a live write's quiet latency (:mod:`bus.maintenance.pacing`,
:mod:`bus.maintenance.probe`). Each rule's batches go on from the
received_at where the last one stopped, so a batch never re-reads the held, busy or
already deleted rows before it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from bus import errors
from bus.evidence.purge import record_purge
from bus.maintenance.livelatency import LiveLatency
from bus.maintenance.pacing import HarmPacer, Pacer
from bus.maintenance.probe import Meeting, Probe, write_probe
from bus.store.large_objects import PREFIX as LO_PREFIX
from bus.store.tables import (
    TERMINAL,
    deliveries,
    documents,
    inbound_sources,
    legal_holds,
    metadata,
    payload_files,
    payloads,
)

log = structlog.get_logger("lgsp.retention")

_PURGE_LOCK_KEY = 0x4C475351
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*$")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}
_KINDS = ("edoc", "status")
QUIET_FIRST = 8
"""Idle probes before the first batch: the quiet baseline to start from."""
MEETING_GAP_S = 0.1
IDLE_GAP_S = 0.5
"""A probe is a durable commit too: at 20-30 batches a second, one beside each batch and
one after each pause added 40 % to the commits of a busy embedded bus (the harm it was
to measure); so a batch meets a probe at most every 0.1 s, and a pause ends with one at
most every 0.5 s (of batch and pause time, as the pacing counts it)."""


def parse_duration(text: str | float) -> float:
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a duration (e.g. 3650d, 36h, 90m, 600s)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Rule:
    key: str
    kind: str
    business: str | None
    keep_s: float


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_settings(cls, retention: Mapping[str, str]) -> Policy:
        rules, problems = [], []
        for key, value in retention.items():
            kind, _, business = str(key).partition(".")
            if kind not in _KINDS:
                problems.append(errors.Problem(
                    f"retention.{key}: the key must be edoc, status or edoc.<business type> "
                    "(e.g. edoc.revoke)"))
                continue
            try:
                keep = parse_duration(value)
            except ValueError as exc:
                problems.append(errors.Problem(f"retention.{key}: {exc}"))
                continue
            rules.append(Rule(str(key), kind, business or None, keep))
        if problems:
            raise errors.ConfigInvalid(problems)
        return cls(tuple(rules))

    def _covered(self, rule: Rule) -> sa.ColumnElement[bool]:
        d = documents.c
        clause = d.kind == rule.kind
        if rule.business is not None:
            return sa.and_(clause, d.business == rule.business)
        specific = [r.business for r in self.rules if r.kind == rule.kind and r.business]
        if specific:
            clause = sa.and_(clause, sa.or_(d.business.is_(None), d.business.not_in(specific)))
        return clause

    def expired(self, rule: Rule, now: float) -> sa.ColumnElement[bool]:
        """Past ``rule``, not held (nor the document it answers), nothing under way."""
        d = documents.c
        held = sa.select(legal_holds.c.document).where(
            sa.or_(legal_holds.c.document == d.id, legal_holds.c.document == d.refers_to))
        busy = sa.select(deliveries.c.id).where(deliveries.c.document == d.id,
                                                deliveries.c.state.not_in(sorted(TERMINAL)))
        return sa.and_(self._covered(rule), d.received_at < now - rule.keep_s,
                       ~sa.exists(held), ~sa.exists(busy))


@dataclass
class Report:
    documents: int = 0
    payloads: int = 0
    batches: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    floor_batches: int = 0
    """Batches whose pause and size the progress floor set (purge_min_docs_per_s)."""
    live_quiet_ms: float | None = None
    """The serve process's accept p99 before the purge (its reference), if known."""
    live_during_ms: float | None = None
    """...and while it ran."""


def _referencing() -> list[tuple[sa.Table, sa.Column[Any]]]:
    """Every column that points at documents.id by foreign key, and inbound_sources."""
    found: list[tuple[sa.Table, sa.Column[Any]]] = [(inbound_sources,
                                                     inbound_sources.c.document)]
    for table in reversed(metadata.sorted_tables):
        if table is documents or table is legal_holds:
            continue
        for fk in table.foreign_keys:
            if fk.column is documents.c.id:
                found.append((table, fk.parent))
    return found


def _take_lock(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"),
                             {"k": _PURGE_LOCK_KEY}).scalar())


def _batch(conn: Connection, policy: Policy, rule: Rule, now: float, size: int,
           max_bytes: int, actor: str,
           start: float | None = None) -> tuple[int, int, float | None]:
    """One transaction: up to ``size`` documents of ``rule`` received from ``start`` on
    (and about ``max_bytes`` of payload) with their unshared payloads. Returns the
    documents and payloads removed and the received_at the next batch starts from
    (None: nothing of the rule is left)."""
    d = documents.c
    query = (sa.select(d.id, d.document_id, d.sender, d.kind, d.received_at, d.sha256,
                       d.payload_sha256, d.original_sha256, d.size)
             .where(policy.expired(rule, now)).order_by(d.received_at).limit(size))
    if start is not None:
        query = query.where(d.received_at >= start)
    rows = conn.execute(query).all()
    if not rows:
        return 0, 0, None
    total, cut = 0, len(rows)
    for n, row in enumerate(rows):
        total += row.size
        if total > max_bytes:
            cut = max(n, 1)
            break
    rows = rows[:cut]
    ids = [r.id for r in rows]
    resume = float(rows[-1].received_at)
    if conn.dialect.name == "postgresql":
        # An operator's requeue between the select and now would make one busy again.
        conn.execute(sa.select(deliveries.c.id).where(deliveries.c.document.in_(ids))
                     .with_for_update())
        busy = set(conn.execute(sa.select(deliveries.c.document).where(
            deliveries.c.document.in_(ids),
            deliveries.c.state.not_in(sorted(TERMINAL)))).scalars())
        rows = [r for r in rows if r.id not in busy]
        ids = [r.id for r in rows]
        if not ids:
            return 0, 0, resume
    for table, column in _referencing():
        conn.execute(table.delete().where(column.in_(ids)))
    conn.execute(documents.delete().where(d.id.in_(ids)))
    digests = {r.payload_sha256 for r in rows} | {r.original_sha256 for r in rows
                                                  if r.original_sha256}
    # DISTINCT: a payload many documents share (the same packet sent again) would bring
    # back one row per document still using it, thousands per batch.
    still = set(conn.execute(sa.select(d.payload_sha256).where(d.payload_sha256.in_(digests))
                             .distinct()).scalars()) | set(conn.execute(
                                 sa.select(d.original_sha256).where(
                                     d.original_sha256.in_(digests)).distinct()).scalars())
    gone = sorted(digests - still)
    if gone:
        conn.execute(payloads.delete().where(payloads.c.sha256.in_(gone)))
        _drop_payload_files(conn, gone)
    # The history rows stay; the evidence chain learns which documents and payloads went,
    # so `lgsp audit verify` reports a purge, not tampering.
    record_purge(conn, actor, reason=f"retention rule {rule.key} (kept {rule.keep_s:g} s)",
                 documents=ids, payloads=gone, rule=rule.key, keep_s=rule.keep_s, purged=[
                     {"id": r.id, "document_id": r.document_id, "sender": r.sender,
                      "kind": r.kind, "received_at": r.received_at, "sha256": r.sha256,
                      "payload_sha256": r.payload_sha256} for r in rows])
    return len(rows), len(gone), resume


def _drop_payload_files(conn: Connection, gone: list[str]) -> None:
    """Payloads kept outside rows (bus.store.blobs): a large object is unlinked in this
    transaction; a file loses its row here and is removed by the payload sweep (every
    serve process's, within the hour), which never touches a file a row still names."""
    f = payload_files.c
    if conn.dialect.name == "postgresql":
        oids = [int(location[len(LO_PREFIX):]) for location in conn.execute(
            sa.select(f.location).where(f.sha256.in_(gone), f.location.startswith(LO_PREFIX))
        ).scalars()]
        for oid in oids:
            conn.execute(sa.text("SELECT lo_unlink(:oid) FROM pg_largeobject_metadata "
                                 "WHERE oid = :oid"), {"oid": oid})
    conn.execute(payload_files.delete().where(f.sha256.in_(gone)))


def purge(engine: Engine, policy: Policy, *, actor: str, batch: int = 50,
          batch_bytes: int = 1024 * 1024, pause_s: float = 0.1, batch_ms: float = 0.0,
          max_slowdown: float = 0.0, live_ms: float = 0.0, min_docs_per_s: float = 0.0,
          live: LiveLatency | None = None, probe: Probe | None = None,
          now: float | None = None, stop: threading.Event | None = None,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Report:
    """Removes every expired document, ``batch`` at a time (at most, when ``batch_ms``
    paces the batches), pausing between batches; with ``batch_ms`` and ``max_slowdown``,
    paced by the delay a probe write (``probe``; by default :func:`write_probe`) meets,
    judged against ``live``'s quiet p99 when this process serves (else ``live_ms``), and
    never slower than ``min_docs_per_s``."""
    report = Report()
    if live is None:
        return _purge(engine, policy, report, actor, batch, batch_bytes, pause_s, batch_ms,
                      max_slowdown, live_ms, min_docs_per_s, probe, None, now, stop, clock,
                      sleep)
    quiet = live.quiet_p99()
    report.live_quiet_ms = None if quiet is None else quiet * 1000
    with live.purging():
        try:
            return _purge(engine, policy, report, actor, batch, batch_bytes, pause_s,
                          batch_ms, max_slowdown, live_ms if quiet is None else quiet * 1000,
                          min_docs_per_s, probe, None if quiet is None else live, now, stop,
                          clock, sleep)
        finally:
            during = live.during_p99()
            report.live_during_ms = None if during is None else during * 1000


def _purge(engine: Engine, policy: Policy, report: Report, actor: str, batch: int,
           batch_bytes: int, pause_s: float, batch_ms: float, max_slowdown: float,
           live_ms: float, min_docs_per_s: float, probe: Probe | None,
           live: LiveLatency | None, now: float | None, stop: threading.Event | None,
           clock: Callable[[], float], sleep: Callable[[float], None]) -> Report:
    now = time.time() if now is None else now
    pacer: Pacer | HarmPacer | None = None
    if batch_ms > 0 and max_slowdown > 0:
        probe = probe or write_probe(engine)
        pacer = HarmPacer(max_slowdown, batch_ms / 1000, batch, pause_s, live_ms / 1000,
                          min_docs_per_s)
        for _ in range(QUIET_FIRST):
            pacer.idle(probe())
    elif batch_ms > 0:
        pacer = Pacer(batch_ms / 1000, batch, pause_s)
    since_meeting, since_idle = MEETING_GAP_S, 0.0
    for rule in policy.rules:
        start: float | None = None
        while stop is None or not stop.is_set():
            meeting = None
            with engine.begin() as conn:
                if not _take_lock(conn):
                    log.info("purge.skipped", reason="another process is purging")
                    return report
                began = clock()  # the write lock is ours (SQLite: BEGIN IMMEDIATE)
                if isinstance(pacer, HarmPacer) and probe is not None \
                        and since_meeting >= MEETING_GAP_S:
                    since_meeting = 0.0
                    meeting = Meeting(probe)  # waits behind this batch as a live write
                size = batch if pacer is None else pacer.size
                done, freed, start = _batch(conn, policy, rule, now, size, batch_bytes,
                                            actor, start)
            took = clock() - began
            if isinstance(pacer, HarmPacer):
                pause = pacer.after(done, took, None if meeting is None else meeting.result())
                if pacer.held:
                    if not report.floor_batches:
                        log.info("purge.floor", min_docs_per_s=min_docs_per_s,
                                 batch=pacer.size, pause_ms=round(pause * 1000, 1),
                                 reference_ms=round(pacer.budget() / max_slowdown * 1000, 1),
                                 hint="live writes are slowed beyond purge_max_slowdown; "
                                      "the purge is held to its floor so that it finishes")
                    report.floor_batches += 1
            else:
                pause = pause_s if pacer is None else pacer.after(done, took)
            if start is None:
                break
            report.documents += done
            report.payloads += freed
            report.batches += 1
            report.by_rule[rule.key] = report.by_rule.get(rule.key, 0) + done
            if stop is not None and stop.wait(pause):
                break
            if stop is None:
                sleep(pause)
            since_meeting += took + pause
            since_idle += took + pause
            if isinstance(pacer, HarmPacer) and probe is not None and since_idle >= IDLE_GAP_S:
                since_idle = 0.0
                pacer.idle(probe())  # the end of the pause: no batch in flight
                fresh = None if live is None else live.fresh_p99()
                if fresh is not None:  # serve's own submissions since the last judgement
                    pacer.judge_live(fresh)
    return report


def preview(engine: Engine, policy: Policy, *, now: float | None = None) -> dict[str, int]:
    """What a purge now would remove, per rule (``lgsp purge --dry-run``)."""
    now = time.time() if now is None else now
    with engine.connect() as conn:
        return {rule.key: int(conn.execute(sa.select(sa.func.count()).select_from(documents)
                                           .where(policy.expired(rule, now))).scalar_one())
                for rule in policy.rules}


class Purger(threading.Thread):
    """The scheduled purge of ``serve``/``worker`` (``purge_interval_s``)."""

    def __init__(self, engine: Engine, policy: Policy, *, interval_s: float, batch: int,
                 batch_bytes: int, pause_s: float, batch_ms: float = 0.0,
                 max_slowdown: float = 0.0, live_ms: float = 0.0,
                 min_docs_per_s: float = 0.0, live: LiveLatency | None = None) -> None:
        super().__init__(name="lgsp-purge", daemon=True)
        self.engine, self.policy = engine, policy
        self.interval_s, self.batch, self.pause_s = interval_s, batch, pause_s
        self.batch_bytes, self.batch_ms = batch_bytes, batch_ms
        self.max_slowdown, self.live_ms = max_slowdown, live_ms
        self.min_docs_per_s, self.live = min_docs_per_s, live
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                report = purge(self.engine, self.policy, actor="bus:retention",
                               batch=self.batch, batch_bytes=self.batch_bytes,
                               pause_s=self.pause_s, batch_ms=self.batch_ms,
                               max_slowdown=self.max_slowdown, live_ms=self.live_ms,
                               min_docs_per_s=self.min_docs_per_s, live=self.live,
                               stop=self.stopping)
            except Exception:
                log.exception("purge.failed")
                continue
            if report.documents:
                log.info("purge.done", documents=report.documents, payloads=report.payloads,
                         by_rule=report.by_rule, floor_batches=report.floor_batches,
                         live_p99_ms_before=report.live_quiet_ms,
                         live_p99_ms_during=report.live_during_ms)

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        self.join(timeout)
        return not self.is_alive()


def scheduled(settings: Any, engine: Engine,
              live: LiveLatency | None = None) -> Iterator[Purger]:
    """The purger a process runs, if the settings ask for one; ``live``: the serve
    process's accept latency, the reference its harm is judged against."""
    if settings.purge_interval_s > 0 and settings.retention:
        yield Purger(engine, Policy.from_settings(settings.retention),
                     interval_s=settings.purge_interval_s, batch=settings.purge_batch,
                     batch_bytes=settings.purge_batch_bytes, pause_s=settings.purge_pause_s,
                     batch_ms=settings.purge_batch_ms,
                     max_slowdown=settings.purge_max_slowdown,
                     live_ms=settings.purge_live_ms,
                     min_docs_per_s=settings.purge_min_docs_per_s, live=live)

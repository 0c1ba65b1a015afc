"""What every reliability scenario shares: varied traffic, and the audit that checks the
delivery contract from the database and the sink rather than from anything the bus says
about itself (see test_battery.py for what the audit counts)."""

from __future__ import annotations

import collections
import contextlib
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from bus.edxml import EdocBuilder, packet_bytes
from tests.cluster import (
    TERMINAL,
    Cluster,
    Outgoing,
    Submission,
    all_terminal,
    delivery_rows,
    fresh_database,
    wait_until,
)
from tests.http_sink import HttpSink
from tests.servers import PostgresServer

RULES: Final = ({"name": "revocations-to-archive",
                 "match": {"kind": "edoc", "business": "revoke"}, "copy_to": ["archive"]},)

# (system, OrganId it sends as, recipients it writes to), from config/directory.yaml;
# 000.00.00.G22 is outside the province, so the national axis gets traffic too.
_SENDERS: Final = (
    ("eoffice", "000.00.12.H37",
     ("000.00.00.H37", "000.00.31.H37", "000.00.32.H37", "000.00.00.G22")),
    ("hcm_egov", "000.00.31.H37", ("000.00.12.H37", "000.00.00.H37", "000.00.00.G22")),
)


# --------------------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------------------


def make_documents(count: int, tag: str, *,
                   poison: Mapping[int, str] | None = None) -> list[Outgoing]:
    """Varied traffic: two senders, one or two recipients, every destination reached
    (revocations copy to the archive), every DocumentId unique to this run."""
    poison = poison or {}
    run = f"{tag}-{secrets.token_hex(3)}"
    out: list[Outgoing] = []
    for i in range(count):
        system, sender, choices = _SENDERS[1 if i % 4 == 3 else 0]
        recipients = [choices[i % len(choices)]]
        if i % 10 == 0 and i not in poison:
            recipients.append(choices[(i + 1) % len(choices)])
        subject = f"Công văn {i} về việc thử nghiệm độ tin cậy của trục"
        if i in poison:
            subject += f" {poison[i]}"
        builder = (EdocBuilder(sender).to(*recipients).code(str(i + 1), run.upper())
                   .subject(subject, "Nội dung công văn thử nghiệm.")
                   .signer("Nguyễn Văn An", "Giám đốc")
                   .document_id(f"{sender},2024/05/17,{i + 1}/{run}"))
        if i % 20 == 7:
            builder.business("revoke", "Thu hồi văn bản gửi nhầm")
        out.append(Outgoing(packet_bytes(builder.build(check=i < 10)), system))
    return out


# --------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------


@dataclass
class Audit:
    documents: int
    deliveries: int
    states: dict[str, int]
    requests: int
    effects: int
    duplicate_requests: int
    parked: int
    lost: int
    max_attempts: int
    problems: list[str] = field(default_factory=list)


def _document_ids(cluster: Cluster) -> set[str]:
    with cluster.engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.text("SELECT id FROM documents")).scalars()}


def audit(cluster: Cluster, sink: HttpSink, submissions: Sequence[Submission], *,
          poisoned: frozenset[str] = frozenset()) -> Audit:
    """Checks the contract from the database and the sink; ``poisoned`` are document ids
    whose deliveries must be parked instead of delivered."""
    problems: list[str] = []
    attempted = [s for s in submissions if s.attempts]
    accepted = [s for s in attempted if s.accepted]
    unanswered = [s for s in attempted if s.status is None]
    refused = collections.Counter(s.status for s in attempted
                                  if s.status is not None and not s.accepted)
    if unanswered:
        problems.append(f"{len(unanswered)} submissions never got a final answer; e.g. "
                        f"failures {dict(unanswered[0].failures)}")
    if refused:
        problems.append(f"submissions refused: {dict(refused)}")
    receipts = {str(s.document) for s in accepted}
    if len(receipts) != len(accepted):
        problems.append(f"{len(accepted)} distinct packets got only {len(receipts)} ids")
    stored = _document_ids(cluster)
    missing = receipts - stored
    if missing:
        problems.append(f"{len(missing)} accepted documents are not in the database")
    if stored - receipts:
        problems.append(f"{len(stored - receipts)} documents committed that no sender holds "
                        "a receipt for (a retried packet stored twice?)")
    rows = delivery_rows(cluster.engine)
    promised = {str(r["delivery"]) for s in accepted for r in (s.receipt or {})["recipients"]}
    if promised != {r.id for r in rows}:
        problems.append(f"receipts promise {len(promised)} deliveries, the database has "
                        f"{len(rows)} ({len(promised - {r.id for r in rows})} missing)")
    states = dict(collections.Counter(r.state for r in rows))
    stuck = [r for r in rows if r.state not in TERMINAL]
    if stuck:
        problems.append(f"{len(stuck)} deliveries not terminal: {states}")
    effects = sink.effect_keys()
    lost_rows = [r for r in rows if r.document not in poisoned
                 and (r.state != "delivered" or r.key not in effects)]
    if lost_rows:
        sample = lost_rows[0]
        problems.append(f"{len(lost_rows)} deliveries lost; e.g. {sample}")
    for row in rows:
        if row.document in poisoned and (row.state != "parked" or row.key in effects):
            problems.append(f"poisoned delivery {row.id} is {row.state}, effect "
                            f"{row.key in effects}")
    unexpected = effects - {r.key for r in rows}
    if unexpected:
        problems.append(f"{len(unexpected)} effects at the destination for no delivery")
    requests = list(sink.requests)
    per_target = collections.Counter(
        (r.path, r.headers.get("x-lgsp-document"), r.headers.get("x-lgsp-recipient"))
        for r in requests if r.effect)
    doubled = {k: n for k, n in per_target.items() if n > 1}
    if doubled:
        problems.append(f"{len(doubled)} documents delivered twice to a destination: "
                        f"{list(doubled.items())[:3]}")
    return Audit(documents=len(stored), deliveries=len(rows), states=states,
                 requests=len(requests), effects=len(effects),
                 duplicate_requests=sink.duplicates, parked=states.get("parked", 0),
                 lost=len(missing) + len(lost_rows),
                 max_attempts=max((r.attempts for r in rows), default=0), problems=problems)


def report(name: str, result: Audit, *, seconds: float, kills: int,
           **extra: Any) -> None:
    print(f"\n[{name}] documents={result.documents} deliveries={result.deliveries} "
          f"time={seconds:.1f}s throughput={result.documents / seconds:.1f} docs/s "
          f"({result.deliveries / seconds:.1f} deliveries/s) kills={kills} "
          f"sink: requests={result.requests} effects={result.effects} "
          f"duplicate requests={result.duplicate_requests} parked={result.parked} "
          f"lost={result.lost} max attempts={result.max_attempts} states={result.states}"
          + "".join(f" {key}={value}" for key, value in extra.items()))
    for problem in result.problems:
        print(f"  PROBLEM: {problem}")


def settle(cluster: Cluster, sink: HttpSink, timeout: float) -> None:
    wait_until(lambda: all_terminal(cluster.engine), timeout, step=0.5,
               what="every delivery terminal",
               explain=lambda: f"states={cluster.states()} effects={sink.effects}")


@contextlib.contextmanager
def scaled_out(root: Path, postgres: PostgresServer, broker_url: str,
               routes: Mapping[str, Any], **settings: Any) -> Iterator[Cluster]:
    """Two ingress and two worker processes on a fresh database and the given vhost."""
    with Cluster(root, routes=routes, database_url=fresh_database(postgres),
                 broker_url=broker_url, **settings) as cluster:
        cluster.launch("ingress", 2)
        cluster.launch("worker", 2)
        yield cluster

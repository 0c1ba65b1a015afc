"""The job and its records in the database: what ``resume`` and ``verify`` stand on.

A job is planned once: every record of the source is listed and fetched, its files
hashed, and one ``migration_records`` row written per record (the manifest), page by page
in its own transactions, so planning itself survives a kill (a record already listed is
kept, the listing continues). The manifest's counts per register and year and a digest
over every (record, file, SHA-256) line are fixed on the job when the listing ends.
Record states: ``listed`` → ``submitted`` (its packets committed by the bus) or
``rejected`` (with the reason); nothing else moves them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.migrate.source import Source
from bus.store import Store
from bus.store.tables import migration_jobs, migration_records, new_id

__all__ = ["JOB_STATES", "Job", "create_job", "get_job", "list_jobs", "plan", "set_state"]

JOB_STATES = ("planning", "planned", "running", "paused", "finished")
J, R = migration_jobs.c, migration_records.c


@dataclass(frozen=True)
class Job:
    id: str
    source: dict[str, Any]
    target: str
    owner: str
    state: str
    options: dict[str, Any]
    manifest: dict[str, Any] | None
    manifest_sha256: str | None
    created_at: float
    updated_at: float
    heartbeat_at: float | None
    finished_at: float | None

    @classmethod
    def of(cls, row: Any) -> Job:
        return cls(row.id, json.loads(row.source), row.target, row.owner, row.state,
                   json.loads(row.options), json.loads(row.manifest) if row.manifest else None,
                   row.manifest_sha256, row.created_at, row.updated_at, row.heartbeat_at,
                   row.finished_at)


def create_job(engine: Engine, source: Source, *, target: str, owner: str,
               options: dict[str, Any]) -> Job:
    now = time.time()
    job = new_id()
    with engine.begin() as conn:
        conn.execute(migration_jobs.insert().values(
            id=job, source=json.dumps({**source.spec(), "label": source.label},
                                      ensure_ascii=False),
            target=target, owner=owner, state="planning",
            options=json.dumps(options, ensure_ascii=False), created_at=now, updated_at=now))
    return get_job(engine, job)


def get_job(engine: Engine, job: str) -> Job:
    with engine.connect() as conn:
        row = conn.execute(sa.select(migration_jobs).where(J.id == job)).first()
    if row is None:
        raise errors.NotFound(f"no migration job {job}; `lgsp migrate status` lists them")
    return Job.of(row)


def list_jobs(engine: Engine, limit: int = 50) -> list[Job]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(migration_jobs).order_by(J.created_at.desc())
                            .limit(limit)).all()
    return [Job.of(r) for r in rows]


def set_state(engine: Engine, job: str, state: str, *, only_from: tuple[str, ...] = ()
              ) -> bool:
    now = time.time()
    query = migration_jobs.update().where(J.id == job)
    if only_from:
        query = query.where(J.state.in_(only_from))
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state == "finished":
        values["finished_at"] = now
    with engine.begin() as conn:
        return bool(conn.execute(query.values(**values)).rowcount)


def heartbeat(engine: Engine, job: str) -> None:
    with engine.begin() as conn:
        conn.execute(migration_jobs.update().where(J.id == job).values(
            heartbeat_at=time.time()))


def plan(engine: Engine, job: Job, source: Source, *, page_size: int = 200,
         progress: Callable[[int], None] | None = None, readers: int = 3) -> Job:
    """Lists and hashes the whole source into the manifest (resumable), then seals it.

    ``readers`` threads read records at once, each through a source of its own opened
    from the job's spec (a source need not be thread-safe): a record's time is mostly the
    source answering, and while one reader waits another hashes. Rows keep the listing's
    order, so the manifest and its digest do not depend on who read what first."""
    if job.state != "planning":
        return job
    with engine.connect() as conn:
        known = {r for (r,) in conn.execute(sa.select(R.record_id).where(R.job == job.id))}
    seq = len(known)
    with _Readers(source, job.source, readers) as pool:
        for page in source.pages(page_size):
            refs = [ref for ref in page if ref.record_id not in known]
            rows = []
            for ref, files in zip(refs, pool.files([r.record_id for r in refs]),
                                  strict=True):
                rows.append({"job": job.id, "record_id": ref.record_id, "seq": seq,
                             "register": ref.register, "year": ref.year, "files": files,
                             "state": "listed", "updated_at": time.time()})
                seq += 1
            if rows:
                with engine.begin() as conn:
                    conn.execute(migration_records.insert(), rows)
            if progress:
                progress(seq)
    return _seal(engine, job, source)


class _Readers:
    """Reads records' files with ``count`` threads, one source per thread."""

    def __init__(self, source: Source, spec: dict[str, Any], count: int) -> None:
        reopenable = spec.get("kind") in ("eoffice", "folder", "generated")
        self.source, self.spec = source, spec
        self.count = max(count, 1) if reopenable else 1
        self._local = threading.local()
        self._opened: list[Source] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="migrate-plan")

    def _own(self) -> Source:
        mine: Source | None = getattr(self._local, "source", None)
        if mine is None:
            from bus.migrate.source import open_source

            mine = open_source(self.spec)
            self._local.source = mine
            with self._lock:
                self._opened.append(mine)
        return mine

    def files(self, record_ids: list[str]) -> list[str]:
        if self.count == 1:
            return [_files_of(self.source, r) for r in record_ids]
        return list(self._pool.map(lambda r: _files_of(self._own(), r), record_ids))

    def __enter__(self) -> _Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for opened in self._opened:
            opened.close()


def _seal(engine: Engine, job: Job, source: Source) -> Job:
    counts, digest = manifest_of(engine, job.id)
    with engine.begin() as conn:
        sealed = conn.execute(migration_jobs.update().where(
            J.id == job.id, J.state == "planning").values(
            state="planned", manifest=json.dumps(counts), manifest_sha256=digest,
            updated_at=time.time())).rowcount
        if sealed:
            Store.audit(conn, "migration", "migration_planned", detail={
                "job": job.id, "source": source.label, "target": job.target,
                "owner": job.owner, "manifest_sha256": digest, "manifest": counts})
    return get_job(engine, job.id)


def _files_of(source: Source, record_id: str) -> str:
    """The manifest's files of one record; a record that cannot be read is listed with
    the error, so it is rejected later with that reason instead of vanishing."""
    try:
        record = source.fetch(record_id)
    except (ValueError, KeyError, OSError, errors.LgspError) as exc:
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False)
    return json.dumps([[f.name, f.sha256, len(f.data)] for f in record.files],
                      ensure_ascii=False)


def manifest_of(engine: Engine, job: str) -> tuple[dict[str, Any], str]:
    """Counts per register and year, and the SHA-256 over every manifest line in order."""
    counts: dict[str, dict[str, int]] = {}
    sha = hashlib.sha256()
    files = 0
    for row in records(engine, job):
        per = counts.setdefault(row.register, {})
        per[str(row.year)] = per.get(str(row.year), 0) + 1
        sha.update(f"{row.record_id}\t{row.register}\t{row.year}\t{row.files}\n".encode())
        listed = json.loads(row.files)
        files += len(listed) if isinstance(listed, list) else 0
    total = sum(sum(v.values()) for v in counts.values())
    return {"records": total, "files": files, "registers": counts}, sha.hexdigest()


def records(engine: Engine, job: str, *, state: str | None = None,
            batch: int = 1000) -> Iterator[Any]:
    """The job's records in manifest order, read in batches (memory stays flat)."""
    last = -1
    while True:
        query = (sa.select(migration_records).where(R.job == job, R.seq > last)
                 .order_by(R.seq).limit(batch))
        if state is not None:
            query = query.where(R.state == state)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


@dataclass(frozen=True)
class Mark:
    """A record's new state, as :func:`mark_many` writes it."""

    record_id: str
    state: str
    reason: str | None = None
    document: str | None = None
    packets: int | None = None


def mark(engine: Engine, job: str, record_id: str, state: str, *, reason: str | None = None,
         document: str | None = None, packets: int | None = None) -> None:
    mark_many(engine, job, [Mark(record_id, state, reason, document, packets)])


def mark_many(engine: Engine, job: str, marks: list[Mark]) -> None:
    """Several records' states in one transaction (one commit, not one per record)."""
    now = time.time()
    query = migration_records.update().where(
        R.job == job, R.record_id == sa.bindparam("b_record")).values(
        state=sa.bindparam("b_state"), reason=sa.bindparam("b_reason"),
        document=sa.bindparam("b_document"), packets=sa.bindparam("b_packets"),
        updated_at=now)
    with engine.begin() as conn:
        conn.execute(query, [{"b_record": m.record_id, "b_state": m.state,
                              "b_reason": m.reason, "b_document": m.document,
                              "b_packets": m.packets} for m in marks])


def counts_by_state(engine: Engine, job: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(R.state, sa.func.count()).where(R.job == job)
                            .group_by(R.state)).all()
    return {state: int(n) for state, n in rows}

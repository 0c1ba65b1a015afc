"""Running a job: records converted and submitted in a lane of their own.

The lane gives way to live traffic rather than competing with it. Before each record it
waits for three things: the job not paused (``lgsp migrate pause`` flips the job's state;
the running process sees it within half a second), its rate (a token bucket, records per
second), and room on the target: while the target destination has ``window`` or more
deliveries not yet handed over (pending, queued or being delivered — live ones included),
no new record goes in. The delivery queue therefore never holds more than ``window``
migration packets ahead of a live document for the same system, and a burst of live
traffic makes the migration wait, not the other way round.

Exactly once: each packet's key is (target, source, record, packet number); a record is
marked ``submitted`` only after all its packets are committed, and a record found still
``listed`` after a kill is converted again — to the same bytes — and re-submitted, which
the bus answers with the original receipts. That is also why the records' marks can be
written in batches (one transaction per 64 records or half a second, and whenever the
lane waits): a mark lost to a kill only means that record is submitted again, and
answered with its receipts.

The next record is read from the source by a thread of its own while the current one is
converted and committed, so the source's answer time and the bus's commit time overlap
instead of adding up; at most one record is read ahead.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import sqlalchemy as sa
import structlog

from bus import errors
from bus.app import Bus
from bus.migrate import jobs
from bus.migrate.convert import ConversionError, Converter
from bus.migrate.door import submit_packet
from bus.migrate.source import LegacyRecord, Source
from bus.store.tables import deliveries

__all__ = ["Lane", "SourceUnavailable"]

log = structlog.get_logger("lgsp.migrate")
_BUSY = ("pending", "queued", "delivering")
_MARK_BATCH = 64
_MARK_EVERY_S = 0.5


class SourceUnavailable(Exception):  # noqa: N818 - the source's state, not our error
    """The source could not be reached; the run stops and ``resume`` continues later."""


@dataclass
class Progress:
    total: int
    done: int = 0
    rejected: int = 0
    started: float = field(default_factory=time.monotonic)
    done_at_start: int = 0
    state: str = "running"
    waiting: str = ""

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (self.done - self.done_at_start) / elapsed
        left = self.total - self.done
        eta = _duration(left / rate) if rate > 0 else "—"
        return (f"{self.done}/{self.total} records  {rate:.1f}/s  ETA {eta}  "
                f"rejected {self.rejected}  [{self.state}]"
                + (f"  {self.waiting}" if self.waiting else ""))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Lane:
    def __init__(self, bus: Bus, job: jobs.Job, source: Source, *, rate: float = 0.0,
                 window: int = 8, out: TextIO | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.bus, self.job, self.source = bus, job, source
        self.engine = bus.store.engine
        self.rate, self.window = rate, max(window, 1)
        self.out = out
        self.sleep = sleep
        self._next_at = 0.0
        self._checked_at = 0.0
        self._shown_at = 0.0
        self._marks: list[jobs.Mark] = []
        self._marked_at = time.monotonic()
        options = job.options
        self.converter = Converter(bus.reloader.current().directory, job.owner,
                                   limits=bus.ingress.settings.limits,
                                   place=str(options.get("place") or ""),
                                   aliases=options.get("names") or {})

    def run(self) -> str:
        """Until every record is submitted or rejected (``finished``), or the job is no
        longer running; returns the job's state."""
        if self.job.state == "planned":
            jobs.set_state(self.engine, self.job.id, "running", only_from=("planned",))
        counts = jobs.counts_by_state(self.engine, self.job.id)
        total = sum(counts.values())
        progress = Progress(total, total - counts.get("listed", 0),
                            counts.get("rejected", 0) + counts.get("mismatched", 0))
        progress.done_at_start = progress.done
        with ThreadPoolExecutor(1, thread_name_prefix="migrate-read") as reader:
            try:
                for row, record in self._read_ahead(reader):
                    state = self._wait_turn(progress)
                    if state not in ("running",):
                        return state
                    outcome = self._one(row, record)
                    progress.done += 1
                    if outcome != "submitted":
                        progress.rejected += 1
                    self._flush()
                    self._show(progress)
            finally:
                self._flush(force=True)
        jobs.set_state(self.engine, self.job.id, "finished", only_from=("running",))
        progress.state = "finished"
        self._show(progress, force=True)
        return "finished"

    def _read_ahead(self, reader: ThreadPoolExecutor
                    ) -> Iterator[tuple[Any, Future[LegacyRecord] | None]]:
        """Each listed row with its record being read; the next one is asked for before
        this one is handed over. Rows the plan could not read are not read again."""
        ahead: tuple[Any, Future[LegacyRecord] | None] | None = None
        for row in jobs.records(self.engine, self.job.id, state="listed"):
            readable = not isinstance(json.loads(row.files), dict)
            current = (row, reader.submit(self.source.fetch, row.record_id)
                       if readable else None)
            if ahead is not None:
                yield ahead
            ahead = current
        if ahead is not None:
            yield ahead

    def _mark(self, record_id: str, state: str, **values: Any) -> None:
        self._marks.append(jobs.Mark(record_id, state, **values))

    def _flush(self, *, force: bool = False) -> None:
        if not self._marks:
            return
        if (force or len(self._marks) >= _MARK_BATCH
                or time.monotonic() - self._marked_at >= _MARK_EVERY_S):
            jobs.mark_many(self.engine, self.job.id, self._marks)
            self._marks = []
            self._marked_at = time.monotonic()

    # ---- the lane ----------------------------------------------------------------------

    def _wait_turn(self, progress: Progress) -> str:
        while True:
            now = time.monotonic()
            if now - self._checked_at >= 0.5:
                self._checked_at = now
                jobs.heartbeat(self.engine, self.job.id)
                progress.state = jobs.get_job(self.engine, self.job.id).state
            if progress.state == "paused":
                self._flush(force=True)
                self._show(progress)
                self.sleep(0.2)
                continue
            if progress.state != "running":
                return progress.state
            if self.rate > 0 and now < self._next_at:
                self.sleep(min(self._next_at - now, 0.5))
                continue
            busy = self._busy()
            if busy >= self.window:
                progress.waiting = (f"waiting: {busy} deliveries to {self.job.target} not yet "
                                    "handed over (is `lgsp serve` or `lgsp worker` running?)")
                self._flush(force=True)
                self._show(progress)
                self.sleep(0.02)
                continue
            progress.waiting = ""
            if self.rate > 0:
                self._next_at = max(self._next_at, now) + 1.0 / self.rate
            return "running"

    def _busy(self) -> int:
        d = deliveries.c
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
                d.destination == self.job.target, d.state.in_(_BUSY))).scalar() or 0)

    def _show(self, progress: Progress, *, force: bool = False) -> None:
        if self.out is None:
            return
        now = time.monotonic()
        tty = self.out.isatty()
        if not force and now - self._shown_at < (0.5 if tty else 5.0):
            return
        self._shown_at = now
        self.out.write(("\r" + progress.line() + "   ") if tty else progress.line() + "\n")
        if force and tty:
            self.out.write("\n")
        self.out.flush()

    # ---- one record --------------------------------------------------------------------

    def _one(self, row: Any, reading: Future[LegacyRecord] | None) -> str:
        job, record_id = self.job, row.record_id
        listed = json.loads(row.files)
        if isinstance(listed, dict) or reading is None:
            return self._reject(record_id, f"the source could not read it: {listed['error']}")
        try:
            record = reading.result()
        except SourceUnavailable:
            raise
        except (ValueError, KeyError, OSError, errors.LgspError) as exc:
            return self._reject(record_id, f"the source could not read it: {exc}")
        now_files = [[f.name, f.sha256, len(f.data)] for f in record.files]
        if now_files != listed:
            self._mark(record_id, "mismatched",
                       reason="its files changed since the manifest was taken")
            return "mismatched"
        try:
            converted = self.converter.convert(record)
        except ConversionError as exc:
            return self._reject(record_id, exc.reason)
        label = job.source.get("label", "")
        document = None
        for number, packet in enumerate(converted.packets):
            key = f"{job.target}|{label}|{record_id}|{number}"
            try:
                accepted = submit_packet(self.bus, packet, job=job.id, target=job.target,
                                         owner=job.owner, key=key,
                                         read=converted.edoc_read if number == 0 else None)
            except (errors.Unavailable, errors.StorageFull):
                raise
            except errors.LgspError as exc:
                if number == 0:
                    return self._reject(record_id, f"the bus refused it: {exc.code}: "
                                                   f"{exc.message}")
                self._mark(record_id, "failed", document=document,
                           reason=f"status {number} refused: {exc.code}: {exc.message}")
                return "failed"
            if number == 0:
                document = accepted.document
        self._mark(record_id, "submitted", document=document, packets=len(converted.packets))
        return "submitted"

    def _reject(self, record_id: str, reason: str) -> str:
        self._mark(record_id, "rejected", reason=reason)
        log.info("migrate.rejected", job=self.job.id, record=record_id, reason=reason)
        return "rejected"


def default_out() -> TextIO:
    return sys.stderr

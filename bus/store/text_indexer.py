"""Keeps SQLite's subject text index (bus.store.text_index) up with what is accepted, off
the accept path (issue 16).

Indexed inside each accept by a trigger, a document cost 0.15-0.25 ms more CPU, most of
it FTS5 writing a segment per one-document transaction; in batches it costs about 17 us.
So accepts only add documents, and :class:`Indexer`, a thread of ``lgsp serve`` and
``lgsp worker`` on SQLite, indexes those after the kept mark (the documents' rowid:
SQLite's single writer hands rowids out in commit order) once a second, a few thousand
per transaction. Until it has, a search folds them itself (:func:`text_index.newest`).
"""

from __future__ import annotations

import threading
from typing import Final

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from bus.store.fold import fold
from bus.store.text_index import MARK

log = structlog.get_logger("lgsp.text_index")

BATCH: Final = 2_000
"""Documents per transaction: about 35-70 ms of the writer's lock at a time."""


def index_pending(engine: Engine, batch: int = BATCH) -> int:
    """Indexes up to ``batch`` documents after the mark, in one transaction; how many
    documents it passed (0 when none waits, or when the database has no text index)."""
    if engine.dialect.name != "sqlite":
        return 0
    with engine.begin() as conn:  # BEGIN IMMEDIATE: the mark is read under the write lock
        if not sa.inspect(conn).has_table(MARK):
            return 0
        mark, newest = conn.exec_driver_sql("SELECT mark, newest FROM document_subjects_mark").one()
        rows = conn.exec_driver_sql(
            "SELECT rowid, id, received_at, subject FROM documents WHERE rowid > ?"
            " ORDER BY rowid LIMIT ?", (mark, batch)).all()
        if not rows:
            return 0
        entries = []
        # In arrival order within the batch, so that most rows are ``in_order``: newer
        # than every row indexed before them, which lets a search's walk stop early.
        for row in sorted((r for r in rows if r.subject is not None),
                          key=lambda r: (r.received_at, r.id)):
            entries.append({"document": row.id, "received_at": row.received_at,
                            "in_order": newest is None or row.received_at >= newest,
                            "folded": fold(row.subject)})
            newest = row.received_at if newest is None else max(newest, row.received_at)
        if entries:
            top = conn.exec_driver_sql("SELECT coalesce(max(n), 0) FROM document_subjects"
                                       ).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO document_subjects (document, received_at, in_order, folded)"
                " VALUES (:document, :received_at, :in_order, :folded)"), entries)
            # One statement for the batch: FTS5 fed row by row (a trigger) cost 6x more.
            conn.exec_driver_sql("INSERT INTO document_subjects_fts (rowid, folded)"
                                 " SELECT n, folded FROM document_subjects WHERE n > ?", (top,))
        conn.exec_driver_sql("UPDATE document_subjects_mark SET mark = ?, newest = ?",
                             (rows[-1].rowid, newest))
        return len(rows)


class Indexer(threading.Thread):
    """The loop: every ``interval_s``, batches until none is full (at most ``rounds``, so
    a backlog after an upgrade or a stop is caught up over the next seconds while
    accepts go on); a failing round logs one line and is tried again."""

    def __init__(self, engine: Engine, interval_s: float = 1.0, rounds: int = 10) -> None:
        super().__init__(name="lgsp-text-index", daemon=True)
        self.engine = engine
        self.interval_s = interval_s
        self.rounds = rounds
        self.stopping = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.tick()

    def tick(self) -> int:
        done = 0
        try:
            for _ in range(self.rounds):
                passed = index_pending(self.engine)
                done += passed
                if passed < BATCH or self.stopping.is_set():
                    break
        except Exception as exc:
            if not self._failing:
                log.warning("text_index.failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self._failing = True
        else:
            self._failing = False
        return done

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
        return not self.is_alive()


def loops(engine: Engine) -> list[Indexer]:
    """What ``lgsp serve`` and ``lgsp worker`` run: an indexer on SQLite only
    (PostgreSQL has no text index)."""
    return [Indexer(engine)] if engine.dialect.name == "sqlite" else []

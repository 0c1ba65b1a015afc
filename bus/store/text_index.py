"""The subject text index: which documents' subjects contain some words, without reading
every subject (issue 16; revision 0013).

The console's word search is "contains", case-insensitive for Vietnamese too
(:func:`contains`). No B-tree serves that, so without this index a search for words few
documents contain read and folded every subject a connected system may see in the
windows of :mod:`bus.store.window` (127 ms SQLite, 265 ms PostgreSQL p99 at a million
documents). On SQLite it is FTS5 with the ``trigram`` tokenizer (``case_sensitive 1``:
what it indexes is folded already) over ``document_subjects``, one row per document with
a subject holding ``lgsp_fold(subject)`` (:mod:`bus.store.fold`), the fold the query
uses. Its own integer key, not the documents' rowid, which a VACUUM may renumber.

Accepting a document does not index it: FTS5 writes a segment per transaction, 0.15-0.25
ms of CPU per one-document accept. :mod:`bus.store.text_indexer` indexes the documents
after a kept mark (the documents' rowid, which follows arrival) in batches, once a second,
in ``lgsp serve`` and ``lgsp worker``; a search folds those few documents in Python and
merges them with the index's, so its pages stay exact. Deletes (a purge) and the rare
update of a subject or an arrival go through triggers.

A trigram index answers words of three characters or more; shorter ones are still
searched by ``contains`` on the rows found, and a search with none goes through the
windows as before. :func:`newest` walks the index newest first (``document_subjects.n``
follows arrival) and tests each chunk's documents for the search's other filters and
visibility, stopping once no document it has not reached can be newer than its page, or
after :data:`WALK` candidates.

PostgreSQL has no such index, measured at a million documents: a pg_trgm GIN index on
``lower(subject COLLATE "und-x-icu")`` finds "Quỳnh Lưu 2021"'s 11,000 documents in a
bitmap, but fetching them from the heap took 150 ms, slower than the windows, and with
the index there the planner chose it inside the windows for common words (a system's
"subject words" went from 36 to 755 ms p50). What would serve it is an index that
returns the documents newest first, as the walk here does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from bus.store.fold import fold, register
from bus.store.transport_tables import documents, metadata

MIN_CHARS: Final = 3
COMMON: Final = 0.03
"""Words in more than this share of the newest subjects (the first chunk's density) are
common: a connected system's page is found sooner through the windows, which read what
it may see, than by testing the visibility of every candidate (at a million documents a
system hosting three agencies may see about 5%; "Quỳnh Lưu 2021" is in 1.1% of subjects,
the bench's single words in 4-27%)."""
WALK: Final = 6_000
"""On SQLite, the most candidates a page walks in the text index before the search goes
through the windows instead (a system that may see few of the documents with such words:
about 15 us a candidate at a million documents)."""

TAIL: Final = 10_000
"""The most documents not indexed yet (accepted since the indexer's last batch) that a
search folds in Python; more (an indexer that has not run: no ``serve`` or ``worker``
process, or one just upgraded), and the search goes through the windows."""

_TABLE: Final = "document_subjects"
_FTS: Final = "document_subjects_fts"
MARK: Final = "document_subjects_mark"

# n follows the order documents arrive in; ``in_order`` says that a document's received_at
# was the newest of all when it was indexed, so every row of a smaller n is no newer
# (a walk down n can tell when no older-indexed row can still be newer: see newest()).
_SQLITE_BUILD: Final = (
    "CREATE TABLE document_subjects (n INTEGER PRIMARY KEY,"
    " document VARCHAR(32) NOT NULL UNIQUE, received_at FLOAT NOT NULL,"
    " in_order BOOLEAN NOT NULL, folded TEXT NOT NULL)",
    "INSERT INTO document_subjects (document, received_at, in_order, folded)"
    " SELECT id, received_at, 1, lgsp_fold(subject) FROM documents"
    " WHERE subject IS NOT NULL ORDER BY received_at, id",
    "CREATE VIRTUAL TABLE document_subjects_fts USING fts5(folded,"
    " content='document_subjects', content_rowid='n', tokenize='trigram case_sensitive 1')",
    "INSERT INTO document_subjects_fts (document_subjects_fts) VALUES ('rebuild')",
    # Documents of a larger rowid than ``mark`` are not indexed yet (bus.store.text_indexer);
    # ``newest`` is the latest received_at indexed, for the next rows' ``in_order``.
    "CREATE TABLE document_subjects_mark (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " mark INTEGER NOT NULL, newest FLOAT)",
    "INSERT INTO document_subjects_mark (one, mark, newest) SELECT 1,"
    " coalesce(max(rowid), 0), max(received_at) FROM documents",
    # No trigger on insert into document_subjects: FTS5 inserted row by row from one cost
    # about 60 us a subject even within one transaction, against 10 us for one INSERT ...
    # SELECT over a batch (bus.store.text_indexer), which is how rows reach the FTS table.
    "CREATE TRIGGER document_subjects_delete AFTER DELETE ON document_subjects BEGIN"
    " INSERT INTO document_subjects_fts (document_subjects_fts, rowid, folded)"
    " VALUES ('delete', old.n, old.folded); END",
    "CREATE TRIGGER documents_subject_delete AFTER DELETE ON documents"
    " WHEN old.subject IS NOT NULL BEGIN"
    " DELETE FROM document_subjects WHERE document = old.id; END",
    # Rare (nothing in the bus changes a subject or an arrival): kept in step here, for
    # the rows indexed already; the indexer reads the others' values when it reaches them.
    "CREATE TRIGGER documents_subject_update AFTER UPDATE OF id, subject, received_at"
    " ON documents WHEN EXISTS (SELECT 1 FROM document_subjects WHERE document = old.id)"
    " BEGIN DELETE FROM document_subjects WHERE document = old.id;"
    " INSERT INTO document_subjects (document, received_at, in_order, folded)"
    " SELECT new.id, new.received_at,"
    " new.received_at >= (SELECT max(received_at) FROM documents), lgsp_fold(new.subject)"
    " WHERE new.subject IS NOT NULL;"
    " INSERT INTO document_subjects_fts (rowid, folded)"
    " SELECT n, folded FROM document_subjects WHERE document = new.id;"
    " UPDATE document_subjects_mark SET newest = max(coalesce(newest, new.received_at),"
    " new.received_at); END",
    # SQLite gives a new row max(rowid) + 1: once the newest document is deleted, the next
    # one could take a rowid the mark has passed, so the mark comes back to the newest left.
    "CREATE TRIGGER documents_subject_mark AFTER DELETE ON documents"
    " WHEN old.rowid > coalesce((SELECT max(rowid) FROM documents), 0) BEGIN"
    " UPDATE document_subjects_mark SET mark = min(mark,"
    " coalesce((SELECT max(rowid) FROM documents), 0)); END",
)
_SQLITE_DROP: Final = (
    "DROP TRIGGER IF EXISTS documents_subject_update",
    "DROP TRIGGER IF EXISTS documents_subject_delete",
    "DROP TRIGGER IF EXISTS documents_subject_insert",
    "DROP TRIGGER IF EXISTS documents_subject_mark",
    "DROP TABLE IF EXISTS document_subjects_mark",
    f"DROP TABLE IF EXISTS {_FTS}",
    f"DROP TABLE IF EXISTS {_TABLE}",
)
def contains(column: sa.ColumnElement[str | None], text: str,
             sqlite: bool) -> sa.ColumnElement[bool]:
    """Case-insensitive for Vietnamese too: SQLite's LIKE folds ASCII only ("CHUYỂN" would
    not find "chuyển"), so there both sides are folded by Python's casefold; PostgreSQL
    lowers through ICU's root collation, whatever locale the database was created with
    (``--locale=C`` folds ASCII only, as SQLite does)."""
    if sqlite:
        return sa.func.lgsp_fold(column).like(_like(fold(text) or ""), escape="\\")
    return sa.func.lower(sa.collate(column, "und-x-icu")).like(_like(text.lower()),
                                                                 escape="\\")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def indexed_words(words: Sequence[str], sqlite: bool) -> list[str]:
    """The words the index can look up: three characters or more once folded as the
    query folds them."""
    folded = [(fold(w) or "") if sqlite else w.lower() for w in words]
    return [w for w in folded if len(w) >= MIN_CHARS]


def create(conn: Connection) -> None:
    """Builds the index over the documents already there (revision 0013, create_all)."""
    if conn.dialect.name == "sqlite":
        if sa.inspect(conn).has_table(_TABLE):
            return
        register(conn.connection.driver_connection)  # alembic's own engine, too
        for statement in _SQLITE_BUILD:
            conn.exec_driver_sql(statement)
        return


def drop(conn: Connection) -> None:
    """Removes the index (downgrade, drop_all)."""
    if conn.dialect.name == "sqlite":
        for statement in _SQLITE_DROP:
            conn.exec_driver_sql(statement)


def hidden(name: str | None, kind: str, _parents: Any = None) -> bool:
    """Whether a schema object is this index's, which the declared tables do not list
    (Alembic's compare skips it: ``include_name``)."""
    return kind == "table" and bool(name) and str(name).startswith(_TABLE)


def include_name(name: str | None, kind: str, parents: Any) -> bool:
    return not hidden(name, kind, parents)


def newest(conn: Connection, columns: Sequence[Any], words: Sequence[str],
           where: Sequence[sa.ColumnElement[bool]], *, limit: int, everyone: bool = False,
           since: float | None = None, before: float | None = None) -> list[Row[Any]] | None:
    """Up to ``limit`` rows of ``columns``, newest first, of the documents whose subject
    holds every indexed word and that match ``where`` (visibility and every word
    included); None when no word is long enough, when a page needs more than
    :data:`WALK` candidates (a system that rarely sees such documents: the windows then
    read what it may see instead), or for a viewer who does not see ``everyone``'s
    documents when the words are :data:`COMMON`."""
    if conn.dialect.name != "sqlite":
        return None
    looked = indexed_words(words, True)
    if not looked:
        return None
    d = documents.c
    # The documents the indexer has not reached (after the mark, in this same snapshot) are
    # read and folded here, all of them; the walk below then adds the index's.
    mark = conn.exec_driver_sql("SELECT mark FROM document_subjects_mark").scalar_one()
    tail = conn.exec_driver_sql("SELECT id, subject FROM documents WHERE rowid > ? LIMIT ?",
                                (mark, TAIL + 1)).all()
    if len(tail) > TAIL:
        return None
    wanted = [fold(w) or "" for w in words]
    fresh = [t.id for t in tail
             if t.subject is not None and all(w in (fold(t.subject) or "") for w in wanted)]
    found: dict[str, Row[Any]] = {}
    if fresh:
        bounds = ([] if before is None else [d.received_at <= before]) + (
            [] if since is None else [d.received_at >= since])
        for row in conn.execute(sa.select(*columns).where(d.id.in_(fresh), *where, *bounds)):
            found[row.id] = row
    fts = sa.table(_FTS, sa.column("rowid"))
    keys = sa.table(_TABLE, sa.column("n"), sa.column("document"), sa.column("received_at"),
                    sa.column("in_order"))
    phrase = " AND ".join('"' + w.replace('"', '""') + '"' for w in looked)
    bound: float | None = None
    last: int | None = None
    walked, chunk = 0, 64
    while True:
        # Down the index newest first, a chunk at a time: an operator's page is in the
        # first, a system tests each chunk's documents for what it may see.
        below = [] if last is None else [fts.c.rowid < last]
        candidates = conn.execute(
            sa.select(keys.c.n, keys.c.document, keys.c.received_at, keys.c.in_order)
            .select_from(fts.join(keys, keys.c.n == fts.c.rowid))
            .where(sa.text(f"{_FTS} MATCH :phrase").bindparams(phrase=phrase), *below)
            .order_by(fts.c.rowid.desc()).limit(chunk)).all()
        walked += len(candidates)
        ids = [c.document for c in candidates
               if (before is None or c.received_at <= before)
               and (since is None or c.received_at >= since)]
        if ids:
            for row in conn.execute(sa.select(*columns).where(d.id.in_(ids), *where)):
                found[row.id] = row
        for c in candidates:
            if c.in_order:
                bound = c.received_at
        # Every row not walked yet is no newer than ``bound``.
        if len(candidates) < chunk or (bound is not None and (
                sum(1 for r in found.values() if r.received_at > bound) >= limit
                or (since is not None and bound < since))):
            return sorted(found.values(), key=lambda r: (r.received_at, r.id),
                          reverse=True)[:limit]
        if walked >= WALK or (not everyone and last is None and len(candidates) == chunk
                              and chunk > COMMON * (candidates[0].n - candidates[-1].n + 1)):
            return None
        last, chunk = candidates[-1].n, min(chunk * 2, 512)


@sa.event.listens_for(metadata, "after_create")
def _created(_target: Any, connection: Connection, **_kw: Any) -> None:
    create(connection)


@sa.event.listens_for(metadata, "before_drop")
def _dropping(_target: Any, connection: Connection, **_kw: Any) -> None:
    drop(connection)

"""The subject text index: which documents' subjects contain some words, without reading
every subject (issue 16; revision 0012).

The console's word search is "contains", case-insensitive for Vietnamese too
(:func:`contains`). No B-tree serves that, so without this index a search for words few
documents contain read and folded every subject a connected system may see in the
windows of :mod:`bus.store.window` (127 ms SQLite, 265 ms PostgreSQL p99 at a million
documents). The index is of trigrams, on the same fold the query uses:

- SQLite: FTS5 with the ``trigram`` tokenizer (``case_sensitive 1``: what it indexes is
  folded already) over ``document_subjects``, one row per document with a subject
  holding ``lgsp_fold(subject)`` (:mod:`bus.store.fold`). Triggers on ``documents`` keep
  it in step, whoever writes a document (accept, migration import, purge). Its own
  integer key, not the documents' rowid, which a VACUUM may renumber.
- PostgreSQL: a pg_trgm GIN index on ``lower(subject COLLATE "und-x-icu")``, the
  expression :func:`contains` searches (``lower`` is immutable; the collation is named,
  so the index does not depend on the database's locale).

A trigram index answers words of three characters or more; shorter ones are still
searched by ``contains`` on the rows found. :func:`matching` gives the candidates when
they are few (:data:`FEW_TEXT`); the caller then tests its other filters on those only,
newest first (:func:`newest_of`), and when they are many it searches as before, since a
common word fills a page from the newest documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from bus import errors
from bus.store.fold import fold, register
from bus.store.transport_tables import documents, metadata

MIN_CHARS: Final = 3
FEW_TEXT: Final = 2_000
"""A search is driven from the text index when it finds fewer documents than this (in the
searched span); more, and the words are common enough for the newest windows to fill a
page."""
_CHUNK: Final = 400

PG_INDEX: Final = "ix_documents_subject_trgm"
_TABLE: Final = "document_subjects"
_FTS: Final = "document_subjects_fts"

_SQLITE_BUILD: Final = (
    "CREATE TABLE document_subjects (n INTEGER PRIMARY KEY,"
    " document VARCHAR(32) NOT NULL UNIQUE, folded TEXT NOT NULL)",
    "INSERT INTO document_subjects (document, folded)"
    " SELECT id, lgsp_fold(subject) FROM documents WHERE subject IS NOT NULL",
    "CREATE VIRTUAL TABLE document_subjects_fts USING fts5(folded,"
    " content='document_subjects', content_rowid='n', tokenize='trigram case_sensitive 1')",
    "INSERT INTO document_subjects_fts (document_subjects_fts) VALUES ('rebuild')",
    "CREATE TRIGGER document_subjects_insert AFTER INSERT ON document_subjects BEGIN"
    " INSERT INTO document_subjects_fts (rowid, folded) VALUES (new.n, new.folded); END",
    "CREATE TRIGGER document_subjects_delete AFTER DELETE ON document_subjects BEGIN"
    " INSERT INTO document_subjects_fts (document_subjects_fts, rowid, folded)"
    " VALUES ('delete', old.n, old.folded); END",
    "CREATE TRIGGER documents_subject_insert AFTER INSERT ON documents"
    " WHEN new.subject IS NOT NULL BEGIN INSERT INTO document_subjects (document, folded)"
    " VALUES (new.id, lgsp_fold(new.subject)); END",
    "CREATE TRIGGER documents_subject_delete AFTER DELETE ON documents"
    " WHEN old.subject IS NOT NULL BEGIN"
    " DELETE FROM document_subjects WHERE document = old.id; END",
    "CREATE TRIGGER documents_subject_update AFTER UPDATE OF id, subject ON documents BEGIN"
    " DELETE FROM document_subjects WHERE document = old.id;"
    " INSERT INTO document_subjects (document, folded)"
    " SELECT new.id, lgsp_fold(new.subject) WHERE new.subject IS NOT NULL; END",
)
_SQLITE_DROP: Final = (
    "DROP TRIGGER IF EXISTS documents_subject_update",
    "DROP TRIGGER IF EXISTS documents_subject_delete",
    "DROP TRIGGER IF EXISTS documents_subject_insert",
    f"DROP TABLE IF EXISTS {_FTS}",
    f"DROP TABLE IF EXISTS {_TABLE}",
)
_PG_EXPRESSION: Final = 'lower(subject COLLATE "und-x-icu")'
_PG_EXTENSION_HINT: Final = (
    "the subject text index needs PostgreSQL's pg_trgm extension (package "
    "postgresql-contrib), which this role may not create: run `CREATE EXTENSION pg_trgm;` "
    "in this database as a superuser (ops/postgresql/setup.sql does) and upgrade again")


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
    """Builds the index over the documents already there (revision 0012, create_all)."""
    if conn.dialect.name == "sqlite":
        if sa.inspect(conn).has_table(_TABLE):
            return
        register(conn.connection.driver_connection)  # alembic's own engine, too
        for statement in _SQLITE_BUILD:
            conn.exec_driver_sql(statement)
        return
    if conn.dialect.name != "postgresql":
        return
    with conn.begin_nested():
        try:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except sa.exc.DBAPIError as exc:
            raise errors.SchemaOutdated(_PG_EXTENSION_HINT) from exc
    conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON documents USING gin "
                         f"(({_PG_EXPRESSION}) gin_trgm_ops)")


def drop(conn: Connection) -> None:
    """Removes the index (downgrade, drop_all); pg_trgm stays: it is the database's."""
    if conn.dialect.name == "sqlite":
        for statement in _SQLITE_DROP:
            conn.exec_driver_sql(statement)
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {PG_INDEX}")


def hidden(name: str | None, kind: str, _parents: Any = None) -> bool:
    """Whether a schema object is this index's, which the declared tables do not list
    (Alembic's compare skips it: ``include_name``)."""
    if kind == "table":
        return bool(name) and str(name).startswith(_TABLE)
    return kind == "index" and name == PG_INDEX


def include_name(name: str | None, kind: str, parents: Any) -> bool:
    return not hidden(name, kind, parents)


def matching(conn: Connection, words: Sequence[str], *, cap: int | None = None,
             since: float | None = None,
             before: float | None = None) -> list[tuple[str, float]] | None:
    """The documents (id, received_at) whose subject contains every indexed word, when
    fewer than ``cap`` in the span; None when there are more, or no word is long enough.
    A superset on PostgreSQL's side only in the sense that short words are not tested:
    the caller tests every word on what it reads."""
    cap = FEW_TEXT if cap is None else cap
    sqlite = conn.dialect.name == "sqlite"
    looked = indexed_words(words, sqlite)
    if not looked:
        return None
    d = documents.c
    span = ([] if since is None else [d.received_at >= since]) + \
        ([] if before is None else [d.received_at <= before])
    if sqlite:
        fts = sa.table(_FTS, sa.column("rowid"))
        keys = sa.table(_TABLE, sa.column("n"), sa.column("document"))
        phrase = " AND ".join('"' + w.replace('"', '""') + '"' for w in looked)
        query = (sa.select(d.id, d.received_at)
                 .select_from(fts.join(keys, keys.c.n == fts.c.rowid)
                              .join(documents, d.id == keys.c.document))
                 .where(sa.text(f"{_FTS} MATCH :phrase").bindparams(phrase=phrase), *span))
    else:
        query = sa.select(d.id, d.received_at).where(
            *[contains(d.subject, w, False) for w in looked], *span)
    rows = conn.execute(query.limit(cap)).all()
    if len(rows) >= cap:
        return None
    return [(r[0], r[1]) for r in rows]


def newest_of(conn: Connection, columns: Sequence[Any], found: Sequence[tuple[str, float]],
              where: Sequence[sa.ColumnElement[bool]], *, limit: int) -> list[Row[Any]]:
    """Up to ``limit`` rows of ``columns``, newest first, of the ``found`` documents that
    match ``where`` (visibility included): tested a few hundred at a time, newest first,
    so a page of an operator's search reads a page, and a system that may see none of
    them costs what :data:`FEW_TEXT` bounds."""
    d = documents.c
    ordered = sorted(found, key=lambda f: (f[1], f[0]), reverse=True)
    rows: list[Row[Any]] = []
    for start in range(0, len(ordered), _CHUNK):
        ids = [f[0] for f in ordered[start:start + _CHUNK]]
        rows += conn.execute(sa.select(*columns).where(d.id.in_(ids), *where)
                             .order_by(d.received_at.desc(), d.id.desc())
                             .limit(limit - len(rows))).all()
        if len(rows) >= limit:
            break
    return rows


@sa.event.listens_for(metadata, "after_create")
def _created(_target: Any, connection: Connection, **_kw: Any) -> None:
    create(connection)


@sa.event.listens_for(metadata, "before_drop")
def _dropping(_target: Any, connection: Connection, **_kw: Any) -> None:
    drop(connection)

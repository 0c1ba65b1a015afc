"""The Store's connection to its database and payload files: audit events, payload reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bus import errors
from bus.store.blobs import PayloadBody, PayloadFiles
from bus.store.rows import (
    _event,
)
from bus.store.sql import (
    _select_payload,
    _select_payload_file,
)
from bus.store.statements import Statements
from bus.store.tables import (
    documents,
    events,
    payload_files,
)


class StoreCore:
    def __init__(self, engine: Engine, files: PayloadFiles | None = None) -> None:
        """``files``: where payloads at or above its threshold are kept; without it every
        payload is a row (tests, tools that open a database on its own)."""
        self.engine = engine
        self.statements = Statements(engine)
        self.files = files
        self._next_file_sweep = 0.0

    def create_schema(self) -> None:
        """Brings the database to this release's schema, or refuses (see
        :func:`bus.store.schema.ensure`): an empty one is created, the embedded one is
        upgraded, a PostgreSQL one behind this release needs ``lgsp db upgrade``."""
        from bus.store.schema import ensure

        ensure(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @staticmethod
    def audit(conn: Connection, actor: str, action: str, *, document: str | None = None,
              delivery: str | None = None, digest: str | None = None,
              detail: dict[str, Any] | None = None, at: float | None = None) -> None:
        conn.execute(events.insert(), [_event(actor, action, at or time.time(),
                                              document=document, delivery=delivery,
                                              digest=digest, detail=detail)])

    def original(self, document: str) -> bytes | None:
        """The sender's own bytes of ``document`` when the bus forwarded corrected ones."""
        with self.engine.connect() as conn:
            digest = conn.execute(sa.select(documents.c.original_sha256).where(
                documents.c.id == document)).scalar()
        return self.payload(digest) if digest else None

    def payload(self, digest: str) -> bytes:
        """Every byte at once: for small payloads and callers that need them in memory;
        streams read :meth:`body` instead."""
        return self.body(digest).read()

    def body(self, digest: str) -> PayloadBody:
        """The payload as a stream: its row's bytes, or its file opened when read."""
        with self.statements.begin(write=False) as tx:
            row = tx.one("payload", _select_payload, {"sha256": digest})
            found = None if row is not None else tx.one(
                "payload_file", _select_payload_file, {"sha256": digest})
        if row is not None:
            return PayloadBody.of(bytes(row[0]))
        if found is None:
            raise errors.NotFound(f"payload {digest} is missing from the store")
        files = self.files
        if files is None:
            raise errors.NotFound(
                f"payload {digest} is a file and this process has no payload directory")
        location = str(found[1])
        return PayloadBody(int(found[0]), opener=lambda: files.open(location))

    def sweep_payload_files(self, *, older_than_s: float = 3600.0) -> int:
        """Removes payload files no row names (see :meth:`PayloadFiles.sweep`)."""
        if self.files is None:
            return 0

        def named(digests: list[str]) -> set[str]:
            with self.engine.connect() as conn:
                return set(conn.execute(sa.select(payload_files.c.sha256).where(
                    payload_files.c.sha256.in_(digests))).scalars())

        return self.files.sweep(named, older_than_s=older_than_s)

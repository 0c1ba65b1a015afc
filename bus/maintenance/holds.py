"""Legal holds: documents the retention purge must keep, whatever their age (a dispute, an
inspection). A hold on an edoc also keeps the statuses and documents that answer it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bus import errors
from bus.store import Store
from bus.store.tables import documents, legal_holds


@dataclass(frozen=True)
class Hold:
    document: str
    document_id: str | None
    sender: str | None
    reason: str
    held_by: str
    held_at: float


def resolve(engine: Engine, ref: str) -> list[str]:
    """The bus's ids for ``ref``: a bus id, or an edXML DocumentId (maybe several senders)."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(documents.c.id).where(
            sa.or_(documents.c.id == ref, documents.c.document_id == ref))).scalars().all()
    if not found:
        raise errors.NotFound(f"no document with id or DocumentId {ref!r}")
    return list(found)


def add(engine: Engine, ref: str, *, reason: str, actor: str) -> list[str]:
    if not reason.strip():
        raise errors.InvalidRequest("a hold needs a reason (--reason)")
    ids = resolve(engine, ref)
    now = time.time()
    held = []
    with engine.begin() as conn:
        present = set(conn.execute(sa.select(legal_holds.c.document).where(
            legal_holds.c.document.in_(ids))).scalars())
        for doc in ids:
            if doc in present:
                continue
            conn.execute(legal_holds.insert().values(document=doc, reason=reason,
                                                     held_by=actor, held_at=now))
            Store.audit(conn, actor, "held", document=doc, detail={"reason": reason}, at=now)
            held.append(doc)
    return held


def remove(engine: Engine, ref: str, *, reason: str, actor: str) -> list[str]:
    if not reason.strip():
        raise errors.InvalidRequest("lifting a hold needs a reason (--reason)")
    with engine.begin() as conn:
        ids = list(conn.execute(sa.select(legal_holds.c.document).where(
            legal_holds.c.document.in_(
                sa.select(documents.c.id).where(sa.or_(documents.c.id == ref,
                                                       documents.c.document_id == ref)))
            | (legal_holds.c.document == ref))).scalars())
        if not ids:
            raise errors.NotFound(f"no hold on {ref!r}")
        conn.execute(legal_holds.delete().where(legal_holds.c.document.in_(ids)))
        for doc in ids:
            Store.audit(conn, actor, "hold_lifted", document=doc, detail={"reason": reason})
    return ids


def listing(engine: Engine) -> list[Hold]:
    h, d = legal_holds.c, documents.c
    query = (sa.select(h.document, d.document_id, d.sender, h.reason, h.held_by, h.held_at)
             .select_from(legal_holds.outerjoin(documents, d.id == h.document))
             .order_by(h.held_at))
    with engine.connect() as conn:
        return [Hold(*row) for row in conn.execute(query)]

"""How a retention purge is recorded, so ``lgsp audit verify`` tells it from tampering.

The purger calls :func:`record_purge` in the transaction that deletes, *before* it
deletes the events: the ``purged`` event lists the documents, the payload digests and
the event ids removed, with each removed event's digest as it was at that moment. The
purge event is sealed like any other, so it cannot be edited afterwards; verify accepts
a sealed event as missing only if a purge lists it with the digest its seal holds, and
shows every purge (who, when, how much) in its output, since whoever can write the
database can also write a purge record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from bus.evidence.canonical import leaf, to_ranges
from bus.evidence.chain import event_rows
from bus.store import Store
from bus.store.tables import events

ACTION = "purged"


def record_purge(conn: Connection, actor: str, *, reason: str,
                 documents: Sequence[str] = (), payloads: Sequence[str] = (),
                 event_ids: Sequence[int] = (), **extra: Any) -> dict[str, Any]:
    """Records a purge in ``conn``'s transaction; call it before deleting the events.

    ``event_ids`` are the events about to be deleted (none when events are kept and only
    documents and payloads go). Keep a batch to a few thousand events: the digests of
    the removed events are in the record (64 characters each). ``extra`` keys (the
    purger's own account, e.g. which rule) are added to the record. Returns the detail.
    """
    ids = sorted({int(i) for i in event_ids})
    rows = {int(r["id"]): r for chunk in _chunks(ids, 900)
            for r in event_rows(conn, events.c.id.in_(chunk))}
    detail: dict[str, Any] = {
        "reason": reason, "documents": sorted(set(documents)),
        "payloads": sorted(set(payloads)), "events": to_ranges(rows),
        "leaves": "".join(leaf(rows[i]) for i in sorted(rows)),
    }
    detail.update({k: v for k, v in extra.items() if k not in detail})
    Store.audit(conn, actor, ACTION, detail=detail)
    return detail


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]

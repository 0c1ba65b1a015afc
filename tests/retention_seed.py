"""Old, finished documents in bulk, for the retention tests and the purge benchmark.

Inserted directly (one transaction) rather than through the doors: the purge cares about
rows past their keeping period, and 2,000 of them through REST would take minutes.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import sqlalchemy as sa

from bus.store.tables import deliveries, documents, payloads

DAY = 86400.0


def seed_finished(engine: sa.Engine, count: int, *, age_days: float = 4000.0,
                  kind: str = "edoc", state: str = "delivered",
                  payload_bytes: int = 2048) -> list[str]:
    """``count`` documents received ``age_days`` ago with one delivery in ``state``."""
    at = time.time() - age_days * DAY
    docs, rows, blobs = [], [], []
    for n in range(count):
        doc = uuid.uuid4().hex
        data = (f"<edXML n='{n}' id='{doc}'>".encode() + b"x" * payload_bytes + b"</edXML>")
        digest = hashlib.sha256(data).hexdigest()
        docs.append({"id": doc, "kind": kind, "sender": "000.00.12.H37",
                     "document_id": f"{n}/SEED", "dedup_key": f"seed:{doc}",
                     "sha256": digest, "payload_sha256": digest, "original_sha256": None,
                     "size": len(data), "system": "eoffice", "subject": f"seed {n}",
                     "code": None, "business": "new" if kind == "edoc" else None,
                     "status_code": None, "refers_to": None, "received_at": at + n,
                     "receipt": json.dumps({"id": doc})})
        blobs.append({"sha256": digest, "data": data})
        rows.append({"id": uuid.uuid4().hex, "document": doc, "recipient": "000.00.00.H37",
                     "effective_recipient": "000.00.00.H37", "destination": "vnpt_ioffice",
                     "rule": "seed", "is_copy": False, "state": state, "attempts": 1,
                     "next_attempt_at": at, "lease_until": None, "last_error": None,
                     "receipt_reference": None, "created_at": at, "updated_at": at,
                     "delivered_at": at if state == "delivered" else None})
    with engine.begin() as conn:
        conn.execute(payloads.insert(), blobs)
        conn.execute(documents.insert(), docs)
        conn.execute(deliveries.insert(), rows)
    return [d["id"] for d in docs]

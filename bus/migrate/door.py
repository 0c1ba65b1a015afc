"""How a migrated packet enters the bus: the ingress's own steps, with the job's target.

Everything the ingress does to a live packet is done here too — the size cap and hardened
read with the XSD and the second pass, the bus's TraceHeader spliced into the forwarded
bytes, the status-to-document check, one transaction committing the document with its
delivery rows, the exactly-once key (``inbound_sources``) and the audit events — except
routing. Routing sends a document to its addressees' systems; an archive's documents were
delivered to their addressees years ago, and re-sending them would be the worst thing a
migration could do. So each packet gets exactly one delivery: to the archive's owner, on
the job's target destination (rule ``migration:<job>``), and the worker, retries,
parking and acknowledgements then treat it like any other delivery.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

from bus.app import Bus
from bus.edxml import Edoc, StatusPacket, TraceHeader
from bus.edxml.dialects import Door, read_from
from bus.edxml.forward import forwarded_bytes
from bus.edxml.reader import ReadResult
from bus.edxml.tolerance import policy_notices
from bus.edxml.writer import format_timestamp
from bus.ingress import dedup_key, summary_of
from bus.store import Accepted, NewDelivery, outage_refused

__all__ = ["MIGRATION_SYSTEM", "SOURCE", "submit_packet"]

MIGRATION_SYSTEM = "migration"
"""``documents.system`` of migrated packets: no credential can name it, so no door can."""
SOURCE = "migration"
"""``inbound_sources.source`` of migrated packets; the id is target|source|record|n."""


def submit_packet(bus: Bus, data: bytes, *, job: str, target: str, owner: str,
                  key: str, read: ReadResult | None = None) -> Accepted:
    """Commits one converted packet for ``owner`` on ``target``; the same ``key`` with the
    same bytes again returns the original receipt (``existing``), never a second copy.
    ``read`` is ``data`` already read by the bus's reader with this bus's limits (the
    converter's own check), which the door then does not repeat."""
    ingress = bus.ingress
    cfg = bus.reloader.current()
    door = (Door(read, data, False) if read is not None
            else read_from(data, limits=ingress.settings.limits))
    result = door.result
    packet = result.packet
    digest = hashlib.sha256(data).hexdigest()
    forwarded = forwarded_bytes(
        door.standard, packet,
        TraceHeader(ingress.settings.bus_organ_id,
                    format_timestamp(datetime.now(ingress.settings.zone))),
        result.notices)
    refers_to, status = None, None
    if isinstance(packet, StatusPacket):
        refers_to = ingress._find_original(packet, cfg.directory)
        status = (packet.sender, packet.status_code, format_timestamp(packet.timestamp))
    effective = cfg.directory.resolve(owner, date.today())[0]
    with outage_refused():
        accepted = bus.store.accept(
            kind=packet.kind, sender=packet.sender,
            document_id=(packet.document_id or "") if isinstance(packet, Edoc)
            else packet.response_for.document_id or "",
            dedup_key=dedup_key(packet, digest), content_sha256=digest, payload=forwarded,
            system=MIGRATION_SYSTEM,
            targets=[NewDelivery(recipient=owner, effective_recipient=effective,
                                 destination=target, rule=f"migration:{job}")],
            summary=summary_of(packet), refers_to=refers_to, source=(SOURCE, key),
            status=status, notices=policy_notices(result.notices))
    bus.metrics.received.labels(packet.kind, "migration").inc()
    # Not handed to this process's dispatcher: the feeder finds the rows, so they queue
    # behind live documents (bus.delivery.embedded), wherever the migration runs.
    return accepted

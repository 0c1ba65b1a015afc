"""The offline parts of a bundle: the sender's bytes rebuilt from the forwarded ones (an
edoc, a status whose TraceHeaderList the bus created), and the proof path from a
document's seal to a head thousands of seals later, through the skip links."""

from __future__ import annotations

import hashlib
from typing import Any

from bus.edxml import EdocBuilder, TraceHeader, packet_bytes, status_for
from bus.edxml.dialects import read_from
from bus.edxml.forward import forwarded_bytes
from bus.evidence.bundle import BundleReport, _check_chain, proof_path, sender_bytes
from bus.evidence.canonical import GENESIS, SKIP, events_hash, leaf, seal_hash

EVENT = {"id": 7, "at": 1751328000.25, "document": "d" * 32, "delivery": None,
         "actor": "eoffice", "action": "accepted", "digest": "c" * 64,
         "detail": '{"sender": "000.00.12.H37", "subject": "Lạng Sơn"}'}


def forwarded(sent: bytes) -> bytes:
    door = read_from(sent)
    return forwarded_bytes(door.standard, door.result.packet,
                           TraceHeader("00.37.W00", "2026-01-01 08:00:00"), door.result.notices)


def test_the_senders_bytes_are_rebuilt_only_when_they_hash_right() -> None:
    edoc = (EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("Công văn")
            .signer("Nguyễn Văn A", "Giám đốc").code("1", "CV").build())
    for sent in (packet_bytes(edoc), packet_bytes(status_for(edoc, "03"))):
        out = forwarded(sent)
        assert out != sent
        assert sender_bytes(out, hashlib.sha256(sent).hexdigest()) == sent
        assert sender_bytes(out, "0" * 64) is None


def chain(n: int, covering: int, row: dict[str, Any]) -> list[dict[str, Any]]:
    seals: list[dict[str, Any]] = []
    for number in range(1, n + 1):
        leaves = [leaf(row)] if number == covering else []
        first = 1 if number == 1 else seals[-1]["last_id"] + 1
        last = first + (0 if number == covering else -1)
        if number == covering:
            first = last = int(row["id"])
        header: dict[str, Any] = {
            "number": number, "first_id": first, "last_id": last, "absent": [], "late": [],
            "count": len(leaves), "events_hash": events_hash(leaves),
            "prev_hash": seals[-1]["hash"] if seals else GENESIS,
            "skip_hash": seals[number - SKIP - 1]["hash"]
            if number % SKIP == 0 and number > SKIP else "",
            "sealed_at": 1751328000.0 + number, "leaves": leaves}
        header["hash"] = seal_hash(header)
        seals.append(header)
    return seals


def test_the_proof_path_crosses_thousands_of_seals_by_skip_links() -> None:
    seals = chain(3 * SKIP + 17, 5, EVENT)
    numbers = proof_path([5], len(seals))
    assert len(numbers) < 2 * SKIP + 40
    path = [{k: v for k, v in seals[n - 1].items() if k != "leaves"} for n in numbers]
    proof = {"seals": [seals[4]], "path": path, "head": path[-1]}
    report = BundleReport()
    _check_chain([EVENT], proof, [], report)
    assert report.ok and report.events == 1, report.problems

    gapped = {**proof, "path": [h for h in path if h["number"] != 2 * SKIP]}
    report = BundleReport()
    _check_chain([EVENT], gapped, [], report)
    assert report.problems == [f"chain: seal {3 * SKIP} does not link to seal {SKIP}"]

    changed = {**EVENT, "actor": "someone"}
    report = BundleReport()
    _check_chain([changed], proof, [], report)
    assert report.problems == ["event 7 (accepted): does not match seal 5 (the event was "
                               "changed)"]

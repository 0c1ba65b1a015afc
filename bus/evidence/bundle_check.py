"""The bundle's format and its offline check (:func:`check` needs no database).

The writer (:mod:`bus.evidence.bundle`) shares the format and entry names with the
checker, which must not import the writer's database machinery.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from bus.evidence.canonical import SKIP, covered_ids, events_hash, leaf, seal_hash

FORMAT: Final = "lgsp-evidence/1"
ORIGINAL: Final = "sender/original.edxml"
FORWARDED: Final = "forwarded/forwarded.edxml"
PAYLOAD_FILES: Final = (ORIGINAL, FORWARDED)


@dataclass
class BundleReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0
    seals: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _member_digest(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while piece := member.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def check(data: bytes | Path | IO[bytes]) -> BundleReport:
    """Checks a bundle with nothing but its bytes (or its file: the payloads in it are
    hashed as they are read, so a bundle of a 500 MB scan is checked in little memory)."""
    report = BundleReport()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
        names = archive.namelist()
        digests = {name: _member_digest(archive, name) for name in names}
        files = {name: archive.read(name) for name in names if name not in PAYLOAD_FILES}
        manifest = json.loads(files.pop("manifest.json"))
        digests.pop("manifest.json")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        report.problems.append(f"not an evidence bundle: {exc}")
        return report
    if manifest.get("format") != FORMAT:
        report.problems.append(f"unknown bundle format {manifest.get('format')!r}")
        return report
    report.notes.extend(manifest.get("notes", []))
    listed: dict[str, str] = manifest.get("files", {})
    for name in sorted(set(listed) | set(digests)):
        if name not in digests:
            report.problems.append(f"{name}: listed in the manifest but missing")
        elif name not in listed:
            report.problems.append(f"{name}: not listed in the manifest")
        elif digests[name] != listed[name]:
            report.problems.append(f"{name}: was changed (its SHA-256 is not the manifest's)")
    if report.problems:
        return report
    try:
        rows = json.loads(files["events.json"])
        chain = json.loads(files["chain.json"])
    except (KeyError, ValueError) as exc:
        report.problems.append(f"events.json or chain.json unreadable: {exc}")
        return report
    _check_bytes(digests, manifest, rows, report)
    _check_chain(rows, chain, manifest.get("unsealed_events", []), report)
    return report


def _check_bytes(digests: dict[str, str], manifest: dict[str, Any],
                 rows: list[dict[str, Any]], report: BundleReport) -> None:
    accepted = next((r for r in rows if r["action"] == "accepted"), None)
    if accepted is None:
        report.problems.append("events.json has no accepted event")
        return
    said = json.loads(accepted["detail"] or "{}")
    wanted = {ORIGINAL: accepted["digest"], FORWARDED: said.get("payload_sha256")}
    for name, digest in wanted.items():
        if name in digests and digest and digests[name] != digest:
            report.problems.append(f"{name}: its SHA-256 is not the one the sealed accepted "
                                   f"event {accepted['id']} records")
    if manifest.get("sender_sha256") != accepted["digest"]:
        report.problems.append("manifest sender_sha256 differs from the accepted event")


def _check_chain(rows: list[dict[str, Any]], chain: dict[str, Any], unsealed: list[int],
                 report: BundleReport) -> None:
    seals = chain.get("seals", [])
    report.seals = len(seals)
    position: dict[int, tuple[dict[str, Any], int]] = {}
    for seal in seals:
        if seal_hash(seal) != seal["hash"] or events_hash(seal["leaves"]) != \
                seal["events_hash"]:
            report.problems.append(f"seal {seal['number']}: its hash does not match")
        for index, i in enumerate(covered_ids(seal)):
            position[i] = (seal, index)
    for row in rows:
        i = int(row["id"])
        if i not in position:
            if i not in unsealed:
                report.problems.append(f"event {i}: no seal in the bundle covers it")
            continue
        seal, index = position[i]
        report.events += 1
        if index >= len(seal["leaves"]) or seal["leaves"][index] != leaf(row):
            report.problems.append(f"event {i} ({row['action']}): does not match seal "
                                   f"{seal['number']} (the event was changed)")
    path = {int(h["number"]): h for h in chain.get("path", [])}
    for seal in seals:
        if path.get(seal["number"], {}).get("hash") != seal["hash"]:
            report.problems.append(f"seal {seal['number']} is not on the proof path")
    numbers = sorted(path)
    for a, b in itertools.pairwise(numbers):
        older, newer = path[a], path[b]
        if b == a + 1:
            linked = newer["prev_hash"] == older["hash"]
        else:
            linked = b == a + SKIP and newer.get("skip_hash") == older["hash"]
        if not linked or seal_hash(newer) != newer["hash"]:
            report.problems.append(f"chain: seal {b} does not link to seal {a}")
    top = chain.get("head")
    if top is not None and numbers and (numbers[-1] != top["number"]
                                        or path[numbers[-1]]["hash"] != top["hash"]):
        report.problems.append("chain: the path does not end at the head")

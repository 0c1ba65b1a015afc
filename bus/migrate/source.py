"""What a legacy archive is to the migration: records listed page by page, fetched one by one.

The contract is as small as the adapter contract so that a province can connect any old
system it must leave: :class:`Source` lists record references (id, register, year) a
page at a time and fetches one record with its processing history and its files. Two
built-ins: the eOffice archive service (``adapters.eoffice.archive``) and a folder export
(:class:`FolderSource`: a register file, JSON lines or CSV, beside the attachment files).
A record carries what an incoming or outgoing register (sổ văn bản đến / đi) holds.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from bus import errors

__all__ = ["FolderSource", "HistoryEntry", "LegacyFile", "LegacyRecord", "RecordRef",
           "Source", "open_source", "record_from_json", "record_to_json"]

DIRECTIONS = ("incoming", "outgoing")


@dataclass(frozen=True)
class RecordRef:
    record_id: str
    register: str
    year: int


@dataclass(frozen=True)
class HistoryEntry:
    """One step of the record's processing as the old system logged it."""

    action: str
    at: datetime
    by: str = ""
    unit: str = ""
    note: str = ""


@dataclass(frozen=True)
class LegacyFile:
    name: str
    content_type: str
    data: bytes = field(repr=False)

    @functools.cached_property
    def sha256(self) -> str:
        """Hashed once per file: the lane compares it with the manifest and the
        converter records it, on files of up to 50 MB."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class LegacyRecord:
    record_id: str
    register: str
    direction: str
    number: str
    notation: str
    issued: date
    issuer: str
    recipients: tuple[str, ...]
    subject: str
    doc_type: str
    signer: str
    received: date | None = None
    signer_position: str = ""
    urgency: str = "thường"
    confidentiality: str = "thường"
    due: date | None = None
    handling_unit: str = ""
    history: tuple[HistoryEntry, ...] = ()
    files: tuple[LegacyFile, ...] = ()

    @property
    def year(self) -> int:
        return (self.received or self.issued).year if self.direction == "incoming" \
            else self.issued.year

    @property
    def ref(self) -> RecordRef:
        return RecordRef(self.record_id, self.register, self.year)


class Source(Protocol):
    """A legacy archive. ``label`` names it stably (it is part of each record's
    exactly-once key); ``spec`` is what :func:`open_source` needs to open it again in
    another process (``lgsp migrate resume``)."""

    label: str

    def spec(self) -> dict[str, Any]: ...

    def pages(self, page_size: int) -> Iterator[list[RecordRef]]: ...

    def fetch(self, record_id: str) -> LegacyRecord: ...

    def close(self) -> None: ...


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"date {text!r} is neither yyyy-mm-dd nor dd/mm/yyyy")


def _moment(value: Any) -> datetime:
    text = str(value).strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S",
                "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"time {text!r} is not yyyy-mm-dd HH:MM[:SS]")


def record_from_json(raw: dict[str, Any], files: tuple[LegacyFile, ...]) -> LegacyRecord:
    """A record from the register's JSON form (a JSON line, or a CSV row made into one)."""
    issued = _date(raw.get("issued"))
    if issued is None:
        raise ValueError("the issue date (issued) is empty")
    direction = str(raw.get("direction") or "incoming")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is neither incoming nor outgoing")
    recipients = raw.get("recipients") or []
    if isinstance(recipients, str):
        recipients = [r for r in recipients.split(";") if r.strip()]
    return LegacyRecord(
        record_id=str(raw["id"]), register=str(raw.get("register") or ""),
        direction=direction, number=str(raw.get("number") or ""),
        notation=str(raw.get("notation") or ""), issued=issued,
        received=_date(raw.get("received")), issuer=str(raw.get("issuer") or ""),
        recipients=tuple(str(r).strip() for r in recipients),
        subject=str(raw.get("subject") or ""), doc_type=str(raw.get("type") or ""),
        signer=str(raw.get("signer") or ""),
        signer_position=str(raw.get("signer_position") or ""),
        urgency=str(raw.get("urgency") or "thường"),
        confidentiality=str(raw.get("confidentiality") or "thường"),
        due=_date(raw.get("due")), handling_unit=str(raw.get("handling_unit") or ""),
        history=tuple(HistoryEntry(str(h.get("action") or ""), _moment(h.get("at")),
                                   str(h.get("by") or ""), str(h.get("unit") or ""),
                                   str(h.get("note") or ""))
                      for h in raw.get("history") or []),
        files=files,
    )


def record_to_json(record: LegacyRecord, paths: list[str]) -> dict[str, Any]:
    """The register line of ``record`` whose files are at ``paths`` (relative)."""
    return {
        "id": record.record_id, "register": record.register, "direction": record.direction,
        "number": record.number, "notation": record.notation,
        "issued": record.issued.isoformat(),
        "received": record.received.isoformat() if record.received else None,
        "issuer": record.issuer, "recipients": list(record.recipients),
        "subject": record.subject, "type": record.doc_type, "signer": record.signer,
        "signer_position": record.signer_position, "urgency": record.urgency,
        "confidentiality": record.confidentiality,
        "due": record.due.isoformat() if record.due else None,
        "handling_unit": record.handling_unit,
        "history": [{"action": h.action, "at": h.at.isoformat(timespec="seconds"),
                     "by": h.by, "unit": h.unit, "note": h.note} for h in record.history],
        "files": [{"path": p, "name": f.name, "content_type": f.content_type}
                  for p, f in zip(paths, record.files, strict=True)],
    }


class FolderSource:
    """A folder export: ``register.jsonl`` (or ``register.csv``) and the files it names.

    Only an index (record id → offset in the register) is kept in memory, so a register
    of 100,000 records costs a few MB; each fetch reads one line and its files.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).resolve()
        self.label = f"folder:{self.folder.name}"
        jsonl, csv_file = self.folder / "register.jsonl", self.folder / "register.csv"
        self._spool: IO[bytes] | None = None
        if jsonl.is_file():
            self._lines: IO[bytes] = jsonl.open("rb")
        elif csv_file.is_file():
            self._lines = self._spool = self._from_csv(csv_file)
        else:
            raise errors.NotFound(f"{self.folder} holds neither register.jsonl nor "
                                  "register.csv; see adapters/eoffice/README.md (folder export)")
        self._index: dict[str, tuple[int, RecordRef]] = {}
        self._order: list[str] = []
        offset = 0
        self._lines.seek(0)
        for number, line in enumerate(self._lines, 1):
            if line.strip():
                try:
                    raw = json.loads(line)
                    rec = record_from_json(raw, ())
                except (ValueError, KeyError, TypeError) as exc:
                    raise errors.InvalidRequest(
                        f"register line {number}: {exc}; fix the export and plan again"
                    ) from None
                if rec.record_id in self._index:
                    raise errors.InvalidRequest(
                        f"register line {number}: record id {rec.record_id} appears twice")
                self._index[rec.record_id] = (offset, rec.ref)
                self._order.append(rec.record_id)
            offset += len(line)

    @staticmethod
    def _from_csv(path: Path) -> IO[bytes]:
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - owned until close()
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                raw: dict[str, Any] = dict(row)
                raw["history"] = json.loads(row.get("history") or "[]")
                raw["files"] = [{"path": p.strip()} for p in (row.get("files") or "").split(";")
                                if p.strip()]
                spool.write(json.dumps(raw, ensure_ascii=False).encode() + b"\n")
        return spool

    def spec(self) -> dict[str, Any]:
        return {"kind": "folder", "path": str(self.folder)}

    def pages(self, page_size: int) -> Iterator[list[RecordRef]]:
        for start in range(0, len(self._order), page_size):
            yield [self._index[r][1] for r in self._order[start:start + page_size]]

    def fetch(self, record_id: str) -> LegacyRecord:
        found = self._index.get(record_id)
        if found is None:
            raise errors.NotFound(f"record {record_id} is not in the register")
        self._lines.seek(found[0])
        raw = json.loads(self._lines.readline())
        files = []
        for item in raw.get("files") or []:
            rel = str(item["path"])
            path = (self.folder / rel).resolve()
            if not path.is_relative_to(self.folder):
                raise ValueError(f"file path {rel!r} leaves the export folder")
            files.append(LegacyFile(str(item.get("name") or path.name),
                                    str(item.get("content_type") or "application/pdf"),
                                    path.read_bytes()))
        return record_from_json(raw, tuple(files))

    def close(self) -> None:
        self._lines.close()


def open_source(spec: dict[str, Any]) -> Source:
    """The source a job was planned with, opened again from its stored ``spec``."""
    kind = spec.get("kind")
    if kind == "folder":
        return FolderSource(spec["path"])
    if kind == "eoffice":
        from adapters.eoffice.archive import EofficeArchiveSource

        return EofficeArchiveSource(spec["url"], username=spec.get("username"),
                                    password_env=spec.get("password_env"))
    if kind == "generated":
        from bus.migrate.generate import GeneratedArchive

        return GeneratedArchive.from_spec(spec)
    raise errors.InvalidRequest(f"unknown source kind {kind!r}; expected folder or eoffice")

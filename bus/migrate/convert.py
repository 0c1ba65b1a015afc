"""A legacy record → one edXML edoc and the status packets of its processing history.

Everything a record becomes is built and checked (through the bus's own reader, by the
builder) before anything is sent, so a record is either converted whole or rejected with
a reason a clerk can act on: never half-sent. The output is deterministic — the same
record gives the same bytes — which is what lets a resumed job re-submit a record it may
already have submitted and be answered with the original receipt.

The mapping tables below are the ones ``adapters/eoffice/README.md`` documents.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Final

from bus import errors
from bus.directory import Directory
from bus.edxml import Edoc, EdocBuilder, packet_bytes, read_packet, status_for
from bus.edxml.model import Organization, StaffInfo
from bus.edxml.reader import DEFAULT_LIMITS, Limits, ReadResult
from bus.migrate.source import LegacyRecord

__all__ = ["CONFIDENTIAL", "DOCUMENT_TYPES", "HISTORY_STATUS", "ISSUE_ACTIONS", "URGENCY",
           "ConversionError", "Converted", "Converter", "normal"]


class ConversionError(Exception):
    """The record cannot become packets; ``reason`` goes to the rejects list."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normal(text: str) -> str:
    """Casefolded, NFC, single-spaced: how names from old registers are compared."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


# Document types of Nghị định 30/2020/NĐ-CP, Điều 7, numbered in its order.
DOCUMENT_TYPES: Final[dict[str, int]] = {normal(name): number for number, name in enumerate((
    "Nghị quyết", "Quyết định", "Chỉ thị", "Quy chế", "Quy định", "Thông cáo", "Thông báo",
    "Hướng dẫn", "Chương trình", "Kế hoạch", "Phương án", "Đề án", "Dự án", "Báo cáo",
    "Biên bản", "Tờ trình", "Hợp đồng", "Công văn", "Công điện", "Bản ghi nhớ",
    "Bản thỏa thuận", "Giấy ủy quyền", "Giấy mời", "Giấy giới thiệu", "Giấy nghỉ phép",
    "Phiếu gửi", "Phiếu chuyển", "Phiếu báo", "Thư công"), start=1)}

# Độ khẩn → OtherInfo/Priority.
URGENCY: Final[dict[str, int]] = {
    "thường": 0, "normal": 0, "": 0, "khẩn": 1, "urgent": 1, "thượng khẩn": 2,
    "very urgent": 2, "hỏa tốc": 3, "hoả tốc": 3, "flash": 3,
    "hỏa tốc hẹn giờ": 4, "hoả tốc hẹn giờ": 4,
}

# Độ mật: only unclassified records may travel on the bus; state secrets have their own
# channel (Luật Bảo vệ bí mật nhà nước 2018), so a classified record is rejected.
CONFIDENTIAL: Final = frozenset({"mật", "tối mật", "tuyệt mật", "secret", "top secret",
                                 "confidential"})

# Processing history action (as old registers write it) → edXML status code.
HISTORY_STATUS: Final[dict[str, str]] = {normal(k): v for k, v in {
    "arrived": "01", "đến": "01", "đã đến": "01", "nhận": "01",
    "refused": "02", "từ chối": "02", "trả lại": "02",
    "received": "03", "registered": "03", "tiếp nhận": "03", "vào sổ": "03",
    "assigned": "04", "phân công": "04", "giao xử lý": "04", "chuyển xử lý": "04",
    "processing": "05", "đang xử lý": "05",
    "completed": "06", "hoàn thành": "06", "hoàn thành xử lý": "06",
}.items()}

# Steps of an outgoing document's own life: the edoc itself (signer, date) records them.
ISSUE_ACTIONS: Final = frozenset(normal(a) for a in (
    "drafted", "dự thảo", "signed", "ký", "ký ban hành", "issued", "ban hành", "phát hành",
    "sent", "đã gửi"))

STATUS_NAMES: Final = {"01": "Đã đến", "02": "Từ chối tiếp nhận", "03": "Tiếp nhận",
                       "04": "Phân công xử lý", "05": "Đang xử lý", "06": "Hoàn thành xử lý"}

_IDENTIFIER = re.compile(r"[0-9A-Za-z]+(\.[0-9A-Za-z]+)+")


@dataclass(frozen=True)
class Converted:
    """The packets of one record, in the order they are submitted (edoc first)."""

    edoc: bytes
    statuses: tuple[bytes, ...]
    document_id: str
    files: tuple[tuple[str, str], ...]
    """(name, SHA-256) of each file as put in the edoc."""
    edoc_read: ReadResult | None = field(default=None, compare=False, repr=False)
    """The edoc as the bus's reader read it with the bus's limits: the door takes this
    check as its own instead of parsing and validating the same bytes a second time."""

    @property
    def packets(self) -> tuple[bytes, ...]:
        return (self.edoc, *self.statuses)


class Converter:
    """Converts records of one owner's archive, resolving names through ``directory``."""

    def __init__(self, directory: Directory, owner: str, *, place: str = "",
                 aliases: Mapping[str, str] | None = None, today: date | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.directory = directory
        self.limits = limits
        self.today = today or date.today()
        self.owner = directory.resolve(owner, self.today)[0]
        self.place = place
        self._names = {normal(a.name): a.code for a in directory}
        self._names.update({normal(k): v for k, v in (aliases or {}).items()})

    def agency(self, written: str, role: str) -> Organization:
        """The directory's current code for a name or an old code (successors followed)."""
        text = written.strip()
        if not text:
            raise ConversionError(f"the {role} is empty")
        code = text if _IDENTIFIER.fullmatch(text) else self._names.get(normal(text))
        if code is None:
            raise ConversionError(
                f"the {role} '{text}' is not in the agency directory; add its code to "
                "config/directory.yaml or to the job's name list (--names)")
        code = self.directory.resolve(code, self.today)[0]
        agency = self.directory.agencies.get(code)
        return Organization(organ_id=code, organ_name=agency.name if agency else None)

    def convert(self, record: LegacyRecord) -> Converted:
        """The record's packets, or :class:`ConversionError` naming the first problem."""
        try:
            return self._convert(record)
        except errors.LgspError as exc:
            raise ConversionError(f"the converted packet is not valid edXML: {exc.code}: "
                                  f"{exc.message}") from None

    def _convert(self, record: LegacyRecord) -> Converted:
        if normal(record.confidentiality) in CONFIDENTIAL:
            raise ConversionError(f"classified record ({record.confidentiality}); classified "
                                  "documents may not travel on the bus")
        priority = URGENCY.get(normal(record.urgency))
        if priority is None:
            raise ConversionError(f"urgency '{record.urgency}' is not one of "
                                  "thường, khẩn, thượng khẩn, hỏa tốc, hỏa tốc hẹn giờ")
        type_number = DOCUMENT_TYPES.get(normal(record.doc_type))
        if type_number is None:
            raise ConversionError(f"document type '{record.doc_type}' is not one of the 29 "
                                  "types of Nghị định 30/2020")
        if not record.number.strip() or not record.notation.strip():
            raise ConversionError("the number or notation (số, ký hiệu) is empty")
        if not record.subject.strip():
            raise ConversionError("the subject (trích yếu) is empty")
        if not record.signer.strip():
            raise ConversionError("the signer (người ký) is empty")
        if not record.files:
            raise ConversionError("the record has no file")
        issuer = self.agency(record.issuer, "issuing agency")
        recipients = [self.agency(r, "recipient") for r in record.recipients]
        owner = Organization(organ_id=self.owner, organ_name=self._name(self.owner))
        if record.direction == "outgoing":
            if issuer.organ_id != self.owner:
                raise ConversionError(f"an outgoing record issued by {issuer.organ_id}, not by "
                                      f"the archive's owner {self.owner}")
            if not recipients:
                raise ConversionError("an outgoing record with no recipient")
            to = recipients
        else:
            to = [owner, *(r for r in recipients if r.organ_id != self.owner)]
        document_id = f"{self.owner}/{record.register}/{record.record_id}"
        unit = record.handling_unit or "Văn thư"
        builder = (EdocBuilder(issuer).to(*_unique(to))
                   .code(record.number.strip(), record.notation.strip())
                   .promulgated(self.place, record.issued)
                   .document_type(type_number, record.doc_type.strip())
                   .subject(record.subject.strip())
                   .signer(record.signer.strip(), record.signer_position or None)
                   .document_id(document_id).priority(priority)
                   .business("new", "Chuyển đổi từ hệ thống quản lý văn bản cũ",
                             staff=StaffInfo(department=unit, staff=unit)))
        if record.due:
            builder.due(record.due)
        if record.received and record.direction == "incoming":
            builder.trace(self.owner, datetime.combine(record.received, time()))
        for item in record.files:
            builder.attach(item.name, item.data, item.content_type)
        edoc = _stable_ids(builder.build(check=False), document_id)
        if record.recipients:
            edoc.to_places = [r.strip() for r in record.recipients]
        data = packet_bytes(edoc)
        checked = read_packet(data, limits=self.limits)
        statuses = self._statuses(record, edoc, owner, unit)
        return Converted(data, statuses, document_id,
                         tuple((f.name, f.sha256) for f in record.files), checked)

    def _statuses(self, record: LegacyRecord, edoc: Edoc, owner: Organization,
                  unit: str) -> tuple[bytes, ...]:
        merged: dict[tuple[str, datetime], list[str]] = {}
        staff: dict[tuple[str, datetime], StaffInfo] = {}
        for entry in record.history:
            action = normal(entry.action)
            if record.direction == "outgoing":
                if action not in ISSUE_ACTIONS:
                    raise ConversionError(
                        f"history step '{entry.action}' of an outgoing record; only the "
                        "issuing steps (drafted, signed, issued…) are known for those")
                continue
            code = HISTORY_STATUS.get(action)
            if code is None:
                raise ConversionError(f"history step '{entry.action}' has no edXML status "
                                      "(see the mapping in adapters/eoffice/README.md)")
            key = (code, entry.at.replace(microsecond=0))
            merged.setdefault(key, []).append(entry.note.strip())
            staff.setdefault(key, StaffInfo(department=entry.unit or unit,
                                            staff=entry.by or unit))
        packets = []
        for (code, at), notes in sorted(merged.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            text = "; ".join(n for n in notes if n) or STATUS_NAMES[code]
            status = status_for(edoc, code, sender=owner, description=text, at=at,
                                staff=staff[(code, at)])
            packets.append(packet_bytes(status))
        return tuple(packets)

    def _name(self, code: str) -> str | None:
        agency = self.directory.agencies.get(code)
        return agency.name if agency else None


def _unique(orgs: list[Organization]) -> list[Organization]:
    seen: set[str] = set()
    out = []
    for org in orgs:
        if org.organ_id not in seen:
            seen.add(org.organ_id)
            out.append(org)
    return out


def _stable_ids(edoc: Edoc, document_id: str) -> Edoc:
    """Content ids derived from the document, not random: the same record, the same bytes."""
    ids = {ref.content_id: f"cid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{document_id}#{i}')}"
           for i, ref in enumerate(edoc.manifest)}
    return replace(edoc,
                   manifest=[replace(m, content_id=ids[m.content_id]) for m in edoc.manifest],
                   attachments=[replace(a, content_id=ids[a.content_id])
                                for a in edoc.attachments])

"""eOffice's archive service (``eoffice.wsdl``: ListArchiveRegisters, ListArchive,
GetArchiveRecord, GetArchiveFile): the server side the simulator answers with, and
:class:`EofficeArchiveSource`, the ``lgsp migrate`` source that reads it through zeep.

A register is listed by (register, year) a page at a time in a stable order; a record
comes with its history and a list of its files, and each file is read in slices of at
most 4 MB, so a 50 MB scan never makes a 67 MB SOAP answer (the answer guard of
:data:`adapters.eoffice.protocol.ANSWER_LIMITS` stays at 16 MB).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Final

import requests
import zeep
import zeep.exceptions
import zeep.helpers
from lxml import etree
from zeep.wsse.username import UsernameToken

from adapters.eoffice.protocol import NS, screen_answer, wsdl_bytes, zeep_settings
from bus.migrate.lane import SourceUnavailable
from bus.migrate.source import HistoryEntry, LegacyFile, LegacyRecord, RecordRef, Source

__all__ = ["ARCHIVE_OPERATIONS", "ArchiveFault", "ArchiveService", "EofficeArchiveSource"]

ARCHIVE_OPERATIONS: Final = frozenset({"ListArchiveRegisters", "ListArchive",
                                       "GetArchiveRecord", "GetArchiveFile"})
MAX_SLICE: Final = 4 * 1024 * 1024
MAX_PAGE: Final = 1000
_zeep: Any = zeep
_UsernameToken: Any = UsernameToken

class ArchiveFault(Exception):  # noqa: N818 - the fault answered, as SoapFault
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

def _q(name: str) -> str:
    return f"{{{NS}}}{name}"

def _add(parent: etree._Element, name: str, value: object) -> None:
    if value is None or value == "":
        return
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    etree.SubElement(parent, _q(name)).text = text

class ArchiveService:
    """Serves any :class:`~bus.migrate.source.Source` as eOffice's archive does."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._index: dict[tuple[str, int], list[str]] | None = None
        self._cache: tuple[str, LegacyRecord] | None = None

    def _registers(self) -> dict[tuple[str, int], list[str]]:
        if self._index is None:
            index: dict[tuple[str, int], list[str]] = {}
            for page in self.source.pages(1000):
                for ref in page:
                    index.setdefault((ref.register, ref.year), []).append(ref.record_id)
            self._index = index
        return self._index

    def _record(self, record_id: str) -> LegacyRecord:
        if self._cache is not None and self._cache[0] == record_id:
            return self._cache[1]
        try:
            record = self.source.fetch(record_id)
        except (KeyError, LookupError) as exc:
            raise ArchiveFault("UnknownRecord", f"no record {record_id}") from exc
        self._cache = (record_id, record)
        return record

    def answer(self, operation: str, request: etree._Element) -> etree._Element:
        response = etree.Element(_q(f"{operation}Response"))
        if operation == "ListArchiveRegisters":
            for (register, year), ids in sorted(self._registers().items()):
                info = etree.SubElement(response, _q("registerInfo"))
                _add(info, "register", register)
                _add(info, "year", year)
                _add(info, "count", len(ids))
        elif operation == "ListArchive":
            register = request.findtext(_q("register")) or ""
            try:
                year = int(request.findtext(_q("year")) or "")
                page = int(request.findtext(_q("page")) or "")
                size = int(request.findtext(_q("pageSize")) or "")
            except ValueError:
                raise ArchiveFault("InvalidRequest", "year, page and pageSize are integers"
                                   ) from None
            if page < 1 or not 1 <= size <= MAX_PAGE:
                raise ArchiveFault("InvalidRequest", f"page from 1, pageSize 1..{MAX_PAGE}")
            ids = self._registers().get((register, year), [])
            _add(response, "total", len(ids))
            for record_id in ids[(page - 1) * size: page * size]:
                _add(response, "recordId", record_id)
        elif operation == "GetArchiveRecord":
            self._write_record(response, self._record(request.findtext(_q("recordId")) or ""))
        else:
            self._write_slice(response, request)
        return response

    def _write_record(self, response: etree._Element, r: LegacyRecord) -> None:
        node = etree.SubElement(response, _q("record"))
        for name, value in (("recordId", r.record_id), ("register", r.register),
                            ("direction", r.direction), ("number", r.number),
                            ("notation", r.notation), ("issued", r.issued),
                            ("received", r.received), ("issuer", r.issuer)):
            _add(node, name, value)
        for recipient in r.recipients:
            _add(node, "recipient", recipient)
        for name, value in (("subject", r.subject), ("documentType", r.doc_type),
                            ("signer", r.signer), ("signerPosition", r.signer_position),
                            ("urgency", r.urgency), ("confidentiality", r.confidentiality),
                            ("dueDate", r.due), ("handlingUnit", r.handling_unit)):
            _add(node, name, value)
        for step in r.history:
            item = etree.SubElement(node, _q("history"))
            for name, value in (("action", step.action), ("at", step.at), ("by", step.by),
                                ("unit", step.unit), ("note", step.note)):
                _add(item, name, value)
        for index, f in enumerate(r.files):
            item = etree.SubElement(node, _q("file"))
            parts: tuple[tuple[str, object], ...] = (
                ("index", index), ("name", f.name), ("contentType", f.content_type),
                ("size", len(f.data)))
            for part, content in parts:
                _add(item, part, content)

    def _write_slice(self, response: etree._Element, request: etree._Element) -> None:
        record = self._record(request.findtext(_q("recordId")) or "")
        try:
            index = int(request.findtext(_q("index")) or "")
            offset = int(request.findtext(_q("offset")) or "")
            length = int(request.findtext(_q("length")) or "")
        except ValueError:
            raise ArchiveFault("InvalidRequest", "index, offset and length are integers"
                               ) from None
        if not 0 <= index < len(record.files):
            raise ArchiveFault("UnknownRecord", f"record {record.record_id} has no file {index}")
        if offset < 0 or not 1 <= length <= MAX_SLICE:
            raise ArchiveFault("InvalidRequest", f"offset from 0, length 1..{MAX_SLICE}")
        data = record.files[index].data

        _add(response, "size", len(data))
        _add(response, "content", base64.b64encode(data[offset:offset + length]).decode())

class EofficeArchiveSource:
    """The ``eoffice`` source of ``lgsp migrate``: eOffice's archive service via zeep."""

    def __init__(self, url: str, *, username: str | None = None,
                 password_env: str | None = None, timeout_s: float = 60.0,
                 page_size: int = 500) -> None:
        self.url = url
        self.username, self.password_env = username, password_env
        self.label = f"eoffice:{url}"
        self.page_size = page_size
        session = requests.Session()
        session.trust_env = False
        session.hooks["response"].append(screen_answer)
        self._session = session
        transport = _zeep.Transport(session=session, timeout=timeout_s,
                                    operation_timeout=timeout_s)
        password = os.environ.get(password_env or "") if username else None
        wsse = _UsernameToken(username, password) if username else None
        client = _zeep.Client(io.BytesIO(wsdl_bytes(url)), transport=transport,
                              settings=zeep_settings(), wsse=wsse)
        self._service = client.service

    def spec(self) -> dict[str, Any]:
        return {"kind": "eoffice", "url": self.url, "username": self.username,
                "password_env": self.password_env}

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return _zeep.helpers.serialize_object(
                getattr(self._service, operation)(**params), dict)
        except zeep.exceptions.Fault as fault:
            code = _fault_code(fault)
            if code == "UnknownRecord":
                raise KeyError(params.get("recordId", "")) from None
            if code in ("Busy", "DatabaseUnavailable", "InternalError"):
                raise SourceUnavailable(f"eOffice answered {code}: {fault.message}") from None
            raise ValueError(f"eOffice answered {code or 'a fault'}: {fault.message}") from None
        except (requests.RequestException, zeep.exceptions.TransportError,
                zeep.exceptions.XMLSyntaxError) as exc:
            raise SourceUnavailable(f"eOffice archive at {self.url}: {exc}") from None

    def registers(self) -> list[tuple[str, int, int]]:
        infos = self._call("ListArchiveRegisters") or []
        return [(str(i["register"]), int(i["year"]), int(i["count"])) for i in infos]

    def pages(self, page_size: int) -> Iterator[list[RecordRef]]:
        size = min(page_size, MAX_PAGE)
        for register, year, count in self.registers():
            for page in range(1, (count + size - 1) // size + 1):
                answer = self._call("ListArchive", register=register, year=year, page=page,
                                    pageSize=size)
                ids = answer.get("recordId") or []
                yield [RecordRef(str(i), register, year) for i in ids]

    def fetch(self, record_id: str) -> LegacyRecord:
        r = self._call("GetArchiveRecord", recordId=record_id)
        files = []
        for f in r.get("file") or []:
            files.append(LegacyFile(str(f["name"]), str(f["contentType"]),
                                    self._file(record_id, int(f["index"]), int(f["size"]))))
        return LegacyRecord(
            record_id=str(r["recordId"]), register=str(r["register"]),
            direction=str(r["direction"]), number=str(r["number"]),
            notation=str(r["notation"]), issued=r["issued"], received=r.get("received"),
            issuer=str(r["issuer"]), recipients=tuple(str(x) for x in r.get("recipient") or []),
            subject=str(r["subject"]), doc_type=str(r["documentType"]),
            signer=str(r["signer"]), signer_position=str(r.get("signerPosition") or ""),
            urgency=str(r["urgency"]), confidentiality=str(r["confidentiality"]),
            due=r.get("dueDate"), handling_unit=str(r.get("handlingUnit") or ""),
            history=tuple(HistoryEntry(str(h["action"]), _naive(h["at"]), str(h.get("by") or ""),
                                       str(h.get("unit") or ""), str(h.get("note") or ""))
                          for h in r.get("history") or []),
            files=tuple(files))

    def _file(self, record_id: str, index: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            answer = self._call("GetArchiveFile", recordId=record_id, index=index,
                                offset=len(out), length=min(MAX_SLICE, size - len(out)))
            chunk = answer.get("content") or b""
            if not chunk:
                raise ValueError(f"file {index} of record {record_id} ended at {len(out)} "
                                 f"of {size} bytes")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self._session.close()

def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None) if value.tzinfo else value

def _fault_code(fault: zeep.exceptions.Fault) -> str:
    detail = fault.detail
    if detail is None:
        return ""
    for element in detail.iter():
        if isinstance(element.tag, str) and element.tag.endswith("}code"):
            return (element.text or "").strip()
    return ""

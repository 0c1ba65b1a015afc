"""Making packets without writing XML: what a vendor's adapter or test uses.

The builders fill what QCVN 102:2016 requires with the values a clerk's system usually
has, and ``build()`` runs the packet through the same reader the bus uses, so a packet a
builder produced is one the bus accepts — a vendor finds mistakes at build time, not in
the province's parking queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime

from bus.edxml.blob import Blob
from bus.edxml.model import (
    Attachment,
    Business,
    Code,
    DocumentType,
    Edoc,
    ManifestReference,
    Organization,
    OtherInfo,
    PromulgationInfo,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusPacket,
    TraceHeader,
)
from bus.edxml.reader import read_packet
from bus.edxml.writer import format_date, format_timestamp, packet_bytes

_BUSINESS_TYPES = {"new": 0, "revoke": 1, "update": 2, "replace": 3}


def _org(value: str | Organization) -> Organization:
    return value if isinstance(value, Organization) else Organization(organ_id=value)


class EdocBuilder:
    """Fluent construction of an :class:`Edoc`; each method returns the builder."""

    def __init__(self, sender: str | Organization) -> None:
        self._from = _org(sender)
        self._to: list[Organization] = []
        self._code = Code("1", "VP")
        self._place = ""
        self._date = date.today()
        self._type = DocumentType(type=1, type_name="Công văn")
        self._subject = ""
        self._signer = SignerInfo(full_name="")
        self._document_id: str | None = None
        self._content: str | None = None
        self._due: date | None = None
        self._other: OtherInfo | None = None
        self._response_for: list[ResponseFor] = []
        self._business = Business(bussiness_doc_type=0, bussiness_doc_reason="Văn bản mới")
        self._attachments: list[Attachment] = []
        self._manifest: list[ManifestReference] = []
        self._traces: list[TraceHeader] = []

    def to(self, *recipients: str | Organization) -> EdocBuilder:
        self._to.extend(_org(r) for r in recipients)
        return self

    def code(self, number: str, notation: str) -> EdocBuilder:
        self._code = Code(number, notation)
        return self

    def promulgated(self, place: str, on: date) -> EdocBuilder:
        self._place, self._date = place, on
        return self

    def document_type(self, type_: int, name: str, detail: int | None = None) -> EdocBuilder:
        self._type = DocumentType(type=type_, type_name=name, type_detail=detail)
        return self

    def subject(self, subject: str, content: str | None = None) -> EdocBuilder:
        self._subject, self._content = subject, content
        return self

    def signer(self, full_name: str, position: str | None = None,
               competence: str | None = None) -> EdocBuilder:
        self._signer = SignerInfo(full_name=full_name, position=position, competence=competence)
        return self

    def document_id(self, document_id: str) -> EdocBuilder:
        self._document_id = document_id
        return self

    def due(self, on: date) -> EdocBuilder:
        self._due = on
        return self

    def priority(self, level: int) -> EdocBuilder:
        self._other = replace(self._other or OtherInfo(), priority=level)
        return self

    def responding_to(self, organ_id: str, code: str, document_id: str,
                      promulgated: date | None = None) -> EdocBuilder:
        self._response_for.append(ResponseFor(
            organ_id=organ_id, code=code, document_id=document_id,
            promulgation_date=format_date(promulgated) if promulgated else None,
        ))
        return self

    def business(self, kind: str, reason: str, *, staff: StaffInfo | None = None,
                 replaces: Sequence[ReplacementInfo] | None = None,
                 document_id: str | None = None) -> EdocBuilder:
        """``kind`` is new, revoke, update or replace (BussinessDocType 0–3); ``replaces``
        is the ReplacementInfoList, ``document_id`` the Bussiness block's DocumentId."""
        self._business = Business(
            bussiness_doc_type=_BUSINESS_TYPES[kind], bussiness_doc_reason=reason,
            staff_info=staff, replacements=list(replaces) if replaces else None,
            document_id=document_id,
        )
        return self

    def trace(self, organ_id: str, at: datetime) -> EdocBuilder:
        self._traces.append(TraceHeader(organ_id, format_timestamp(at)))
        return self

    def attach(self, name: str, content: bytes | Blob, content_type: str = "application/pdf",
               description: str | None = None) -> EdocBuilder:
        blob = content if isinstance(content, Blob) else Blob.from_bytes(content)
        cid = f"cid:{uuid.uuid4()}"
        self._manifest.append(ManifestReference(cid, name, content_type, description))
        self._attachments.append(Attachment(cid, name, blob, content_type, description))
        return self

    def build(self, *, check: bool = True) -> Edoc:
        """The packet; with ``check`` it is first read back through the bus's reader."""
        edoc = Edoc(
            from_=self._from,
            to=list(self._to),
            code=self._code,
            promulgation_info=PromulgationInfo(self._place, self._date),
            document_type=self._type,
            subject=self._subject,
            signer_info=self._signer,
            document_id=self._document_id or str(uuid.uuid4()),
            content=self._content,
            due_date=self._due,
            other_info=self._other,
            response_for=list(self._response_for),
            trace_headers=list(self._traces),
            business=self._business,
            manifest=list(self._manifest),
            attachments=list(self._attachments),
        )
        if check:
            read_packet(packet_bytes(edoc))
        return edoc


def status_for(
    edoc: Edoc,
    code: str,
    *,
    sender: str | Organization | None = None,
    description: str | None = None,
    at: datetime | None = None,
    staff: StaffInfo | None = None,
    check: bool = True,
) -> StatusPacket:
    """A status packet answering ``edoc``, sent by its first recipient unless told otherwise.

    For 13 (recall requested) the original sender writes to a recipient, so ``sender`` is the
    edoc's sender and ResponseFor names the recipient, as edxml.md §4 describes.
    """
    if code == "13":
        from_ = _org(sender) if sender else edoc.from_
        target = edoc.to[0].organ_id
    else:
        from_ = _org(sender) if sender else edoc.to[0]
        target = edoc.from_.organ_id
    status = StatusPacket(
        from_=from_,
        response_for=ResponseFor(
            organ_id=target,
            code=str(edoc.code),
            promulgation_date=format_date(edoc.promulgation_info.promulgation_date),
            document_id=edoc.document_id,
        ),
        status_code=code,
        timestamp=(at or datetime.now()).replace(microsecond=0),
        staff_info=staff or StaffInfo(department="Văn thư", staff="Văn thư"),
        description=description,
    )
    if check:
        read_packet(packet_bytes(status))
    return status

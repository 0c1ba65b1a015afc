"""The typed edXML packet: what the bus and adapters read instead of XML trees.

Field names follow the standard's element names in snake case, so a developer holding
QCVN 102:2016 finds each element at once. ``None`` means the element was absent and ``""``
that it was present but empty: real producers send both, and a round-trip must keep the
difference (``<ResponseFor/>`` is not the same packet as no ResponseFor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from bus.edxml.blob import Blob

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

BUSINESS_KINDS: dict[int, str] = {0: "new", 1: "revoke", 2: "update", 3: "replace"}

STATUS_MEANINGS: dict[str, str] = {
    "01": "arrived",
    "02": "refused",
    "03": "accepted",
    "04": "assigned",
    "05": "processing",
    "06": "completed",
    "13": "recall requested",
    "15": "recall/update accepted",
    "16": "recall/update refused",
}

PacketKind = Literal["edoc", "status"]


@dataclass(slots=True)
class Organization:
    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(slots=True)
class Code:
    code_number: str
    code_notation: str

    def __str__(self) -> str:
        return f"{self.code_number}/{self.code_notation}"


@dataclass(slots=True)
class PromulgationInfo:
    place: str
    promulgation_date: date


@dataclass(slots=True)
class DocumentType:
    type: int
    type_name: str
    type_detail: int | None = None


@dataclass(slots=True)
class SignerInfo:
    full_name: str
    competence: str | None = None
    position: str | None = None


@dataclass(slots=True)
class OtherInfo:
    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    direction: bool | None = None
    appendixes: list[str] | None = None


@dataclass(slots=True)
class ResponseFor:
    """A pointer to an earlier document; every field may be empty in real edoc packets."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: str | None = None
    document_id: str | None = None


@dataclass(slots=True)
class TraceHeader:
    """One hop. ``organ_id`` is kept as sent: empty and the text ``null`` both occur, and
    None means the hop had no OrganId at all (the national axis writes such hops)."""

    organ_id: str | None
    timestamp: str

    @property
    def organization(self) -> str | None:
        return None if self.organ_id in (None, "", "null") else self.organ_id


@dataclass(slots=True)
class StaffInfo:
    department: str | None = None
    department_id: str | None = None
    staff: str | None = None
    staff_id: str | None = None
    email: str | None = None
    mobile: str | None = None


@dataclass(slots=True)
class Receiver:
    organ_id: str
    receiver_type: int | None = None


@dataclass(slots=True)
class BusinessDocumentInfo:
    document_info: str | None = None
    document_receiver: str | None = None
    receivers: list[Receiver] | None = None


@dataclass(slots=True)
class ReplacementInfo:
    document_id: str
    organ_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Business:
    """The ``Bussiness`` block (the standard's spelling): what kind of act this packet is."""

    bussiness_doc_type: int
    bussiness_doc_reason: str | None = None
    document_id: str | None = None
    paper: int | None = None
    document_info: BusinessDocumentInfo | None = None
    replacements: list[ReplacementInfo] | None = None
    staff_info: StaffInfo | None = None

    @property
    def kind(self) -> str:
        return BUSINESS_KINDS.get(self.bussiness_doc_type, "unknown")


@dataclass(slots=True)
class ManifestReference:
    content_id: str
    attachment_name: str
    content_type: str | None = None
    description: str | None = None


@dataclass(slots=True)
class Attachment:
    content_id: str
    attachment_name: str
    content: Blob
    content_type: str | None = None
    description: str | None = None

    @property
    def format(self) -> str:
        """What the bytes are (``zip``, ``pdf``, …), whatever ContentType claims."""
        return self.content.format


@dataclass(slots=True)
class Signature:
    """Kept verbatim: intermediaries must not re-serialise what a signer signed."""

    xml: bytes
    namespace: str


@dataclass(slots=True)
class Edoc:
    """An official document packet (văn bản điện tử)."""

    from_: Organization
    to: list[Organization]
    code: Code
    promulgation_info: PromulgationInfo
    document_type: DocumentType
    subject: str
    signer_info: SignerInfo
    document_id: str | None = None
    content: str | None = None
    due_date: date | None = None
    other_info: OtherInfo | None = None
    response_for: list[ResponseFor] = field(default_factory=list)
    steering_type: int | None = None
    response_for_task: list[str] | None = None
    application_type: str | None = None
    to_places: list[str] | None = None
    trace_headers: list[TraceHeader] = field(default_factory=list)
    business: Business | None = None
    signature: Signature | None = None
    manifest_version: str = "1.0"
    manifest: list[ManifestReference] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)

    kind: PacketKind = field(default="edoc", init=False)

    @property
    def sender(self) -> str:
        return self.from_.organ_id

    @property
    def recipients(self) -> list[str]:
        return [org.organ_id for org in self.to]

    @property
    def business_kind(self) -> str:
        return self.business.kind if self.business else "new"

    @property
    def priority(self) -> int | None:
        return self.other_info.priority if self.other_info else None


@dataclass(slots=True)
class StatusPacket:
    """A business status (01 arrived … 06 completed, 13 recall …) about an earlier edoc."""

    from_: Organization
    response_for: ResponseFor
    status_code: str
    timestamp: datetime
    staff_info: StaffInfo | None = None
    description: str | None = None
    trace_headers: list[TraceHeader] = field(default_factory=list)
    signature: Signature | None = None

    kind: PacketKind = field(default="status", init=False)

    @property
    def sender(self) -> str:
        return self.from_.organ_id

    @property
    def meaning(self) -> str:
        return STATUS_MEANINGS.get(self.status_code, "reserved")

    @property
    def document_id(self) -> str | None:
        return self.response_for.document_id


Packet = Edoc | StatusPacket

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"

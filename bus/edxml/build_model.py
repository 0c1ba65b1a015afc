"""A validated lxml tree → the typed model.

Runs only after the XSD and the second pass have accepted the tree, so it may assume
required elements exist and formats are right; it reads each element once, by local name,
because producers disagree on order and prefixes but not on names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from lxml import etree

from bus.edxml.blob import Blob
from bus.edxml.model import (
    NS,
    XMLDSIG_NS,
    Attachment,
    Business,
    BusinessDocumentInfo,
    Code,
    DocumentType,
    Edoc,
    ManifestReference,
    Organization,
    OtherInfo,
    Packet,
    PacketKind,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    Signature,
    SignerInfo,
    StaffInfo,
    StatusPacket,
    TraceHeader,
)

_PREFIX = f"{{{NS}}}"
_SKIP = len(_PREFIX)
_T = TypeVar("_T")
_Fields = dict[str, etree._Element]


def _fields(element: etree._Element) -> _Fields:
    """Children by local name (first of each); every child is in the edXML namespace
    once the XSD has passed, except a foreign Signature, which keeps its Clark name."""
    out: _Fields = {}
    for child in element:
        tag: str = child.tag  # type: ignore[assignment]
        out.setdefault(tag[_SKIP:] if tag.startswith(_PREFIX) else tag, child)
    return out


def _texts(element: etree._Element) -> dict[str, str]:
    return {child.tag[_SKIP:]: child.text or "" for child in element}  # type: ignore[index]


def _all(element: etree._Element, name: str) -> list[etree._Element]:
    return list(element.iterchildren(_PREFIX + name))


def _text(fields: _Fields, name: str) -> str | None:
    element = fields.get(name)
    if element is None:
        return None
    return element.text or ""


def _req(fields: _Fields, name: str) -> str:
    return _text(fields, name) or ""


def _to_int(value: str | None) -> int | None:
    return int(value) if value and value.strip() else None


def _int(fields: _Fields, name: str) -> int | None:
    return _to_int(_text(fields, name))


def _to_date(value: str | None) -> date | None:
    """``yyyy/MM/dd``, already checked to exist by the second pass."""
    if not value or not value.strip():
        return None
    v = value.strip()
    return date(int(v[0:4]), int(v[5:7]), int(v[8:10]))


def _date(fields: _Fields, name: str) -> date | None:
    return _to_date(_text(fields, name))


def _list(
    fields: _Fields, name: str, item: str, convert: Callable[[str], _T]
) -> list[_T] | None:
    element = fields.get(name)
    if element is None:
        return None
    return [convert(child.text or "") for child in _all(element, item)]


def _organization(element: etree._Element) -> Organization:
    t = _texts(element)
    return Organization(
        organ_id=t.get("OrganId", ""),
        organization_in_charge=t.get("OrganizationInCharge"),
        organ_name=t.get("OrganName"),
        organ_add=t.get("OrganAdd"),
        email=t.get("Email"),
        telephone=t.get("Telephone"),
        fax=t.get("Fax"),
        website=t.get("Website"),
    )


def _response_for(element: etree._Element) -> ResponseFor:
    t = _texts(element)
    return ResponseFor(
        organ_id=t.get("OrganId"),
        code=t.get("Code"),
        promulgation_date=t.get("PromulgationDate"),
        document_id=t.get("DocumentId"),
    )


def _staff(element: etree._Element | None) -> StaffInfo | None:
    if element is None:
        return None
    t = _texts(element)
    return StaffInfo(
        department=t.get("Department"),
        department_id=t.get("DepartmentId"),
        staff=t.get("Staff"),
        staff_id=t.get("StaffId"),
        email=t.get("Email"),
        mobile=t.get("Mobile"),
    )


def _other_info(element: etree._Element | None) -> OtherInfo | None:
    if element is None:
        return None
    f = _fields(element)
    direction = _text(f, "Direction")
    return OtherInfo(
        priority=_int(f, "Priority"),
        sphere_of_promulgation=_text(f, "SphereOfPromulgation"),
        typer_notation=_text(f, "TyperNotation"),
        promulgation_amount=_int(f, "PromulgationAmount"),
        page_amount=_int(f, "PageAmount"),
        direction=None if direction is None or not direction.strip()
        else direction.strip() in ("true", "1"),
        appendixes=_list(f, "Appendixes", "Appendix", str),
    )


def _business(element: etree._Element) -> Business:
    f = _fields(element)
    info = None
    if (info_el := f.get("BussinessDocumentInfo")) is not None:
        fi = _fields(info_el)
        receivers = None
        if (rl := fi.get("ReceiverList")) is not None:
            receivers = []
            for r in _all(rl, "Receiver"):
                rf = _fields(r)
                receivers.append(Receiver(_req(rf, "OrganId"), _int(rf, "ReceiverType")))
        info = BusinessDocumentInfo(
            document_info=_text(fi, "DocumentInfo"),
            document_receiver=_text(fi, "DocumentReceiver"),
            receivers=receivers,
        )
    replacements = None
    if (rep := f.get("ReplacementInfoList")) is not None:
        replacements = []
        for item in _all(rep, "ReplacementInfo"):
            fr = _fields(item)
            organs = fr.get("OrganIdList")
            ids = [o.text or "" for o in _all(organs, "OrganId")] if organs is not None else []
            replacements.append(ReplacementInfo(_req(fr, "DocumentId"), ids))
    return Business(
        bussiness_doc_type=_int(f, "BussinessDocType") or 0,
        bussiness_doc_reason=_text(f, "BussinessDocReason"),
        document_id=_text(f, "DocumentId"),
        paper=_int(f, "Paper"),
        document_info=info,
        replacements=replacements,
        staff_info=_staff(f.get("StaffInfo")),
    )


def _trace(element: etree._Element | None) -> tuple[list[TraceHeader], Business | None]:
    if element is None:
        return [], None
    traces: list[TraceHeader] = []
    business = None
    for child in element:
        name = child.tag
        if name == _PREFIX + "TraceHeader":
            t = _texts(child)
            traces.append(TraceHeader(t.get("OrganId", ""), t.get("Timestamp", "")))
        elif name == _PREFIX + "Bussiness":
            business = _business(child)
    return traces, business


def _signature(header: _Fields) -> Signature | None:
    element = header.get("Signature", header.get(f"{{{XMLDSIG_NS}}}Signature"))
    if element is None:
        return None
    namespace = etree.QName(element).namespace or NS
    return Signature(
        xml=etree.tostring(element, encoding="UTF-8", with_tail=False), namespace=namespace
    )


def _edoc(envelope: etree._Element, root: etree._Element, contents: dict[etree._Element, Blob]
          ) -> Edoc:
    header = _fields(envelope.find(_PREFIX + "edXMLHeader"))  # type: ignore[arg-type]
    message = header["MessageHeader"]
    m = _fields(message)
    code = _texts(m["Code"])
    promulgation = _texts(m["PromulgationInfo"])
    doc_type = _texts(m["DocumentType"])
    signer = _texts(m["SignerInfo"])
    traces, business = _trace(header.get("TraceHeaderList"))
    task = m.get("ResponseForTask")

    manifest_version = "1.0"
    manifest: list[ManifestReference] = []
    body = envelope.find(_PREFIX + "edXMLBody")
    if body is not None and (man := body.find(_PREFIX + "edXMLManifest")) is not None:
        manifest_version = man.get("version", "1.0")
        for ref in _all(man, "Reference"):
            rt = _texts(ref)
            manifest.append(ManifestReference(
                content_id=rt.get("ContentId", ""),
                attachment_name=rt.get("AttachmentName", ""),
                content_type=rt.get("ContentType"),
                description=rt.get("Description"),
            ))
    attachments: list[Attachment] = []
    encoded = root.find(_PREFIX + "AttachmentEncoded")
    if encoded is not None:
        for att in _all(encoded, "Attachment"):
            af = _fields(att)
            attachments.append(Attachment(
                content_id=_req(af, "ContentId"),
                attachment_name=_req(af, "AttachmentName"),
                content=contents[af["ContentTransferEncoded"]],
                content_type=_text(af, "ContentType"),
                description=_text(af, "Description"),
            ))

    return Edoc(
        from_=_organization(m["From"]),
        to=[_organization(e) for e in _all(message, "To")],
        code=Code(code.get("CodeNumber", ""), code.get("CodeNotation", "")),
        promulgation_info=PromulgationInfo(
            place=promulgation.get("Place", ""),
            promulgation_date=_to_date(promulgation.get("PromulgationDate")),  # type: ignore[arg-type]
        ),
        document_type=DocumentType(
            type=_to_int(doc_type.get("Type")) or 0,
            type_name=doc_type.get("TypeName", ""),
            type_detail=_to_int(doc_type.get("TypeDetail")),
        ),
        subject=_req(m, "Subject"),
        signer_info=SignerInfo(
            full_name=signer.get("FullName", ""),
            competence=signer.get("Competence"),
            position=signer.get("Position"),
        ),
        document_id=_text(m, "DocumentId"),
        content=_text(m, "Content"),
        due_date=_date(m, "DueDate"),
        other_info=_other_info(m.get("OtherInfo")),
        response_for=[_response_for(e) for e in _all(message, "ResponseFor")],
        steering_type=_int(m, "SteeringType"),
        response_for_task=None if task is None
        else [t.text or "" for t in _all(task, "TaskCode")],
        application_type=_text(m, "ApplicationType"),
        to_places=_list(m, "ToPlaces", "Place", str),
        trace_headers=traces,
        business=business,
        signature=_signature(header),
        manifest_version=manifest_version,
        manifest=manifest,
        attachments=attachments,
    )


def _status(envelope: etree._Element) -> StatusPacket:
    header = _fields(envelope.find(_PREFIX + "edXMLHeader"))  # type: ignore[arg-type]
    m = _fields(header["MessageHeader"])
    traces, _ = _trace(header.get("TraceHeaderList"))
    return StatusPacket(
        from_=_organization(m["From"]),
        response_for=_response_for(m["ResponseFor"]),
        status_code=_req(m, "StatusCode").strip(),
        timestamp=_timestamp(_req(m, "Timestamp")),
        staff_info=_staff(m.get("StaffInfo")),
        description=_text(m, "Description"),
        trace_headers=traces,
        signature=_signature(header),
    )


def _timestamp(value: str) -> datetime:
    v = value.strip()
    return datetime(int(v[0:4]), int(v[5:7]), int(v[8:10]),
                    int(v[11:13]), int(v[14:16]), int(v[17:19]))


def build_packet(
    root: etree._Element, kind: PacketKind, contents: dict[etree._Element, Blob]
) -> Packet:
    envelope = root.find(_PREFIX + "edXMLEnvelope")
    assert envelope is not None
    if kind == "status":
        return _status(envelope)
    return _edoc(envelope, root, contents)

"""Typed packet → bytes in the canonical SDK form.

Canonical means what the official SDK writes and every consumer has been seen to read:
root ``edXML`` with the default namespace, ``edXML:`` on everything inside the envelope,
``AttachmentEncoded`` as the root's second child, MessageHeader children in the SDK order.
Attachments are streamed out in base64 chunks so a 100 MB scan is never a single string.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import date, datetime
from typing import IO

from lxml import etree

from bus import xmlsafe
from bus.edxml.model import (
    NS,
    Business,
    Edoc,
    Organization,
    Packet,
    ResponseFor,
    StaffInfo,
    StatusPacket,
    TraceHeader,
)

_NSMAP = {"edXML": NS}
_Pairs = Iterable[tuple[str, "str | int | bool | date | None"]]


def format_date(value: date) -> str:
    """``yyyy/MM/dd`` with the year on four digits (strftime drops zeros before 1000)."""
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"


def format_timestamp(value: datetime) -> str:
    """``yyyy/MM/dd HH:mm:ss``, the form of Timestamp elements."""
    return f"{format_date(value)} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _add(parent: etree._Element, name: str, value: str | int | bool | date | None) -> None:
    if value is None:
        return
    child = etree.SubElement(parent, _q(name))
    if isinstance(value, bool):
        child.text = "true" if value else "false"
    elif isinstance(value, date):
        child.text = format_date(value)
    else:
        child.text = str(value)


def _block(parent: etree._Element, name: str, pairs: _Pairs) -> etree._Element:
    element = etree.SubElement(parent, _q(name))
    for key, value in pairs:
        _add(element, key, value)
    return element


def _organization(parent: etree._Element, name: str, org: Organization) -> None:
    _block(parent, name, [
        ("OrganId", org.organ_id),
        ("OrganizationInCharge", org.organization_in_charge),
        ("OrganName", org.organ_name),
        ("OrganAdd", org.organ_add),
        ("Email", org.email),
        ("Telephone", org.telephone),
        ("Fax", org.fax),
        ("Website", org.website),
    ])


def _response_for(parent: etree._Element, rf: ResponseFor) -> None:
    _block(parent, "ResponseFor", [
        ("OrganId", rf.organ_id),
        ("Code", rf.code),
        ("PromulgationDate", rf.promulgation_date),
        ("DocumentId", rf.document_id),
    ])


def _staff(parent: etree._Element, staff: StaffInfo | None) -> None:
    if staff is None:
        return
    _block(parent, "StaffInfo", [
        ("Department", staff.department),
        ("DepartmentId", staff.department_id),
        ("Staff", staff.staff),
        ("StaffId", staff.staff_id),
        ("Email", staff.email),
        ("Mobile", staff.mobile),
    ])


def _list(parent: etree._Element, name: str, item: str, values: list[str] | None) -> None:
    if values is None:
        return
    element = etree.SubElement(parent, _q(name))
    for value in values:
        _add(element, item, value)


def _business(parent: etree._Element, b: Business) -> None:
    element = _block(parent, "Bussiness", [
        ("DocumentId", b.document_id),
        ("BussinessDocType", b.bussiness_doc_type),
        ("BussinessDocReason", b.bussiness_doc_reason),
        ("Paper", b.paper),
    ])
    if b.document_info is not None:
        info = _block(element, "BussinessDocumentInfo", [
            ("DocumentInfo", b.document_info.document_info),
            ("DocumentReceiver", b.document_info.document_receiver),
        ])
        if b.document_info.receivers is not None:
            receivers = etree.SubElement(info, _q("ReceiverList"))
            for r in b.document_info.receivers:
                _block(receivers, "Receiver", [
                    ("OrganId", r.organ_id), ("ReceiverType", r.receiver_type)
                ])
    if b.replacements is not None:
        replacements = etree.SubElement(element, _q("ReplacementInfoList"))
        for rep in b.replacements:
            item = _block(replacements, "ReplacementInfo", [("DocumentId", rep.document_id)])
            _list(item, "OrganIdList", "OrganId", rep.organ_ids)
    _staff(element, b.staff_info)


def _traces(parent: etree._Element, traces: list[TraceHeader], business: Business | None
            ) -> None:
    if not traces and business is None:
        return
    element = etree.SubElement(parent, _q("TraceHeaderList"))
    for t in traces:
        _block(element, "TraceHeader", [("OrganId", t.organ_id), ("Timestamp", t.timestamp)])
    if business is not None:
        _business(element, business)


def _edoc_header(header: etree._Element, d: Edoc) -> None:
    m = etree.SubElement(header, _q("MessageHeader"))
    _organization(m, "From", d.from_)
    for org in d.to:
        _organization(m, "To", org)
    _add(m, "DocumentId", d.document_id)
    _block(m, "Code", [("CodeNumber", d.code.code_number),
                       ("CodeNotation", d.code.code_notation)])
    _block(m, "PromulgationInfo", [("Place", d.promulgation_info.place),
                                   ("PromulgationDate", d.promulgation_info.promulgation_date)])
    _block(m, "DocumentType", [("Type", d.document_type.type),
                               ("TypeDetail", d.document_type.type_detail),
                               ("TypeName", d.document_type.type_name)])
    _add(m, "Subject", d.subject)
    _add(m, "Content", d.content)
    _block(m, "SignerInfo", [("Competence", d.signer_info.competence),
                             ("Position", d.signer_info.position),
                             ("FullName", d.signer_info.full_name)])
    _add(m, "DueDate", d.due_date)
    if d.other_info is not None:
        o = d.other_info
        other = _block(m, "OtherInfo", [
            ("Priority", o.priority),
            ("SphereOfPromulgation", o.sphere_of_promulgation),
            ("TyperNotation", o.typer_notation),
            ("PromulgationAmount", o.promulgation_amount),
            ("PageAmount", o.page_amount),
            ("Direction", o.direction),
        ])
        _list(other, "Appendixes", "Appendix", o.appendixes)
    for rf in d.response_for:
        _response_for(m, rf)
    _add(m, "SteeringType", d.steering_type)
    _list(m, "ResponseForTask", "TaskCode", d.response_for_task)
    _add(m, "ApplicationType", d.application_type)
    _list(m, "ToPlaces", "Place", d.to_places)
    _traces(header, d.trace_headers, d.business)


def _status_header(header: etree._Element, s: StatusPacket) -> None:
    m = etree.SubElement(header, _q("MessageHeader"))
    _organization(m, "From", s.from_)
    _response_for(m, s.response_for)
    _staff(m, s.staff_info)
    _add(m, "StatusCode", s.status_code)
    _add(m, "Description", s.description)
    _add(m, "Timestamp", format_timestamp(s.timestamp))
    _traces(header, s.trace_headers, None)


def _header_parts(packet: Packet) -> list[etree._Element]:
    header = etree.Element(_q("edXMLHeader"), nsmap=_NSMAP)
    if isinstance(packet, Edoc):
        _edoc_header(header, packet)
    else:
        _status_header(header, packet)
    parts = list(header)
    for part in parts:
        etree.indent(part, space="  ", level=3)
    return parts


def _body(packet: Edoc) -> etree._Element:
    body = etree.Element(_q("edXMLBody"), nsmap=_NSMAP)
    manifest = etree.SubElement(body, _q("edXMLManifest"), version=packet.manifest_version)
    for ref in packet.manifest:
        _block(manifest, "Reference", [
            ("ContentId", ref.content_id),
            ("ContentType", ref.content_type),
            ("Description", ref.description),
            ("AttachmentName", ref.attachment_name),
        ])
    etree.indent(body, space="  ", level=2)
    return body


def _attachments(xf: etree._IncrementalFileWriter, packet: Edoc) -> None:
    with xf.element(_q("AttachmentEncoded")):
        for att in packet.attachments:
            xf.write("\n    ")
            with xf.element(_q("Attachment")):
                for name, value in (
                    ("ContentId", att.content_id),
                    ("AttachmentName", att.attachment_name),
                    ("Description", att.description),
                    ("ContentType", att.content_type),
                ):
                    if value is not None:
                        xf.write("\n      ")
                        with xf.element(_q(name)):
                            xf.write(value)
                xf.write("\n      ")
                with xf.element(_q("ContentTransferEncoded"), nsmap=_NSMAP):
                    for chunk in att.content.base64_chunks():
                        xf.write(chunk.decode("ascii"))
                xf.write("\n    ")
        xf.write("\n  ")


def write_packet(packet: Packet, out: IO[bytes]) -> None:
    """Writes the packet to a binary stream, attachments streamed chunk by chunk.

    The signature is written back exactly as it was read (same prefixes, same white
    space), because re-indenting it would change what the signer signed.
    """
    with etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        with xf.element(_q("edXML"), nsmap={None: NS}):
            xf.write("\n  ")
            with xf.element(_q("edXMLEnvelope"), nsmap=_NSMAP):
                xf.write("\n    ")
                with xf.element(_q("edXMLHeader")):
                    for part in _header_parts(packet):
                        xf.write("\n      ", part)
                    if packet.signature is not None:
                        xf.write("\n      ", xmlsafe.parse_trusted(packet.signature.xml))
                    xf.write("\n    ")
                if isinstance(packet, Edoc):
                    xf.write("\n    ", _body(packet))
                xf.write("\n  ")
            if isinstance(packet, Edoc) and packet.attachments:
                xf.write("\n  ")
                _attachments(xf, packet)
            xf.write("\n")


def packet_bytes(packet: Packet) -> bytes:
    out = io.BytesIO()
    write_packet(packet, out)
    return out.getvalue()

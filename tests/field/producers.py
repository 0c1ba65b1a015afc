"""Producer emulations: each writes a packet from a data dict the way one producer does.

edxml.md §9 found seven independent producers whose packets differ from a strict reading
of QCVN 102:2016. The tests of the tolerant reader get their packets from these writers,
not from hand-edited samples, so a packet carries every habit of its producer at once
(declaration, line ends, indentation, prefixes, escaping, empty-element form) and not
only the one a test is about.

* :func:`java_dom` — the official Java SDK: a DOM with the ``edXML:`` prefix on everything
  inside the envelope, serialised by a ``Transformer`` with indentation (tabs here, CRLF
  line ends as on the Windows servers that run it), attachments zipped then base64 in
  76-character MIME lines.
* :func:`dotnet_xmlserializer` — a .NET ``XmlSerializer``: ``encoding="utf-8"``,
  ``xmlns:xsi``/``xmlns:xsd`` on the root, unprefixed default namespace, two-space indent,
  CRLF, ``<X />`` for empty elements, the SOAP-header attributes ``id``, ``version``,
  ``mustUnderstand``, ``actor`` on TraceHeaderList, dates as ``dd/MM/yyyy``,
  ``<DigitalSignature />`` where it never signs.
* :func:`typescript_template` — a Node gateway's template string: no indentation to speak
  of, ``edXML:`` prefixes, ``cid:`` in the manifest only, TraceHeaders carrying its own
  ``Business``/``StaffInfo`` bookkeeping, an empty ``Signature``.
* :func:`go_encoding_xml` — Go's ``encoding/xml``: ``xml.Header`` then ``MarshalIndent``
  with a default namespace, empty elements as ``<X></X>``, text escaped the Go way
  (``&#34;``, ``&#39;``, ``&#xA;``).
* :func:`axis_2025` — an SDK packet as the national axis passes it on in 2025: its own
  TraceHeaders with only a Timestamp, an upstream hop with OrganId ``null``.
* :func:`vendor_hub_2019` — one vendor's client SDK writing its own dialect for its hub.

And the producers whose packets are rightly refused: :func:`pre_qcvn_edoc`,
:func:`soap_wrapped`, :func:`no_namespace`, :func:`status_in_header`,
:func:`attachment_data_block`, :func:`unclosed_from`.
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"

Data = dict[str, Any]


def sample_data(**overrides: Any) -> Data:
    """One document, as a producer's database row would give it."""
    data: Data = {
        "from": {"OrganId": "000.00.12.H37", "OrganName": "Sở Thông tin và Truyền thông",
                 "Email": "stttt@langson.gov.vn"},
        "to": [{"OrganId": "000.00.00.H37", "OrganName": "Văn phòng UBND tỉnh"}],
        "document_id": "000.00.12.H37,2025/03/14,123/STTTT-VP",
        "code_number": "123", "code_notation": "STTTT-VP",
        "place": "Lạng Sơn", "promulgated": date(2025, 3, 14),
        "type": 1, "type_name": "Công văn",
        "subject": 'Về việc "kết nối" liên thông văn bản',
        "signer": {"Competence": "KT. GIÁM ĐỐC", "Position": "Phó Giám đốc",
                   "FullName": "Nguyễn Văn A"},
        "due": date(2025, 4, 1),
        "priority": 0,
        "traces": [("000.00.12.H37", datetime(2025, 3, 14, 8, 30, 0))],
        "business_doc_type": 0, "reason": "Văn bản mới",
        "staff": {"Department": "Văn phòng", "Staff": "Trần Thị B", "Mobile": "0912000001"},
        "response_for": None,
        "attachments": [{"id": "1", "name": "123-STTTT-VP.pdf",
                         "type": "application/pdf", "content": PDF}],
    }
    data.update(overrides)
    return data


PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n"
       b"%%EOF\n")


def _ymd(value: date) -> str:
    return value.strftime("%Y/%m/%d")


def _dmy(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def _stamp(value: datetime) -> str:
    return value.strftime("%Y/%m/%d %H:%M:%S")


def _zipped(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


# ---------------------------------------------------------------- a DOM, for the SDK-likes


class _Dom:
    """Builds elements as a DOM API does: each in a namespace, with a chosen prefix."""

    def __init__(self, prefix: str | None, *, prefixed_root: bool = False) -> None:
        self.prefix = prefix
        self.prefixed_root = prefixed_root

    def root(self) -> etree._Element:
        nsmap: dict[str | None, str] = {"edXML": NS} if self.prefixed_root else {None: NS}
        return etree.Element(f"{{{NS}}}edXML", nsmap=nsmap)

    def add(self, parent: etree._Element, name: str, text: object = None,
            nsmap: dict[str | None, str] | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{NS}}}{name}", nsmap=nsmap)
        if text is not None:
            element.text = str(text)
        return element

    def block(self, parent: etree._Element, name: str, fields: dict[str, object]
              ) -> etree._Element:
        element = self.add(parent, name)
        for key, value in fields.items():
            if value is not None:
                self.add(element, key, value)
        return element


def _dom_packet(data: Data, dom: _Dom, *, dates: Callable[[date], str],
                trace_list_attributes: dict[str, str] | None = None,
                digital_signature: bool = False, zip_attachments: bool = False,
                wrap: int = 0, envelope_nsmap: dict[str | None, str] | None = None
                ) -> etree._Element:
    root = dom.root()
    envelope = dom.add(root, "edXMLEnvelope", nsmap=envelope_nsmap)
    header = dom.add(envelope, "edXMLHeader")
    message = dom.add(header, "MessageHeader")
    dom.block(message, "From", data["from"])
    for to in data["to"]:
        dom.block(message, "To", to)
    dom.add(message, "DocumentId", data["document_id"])
    dom.block(message, "Code", {"CodeNumber": data["code_number"],
                                "CodeNotation": data["code_notation"]})
    dom.block(message, "PromulgationInfo", {"Place": data["place"],
                                            "PromulgationDate": dates(data["promulgated"])})
    dom.block(message, "DocumentType", {"Type": data["type"], "TypeName": data["type_name"]})
    dom.add(message, "Subject", data["subject"])
    dom.block(message, "SignerInfo", data["signer"])
    dom.add(message, "DueDate", dates(data["due"]) if data["due"] else "")
    dom.block(message, "OtherInfo", {"Priority": data["priority"]})
    if data["response_for"]:
        response = dict(data["response_for"])
        response["PromulgationDate"] = dates(response["PromulgationDate"])
        dom.block(message, "ResponseFor", response)
    traces = dom.add(header, "TraceHeaderList")
    for key, value in (trace_list_attributes or {}).items():
        traces.set(key, value)
    for organ, at in data["traces"]:
        dom.block(traces, "TraceHeader", {"OrganId": organ, "Timestamp": _stamp(at)})
    business = dom.block(traces, "Bussiness", {"BussinessDocType": data["business_doc_type"],
                                               "BussinessDocReason": data["reason"]})
    dom.block(business, "StaffInfo", data["staff"])
    if digital_signature:
        dom.add(header, "DigitalSignature")
    body = dom.add(envelope, "edXMLBody")
    manifest = dom.add(body, "edXMLManifest")
    manifest.set("version", "1.0")
    encoded = dom.add(root, "AttachmentEncoded")
    for item in data["attachments"]:
        content = _zipped(item["name"], item["content"]) if zip_attachments else item["content"]
        kind = "application/zip" if zip_attachments else item["type"]
        dom.block(manifest, "Reference", {"ContentId": "cid:" + item["id"], "ContentType": kind,
                                          "AttachmentName": item["name"]})
        text = base64.b64encode(content).decode("ascii")
        if wrap:
            text = "\r\n".join(text[i:i + wrap] for i in range(0, len(text), wrap))
        dom.block(encoded, "Attachment", {"ContentId": "cid:" + item["id"],
                                          "AttachmentName": item["name"], "ContentType": kind,
                                          "ContentTransferEncoded": text})
    return root


def _indent(root: etree._Element, space: str) -> None:
    etree.indent(root, space=space)


def _declaration(encoding: str, standalone: str = "") -> bytes:
    extra = f' standalone="{standalone}"' if standalone else ""
    return f'<?xml version="1.0" encoding="{encoding}"{extra}?>'.encode("ascii")


# ---------------------------------------------------------------- accepted producers


def java_dom(data: Data) -> bytes:
    """The official Java SDK: DOM with ``edXML:`` prefixes, Transformer indent, CRLF."""
    dom = _Dom("edXML")
    root = _dom_packet(data, dom, dates=_ymd, zip_attachments=True, wrap=76,
                       envelope_nsmap={"edXML": NS})
    _indent(root, "\t")
    text = etree.tostring(root, encoding="UTF-8")
    return (_declaration("UTF-8", "no") + text).replace(b"\n", b"\r\n")


def dotnet_xmlserializer(data: Data) -> bytes:
    """.NET XmlSerializer: xsi/xsd declarations, SOAP attributes, dd/MM/yyyy, ``<X />``."""
    dom = _Dom(None)
    root = _dom_packet(data, dom, dates=_dmy, digital_signature=True,
                       trace_list_attributes={"id": "TraceHeaderList1", "version": "1.0",
                                              "mustUnderstand": "0", "actor": ""})
    wrapped = etree.Element(f"{{{NS}}}edXML", nsmap={"xsi": XSI, "xsd": XSD, None: NS})
    wrapped.extend(list(root))
    _indent(wrapped, "  ")
    text = etree.tostring(wrapped, encoding="utf-8").replace(b"/>", b" />")
    return _declaration("utf-8") + b"\r\n" + text.replace(b"\n", b"\r\n")


def _ts_block(name: str, fields: dict[str, object]) -> str:
    inner = "".join(f"<edXML:{k}>{escape(str(v))}</edXML:{k}>"
                    for k, v in fields.items() if v is not None)
    return f"<edXML:{name}>{inner}</edXML:{name}>"


def typescript_template(data: Data) -> bytes:
    """A Node gateway's template literal: prefixed, unindented, its own trace bookkeeping."""
    traces = "".join(
        f"<edXML:TraceHeader><edXML:Business><edXML:BusinessName>Cổng kết nối</edXML:BusinessName>"
        f"<edXML:BusinessCode>GW01</edXML:BusinessCode></edXML:Business>"
        f"<edXML:StaffInfo><edXML:StaffName>{escape(data['staff']['Staff'])}</edXML:StaffName>"
        f"<edXML:StaffCode>NV07</edXML:StaffCode></edXML:StaffInfo>"
        f"<edXML:OrganId>{organ}</edXML:OrganId><edXML:Timestamp>{_stamp(at)}</edXML:Timestamp>"
        f"</edXML:TraceHeader>"
        for organ, at in data["traces"])
    references = "".join(
        f"<edXML:Reference><edXML:ContentId>cid:{a['id']}</edXML:ContentId>"
        f"<edXML:ContentType>{a['type']}</edXML:ContentType>"
        f"<edXML:AttachmentName>{escape(a['name'])}</edXML:AttachmentName></edXML:Reference>"
        for a in data["attachments"])
    attachments = "".join(
        f"<edXML:Attachment><edXML:ContentId>{a['id']}</edXML:ContentId>"
        f"<edXML:AttachmentName>{escape(a['name'])}</edXML:AttachmentName>"
        f"<edXML:ContentType>{a['type']}</edXML:ContentType>"
        f"<edXML:ContentTransferEncoded>{base64.b64encode(a['content']).decode()}"
        f"</edXML:ContentTransferEncoded></edXML:Attachment>"
        for a in data["attachments"])
    to = "".join(_ts_block("To", t) for t in data["to"])
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML:edXML xmlns:edXML="{NS}">
<edXML:edXMLEnvelope><edXML:edXMLHeader><edXML:MessageHeader>
{_ts_block("From", data["from"])}{to}
<edXML:DocumentId>{escape(data["document_id"])}</edXML:DocumentId>
{_ts_block("Code", {"CodeNumber": data["code_number"], "CodeNotation": data["code_notation"]})}
{_ts_block("PromulgationInfo", {"Place": data["place"],
                                "PromulgationDate": _ymd(data["promulgated"])})}
{_ts_block("DocumentType", {"Type": data["type"], "TypeName": data["type_name"]})}
<edXML:Subject>{escape(data["subject"])}</edXML:Subject>
{_ts_block("SignerInfo", data["signer"])}
</edXML:MessageHeader>
<edXML:TraceHeaderList>{traces}{_ts_block("Bussiness", {
    "BussinessDocType": data["business_doc_type"], "BussinessDocReason": data["reason"]})}
</edXML:TraceHeaderList>
<edXML:Signature></edXML:Signature>
</edXML:edXMLHeader>
<edXML:edXMLBody><edXML:edXMLManifest version="1.0">{references}</edXML:edXMLManifest>
</edXML:edXMLBody></edXML:edXMLEnvelope>
<edXML:AttachmentEncoded>{attachments}</edXML:AttachmentEncoded>
</edXML:edXML>
"""
    return text.encode("utf-8")


def _go_escape(value: str) -> str:
    out = []
    for ch in value:
        out.append({"\"": "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;",
                    "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}.get(ch, ch))
    return "".join(out)


class _GoEncoder:
    """encoding/xml's MarshalIndent("", "  ") over nested structs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def leaf(self, depth: int, name: str, value: object) -> None:
        text = "" if value is None else _go_escape(str(value))
        self.lines.append(f"{'  ' * depth}<{name}>{text}</{name}>")

    def open(self, depth: int, name: str, attributes: str = "") -> None:
        self.lines.append(f"{'  ' * depth}<{name}{attributes}>")

    def close(self, depth: int, name: str) -> None:
        self.lines.append(f"{'  ' * depth}</{name}>")

    def struct(self, depth: int, name: str, fields: dict[str, object]) -> None:
        self.open(depth, name)
        for key, value in fields.items():
            self.leaf(depth + 1, key, value)
        self.close(depth, name)


def go_encoding_xml(data: Data) -> bytes:
    """Go's encoding/xml: default namespace, ``<X></X>`` for empty, Go escaping."""
    go = _GoEncoder()
    go.open(0, "edXML", f' xmlns="{NS}"')
    go.open(1, "edXMLEnvelope")
    go.open(2, "edXMLHeader")
    go.open(3, "MessageHeader")
    go.struct(4, "From", data["from"])
    for to in data["to"]:
        go.struct(4, "To", to)
    go.leaf(4, "DocumentId", data["document_id"])
    go.struct(4, "Code", {"CodeNumber": data["code_number"],
                          "CodeNotation": data["code_notation"]})
    go.struct(4, "PromulgationInfo", {"Place": data["place"],
                                      "PromulgationDate": _ymd(data["promulgated"])})
    go.struct(4, "DocumentType", {"Type": data["type"], "TypeDetail": None,
                                  "TypeName": data["type_name"]})
    go.leaf(4, "Subject", data["subject"])
    go.struct(4, "SignerInfo", data["signer"])
    go.leaf(4, "DueDate", None)
    go.struct(4, "OtherInfo", {"Priority": data["priority"], "SphereOfPromulgation": None})
    go.close(3, "MessageHeader")
    go.open(3, "TraceHeaderList")
    for organ, at in data["traces"]:
        go.struct(4, "TraceHeader", {"OrganId": organ, "Timestamp": _stamp(at)})
    go.struct(4, "Bussiness", {"BussinessDocType": data["business_doc_type"],
                               "BussinessDocReason": data["reason"]})
    go.close(3, "TraceHeaderList")
    go.leaf(3, "Signature", None)
    go.close(2, "edXMLHeader")
    go.open(2, "edXMLBody")
    go.open(3, "edXMLManifest", ' version="1.0"')
    for a in data["attachments"]:
        go.struct(4, "Reference", {"ContentId": a["id"], "ContentType": a["type"],
                                   "AttachmentName": a["name"]})
    go.close(3, "edXMLManifest")
    go.close(2, "edXMLBody")
    go.close(1, "edXMLEnvelope")
    go.open(1, "AttachmentEncoded")
    for a in data["attachments"]:
        encoded = base64.b64encode(a["content"]).decode()
        go.struct(2, "Attachment", {"ContentId": "cid:" + a["id"], "AttachmentName": a["name"],
                                    "ContentType": a["type"], "ContentTransferEncoded": encoded})
    go.close(1, "AttachmentEncoded")
    go.close(0, "edXML")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(go.lines)).encode("utf-8")


def axis_2025(data: Data) -> bytes:
    """An SDK packet as the axis passes it on in 2025: hops with only a Timestamp."""
    root = etree.fromstring(java_dom(data))
    traces = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/{{{NS}}}TraceHeaderList")
    assert traces is not None
    upstream = etree.Element(f"{{{NS}}}TraceHeader")
    etree.SubElement(upstream, f"{{{NS}}}OrganId").text = "null"
    etree.SubElement(upstream, f"{{{NS}}}Timestamp").text = "2025/03/14 08:31:02"
    traces.insert(1, upstream)
    for stamp in ("2025/03/14 08:31:05", "2025/03/14 00:00:00"):
        hop = etree.Element(f"{{{NS}}}TraceHeader")
        etree.SubElement(hop, f"{{{NS}}}Timestamp").text = stamp
        traces.insert(2, hop)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def vendor_hub_2019(data: Data) -> bytes:
    """One vendor's client SDK, writing its own dialect for its own hub."""
    dom = _Dom("edXML", prefixed_root=True)
    root = _dom_packet(data, dom, dates=_dmy)
    envelope = root[0]
    envelope.set(f"{{{NS}}}version", "2.0")
    header = envelope[0]
    traces = header.find(f"{{{NS}}}TraceHeaderList")
    assert traces is not None
    business = traces.find(f"{{{NS}}}Bussiness")
    assert business is not None
    business.tag = f"{{{NS}}}Business"
    for child in business:
        if isinstance(child.tag, str) and "}Bussiness" in child.tag:
            child.tag = child.tag.replace("}Bussiness", "}Business")
    signature = etree.SubElement(header, "Signature")
    info = etree.SubElement(signature, "SignedInfo")
    etree.SubElement(info, "SignatureMethod").set(
        "Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    etree.SubElement(signature, "SignatureValue").text = "c2lnbmF0dXJl"
    manifest = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLBody/{{{NS}}}edXMLManifest")
    assert manifest is not None
    del manifest.attrib["version"]
    manifest.set(f"{{{NS}}}version", "1.0")
    _indent(root, "    ")
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


ACCEPTED: dict[str, Callable[[Data], bytes]] = {
    "java_dom": java_dom,
    "dotnet_xmlserializer": dotnet_xmlserializer,
    "typescript_template": typescript_template,
    "go_encoding_xml": go_encoding_xml,
    "axis_2025": axis_2025,
}


# ---------------------------------------------------------------- refused producers


def pre_qcvn_edoc(data: Data) -> bytes:
    """The eDoc format before QCVN 102:2016 (namespace http://www.go.vn/eDoc)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<EdXMLEnvelope xmlns="http://www.go.vn/eDoc">'
            f'<EdXMLHeader><From><OrganId>{data["from"]["OrganId"]}</OrganId></From>'
            f'</EdXMLHeader></EdXMLEnvelope>\n').encode()


def soap_wrapped(data: Data) -> bytes:
    """A SOAP 1.1 envelope with the packet inside, posted where a packet is expected."""
    inner = java_dom(data).split(b"?>", 1)[1].decode("utf-8")
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{SOAP}">'
            f'<soap:Body><SendEdoc xmlns="urn:lgsp">{inner}</SendEdoc></soap:Body>'
            f'</soap:Envelope>').encode()


def no_namespace(data: Data) -> bytes:
    """The Go writer with the struct tags' namespace forgotten."""
    return go_encoding_xml(data).replace(f' xmlns="{NS}"'.encode(), b"", 1)


def status_in_header(data: Data) -> bytes:
    """A status with its fields straight under edXMLHeader, no MessageHeader."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="{NS}"><edXMLEnvelope>'
            f'<edXMLHeader><Status>03</Status><StatusCode>03</StatusCode>'
            f'<Description>Tiếp nhận</Description></edXMLHeader></edXMLEnvelope></edXML>\n'
            ).encode()


def attachment_data_block(data: Data) -> bytes:
    """The file in a non-standard edXMLAttachments/AttachmentData block."""
    root = etree.fromstring(go_encoding_xml(data))
    header = root.find(f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader")
    assert header is not None
    traces = header.find(f"{{{NS}}}TraceHeaderList")
    assert traces is not None
    header.remove(traces)
    encoded = root.find(f"{{{NS}}}AttachmentEncoded")
    assert encoded is not None
    root.remove(encoded)
    block = etree.SubElement(root[0], f"{{{NS}}}edXMLAttachments")
    etree.SubElement(block, f"{{{NS}}}AttachmentData").text = base64.b64encode(PDF).decode()
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def unclosed_from(data: Data) -> bytes:
    """A template writer that lost the From's end tag."""
    return typescript_template(data).replace(b"</edXML:From>", b"", 1)


REFUSED: dict[str, tuple[Callable[[Data], bytes], str, str]] = {
    "pre_qcvn_edoc": (pre_qcvn_edoc, "pre-qcvn-namespace", "UnsupportedPacket"),
    "soap_wrapped": (soap_wrapped, "soap-envelope", "UnsupportedPacket"),
    "no_namespace": (no_namespace, "root-without-namespace", "UnsupportedPacket"),
    "status_in_header": (status_in_header, "status-fields-in-header", "SchemaInvalid"),
    "attachment_data_block": (attachment_data_block, "attachment-outside-attachment-encoded",
                              "AttachmentInvalid"),
    "vendor_hub_2019": (vendor_hub_2019, "dialect-not-configured", "UnsupportedPacket"),
    "unclosed_from": (unclosed_from, "not-well-formed", "MalformedXml"),
}

# ruff: noqa: E501  (packet templates keep one element per line, as producers write them)
"""The shared data every field producer writes, and the Python-side producers.

The element structure follows the official samples (/work/shared/edxml-samples) and
edxml.md §1–§4 and §9; the quirks of each producer follow §1 and §9 only.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
SENDER = "000.00.12.H37"
RECIPIENT = "000.00.00.H37"

# A small PDF-like file: the magic bytes a type sniffer looks for, and a few lines.
PDF_BYTES = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
             b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


@dataclass
class DocData:
    """What every producer is asked to write; the dates as (year, month, day)."""
    document_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    sender: str = SENDER
    sender_name: str = "Sở Thông tin và Truyền thông tỉnh Lạng Sơn"
    recipient: str = RECIPIENT
    recipient_name: str = "Văn phòng Ủy ban nhân dân tỉnh Lạng Sơn"
    code_number: str = "125"
    code_notation: str = "STTTT-VP"
    place: str = "Lạng Sơn"
    promulgation: tuple[int, int, int] = (2026, 11, 21)
    due: tuple[int, int, int] = (2026, 12, 5)
    subject: str = "V/v kết nối liên thông văn bản điện tử"
    type_name: str = "Công văn"
    signer: str = "Nguyễn Văn A"
    trace_time: str = "2026/11/21 09:15:00"
    content_id: str = "att-1"
    attachment_name: str = "cong-van-125.pdf"
    attachment: bytes = PDF_BYTES

    @property
    def b64(self) -> str:
        return base64.b64encode(self.attachment).decode("ascii")

    def ymd(self, date: tuple[int, int, int]) -> str:
        return f"{date[0]:04d}/{date[1]:02d}/{date[2]:02d}"

    def dmy(self, date: tuple[int, int, int]) -> str:
        return f"{date[2]:02d}/{date[1]:02d}/{date[0]:04d}"

    def as_properties(self) -> dict[str, str]:
        """Flat key=value form handed to the Java and Node producers."""
        return {
            "documentId": self.document_id, "sender": self.sender,
            "senderName": self.sender_name, "recipient": self.recipient,
            "recipientName": self.recipient_name, "codeNumber": self.code_number,
            "codeNotation": self.code_notation, "place": self.place,
            "promulgationDate": self.ymd(self.promulgation), "dueDate": self.ymd(self.due),
            "subject": self.subject, "typeName": self.type_name, "signer": self.signer,
            "traceTime": self.trace_time, "contentId": self.content_id,
            "attachmentName": self.attachment_name, "attachmentBase64": self.b64,
        }


def _e(text: str) -> str:
    return escape(text)


def dotnet_xmlserializer(d: DocData) -> bytes:
    """A .NET XmlSerializer-shaped packet: xsi/xsd declarations, utf-8 BOM-less with
    ``encoding="utf-8"``, two-space indentation, TraceHeaderList with SOAP-header
    attributes, and the vendor's dd/MM/yyyy dates."""
    x = f"""<?xml version="1.0" encoding="utf-8"?>
<edXML xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns="{NS}">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From>
          <OrganId>{d.sender}</OrganId>
          <OrganName>{_e(d.sender_name)}</OrganName>
        </From>
        <To>
          <OrganId>{d.recipient}</OrganId>
          <OrganName>{_e(d.recipient_name)}</OrganName>
        </To>
        <DocumentId>{d.document_id}</DocumentId>
        <Code>
          <CodeNumber>{d.code_number}</CodeNumber>
          <CodeNotation>{d.code_notation}</CodeNotation>
        </Code>
        <PromulgationInfo>
          <Place>{_e(d.place)}</Place>
          <PromulgationDate>{d.dmy(d.promulgation)}</PromulgationDate>
        </PromulgationInfo>
        <DocumentType>
          <Type>1</Type>
          <TypeName>{_e(d.type_name)}</TypeName>
        </DocumentType>
        <Subject>{_e(d.subject)}</Subject>
        <SignerInfo>
          <FullName>{_e(d.signer)}</FullName>
        </SignerInfo>
        <DueDate>{d.dmy(d.due)}</DueDate>
        <OtherInfo>
          <Priority>0</Priority>
          <PromulgationAmount>1</PromulgationAmount>
          <PageAmount>1</PageAmount>
          <Direction>false</Direction>
        </OtherInfo>
      </MessageHeader>
      <TraceHeaderList id="TraceHeaderList" version="1.0" mustUnderstand="0" actor="http://schemas.xmlsoap.org/soap/actor/next">
        <TraceHeader>
          <OrganId>{d.sender}</OrganId>
          <Timestamp>{d.trace_time}</Timestamp>
        </TraceHeader>
        <Bussiness>
          <BussinessDocType>0</BussinessDocType>
          <BussinessDocReason>Văn bản mới</BussinessDocReason>
          <Paper>0</Paper>
          <StaffInfo>
            <Department>Văn thư</Department>
            <Staff>Trần Thị B</Staff>
            <Email>vanthu@example.gov.vn</Email>
            <Mobile>0912000000</Mobile>
          </StaffInfo>
        </Bussiness>
      </TraceHeaderList>
      <Signature />
    </edXMLHeader>
    <edXMLBody>
      <edXMLManifest version="1.0">
        <Reference>
          <ContentId>cid:{d.content_id}</ContentId>
          <ContentType>application/pdf</ContentType>
          <AttachmentName>{_e(d.attachment_name)}</AttachmentName>
        </Reference>
      </edXMLManifest>
    </edXMLBody>
  </edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>{d.content_id}</ContentId>
      <AttachmentName>{_e(d.attachment_name)}</AttachmentName>
      <ContentType>application/pdf</ContentType>
      <ContentTransferEncoded>{d.b64}</ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>"""
    return x.encode("utf-8")


def go_encoding_xml(d: DocData) -> bytes:
    """Go's encoding/xml with ``xml.Header`` and MarshalIndent("", "\\t"): xmlns repeated
    on the root only, self-closed nothing (Go writes ``<X></X>``), tabs, no final
    newline, ``base64.StdEncoding.EncodeToString`` on one line."""
    t = "\t"
    x = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<edXML xmlns="{NS}">\n'
        f"{t}<edXMLEnvelope>\n{t*2}<edXMLHeader>\n{t*3}<MessageHeader>\n"
        f"{t*4}<From>\n{t*5}<OrganId>{d.sender}</OrganId>\n{t*5}<OrganName>"
        f"{_e(d.sender_name)}</OrganName>\n{t*5}<Email></Email>\n{t*4}</From>\n"
        f"{t*4}<To>\n{t*5}<OrganId>{d.recipient}</OrganId>\n{t*4}</To>\n"
        f"{t*4}<Code>\n{t*5}<CodeNumber>{d.code_number}</CodeNumber>\n{t*5}<CodeNotation>"
        f"{d.code_notation}</CodeNotation>\n{t*4}</Code>\n"
        f"{t*4}<PromulgationInfo>\n{t*5}<Place>{_e(d.place)}</Place>\n"
        f"{t*5}<PromulgationDate>{d.ymd(d.promulgation)}</PromulgationDate>\n"
        f"{t*4}</PromulgationInfo>\n"
        f"{t*4}<DocumentType>\n{t*5}<Type>1</Type>\n{t*5}<TypeName>{_e(d.type_name)}"
        f"</TypeName>\n{t*4}</DocumentType>\n"
        f"{t*4}<Subject>{_e(d.subject)}</Subject>\n"
        f"{t*4}<SignerInfo>\n{t*5}<FullName>{_e(d.signer)}</FullName>\n{t*4}</SignerInfo>\n"
        f"{t*4}<DueDate>{d.ymd(d.due)}</DueDate>\n"
        f"{t*4}<ResponseFor></ResponseFor>\n"
        f"{t*4}<DocumentId>{d.document_id}</DocumentId>\n"
        f"{t*3}</MessageHeader>\n"
        f"{t*3}<TraceHeaderList>\n{t*4}<TraceHeader>\n{t*5}<OrganId>null</OrganId>\n"
        f"{t*5}<Timestamp>{d.trace_time}</Timestamp>\n{t*4}</TraceHeader>\n"
        f"{t*4}<Bussiness>\n{t*5}<BussinessDocType>0</BussinessDocType>\n"
        f"{t*5}<BussinessDocReason></BussinessDocReason>\n{t*4}</Bussiness>\n"
        f"{t*3}</TraceHeaderList>\n"
        f"{t*2}</edXMLHeader>\n"
        f"{t*2}<edXMLBody>\n{t*3}<edXMLManifest version=\"1.0\">\n{t*4}<Reference>\n"
        f"{t*5}<ContentId>{d.content_id}</ContentId>\n"
        f"{t*5}<ContentType>application/zip</ContentType>\n"
        f"{t*5}<AttachmentName>{_e(d.attachment_name)}</AttachmentName>\n"
        f"{t*4}</Reference>\n{t*3}</edXMLManifest>\n{t*2}</edXMLBody>\n"
        f"{t}</edXMLEnvelope>\n"
        f"{t}<AttachmentEncoded>\n{t*2}<Attachment>\n"
        f"{t*3}<ContentId>cid:{d.content_id}</ContentId>\n"
        f"{t*3}<AttachmentName>{_e(d.attachment_name)}</AttachmentName>\n"
        f"{t*3}<ContentTransferEncoded>{d.b64}</ContentTransferEncoded>\n"
        f"{t*2}</Attachment>\n{t}</AttachmentEncoded>\n"
        "</edXML>"
    )
    return x.encode("utf-8")


def _canonical_head(d: DocData, trace: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>{d.sender}</edXML:OrganId></edXML:From>
        <edXML:To><edXML:OrganId>{d.recipient}</edXML:OrganId></edXML:To>
        <edXML:DocumentId>{d.document_id}</edXML:DocumentId>
        <edXML:Code><edXML:CodeNumber>{d.code_number}</edXML:CodeNumber><edXML:CodeNotation>{d.code_notation}</edXML:CodeNotation></edXML:Code>
        <edXML:PromulgationInfo><edXML:Place>{_e(d.place)}</edXML:Place><edXML:PromulgationDate>{d.ymd(d.promulgation)}</edXML:PromulgationDate></edXML:PromulgationInfo>
        <edXML:DocumentType><edXML:Type>1</edXML:Type><edXML:TypeName>{_e(d.type_name)}</edXML:TypeName></edXML:DocumentType>
        <edXML:Subject>{_e(d.subject)}</edXML:Subject>
        <edXML:SignerInfo><edXML:FullName>{_e(d.signer)}</edXML:FullName></edXML:SignerInfo>
      </edXML:MessageHeader>
{trace}
    </edXML:edXMLHeader>"""


def _canonical_tail(d: DocData) -> str:
    return f"""
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference><edXML:ContentId>cid:{d.content_id}</edXML:ContentId><edXML:ContentType>application/pdf</edXML:ContentType><edXML:AttachmentName>{_e(d.attachment_name)}</edXML:AttachmentName></edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment><ContentId>cid:{d.content_id}</ContentId><AttachmentName>{_e(d.attachment_name)}</AttachmentName><ContentType>application/pdf</ContentType><ContentTransferEncoded>{d.b64}</ContentTransferEncoded></Attachment>
  </AttachmentEncoded>
</edXML>"""


def canonical(d: DocData) -> bytes:
    """The SDK's canonical form (edxml.md §1), used for the facade round trip."""
    trace = f"""      <edXML:TraceHeaderList>
        <edXML:TraceHeader><edXML:OrganId>{d.sender}</edXML:OrganId><edXML:Timestamp>{d.trace_time}</edXML:Timestamp></edXML:TraceHeader>
        <edXML:Bussiness><edXML:BussinessDocType>0</edXML:BussinessDocType><edXML:BussinessDocReason>Văn bản mới</edXML:BussinessDocReason></edXML:Bussiness>
      </edXML:TraceHeaderList>"""
    return (_canonical_head(d, trace) + _canonical_tail(d)).encode("utf-8")


def axis_2025(d: DocData) -> bytes:
    """A 2025 packet as it comes off the national axis: the sender's TraceHeader, then
    entries the axis appended with only a Timestamp, CRLF line ends."""
    trace = f"""      <edXML:TraceHeaderList>
        <edXML:TraceHeader><edXML:OrganId>{d.sender}</edXML:OrganId><edXML:Timestamp>{d.trace_time}</edXML:Timestamp></edXML:TraceHeader>
        <edXML:Bussiness><edXML:BussinessDocType>0</edXML:BussinessDocType><edXML:BussinessDocReason>Văn bản mới</edXML:BussinessDocReason></edXML:Bussiness>
        <edXML:TraceHeader><edXML:Timestamp>2026/11/21 09:15:02</edXML:Timestamp></edXML:TraceHeader>
        <edXML:TraceHeader><edXML:Timestamp>2026/11/21 00:00:00</edXML:Timestamp></edXML:TraceHeader>
      </edXML:TraceHeaderList>"""
    return (_canonical_head(d, trace) + _canonical_tail(d)).replace("\n", "\r\n").encode(
        "utf-8")


def trace_with_bookkeeping(d: DocData) -> bytes:
    """A producer that adds its own Business/StaffInfo to each TraceHeader (§9)."""
    trace = f"""      <edXML:TraceHeaderList>
        <edXML:TraceHeader>
          <edXML:OrganId>{d.sender}</edXML:OrganId>
          <edXML:Business><edXML:BusinessName>QLVB</edXML:BusinessName><edXML:BusinessCode>01</edXML:BusinessCode></edXML:Business>
          <edXML:StaffInfo><edXML:StaffName>Trần Thị B</edXML:StaffName><edXML:StaffCode>VT01</edXML:StaffCode></edXML:StaffInfo>
          <edXML:Timestamp>{d.trace_time}</edXML:Timestamp>
        </edXML:TraceHeader>
        <edXML:Bussiness><edXML:BussinessDocType>0</edXML:BussinessDocType><edXML:BussinessDocReason>Văn bản mới</edXML:BussinessDocReason></edXML:Bussiness>
      </edXML:TraceHeaderList>
      <edXML:DigitalSignature/>"""
    return (_canonical_head(d, trace) + _canonical_tail(d)).encode("utf-8")


# ------------------------------------------------------------------ the refused forms of §9

def pre_qcvn_godoc(d: DocData) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<EdXMLEnvelope xmlns="http://www.go.vn/eDoc">
  <EdXMLHeader>
    <MessageHeader>
      <From><OrganId>{d.sender}</OrganId></From>
      <To><OrganId>{d.recipient}</OrganId></To>
      <Subject>{_e(d.subject)}</Subject>
    </MessageHeader>
  </EdXMLHeader>
  <EdXMLBody/>
</EdXMLEnvelope>""".encode()


def soap_envelope(d: DocData) -> bytes:
    inner = canonical(d).decode("utf-8").split("?>", 1)[1]
    return f"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <SendEdoc xmlns="urn:example">{inner}</SendEdoc>
  </soap:Body>
</soap:Envelope>""".encode()


def no_namespace(d: DocData) -> bytes:
    """The canonical packet with every namespace declaration and prefix removed."""
    text = canonical(d).decode("utf-8")
    text = text.replace(f' xmlns="{NS}"', "").replace(f' xmlns:edXML="{NS}"', "")
    return text.replace("edXML:", "").encode("utf-8")


def status_without_messageheader(d: DocData) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXMLEnvelope>
    <edXMLHeader>
      <From><OrganId>{d.sender}</OrganId></From>
      <Status>Đã đến</Status>
      <StatusCode>01</StatusCode>
      <Description>Đã nhận</Description>
      <Timestamp>{d.trace_time}</Timestamp>
    </edXMLHeader>
  </edXMLEnvelope>
</edXML>""".encode()


def attachment_data_block(d: DocData) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>{d.sender}</OrganId></From>
        <To><OrganId>{d.recipient}</OrganId></To>
        <DocumentId>{d.document_id}</DocumentId>
        <Code><CodeNumber>{d.code_number}</CodeNumber><CodeNotation>{d.code_notation}</CodeNotation></Code>
        <PromulgationInfo><Place>{_e(d.place)}</Place><PromulgationDate>{d.ymd(d.promulgation)}</PromulgationDate></PromulgationInfo>
        <DocumentType><Type>1</Type><TypeName>{_e(d.type_name)}</TypeName></DocumentType>
        <Subject>{_e(d.subject)}</Subject>
        <SignerInfo><FullName>{_e(d.signer)}</FullName></SignerInfo>
      </MessageHeader>
    </edXMLHeader>
    <edXMLAttachments>
      <AttachmentData>
        <AttachmentName>{_e(d.attachment_name)}</AttachmentName>
        <ContentType>application/pdf</ContentType>
        <Data>{d.b64}</Data>
      </AttachmentData>
    </edXMLAttachments>
  </edXMLEnvelope>
</edXML>""".encode()


def unclosed_from(d: DocData) -> bytes:
    text = canonical(d).decode("utf-8")
    return text.replace("</edXML:OrganId></edXML:From>", "</edXML:OrganId>", 1).encode()


def status_packet(from_id: str, to_organ: str, document_id: str, code: str,
                  description: str, timestamp: str = "2026/11/21 10:00:00") -> bytes:
    """A status packet shaped like the samples' status_*.edxml (edxml.md §4)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>{from_id}</edXML:OrganId></edXML:From>
        <edXML:ResponseFor>
          <edXML:OrganId>{to_organ}</edXML:OrganId>
          <edXML:Code>125/STTTT-VP</edXML:Code>
          <edXML:PromulgationDate>2026/11/21</edXML:PromulgationDate>
          <edXML:DocumentId>{document_id}</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StaffInfo><edXML:Department>Văn thư</edXML:Department><edXML:Staff>Trần Thị B</edXML:Staff></edXML:StaffInfo>
        <edXML:StatusCode>{code}</edXML:StatusCode>
        <edXML:Description>{_e(description)}</edXML:Description>
        <edXML:Timestamp>{timestamp}</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>""".encode()

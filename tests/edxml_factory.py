"""Packets for the edXML tests and the benchmark, made in one place.

Tests that mutate XML need a small packet whose every byte they can see, so the
templates below are hand-written text rather than writer output: a test that breaks
the writer must not also silently change what the reader tests feed in. Sized packets
come from the public builder, because the benchmark must measure what a vendor's
adapter would really send.
"""

from __future__ import annotations

import base64
import io
import os
import random
import zipfile
from datetime import date, datetime
from pathlib import Path

from bus.edxml import Edoc, EdocBuilder, packet_bytes

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"

KB = 1024
MB = 1024 * 1024
SIZES: dict[str, int] = {"5 KB": 5 * KB, "100 KB": 100 * KB, "2 MB": 2 * MB, "20 MB": 20 * MB}

# The SDK example bundle, after the one documented correction (README.md there).
OFFICIAL_SAMPLES: tuple[str, ...] = (
    "edoc.edxml",
    "edoc_new.edxml",
    "edoc_replacement.edxml",
    "edoc_revocation.edxml",
    "edoc_update.edxml",
    "status.edxml",
    "status_acceptance_03.edxml",
    "status_assignment_04.edxml",
    "status_cancellation_13.edxml",
    "status_change-acceptance_15.edxml",
    "status_change-rejection_16.edxml",
    "status_finish_06.edxml",
    "status_inbox_01.edxml",
    "status_processing_05.edxml",
    "status_rejection_02.edxml",
)
# edoc.edxml's attachment is a JMeter template expression, not base64 (see test_samples).
JMETER_PLACEHOLDER = b"${__StringFromFile(test.txt,,,)}"


def samples_dir() -> Path:
    """The shared sample folder; overridable so packagers can run the suite elsewhere."""
    override = os.environ.get("LGSP_SAMPLES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "edxml-samples"


def sample_bytes(name: str) -> bytes:
    return (samples_dir() / name).read_bytes()


def small_pdf() -> bytes:
    """A tiny but structurally complete PDF: the reader sniffs ``%PDF-`` as its format."""
    return (
        b"%PDF-1.4\n"
        b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
        b"trailer << /Root 1 0 R >>\n"
        b"%%EOF\n"
    )


def small_zip(member: str = "vanban.doc", content: bytes = b"noi dung van ban") -> bytes:
    """What the Java SDK sends: the file zipped, then base64-encoded."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, content)
    return buffer.getvalue()


def repaired_edoc_sample() -> bytes:
    """edoc.edxml with its placeholder replaced by real base64; every other quirk kept."""
    data = sample_bytes("edoc.edxml")
    assert data.count(JMETER_PLACEHOLDER) == 1
    return data.replace(JMETER_PLACEHOLDER, base64.b64encode(small_pdf()))


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible content, like a scanned page; seeded so runs are comparable."""
    return random.Random(seed).randbytes(size)


def builder(sender: str = "000.00.00.G22", *recipients: str) -> EdocBuilder:
    """A builder with every field a clerk's system fills, so packets look like traffic."""
    return (
        EdocBuilder(sender)
        .to(*(recipients or ("000.00.00.H37",)))
        .code("123", "UBND-VP")
        .promulgated("Lạng Sơn", date(2024, 5, 17))
        .document_type(1, "Công văn")
        .subject("V/v triển khai trục liên thông văn bản cấp tỉnh", "Nội dung công văn")
        .signer("Nguyễn Văn An", "Chủ tịch", "KT. CHỦ TỊCH")
        .document_id("000.00.00.G22,2024/05/17,123/UBND-VP")
        .due(date(2024, 6, 1))
        .priority(1)
        .trace("000.00.00.G22", datetime(2024, 5, 17, 9, 30, 0))
    )


def edoc_with_attachments(contents: list[bytes], *, check: bool = False) -> Edoc:
    b = builder()
    for i, content in enumerate(contents):
        b.attach(f"tep-dinh-kem-{i + 1}.pdf", content)
    return b.build(check=check)


def sized_edoc_bytes(target: int, seed: int = 0) -> bytes:
    """A valid packet of about ``target`` bytes (within 1 %), one random attachment.

    The header's size is measured rather than guessed, then the attachment is sized so
    its base64 (4 bytes per 3) fills the rest.
    """
    overhead = len(packet_bytes(edoc_with_attachments([b""])))
    raw = max(0, (target - overhead) * 3 // 4)
    data = packet_bytes(edoc_with_attachments([random_bytes(raw, seed)]))
    assert abs(len(data) - target) <= max(64, target // 100), (len(data), target)
    return data


# ---------------------------------------------------------------- text templates
# Minimal valid packets in the SDK's own style (default namespace on the root, edXML:
# inside the envelope). Mutation tests replace substrings; each substring they rely on
# appears exactly once.

MINIMAL_PDF_BASE64 = base64.b64encode(small_pdf()).decode("ascii")

MINIMAL_EDOC = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>
        </edXML:From>
        <edXML:To>
          <edXML:OrganId>000.00.00.H37</edXML:OrganId>
          <edXML:OrganName>UBND tỉnh Lạng Sơn</edXML:OrganName>
        </edXML:To>
        <edXML:DocumentId>000.00.00.G22,2019/01/17,7816/VPCP-TTĐT</edXML:DocumentId>
        <edXML:Code>
          <edXML:CodeNumber>7816</edXML:CodeNumber>
          <edXML:CodeNotation>VPCP-TTĐT</edXML:CodeNotation>
        </edXML:Code>
        <edXML:PromulgationInfo>
          <edXML:Place>Hà Nội</edXML:Place>
          <edXML:PromulgationDate>2019/01/17</edXML:PromulgationDate>
        </edXML:PromulgationInfo>
        <edXML:DocumentType>
          <edXML:Type>1</edXML:Type>
          <edXML:TypeName>Công văn</edXML:TypeName>
        </edXML:DocumentType>
        <edXML:Subject>V/v kết nối, liên thông phần mềm quản lý văn bản</edXML:Subject>
        <edXML:SignerInfo>
          <edXML:Position>Bộ trưởng</edXML:Position>
          <edXML:FullName>Trương Minh Tuấn</edXML:FullName>
        </edXML:SignerInfo>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:Timestamp>2019/01/17 08:00:00</edXML:Timestamp>
        </edXML:TraceHeader>
        <edXML:Bussiness>
          <edXML:BussinessDocType>0</edXML:BussinessDocType>
          <edXML:BussinessDocReason>Văn bản điện tử mới</edXML:BussinessDocReason>
        </edXML:Bussiness>
      </edXML:TraceHeaderList>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:1</edXML:ContentId>
          <edXML:ContentType>application/pdf</edXML:ContentType>
          <edXML:AttachmentName>congvan.pdf</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>cid:1</ContentId>
      <AttachmentName>congvan.pdf</AttachmentName>
      <ContentType>application/pdf</ContentType>
      <ContentTransferEncoded>{MINIMAL_PDF_BASE64}</ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
"""

MINIMAL_STATUS = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>000.00.00.H37</edXML:OrganId>
        </edXML:From>
        <edXML:ResponseFor>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:Code>7816/VPCP-TTĐT</edXML:Code>
          <edXML:PromulgationDate>2019/01/17</edXML:PromulgationDate>
          <edXML:DocumentId>000.00.00.G22,2019/01/17,7816/VPCP-TTĐT</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StatusCode>03</edXML:StatusCode>
        <edXML:Description>Tiếp nhận</edXML:Description>
        <edXML:Timestamp>2019/01/18 10:15:00</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"""


def line_of(text: str | bytes, needle: str | bytes) -> int:
    """1-based line of the first occurrence, to state where an error must point."""
    if isinstance(text, str):
        assert isinstance(needle, str)
        index = text.index(needle)
        return text.count("\n", 0, index) + 1
    assert isinstance(needle, bytes)
    index = text.index(needle)
    return text.count(b"\n", 0, index) + 1


def replace_once(text: str, old: str, new: str) -> str:
    """str.replace that fails loudly when the template no longer has the anchor."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)

"""contract.md's bad-input table, row by row, at the reader.

Every refusal must carry the documented code (agencies look codes up; a MalformedXml
where the table says DtdForbidden sends them to the wrong page), point at the line and
path where the table promises it, come back in under a second — bombs included — and
neither read a local file nor open a connection.

Where the reader's defence is a byte scan, each attack is also sent as UTF-16, which a
byte scan for ``<!DOCTYPE`` does not see but libxml2 decodes and obeys.

The no-access guarantee is checked in a child process that reads each external-reference
packet while three detectors watch: an audit hook (Python-level ``open`` and socket
events in the reading thread), a FIFO standing in for the local file (libxml2 opens files
in C, invisible to audit hooks, but an open of a FIFO can be seen from the writing side)
and a listening socket standing in for the remote host. Control cases prove each
detector fires when access does happen.

This module is the shared part of the test_bad_input_*.py files: the table's rows
(CASES), the helpers that read them, and the autouse fixture each of those files imports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from lxml import etree

from bus.edxml import DEFAULT_LIMITS, Limits, read_packet
from bus.errors import (
    AttachmentInvalid,
    DtdForbidden,
    InvalidIdentifier,
    MalformedXml,
    PacketError,
    SchemaInvalid,
    TooDeep,
    UnsupportedPacket,
)
from tests.edxml_factory import (
    MINIMAL_EDOC,
    MINIMAL_PDF_BASE64,
    MINIMAL_STATUS,
    NS,
    XMLDSIG,
    line_of,
    replace_once,
)

SECURITY_BOUND = 1.0  # seconds; contract.md: "comes back fast (under 1 s, bombs included)"

MH = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
CTE = "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
SUBJECT_OPEN = "<edXML:Subject>V/v"
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"


@pytest.fixture(autouse=True)
def _clean_lxml_error_log() -> None:
    """Isolates each case from lxml's per-thread error log (see test_reader's leak test)."""
    etree.clear_error_log()


def refuse(data: bytes, error: type[PacketError], limits: Limits = DEFAULT_LIMITS
           ) -> PacketError:
    """Reads ``data`` expecting exactly ``error``; any other exception fails the test."""
    start = time.perf_counter()
    with pytest.raises(PacketError) as caught:
        read_packet(data, limits=limits)
    elapsed = time.perf_counter() - start
    refused = caught.value
    assert type(refused) is error, f"expected {error.code}, got {refused}"
    assert refused.code == error.code
    assert elapsed < SECURITY_BOUND, f"refusal took {elapsed:.3f} s"
    return refused


def utf16(text: str) -> bytes:
    """The same packet as UTF-16 (with BOM), declared as such."""
    return replace_once(text, 'encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")


def with_doctype(doctype: str, *, reference: str = "", template: str = MINIMAL_EDOC) -> str:
    text = replace_once(template, DECLARATION, DECLARATION + doctype + "\n")
    if reference:
        text = replace_once(text, SUBJECT_OPEN, f"<edXML:Subject>{reference}V/v")
    return text


# ---------------------------------------------------------------- the table's rows


@dataclass(frozen=True)
class Bad:
    """One row of the table, instantiated: the input and what the reader must say."""

    id: str
    text: str | bytes
    error: type[PacketError]
    line: int | None = None
    path: str | None = None
    limits: Limits = field(default=DEFAULT_LIMITS)

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8") if isinstance(self.text, str) else self.text


def _mutated(old: str, new: str, template: str = MINIMAL_EDOC) -> str:
    return replace_once(template, old, new)


def _at(text: str, needle: str) -> int:
    return line_of(text, needle)


LOL = (
    '<!DOCTYPE edXML [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>"
)
XINCLUDE = f'<xi:include xmlns:xi="{XINCLUDE_NS}" href="file:///etc/passwd" parse="text"/>'
XINCLUDE_IN_SIGNATURE = _mutated(
    "</edXML:TraceHeaderList>",
    f'</edXML:TraceHeaderList>\n      <Signature xmlns="{XMLDSIG}">{XINCLUDE}</Signature>',
)
XINCLUDE_IN_SUBJECT = _mutated(SUBJECT_OPEN, f"<edXML:Subject>{XINCLUDE}V/v")
# The namespace written with character references: no byte of it reads "XInclude".
XINCLUDE_HIDDEN = XINCLUDE.replace(XINCLUDE_NS, "&#104;ttp://www.w3.org/2001/&#x58;Include")
XINCLUDE_HIDDEN_IN_SIGNATURE = XINCLUDE_IN_SIGNATURE.replace(XINCLUDE, XINCLUDE_HIDDEN)
# The schemas let other namespaces in only under the header's Signature slot; elsewhere
# an XInclude is also schema-invalid, and must still be reported as XInclude.
XINCLUDE_IN_DSIG_OBJECT = _mutated(
    "</edXML:TraceHeaderList>",
    f'</edXML:TraceHeaderList>\n      <Object xmlns="{XMLDSIG}">{XINCLUDE}</Object>',
)
XINCLUDE_IN_STATUS_SIGNATURE = _mutated(
    "</edXML:MessageHeader>",
    f'</edXML:MessageHeader>\n      <Signature xmlns="{XMLDSIG}">{XINCLUDE}</Signature>',
    MINIMAL_STATUS,
)
XINCLUDE_AS_ROOT = DECLARATION + XINCLUDE
XINCLUDE_WITH_BAD_IDENTIFIER = replace_once(
    XINCLUDE_IN_SIGNATURE, "<edXML:OrganId>000.00.00.H37</edXML:OrganId>",
    "<edXML:OrganId>not an identifier</edXML:OrganId>")
XINCLUDE_AND_DEEP = _mutated(SUBJECT_OPEN, "<edXML:Subject>" + "<a>" * 40 + XINCLUDE
                             + "</a>" * 40 + "V/v")
DEEP_40 = f'<?xml version="1.0"?>\n<edXML xmlns="{NS}">\n' + "<a>" * 40 + "</a>" * 40 + "</edXML>"


def _with_b64(content: str) -> str:
    return _mutated(MINIMAL_PDF_BASE64, content)


def _identifier(value: str) -> str:
    return _mutated("<edXML:OrganId>000.00.00.H37</edXML:OrganId>",
                    f"<edXML:OrganId>{value}</edXML:OrganId>")


def _attachment_name(value: str) -> str:
    return MINIMAL_EDOC.replace("congvan.pdf", value)


_MISSING_SUBJECT = _mutated(
    "        <edXML:Subject>V/v kết nối, liên thông phần mềm quản lý văn bản</edXML:Subject>\n",
    "",
)
_BAD_DATE = _mutated("<edXML:PromulgationDate>2019/01/17", "<edXML:PromulgationDate>2019/02/30")
_BAD_DATE_FORMAT = _mutated("<edXML:PromulgationDate>2019/01/17",
                            "<edXML:PromulgationDate>17-01-2019")
_BAD_TIMESTAMP = _mutated("2019/01/18 10:15:00", "2019/01/18 25:15:00", MINIMAL_STATUS)
_BAD_TIMESTAMP_DAY = _mutated("2019/01/18 10:15:00", "2019/02/29 10:15:00", MINIMAL_STATUS)
_UNKNOWN_ELEMENT = _mutated(
    "        <edXML:SignerInfo>",
    "        <edXML:Signatory>X</edXML:Signatory>\n        <edXML:SignerInfo>",
)
_UNKNOWN_CID = _mutated("<ContentId>cid:1</ContentId>", "<ContentId>cid:2</ContentId>")
_NO_ATTACHMENT = MINIMAL_EDOC[: MINIMAL_EDOC.index("  <AttachmentEncoded>")] + "</edXML>\n"
_MANIFEST_NAME = "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference/AttachmentName"
_TO_ID = f"{MH}/To/OrganId"
_TO_LINE = _at(MINIMAL_EDOC, "<edXML:OrganId>000.00.00.H37")
_NAME_LINE = _at(MINIMAL_EDOC, "<edXML:AttachmentName>")
_CTE_LINE = _at(MINIMAL_EDOC, "<ContentTransferEncoded>")

CASES: list[Bad] = [
    # not XML, truncated, mismatched tags
    Bad("not-xml", "Đây không phải XML", MalformedXml, line=1),
    Bad("empty-body", b"", MalformedXml),
    Bad("json-body", '{"edXML": {}}', MalformedXml, line=1),
    Bad("truncated", MINIMAL_EDOC[: len(MINIMAL_EDOC) // 2], MalformedXml),
    Bad("truncated-in-base64", MINIMAL_EDOC[: MINIMAL_EDOC.index(MINIMAL_PDF_BASE64) + 40],
        MalformedXml),
    Bad("mismatched-tags", _mutated("</edXML:Subject>", "</edXML:Subjekt>"), MalformedXml,
        line=_at(MINIMAL_EDOC, "<edXML:Subject>")),
    Bad("undeclared-unknown-prefix", _mutated("<edXML:Subject>", "<foo:Subject>")
        .replace("</edXML:Subject>", "</foo:Subject>"), MalformedXml),
    # DOCTYPE, entities, external references, XInclude
    Bad("doctype", with_doctype("<!DOCTYPE edXML>"), DtdForbidden, line=2),
    Bad("internal-entity", with_doctype('<!DOCTYPE edXML [<!ENTITY x "Xin chào">]>',
                                        reference="&x;"), DtdForbidden, line=2),
    Bad("billion-laughs", with_doctype(LOL, reference="&lol9;"), DtdForbidden, line=2),
    Bad("external-entity-etc-passwd",
        with_doctype('<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                     reference="&x;"), DtdForbidden, line=2),
    Bad("parameter-entity-etc-passwd",
        with_doctype('<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'),
        DtdForbidden, line=2),
    Bad("external-dtd-etc-passwd", with_doctype('<!DOCTYPE edXML SYSTEM "file:///etc/passwd">'),
        DtdForbidden, line=2),
    Bad("doctype-on-status", with_doctype("<!DOCTYPE edXML>", template=MINIMAL_STATUS),
        DtdForbidden, line=2),
    Bad("xinclude-in-subject", XINCLUDE_IN_SUBJECT, DtdForbidden),
    Bad("xinclude-in-signature", XINCLUDE_IN_SIGNATURE, DtdForbidden),
    Bad("xinclude-in-signature-char-refs", XINCLUDE_HIDDEN_IN_SIGNATURE, DtdForbidden),
    Bad("xinclude-in-xmldsig-object", XINCLUDE_IN_DSIG_OBJECT, DtdForbidden),
    Bad("xinclude-in-status-signature", XINCLUDE_IN_STATUS_SIGNATURE, DtdForbidden),
    Bad("xinclude-as-root", XINCLUDE_AS_ROOT, DtdForbidden),
    Bad("xinclude-before-a-bad-identifier", XINCLUDE_WITH_BAD_IDENTIFIER, DtdForbidden),
    Bad("xinclude-deep-in-subject", XINCLUDE_AND_DEEP, DtdForbidden),
    # The same attacks where a byte scan cannot see them.
    Bad("doctype-utf16", utf16(with_doctype("<!DOCTYPE edXML>")), DtdForbidden),
    Bad("internal-entity-utf16",
        utf16(with_doctype('<!DOCTYPE edXML [<!ENTITY x "Xin chào">]>', reference="&x;")),
        DtdForbidden),
    Bad("billion-laughs-utf16", utf16(with_doctype(LOL, reference="&lol9;")), DtdForbidden),
    Bad("external-entity-etc-passwd-utf16",
        utf16(with_doctype('<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                           reference="&x;")), DtdForbidden),
    Bad("parameter-entity-etc-passwd-utf16",
        utf16(with_doctype('<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>')),
        DtdForbidden),
    Bad("external-dtd-etc-passwd-utf16",
        utf16(with_doctype('<!DOCTYPE edXML SYSTEM "file:///etc/passwd">')), DtdForbidden),
    Bad("xinclude-in-subject-utf16", utf16(XINCLUDE_IN_SUBJECT), DtdForbidden),
    Bad("xinclude-in-signature-utf16", utf16(XINCLUDE_IN_SIGNATURE), DtdForbidden),
    # nesting
    Bad("nesting-10000", f'<edXML xmlns="{NS}">' + "<a>" * 10_000 + "</a>" * 10_000 + "</edXML>",
        TooDeep),
    Bad("nesting-10000-in-subject",
        _mutated(SUBJECT_OPEN, "<edXML:Subject>" + "<a>" * 10_000 + "</a>" * 10_000 + "V/v"),
        TooDeep),
    Bad("nesting-40", DEEP_40, TooDeep, line=3, path="/edXML" + "/a" * 32),
    # namespace and packet kind
    Bad("wrong-namespace",
        _mutated(f'<edXML xmlns="{NS}">', '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2018">'),
        UnsupportedPacket, line=2, path="/edXML"),
    Bad("wrong-root",
        _mutated(f'<edXML xmlns="{NS}">', f'<Packet xmlns="{NS}">').replace("</edXML>\n",
                                                                           "</Packet>\n"),
        UnsupportedPacket, line=2, path="/Packet"),
    Bad("no-namespace", '<?xml version="1.0"?>\n<edXML><edXMLEnvelope/></edXML>',
        UnsupportedPacket, line=2, path="/edXML"),
    Bad("soap-envelope",
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/>'
        "</soap:Envelope>", UnsupportedPacket, line=1, path="/Envelope"),
    # schema-invalid, with line and path of the first error
    Bad("missing-subject", _MISSING_SUBJECT, SchemaInvalid,
        line=_at(_MISSING_SUBJECT, "<edXML:MessageHeader>"), path=MH),
    Bad("date-2019-02-30", _BAD_DATE, SchemaInvalid,
        line=_at(_BAD_DATE, "<edXML:PromulgationDate>"),
        path=f"{MH}/PromulgationInfo/PromulgationDate"),
    Bad("date-wrong-format", _BAD_DATE_FORMAT, SchemaInvalid,
        line=_at(_BAD_DATE_FORMAT, "<edXML:PromulgationDate>"),
        path=f"{MH}/PromulgationInfo/PromulgationDate"),
    Bad("timestamp-hour-25", _BAD_TIMESTAMP, SchemaInvalid,
        line=_at(_BAD_TIMESTAMP, "<edXML:Timestamp>"), path=f"{MH}/Timestamp"),
    Bad("timestamp-2019-02-29", _BAD_TIMESTAMP_DAY, SchemaInvalid,
        line=_at(_BAD_TIMESTAMP_DAY, "<edXML:Timestamp>"), path=f"{MH}/Timestamp"),
    Bad("unknown-element", _UNKNOWN_ELEMENT, SchemaInvalid,
        line=_at(_UNKNOWN_ELEMENT, "<edXML:Signatory>"), path=f"{MH}/Signatory"),
    Bad("unknown-element-unprefixed",
        _UNKNOWN_ELEMENT.replace("edXML:", "").replace(f' xmlns:edXML="{NS}"', ""),
        SchemaInvalid, line=_at(_UNKNOWN_ELEMENT, "<edXML:Signatory>"), path=f"{MH}/Signatory"),
    Bad("two-from", _mutated("        <edXML:To>", "        <edXML:From><edXML:OrganId>"
                             "000.00.00.H41</edXML:OrganId></edXML:From>\n        <edXML:To>"),
        SchemaInvalid, line=_TO_LINE - 1, path=f"{MH}/From[2]"),
    # attachments
    Bad("base64-invalid-characters", _with_b64(MINIMAL_PDF_BASE64[:20] + "!*$%" +
                                               MINIMAL_PDF_BASE64[24:]),
        AttachmentInvalid, line=_CTE_LINE, path=CTE),
    Bad("base64-non-ascii", _with_b64("QUJDàáạ="), AttachmentInvalid, line=_CTE_LINE, path=CTE),
    Bad("base64-missing-padding", _with_b64("QUI"), AttachmentInvalid, line=_CTE_LINE,
        path=CTE),
    Bad("base64-padding-inside", _with_b64("QU=I"), AttachmentInvalid, line=_CTE_LINE, path=CTE),
    Bad("base64-data-after-padding", _with_b64("QUI=QUJD"), AttachmentInvalid, line=_CTE_LINE,
        path=CTE),
    Bad("base64-jmeter-placeholder", _with_b64("${__StringFromFile(test.txt,,,)}"),
        AttachmentInvalid, line=_CTE_LINE, path=CTE),
    Bad("base64-invalid-in-cdata", _with_b64("<![CDATA[QUI=QUJD]]>"), AttachmentInvalid,
        line=_CTE_LINE, path=CTE),
    Bad("attachment-not-in-manifest", _UNKNOWN_CID, AttachmentInvalid,
        line=_at(_UNKNOWN_CID, "<ContentId>cid:2"),
        path="/edXML/AttachmentEncoded/Attachment/ContentId"),
    Bad("manifest-entry-without-attachment", _NO_ATTACHMENT, AttachmentInvalid,
        line=_at(_NO_ATTACHMENT, "<edXML:Reference>"),
        path="/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference"),
    Bad("file-name-traversal", _attachment_name("../../etc/passwd"), AttachmentInvalid,
        line=_NAME_LINE, path=_MANIFEST_NAME),
    Bad("file-name-windows-drive", _attachment_name("C:\\x.pdf"), AttachmentInvalid,
        line=_NAME_LINE, path=_MANIFEST_NAME),
    Bad("file-name-tab", _attachment_name("cong\tvan.pdf"), AttachmentInvalid,
        line=_NAME_LINE, path=_MANIFEST_NAME),
    Bad("file-name-c1-control", _attachment_name("cong\u0085van.pdf"), AttachmentInvalid,
        line=_NAME_LINE, path=_MANIFEST_NAME),
    Bad("file-name-bidi-override", _attachment_name("hoadon\u202efdp.exe"), AttachmentInvalid,
        line=_NAME_LINE, path=_MANIFEST_NAME),
    Bad("file-name-dot-dot", _attachment_name(".."), AttachmentInvalid, line=_NAME_LINE,
        path=_MANIFEST_NAME),
    Bad("attachment-over-per-file-cap", MINIMAL_EDOC, AttachmentInvalid, line=_CTE_LINE,
        path=CTE, limits=Limits(max_attachment_bytes=100)),
    # identifiers
    Bad("identifier-with-space", _identifier("000.00.00 H37"), InvalidIdentifier,
        line=_TO_LINE, path=_TO_ID),
    Bad("identifier-with-tab", _identifier("000.00.00.H37\t"), InvalidIdentifier,
        line=_TO_LINE, path=_TO_ID),
    Bad("identifier-with-zero-width-space", _identifier("000.00.00.\u200bH37"),
        InvalidIdentifier, line=_TO_LINE, path=_TO_ID),
    Bad("identifier-with-c1-control", _identifier("000.00.00.H37\u0085"), InvalidIdentifier,
        line=_TO_LINE, path=_TO_ID),
    Bad("identifier-36-characters", _identifier("A" * 36), InvalidIdentifier,
        line=_TO_LINE, path=_TO_ID),
    Bad("identifier-of-sender",
        _mutated("<edXML:OrganId>000.00.00.G22</edXML:OrganId>\n          <edXML:OrganName>",
                 "<edXML:OrganId>000.00.00.G 22</edXML:OrganId>\n          <edXML:OrganName>"),
        InvalidIdentifier, line=_at(MINIMAL_EDOC, "<edXML:OrganId>000.00.00.G22"),
        path=f"{MH}/From/OrganId"),
    Bad("identifier-in-status-response-for",
        _mutated("<edXML:OrganId>000.00.00.G22</edXML:OrganId>",
                 "<edXML:OrganId>000.00.00.G22 </edXML:OrganId>", MINIMAL_STATUS),
        InvalidIdentifier, line=_at(MINIMAL_STATUS, "<edXML:OrganId>000.00.00.G22"),
        path=f"{MH}/ResponseFor/OrganId"),
]

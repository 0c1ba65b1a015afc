"""The tolerant reader's policy: every producer variant of edxml.md §9, and what the bus does.

Each variant is a named :class:`Rule` with one disposition:

* ``accepted`` — read as meant, with a :class:`~bus.errors.Notice` of the rule's code;
* ``normalised`` — read as meant, and receivers get corrected bytes (only the offending
  texts are rewritten, see :mod:`bus.edxml.markup`); the sender's bytes are kept;
* ``refused`` — an error of the rule's code whose message names the real problem.

Accepting and normalising rules run where the second pass reads the value they judge
(``trace``, ``attachments``, ``dates``, ``frame``), at no cost to packets without the
variant. Refusing rules run only once a packet has already been refused
(:func:`explain_refusal`, :func:`root_refusal`): they replace the generic first error of
the XSD with the one that tells the sender what is really wrong.

The registry is the single list: ``schemas/edxml/README.md`` carries it as a table and a
test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lxml import etree

from bus import errors
from bus.edxml.findings import Findings, element_path, line_of
from bus.schemas import EDXML_NS

Disposition = Literal["accepted", "normalised", "refused"]

PRE_QCVN_NS: Final = "http://www.go.vn/eDoc"
SOAP_NAMESPACES: Final = frozenset({
    "http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"})


@dataclass(frozen=True)
class Rule:
    """One variant real producers send (edxml.md §9) and the bus's answer to it."""

    name: str
    disposition: Disposition
    code: str
    seen: str
    outcome: str


RULES: Final[tuple[Rule, ...]] = (
    Rule("trace-header-without-organ-id", "accepted", "TraceHeaderWithoutOrganId",
         "TraceHeader with only a Timestamp (real axis packets of 2025)",
         "read as a hop with no organisation"),
    Rule("trace-header-organ-id-empty", "accepted", "TraceHeaderOrganIdEmpty",
         "TraceHeader OrganId empty or the text null",
         "read as a hop with no organisation"),
    Rule("trace-header-extra-children", "accepted", "TraceHeaderExtraChildren",
         "Business (BusinessName, BusinessCode) and StaffInfo (StaffName, StaffCode) inside "
         "a TraceHeader",
         "ignored, as the official parser does; forwarded as sent"),
    Rule("trace-header-list-attributes", "accepted", "TraceHeaderListAttributes",
         "id, version, mustUnderstand, actor attributes on TraceHeaderList (.NET SOAP habit)",
         "ignored; forwarded as sent"),
    Rule("empty-signature-block", "accepted", "EmptySignatureBlock",
         "`<DigitalSignature/>` or an empty Signature from producers that never sign",
         "the packet counts as unsigned (never as badly signed)"),
    Rule("content-id-forms", "accepted", "ContentIdForm",
         "cid:X in the manifest and X in the attachment, or the reverse",
         "matched with the cid: prefix stripped (RFC 2392)"),
    Rule("day-first-dates", "normalised", "DayFirstDate",
         "dd/MM/yyyy in PromulgationDate, DueDate, ResponseFor/PromulgationDate",
         "receivers get yyyy/MM/dd; the sender's bytes are kept"),
    Rule("dialect-translated", "normalised", "DialectTranslated",
         "a configured system's own dialect (see bus/edxml/dialects.py)",
         "translated to standard bytes before reading; the sender's bytes are kept"),
    Rule("pre-qcvn-namespace", "refused", "UnsupportedPacket",
         "root EdXMLEnvelope / edXMLEnvelope in the pre-QCVN namespace http://www.go.vn/eDoc",
         "refused: the pre-2016 format is named"),
    Rule("soap-envelope", "refused", "UnsupportedPacket",
         "a SOAP envelope posted as if it were a packet",
         "refused: the SOAP endpoint is named"),
    Rule("root-without-namespace", "refused", "UnsupportedPacket",
         "a root element in no namespace",
         "refused: the missing xmlns is named"),
    Rule("status-fields-in-header", "refused", "SchemaInvalid",
         "Status / StatusCode directly under edXMLHeader, no MessageHeader",
         "refused: the official parser reads it as an empty status"),
    Rule("attachment-outside-attachment-encoded", "refused", "AttachmentInvalid",
         "the file in edXMLAttachments/AttachmentData, no TraceHeaderList",
         "refused: the official parser drops the attachment silently"),
    Rule("dialect-not-configured", "refused", "UnsupportedPacket",
         "a known dialect from a system not configured with it",
         "refused: the dialect and the directory setting are named"),
    Rule("not-well-formed", "refused", "MalformedXml",
         "XML that is not well formed (an unclosed From)",
         "refused with the parser's line"),
)

BY_NAME: Final = {rule.name: rule for rule in RULES}


def rule(name: str) -> Rule:
    return BY_NAME[name]


TRACE_WITHOUT_ORGAN_ID: Final = rule("trace-header-without-organ-id")
TRACE_ORGAN_ID_EMPTY: Final = rule("trace-header-organ-id-empty")
TRACE_EXTRA_CHILDREN: Final = rule("trace-header-extra-children")
TRACE_LIST_ATTRIBUTES: Final = rule("trace-header-list-attributes")
EMPTY_SIGNATURE: Final = rule("empty-signature-block")
CONTENT_ID_FORMS: Final = rule("content-id-forms")
DAY_FIRST_DATES: Final = rule("day-first-dates")
DIALECT_TRANSLATED: Final = rule("dialect-translated")
POLICY_CODES: Final = frozenset(r.code for r in RULES if r.disposition != "refused")
NORMALISING_CODES: Final = frozenset(r.code for r in RULES if r.disposition == "normalised")


def policy_notices(notices: list[errors.Notice]) -> list[dict[str, object]]:
    """The notices the tolerance policy gave, as recorded on the accepted document."""
    return [{"rule": n.extra.get("rule"), "code": n.code, "message": n.message,
             "line": n.line, "path": n.path} for n in notices if n.code in POLICY_CODES]


def corrected(notices: list[errors.Notice]) -> bool:
    """Whether receivers get other bytes than the sender's (beyond the bus's TraceHeader)."""
    return any(n.code in NORMALISING_CODES for n in notices)


def tolerated(findings: Findings, applied: Rule, el: etree._Element, message: str,
              **extra: object) -> None:
    """Records that ``applied`` (an accepting or normalising rule) let ``el`` through."""
    findings.notice(applied.code, el, message, rule=applied.name, **extra)


# ---------------------------------------------------------------- refusals


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def root_refusal(root: etree._Element) -> errors.PacketError:
    """Why a root that is not QCVN's ``edXML`` is refused, as precisely as it can be said."""
    qname = etree.QName(root)
    namespace, name = qname.namespace, qname.localname
    line, path = line_of(root), "/" + name
    if namespace == PRE_QCVN_NS:
        return errors.UnsupportedPacket(
            f"root element '{name}' is in the namespace {PRE_QCVN_NS}, the eDoc format from "
            "before QCVN 102:2016; the bus reads only QCVN 102:2016 edXML (root 'edXML' in "
            f"{EDXML_NS}). The sending system must be upgraded to the standard's format.",
            details={"rule": "pre-qcvn-namespace"}, line=line, path=path)
    if namespace in SOAP_NAMESPACES:
        return errors.UnsupportedPacket(
            f"this is a SOAP envelope ('{name}' in {namespace}), not an edXML packet: post "
            "the edXML packet itself (root 'edXML') as the body here, or send the SOAP "
            "request to the bus's SOAP endpoint (/soap, SendEdoc or SendStatus).",
            details={"rule": "soap-envelope"}, line=line, path=path)
    if namespace is None:
        return errors.UnsupportedPacket(
            f"root element '{name}' is in no namespace; an edXML packet has root 'edXML' "
            f"in the namespace {EDXML_NS}: declare xmlns=\"{EDXML_NS}\" on the root.",
            details={"rule": "root-without-namespace"}, line=line, path=path)
    return errors.UnsupportedPacket(
        f"root element is '{name}' in {namespace}; an edXML packet has root "
        f"'edXML' in namespace {EDXML_NS}", line=line, path=path)


_Q: Final = "{" + EDXML_NS + "}"
_STATUS_FIELDS: Final = ("Status", "StatusCode")


def _status_in_header(root: etree._Element) -> errors.PacketError | None:
    for header in root.iter(_Q + "edXMLHeader"):
        if header.find(_Q + "MessageHeader") is not None:
            continue
        for child in header:
            if isinstance(child.tag, str) and _local(child) in _STATUS_FIELDS:
                return errors.SchemaInvalid(
                    f"edXMLHeader holds the status field {_local(child)} directly, with no "
                    "MessageHeader; the official parser reads this as an empty status. Put "
                    "From, ResponseFor, StatusCode, Description and Timestamp inside "
                    "edXMLHeader/MessageHeader.",
                    line=line_of(child), path=element_path(child),
                    details={"rule": "status-fields-in-header"})
    return None


def _attachments_elsewhere(root: etree._Element) -> errors.PacketError | None:
    for element in root.iter():
        if not isinstance(element.tag, str) or _local(element) != "edXMLAttachments":
            continue
        data = next((c for c in element if isinstance(c.tag, str)
                     and _local(c) == "AttachmentData"), None)
        where = data if data is not None else element
        return errors.AttachmentInvalid(
            "the attachment is outside AttachmentEncoded, in edXMLAttachments/AttachmentData: "
            "the official parser drops it without a word. Put each file in "
            "AttachmentEncoded/Attachment (ContentId, AttachmentName, ContentType, "
            "ContentTransferEncoded), AttachmentEncoded being the root's second child, with "
            "a manifest Reference per file and a TraceHeaderList in the header.",
            line=line_of(where), path=element_path(where),
            details={"rule": "attachment-outside-attachment-encoded"})
    return None


def explain_refusal(root: etree._Element) -> errors.PacketError | None:
    """A precise refusal for a packet the XSD refused, when a refusing rule recognises it.

    Runs only on refused packets, so its cost never touches an accepted one.
    """
    from bus.edxml.dialects import unconfigured_dialect

    for check in (_status_in_header, _attachments_elsewhere, unconfigured_dialect):
        found = check(root)
        if found is not None:
            return found
    return None

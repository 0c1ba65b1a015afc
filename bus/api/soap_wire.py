"""The SOAP 1.1 envelopes of the door (:mod:`bus.api.soap`): reading a call, writing a
receipt, a status, a Fault or the WSDL. No I/O beyond the packaged WSDL template."""

from __future__ import annotations

import binascii
import copy
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

from lxml import etree

from bus import errors, xmlsafe
from bus.store import Accepted, queries
from bus.xmlsafe import scan

NS: Final = "urn:lgsp-bus:soap:v1"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
WSDL_SOAP: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
OPERATIONS: Final = ("SendEdoc", "SendStatus", "GetEdocStatus")
MAX_DEPTH: Final = 16
MAX_ELEMENTS: Final = 1000
"""An envelope holds a dozen elements; the packet travels as base64 text."""
_WHAT: Final = "SOAP request"
_ENVELOPE: Final = f"{{{SOAP_ENV}}}Envelope"
_HEADER: Final = f"{{{SOAP_ENV}}}Header"
_BODY: Final = f"{{{SOAP_ENV}}}Body"
_API_KEY: Final = f"{{{NS}}}ApiKey"
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WHITESPACE: Final = b" \t\r\n"


@dataclass(frozen=True)
class SoapCall:
    """What the envelope asks; ``encoded`` is the packet's base64 text, decoded only once
    the caller is authenticated."""

    operation: str
    api_key: str | None
    encoded: bytes | None = None
    document: str | None = None
    span: tuple[int, int] | None = None
    """Where the packet's text is in the envelope, instead of ``encoded`` (keep_span)."""


def _limits(size: int) -> xmlsafe.Limits:
    return xmlsafe.Limits(max_bytes=size, max_elements=MAX_ELEMENTS, max_depth=MAX_DEPTH)


def _not_soap11(tag: object) -> errors.InvalidRequest:
    hint = " (SOAP 1.2 is not offered)" if tag == f"{{{SOAP12_ENV}}}Envelope" else ""
    return errors.InvalidRequest(f"expected a SOAP 1.1 Envelope in {SOAP_ENV}{hint}")


_KEY_IN_HEADER: Final = scan.Wanted(root=_ENVELOPE, path=(_HEADER, _API_KEY), stop=_BODY,
                                    max_depth=MAX_DEPTH, max_elements=256, what=_WHAT)
"""A real SOAP Header has a handful of elements before the key; past 256 there is none."""


def key_in_prefix(head: bytes, complete: bool) -> str | None:
    """The SOAP Header's ApiKey, read from the first bytes of the body only.

    ``complete``: ``head`` is the whole body. None when the Body starts, the Header ends
    or the prefix runs out first. The prefix gets the same screening as a whole envelope
    (encoding, DOCTYPE, depth), so what is refused here is refused with its own code; it
    is read by :mod:`bus.xmlsafe.scan`, which keeps nothing of an unknown caller's names.
    """
    text = xmlsafe.as_utf8(head, what=_WHAT, partial=not complete)
    xmlsafe.refuse_dtd(text, _WHAT)
    return scan.text_at(text, _KEY_IN_HEADER, complete=complete, wrong_root=_not_soap11)


def decode_packet(text: bytes, cap: int) -> bytes:
    compact = text.translate(None, _WHITESPACE)
    if len(compact) // 4 * 3 > cap:
        raise errors.PayloadTooLarge(
            f"the packet is about {len(compact) // 4 * 3} bytes; this bus accepts at most "
            f"{cap}", details={"limit": cap})
    try:
        return binascii.a2b_base64(compact, strict_mode=True)
    except binascii.Error as exc:
        raise errors.MalformedXml(
            f"the packet element is not valid base64 ({exc}); send the edXML file encoded "
            "with the standard alphabet and '=' padding", path="/Envelope/Body/packet",
        ) from None


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    found = parent.find(f"{{{NS}}}{name}")
    return found if found is not None else parent.find(name)


def parse_call(data: bytes, *, lift: bool = True, keep_span: bool = False) -> SoapCall:
    """Envelope bytes to the operation asked for, or the refusal the caller gets.
    ``keep_span``: the packet's place in ``data`` rather than a copy of its text (an
    envelope spooled to disk, see :mod:`bus.api.soap_spooled`)."""
    data = xmlsafe.as_utf8(data, what=_WHAT, max_elements=MAX_ELEMENTS)
    xmlsafe.refuse_dtd(data, _WHAT)
    lifted = xmlsafe.lift_text(data, b"packet") if lift else None
    reduced = lifted.data if lifted else data
    root = xmlsafe.parse(reduced, _limits(len(reduced)), _WHAT)  # the body cap came first
    if root.tag != _ENVELOPE:
        raise _not_soap11(root.tag)
    key = root.findtext(f"{_HEADER}/{_API_KEY}")
    body = root.find(_BODY)
    operation = body[0] if body is not None and len(body) else None
    name = etree.QName(operation).localname if operation is not None else ""
    if operation is None or operation.tag != f"{{{NS}}}{name}" or name not in OPERATIONS:
        raise errors.InvalidRequest(f"the SOAP Body must hold one of {', '.join(OPERATIONS)} "
                                    f"in namespace {NS}")
    if name == "GetEdocStatus":
        found = _child(operation, "id")
        document = (found.text or "").strip() if found is not None else ""
        if not document:
            raise errors.InvalidRequest("GetEdocStatus needs the id from the receipt")
        return SoapCall(name, key, document=document)
    packet = _child(operation, "packet")
    if packet is None:
        raise errors.InvalidRequest(f"{name} needs a packet element (the base64 edXML file)")
    if lifted is None:
        return SoapCall(name, key, encoded=(packet.text or "").encode("utf-8"))
    if (packet.text or "") != lifted.token:
        return parse_call(data if isinstance(data, bytes) else bytes(data), lift=False)
    start, end = lifted.span
    if keep_span:
        return SoapCall(name, key, span=(start, end))
    return SoapCall(name, key, encoded=data[start:end])


def _text(value: object) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", str(value))


def _add(parent: etree._Element, name: str, value: object | None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    if value is not None:
        element.text = _text(value).lower() if isinstance(value, bool) else _text(value)
    return element


def _envelope(content: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "lgsp": NS})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(content)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def receipt_xml(operation: str, accepted: Accepted) -> bytes:
    response = etree.Element(f"{{{NS}}}{operation}Response")
    receipt = _add(response, "receipt", None)
    for field in ("id", "document_id", "kind"):
        _add(receipt, field, accepted.receipt.get(field, ""))
    _add(receipt, "existing", accepted.existing)
    recipients = _add(receipt, "recipients", None)
    for entry in accepted.receipt.get("recipients", []):
        item = _add(recipients, "item", None)
        for field in ("recipient", "delivered_to", "destination", "delivery"):
            _add(item, field, entry.get(field, ""))
    return _envelope(response)


def status_xml(detail: queries.DocumentDetail) -> bytes:
    response = etree.Element(f"{{{NS}}}GetEdocStatusResponse")
    status = _add(response, "status", None)
    for field in ("id", "kind", "sender", "document_id"):
        _add(status, field, getattr(detail, field))
    if detail.subject is not None:
        _add(status, "subject", detail.subject)
    _add(status, "received_at", detail.received_at)
    items = _add(status, "deliveries", None)
    for d in detail.deliveries:
        item = _add(items, "item", None)
        for field in ("recipient", "effective_recipient", "destination", "state", "attempts",
                      "last_error", "delivered_at"):
            value = getattr(d, field)
            if value is not None:
                _add(item, field, value)
    reported = _add(status, "business_statuses", None)
    for s in detail.business_statuses:
        item = _add(reported, "item", None)
        for field in ("code", "meaning", "organ_id", "reported_at", "received_at"):
            value = getattr(s, field)
            if value is not None:
                _add(item, field, value)
    return _envelope(response)


def fault_xml(exc: errors.LgspError) -> bytes:
    client = exc.http_status < 500
    said = client or isinstance(exc, errors.Unavailable)
    message = exc.message if said else "the bus cannot serve this request now"
    fault = etree.Element(f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soap:Client" if client else "soap:Server"
    etree.SubElement(fault, "faultstring").text = _text(message)
    error = etree.SubElement(etree.SubElement(fault, "detail"), f"{{{NS}}}Error")
    _add(error, "code", exc.code)
    _add(error, "message", message)
    if client and exc.line is not None:
        _add(error, "line", exc.line)
    if client and exc.path:
        _add(error, "path", exc.path)
    if isinstance(exc, errors.TooManyRequests):
        _add(error, "retry_after", exc.details.get("retry_after", 1))
    return _envelope(fault)


@cache
def _wsdl_template() -> etree._ElementTree:
    data = files("bus.api").joinpath("lgsp.wsdl").read_bytes()
    return etree.ElementTree(xmlsafe.parse_trusted(data))


def wsdl_for(address: str) -> bytes:
    tree = copy.deepcopy(_wsdl_template())
    for element in tree.iter(f"{{{WSDL_SOAP}}}address"):
        element.set("location", address)
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")

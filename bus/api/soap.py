"""SOAP 1.1 door for document systems built on WSDL toolkits (.NET, Java JAX-WS, zeep).

The operations are thin: ``SendEdoc``/``SendStatus`` carry the packet base64-encoded and
go through the same :meth:`bus.app.Bus.submit` as REST; ``GetEdocStatus`` reads through
:mod:`bus.queries` with the same visibility. Refusals are SOAP Faults carrying the same
stable code as REST, with HTTP 500 as SOAP 1.1 requires.

The envelope is untrusted XML and gets the packet reader's treatment: size cap while the
bytes arrive, DOCTYPE refused before libxml2 sees it, no DTD, entities or network, a
depth limit. The base64 text of a large packet would exceed libxml2's text-node guard, so
(as the edXML reader does with attachments) it is lifted out by a byte scan before
parsing and decoded strictly afterwards; if the marker does not come back as the text of
the ``packet`` element, the envelope is parsed as sent, so the shortcut never changes a
verdict.
"""

from __future__ import annotations

import binascii
import copy
import re
import secrets
import threading
import traceback
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from lxml import etree
from starlette.concurrency import run_in_threadpool

from bus import errors, queries
from bus.api import API_KEY_HEADER, count_refusal, read_capped, viewer_for
from bus.app import Bus
from bus.store import Accepted

NS: Final = "urn:lgsp-bus:soap:v1"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
WSDL_SOAP: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
OPERATIONS: Final = ("SendEdoc", "SendStatus", "GetEdocStatus")
MAX_DEPTH: Final = 16
_XML_TYPE: Final = "text/xml; charset=utf-8"
_PACKET_OPEN = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?packet)(?:\s[^<>]*)?>")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WHITESPACE: Final = b" \t\r\n"

log = structlog.get_logger("lgsp.api.soap")
_local = threading.local()


def soap_cap(max_body_bytes: int) -> int:
    """The envelope cap: a packet at the body cap, base64-encoded (4/3, plus line breaks
    every 76 characters), plus room for the envelope. The decoded packet is then held to
    ``max_body_bytes`` itself by the reader."""
    return max_body_bytes * 4 // 3 + max_body_bytes // 25 + 64 * 1024


@dataclass(frozen=True)
class SoapCall:
    """What the envelope asks; ``encoded`` is the packet's base64 text, decoded only once
    the caller is authenticated."""

    operation: str
    api_key: str | None
    encoded: bytes | None = None
    document: str | None = None


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 dtd_validation=False, huge_tree=False, remove_comments=True,
                                 remove_pis=True, collect_ids=False)
        _local.parser = parser
    return parser


def _parse(data: bytes) -> etree._Element:
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        message = str(exc.msg if hasattr(exc, "msg") else exc)
        line = exc.lineno or None
        if "huge" in message.lower() or "Resource limit" in message:
            raise errors.PayloadTooLarge("a text node of the SOAP request exceeds the "
                                         "parser's limit", line=line) from None
        if "depth" in message.lower():
            raise errors.TooDeep("the SOAP request is nested too deeply", line=line) from None
        raise errors.MalformedXml(f"the SOAP request is not well-formed XML: {message}",
                                  line=line) from None
    except ValueError as exc:
        raise errors.MalformedXml(f"the SOAP request is not readable as XML: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise errors.DtdForbidden("the SOAP request declares a DTD; it must not")
    if root.xpath("boolean(" + "/*" * (MAX_DEPTH + 1) + ")"):
        raise errors.TooDeep(f"the SOAP request is nested more than {MAX_DEPTH} levels deep")
    return root


def _lift(data: bytes) -> tuple[bytes, str, tuple[int, int]] | None:
    """The envelope with the packet's base64 replaced by a marker, if it is plain text."""
    match = _PACKET_OPEN.search(data)
    if match is None or match.group(0).endswith(b"/>"):
        return None
    start = match.end()
    end = data.find(b"</" + match.group(1), start)
    if end < 0 or data.find(b"<", start, end) >= 0 or data.find(b"&", start, end) >= 0:
        return None
    token = f"lgsp.packet.{secrets.token_hex(8)}"
    return data[:start] + token.encode() + data[end:], token, (start, end)


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


def parse_call(data: bytes, *, lift: bool = True) -> SoapCall:
    """Envelope bytes to the operation asked for, or the refusal the caller gets."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise errors.DtdForbidden("the SOAP request contains a DOCTYPE or entity declaration; "
                                  "it must not carry DTDs, entities or external references")
    lifted = _lift(data) if lift else None
    root = _parse(lifted[0] if lifted else data)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        hint = " (SOAP 1.2 is not offered)" if root.tag == f"{{{SOAP12_ENV}}}Envelope" else ""
        raise errors.InvalidRequest(f"expected a SOAP 1.1 Envelope in {SOAP_ENV}{hint}")
    key = root.findtext(f"{{{SOAP_ENV}}}Header/{{{NS}}}ApiKey")
    body = root.find(f"{{{SOAP_ENV}}}Body")
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
    if (packet.text or "") != lifted[1]:
        return parse_call(data, lift=False)
    start, end = lifted[2]
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
    message = exc.message if client else "the bus cannot serve this request now"
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
    return _envelope(fault)


class _Internal(errors.LgspError):
    code = "InternalError"


@cache
def _wsdl_template() -> etree._ElementTree:
    data = files("bus.api").joinpath("lgsp.wsdl").read_bytes()
    trusted = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.ElementTree(etree.fromstring(data, trusted))


def wsdl_for(address: str) -> bytes:
    tree = copy.deepcopy(_wsdl_template())
    for element in tree.iter(f"{{{WSDL_SOAP}}}address"):
        element.set("location", address)
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")


def soap_router(bus: Bus) -> APIRouter:
    router = APIRouter(tags=["soap"])
    cap = bus.settings.max_body_bytes

    @router.get("/soap", summary="The WSDL (GET /soap?wsdl)", response_class=Response,
                responses={200: {"content": {"text/xml": {}}}})
    async def wsdl(request: Request) -> Response:
        if not any(k.lower() == "wsdl" for k in request.query_params):
            raise errors.InvalidRequest("SOAP clients POST to /soap; the WSDL is at /soap?wsdl")
        address = str(request.url.replace(query=""))
        return Response(wsdl_for(address), media_type=_XML_TYPE)

    @router.post("/soap", summary="SOAP 1.1 endpoint: SendEdoc, SendStatus, GetEdocStatus",
                 response_class=Response, openapi_extra={"requestBody": {
                     "required": True, "content": {"text/xml": {"schema": {"type": "string"}}}}})
    async def endpoint(request: Request) -> Response:
        operation = ""
        submitted = False
        try:
            header_key = request.headers.get(API_KEY_HEADER)
            system = bus.credentials.authenticate(header_key) if header_key else None
            data = await read_capped(request, soap_cap(cap))
            call = await run_in_threadpool(parse_call, data)
            del data
            operation = call.operation
            if system is None and not call.api_key:
                raise errors.Unauthenticated(
                    f"no credential: send the system's API key in the {API_KEY_HEADER} HTTP "
                    f"header or in the SOAP header element ApiKey ({NS})")
            system = system or bus.credentials.authenticate(call.api_key)
            structlog.contextvars.bind_contextvars(system=system, operation=operation)
            if call.encoded is not None:
                packet = await run_in_threadpool(decode_packet, call.encoded, cap)
                expect = "edoc" if operation == "SendEdoc" else "status"
                submitted = True
                accepted = await run_in_threadpool(bus.submit, packet, system=system,
                                                   channel="soap", expect=expect)
                structlog.contextvars.bind_contextvars(document=accepted.document)
                return Response(receipt_xml(operation, accepted), media_type=_XML_TYPE)
            assert call.document is not None
            structlog.contextvars.bind_contextvars(document=call.document)
            detail = await run_in_threadpool(queries.document_detail, bus.store.engine,
                                             call.document, viewer_for(bus, system))
            return Response(status_xml(detail), media_type=_XML_TYPE)
        except errors.LgspError as exc:
            if not submitted and operation != "GetEdocStatus":
                count_refusal(bus, exc, "soap")
            log.info("soap.fault", code=exc.code, reason=exc.message)
            return Response(fault_xml(exc), status_code=500, media_type=_XML_TYPE)
        except Exception as exc:
            log.error("soap.failed", error=type(exc).__name__, traceback=traceback.format_exc())
            failure = _Internal("unexpected failure")
            return Response(fault_xml(failure), status_code=500, media_type=_XML_TYPE)

    return router

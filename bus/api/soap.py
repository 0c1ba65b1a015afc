"""SOAP 1.1 door for document systems built on WSDL toolkits (.NET, Java JAX-WS, zeep).

The operations are thin: ``SendEdoc``/``SendStatus`` carry the packet base64-encoded and
go through the same :meth:`bus.app.Bus.submit` as REST; ``GetEdocStatus`` reads through
:mod:`bus.store.queries` with the same visibility. Refusals are SOAP Faults carrying the same
stable code as REST, with HTTP 500 as SOAP 1.1 requires.

The caller is known before the body is read: a key in the X-API-Key header is checked
at once; otherwise only a prefix of the body (:data:`PREFIX_BYTES`) is read and
pull-parsed up to the SOAP Header's ApiKey, and nothing more is read, buffered or parsed
until that key is accepted.

The envelope is untrusted XML and goes through :mod:`bus.xmlsafe` like every XML the bus
reads: size cap while the bytes arrive, UTF-16/32 decoded before a DOCTYPE is looked for,
an element count, no DTD, entities or network, a depth limit. The base64 text of a large
packet would exceed libxml2's text-node guard, so (as the edXML reader does with
attachments) it is lifted out by a byte scan before parsing and decoded strictly
afterwards; if the marker does not come back as the text of the ``packet`` element, the
envelope is parsed as sent, so the shortcut never changes a verdict.
"""

from __future__ import annotations

import binascii
import copy
import re
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from lxml import etree
from starlette.concurrency import run_in_threadpool

from bus import errors, xmlsafe
from bus.api import (
    API_KEY_HEADER,
    admit,
    check_declared_length,
    client_certificate,
    count_refusal,
    too_large,
    viewer_for,
)
from bus.api.bodies import SPOOL_FROM
from bus.api.soap_spooled import spooled_call, whole_or_spool
from bus.app import Bus
from bus.store import Accepted, outage, queries
from bus.store.blobs import Spool
from bus.xmlsafe import scan

NS: Final = "urn:lgsp-bus:soap:v1"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
WSDL_SOAP: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
OPERATIONS: Final = ("SendEdoc", "SendStatus", "GetEdocStatus")
MAX_DEPTH: Final = 16
MAX_ELEMENTS: Final = 1000
"""An envelope holds a dozen elements; the packet travels as base64 text."""
PREFIX_BYTES: Final = 64 * 1024
"""How much of an unauthenticated body is read looking for the SOAP Header's ApiKey."""
_WHAT: Final = "SOAP request"
_ENVELOPE: Final = f"{{{SOAP_ENV}}}Envelope"
_HEADER: Final = f"{{{SOAP_ENV}}}Header"
_BODY: Final = f"{{{SOAP_ENV}}}Body"
_API_KEY: Final = f"{{{NS}}}ApiKey"
_XML_TYPE: Final = "text/xml; charset=utf-8"
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WHITESPACE: Final = b" \t\r\n"

log = structlog.get_logger("lgsp.api.soap")


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


class _Internal(errors.LgspError):
    code = "InternalError"


@cache
def _wsdl_template() -> etree._ElementTree:
    data = files("bus.api").joinpath("lgsp.wsdl").read_bytes()
    return etree.ElementTree(xmlsafe.parse_trusted(data))


def wsdl_for(address: str) -> bytes:
    tree = copy.deepcopy(_wsdl_template())
    for element in tree.iter(f"{{{WSDL_SOAP}}}address"):
        element.set("location", address)
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")


class _Body:
    """The request body, read in two steps: a prefix while the caller is unknown, the
    rest once it is. The size cap holds for both, as in :func:`bus.api.read_capped`."""

    def __init__(self, request: Request, cap: int) -> None:
        check_declared_length(request, cap)
        self._chunks: AsyncIterator[bytes] = request.stream().__aiter__()
        self._cap = cap
        self._held: list[bytes] = []
        self._total = 0
        self._ended = False

    async def _more(self) -> bool:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._ended = True
            return False
        self._total += len(chunk)
        if self._total > self._cap:
            raise too_large(f"more than {self._cap}", self._cap)
        self._held.append(chunk)
        return True

    async def prefix(self, size: int) -> tuple[bytes, bool]:
        """At most ``size`` bytes, and whether they are the whole body."""
        while self._total < size and await self._more():
            pass
        held = b"".join(self._held)
        self._held = [held]
        return held[:size], self._ended and len(held) <= size

    async def whole(self) -> bytes:
        while await self._more():
            pass
        return b"".join(self._held)


def wsdl_address(bus: Bus, request: Request) -> str:
    """Where clients must POST: ``public_url`` when configured, else the address the
    server is listening on. Never the Host header, which the client chooses."""
    public = getattr(bus.settings, "public_url", "")
    if public:
        return public.rstrip("/") + "/soap"
    server = request.scope.get("server")
    host, port = server if server else (bus.settings.host, bus.settings.port)
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{port}/soap"


def soap_router(bus: Bus) -> APIRouter:
    router = APIRouter(tags=["soap"])
    cap = bus.settings.max_body_bytes

    async def authenticated(request: Request, body: _Body) -> str:
        """The calling system, having read no more than :data:`PREFIX_BYTES` of the body."""
        header_key = request.headers.get(API_KEY_HEADER)
        if header_key or client_certificate(request) is not None:
            return admit(bus, request, header_key)
        head, complete = await body.prefix(PREFIX_BYTES)
        key = await run_in_threadpool(key_in_prefix, head, complete)
        if key is None:
            raise errors.Unauthenticated(
                f"no credential: send the system's API key in the {API_KEY_HEADER} HTTP "
                f"header or in the SOAP header element ApiKey ({NS}), within the first "
                f"{PREFIX_BYTES // 1024} KB of the request")
        return admit(bus, request, key)

    @router.get("/soap", summary="The WSDL (GET /soap?wsdl)", response_class=Response,
                responses={200: {"content": {"text/xml": {}}}})
    async def wsdl(request: Request) -> Response:
        if not any(k.lower() == "wsdl" for k in request.query_params):
            raise errors.InvalidRequest("SOAP clients POST to /soap; the WSDL is at /soap?wsdl")
        return Response(wsdl_for(wsdl_address(bus, request)), media_type=_XML_TYPE)

    @router.post("/soap", summary="SOAP 1.1 endpoint: SendEdoc, SendStatus, GetEdocStatus",
                 response_class=Response, openapi_extra={"requestBody": {
                     "required": True, "content": {"text/xml": {"schema": {"type": "string"}}}}})
    async def endpoint(request: Request) -> Response:
        operation = ""
        submitted = False
        try:
            body = _Body(request, soap_cap(cap))
            system = await authenticated(request, body)
            structlog.contextvars.bind_contextvars(system=system)
            data = await whole_or_spool(body, bus.store.files, SPOOL_FROM)
            del body
            spooled: Spool | None = None
            if isinstance(data, bytes):
                call = await run_in_threadpool(parse_call, data)
            else:
                try:
                    found, spooled = await run_in_threadpool(spooled_call, data,
                                                             bus.store.files, cap)
                finally:
                    data.discard()
                assert isinstance(found, SoapCall)
                call = found
            del data
            operation = call.operation
            structlog.contextvars.bind_contextvars(operation=operation)
            if call.encoded is not None or spooled is not None:
                packet: bytes | Spool
                if spooled is not None:
                    packet = spooled
                else:
                    assert call.encoded is not None
                    packet = await run_in_threadpool(decode_packet, call.encoded, cap)
                expect = "edoc" if operation == "SendEdoc" else "status"
                submitted = True
                try:
                    accepted = await run_in_threadpool(bus.submit, packet, system=system,
                                                       channel="soap", expect=expect)
                finally:
                    if spooled is not None:
                        spooled.discard()
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
            refusal = outage(exc)
            if refusal is not None:
                log.warning("soap.unavailable", code=refusal.code, reason=refusal.message)
                return Response(fault_xml(refusal), status_code=500, media_type=_XML_TYPE)
            log.error("soap.failed", error=type(exc).__name__, traceback=traceback.format_exc())
            failure = _Internal("unexpected failure")
            return Response(fault_xml(failure), status_code=500, media_type=_XML_TYPE)

    return router

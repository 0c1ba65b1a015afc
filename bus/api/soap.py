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

import traceback
from collections.abc import AsyncIterator
from typing import Final

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from bus import errors
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
from bus.api.hot import in_thread
from bus.api.soap_spooled import spooled_call, whole_or_spool
from bus.api.soap_wire import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    NS,
    OPERATIONS,
    SOAP12_ENV,
    SOAP_ENV,
    WSDL_SOAP,
    SoapCall,
    decode_packet,
    fault_xml,
    key_in_prefix,
    parse_call,
    receipt_xml,
    status_xml,
    wsdl_for,
)
from bus.app import Bus
from bus.store import outage, queries
from bus.store.blobs import Spool

__all__ = [
    "MAX_DEPTH", "MAX_ELEMENTS", "NS", "OPERATIONS", "PREFIX_BYTES", "SOAP12_ENV", "SOAP_ENV",
    "WSDL_SOAP", "SoapCall", "decode_packet", "fault_xml", "key_in_prefix", "parse_call",
    "receipt_xml", "soap_cap", "soap_router", "status_xml", "wsdl_address", "wsdl_for",
]


PREFIX_BYTES: Final = 64 * 1024
"""How much of an unauthenticated body is read looking for the SOAP Header's ApiKey."""
_XML_TYPE: Final = "text/xml; charset=utf-8"

log = structlog.get_logger("lgsp.api.soap")


def soap_cap(max_body_bytes: int) -> int:
    """The envelope cap: a packet at the body cap, base64-encoded (4/3, plus line breaks
    every 76 characters), plus room for the envelope. The decoded packet is then held to
    ``max_body_bytes`` itself by the reader."""
    return max_body_bytes * 4 // 3 + max_body_bytes // 25 + 64 * 1024


class _Internal(errors.LgspError):
    code = "InternalError"


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
        key = await in_thread(key_in_prefix, head, complete)
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
                call = await in_thread(parse_call, data)
            else:
                try:
                    found, spooled = await in_thread(spooled_call, data,
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
                    packet = await in_thread(decode_packet, call.encoded, cap)
                expect = "edoc" if operation == "SendEdoc" else "status"
                submitted = True
                try:
                    accepted = await in_thread(bus.submit, packet, system=system,
                                                       channel="soap", expect=expect)
                finally:
                    if spooled is not None:
                        spooled.discard()
                structlog.contextvars.bind_contextvars(document=accepted.document)
                return Response(receipt_xml(operation, accepted), media_type=_XML_TYPE)
            assert call.document is not None
            structlog.contextvars.bind_contextvars(document=call.document)
            detail = await in_thread(queries.document_detail, bus.store.engine,
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

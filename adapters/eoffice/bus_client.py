"""eOffice's side of the other direction: sending to the bus's own SOAP endpoint.

eOffice pushes, so it needs no inbound adapter: it calls the bus's ``/soap`` door
(``SendEdoc`` / ``SendStatus``, ``bus/api/lgsp.wsdl``) as any WSDL-toolkit client would.
This is that call, written with zeep from the bus's published WSDL, so the simulator and
the README's instructions for eOffice integrators exercise the same path.

The address given is used for the call even if the WSDL names another (a bus behind a
reverse proxy may not know the address eOffice reaches it by).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import zeep
import zeep.exceptions
from lxml import etree

from adapters.eoffice.protocol import screen_answer, zeep_settings
from bus import errors
from bus.edxml import read_packet

__all__ = ["BusFault", "BusReceipt", "BusRecipient", "operation_for", "send_to_bus"]

# zeep ships py.typed without annotations; calls go through Any rather than a cast each.
_zeep: Any = zeep

BUS_NS: Final = "urn:lgsp-bus:soap:v1"
BUS_BINDING: Final = f"{{{BUS_NS}}}LgspBusSoapBinding"


@dataclass(frozen=True)
class BusRecipient:
    recipient: str
    delivered_to: str
    destination: str
    delivery: str


@dataclass(frozen=True)
class BusReceipt:
    """The bus's receipt: the document and its deliveries are committed."""

    id: str
    document_id: str
    kind: str
    existing: bool
    recipients: tuple[BusRecipient, ...]


class BusFault(Exception):  # noqa: N818 - the bus's answer, named as the bus names it
    """The bus refused (soap:Client: correct the packet) or failed (soap:Server: retry)."""

    def __init__(self, faultcode: str, code: str, message: str) -> None:
        super().__init__(f"{faultcode} {code}: {message}")
        self.faultcode, self.code, self.message = faultcode, code, message


def operation_for(packet: bytes) -> str:
    """SendStatus for a status packet, SendEdoc otherwise (the bus judges bad packets)."""
    try:
        kind = read_packet(packet).kind
    except errors.LgspError:
        return "SendEdoc"
    return "SendStatus" if kind == "status" else "SendEdoc"


def _fault(exc: zeep.exceptions.Fault) -> BusFault:
    code = ""
    if isinstance(exc.detail, etree._Element):
        code = exc.detail.findtext(f"{{{BUS_NS}}}Error/{{{BUS_NS}}}code") or ""
    return BusFault(str(exc.code or ""), code, str(exc.message or ""))


def _receipt(value: Any) -> BusReceipt:
    items = getattr(getattr(value, "recipients", None), "item", None) or []
    return BusReceipt(
        id=str(value.id), document_id=str(value.document_id), kind=str(value.kind),
        existing=bool(value.existing),
        recipients=tuple(BusRecipient(str(i.recipient), str(i.delivered_to),
                                      str(i.destination), str(i.delivery)) for i in items),
    )


def send_to_bus(bus_soap_url: str, api_key: str, packet: bytes, *,
                timeout_s: float = 30.0, operation: str | None = None) -> BusReceipt:
    """Submits ``packet``; returns the receipt or raises :class:`BusFault`.

    Transport failures (connection refused, timeout) propagate as requests exceptions:
    eOffice must then send again, and the bus answers a repeat with the original receipt.
    """
    address = bus_soap_url.split("?", 1)[0]
    transport = _zeep.Transport(timeout=timeout_s, operation_timeout=timeout_s)
    transport.session.hooks["response"].append(screen_answer)
    try:
        client = _zeep.Client(f"{address}?wsdl", transport=transport, settings=zeep_settings())
        service = client.create_service(BUS_BINDING, address)
        call = getattr(service, operation or operation_for(packet))
        answer = call(packet=packet, _soapheaders={"ApiKey": api_key})
    except zeep.exceptions.Fault as exc:
        raise _fault(exc) from exc
    finally:
        transport.session.close()
    return _receipt(answer)

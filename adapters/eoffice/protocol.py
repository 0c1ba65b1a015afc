"""The eOffice interface's fixed vocabulary, shared by the adapter and the simulator.

There is no published eOffice specification, so ``eoffice.wsdl`` is the contract; this
module holds what a WSDL cannot express (the fault codes and which side of the
retry/refuse line each falls on, the WS-Security namespaces) in one place, so the client
and the simulator cannot drift apart.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib.resources import files
from typing import Any, Final, Literal

import zeep
import zeep.exceptions
from lxml import etree

from bus import errors, xmlsafe

NS: Final = "urn:eoffice:document-exchange:v1"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_SOAP: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
WSSE: Final = ("http://docs.oasis-open.org/wss/2004/01/"
               "oasis-200401-wss-wssecurity-secext-1.0.xsd")

OPERATIONS: Final = {"edoc": "ReceiveDocument", "status": "ReceiveStatus"}
"""Which operation carries which kind of packet."""

Side = Literal["Client", "Server"]

FAULT_CODES: Final[dict[str, Side]] = {
    "InvalidDocument": "Client",
    "UnknownRecipient": "Client",
    "Unauthorized": "Client",
    "InvalidRequest": "Client",
    "UnknownRecord": "Client",
    "Busy": "Server",
    "DatabaseUnavailable": "Server",
    "InternalError": "Server",
}
"""Every detail code eOffice may answer, with the SOAP 1.1 faultcode it goes with.

``Client`` faults are permanent (the same request will never succeed); ``Server`` faults
are temporary. The adapter trusts the detail code over the faultcode when it knows the
code, because a code is specific and a faultcode is what a toolkit defaulted to.
"""

PERMANENT_CODES: Final = frozenset(c for c, side in FAULT_CODES.items() if side == "Client")
TEMPORARY_CODES: Final = frozenset(c for c, side in FAULT_CODES.items() if side == "Server")


def action(operation: str) -> str:
    """The SOAPAction of ``operation``, as the WSDL's binding declares it."""
    return f"{NS}#{operation}"


@cache
def _wsdl_template() -> etree._ElementTree:
    data = files("adapters.eoffice").joinpath("eoffice.wsdl").read_bytes()
    return etree.ElementTree(xmlsafe.parse_trusted(data))


def wsdl_bytes(address: str | None = None) -> bytes:
    """The packaged WSDL; with ``address``, its soap:address points there."""
    tree = copy.deepcopy(_wsdl_template())
    if address is not None:
        for element in tree.iter(f"{{{WSDL_SOAP}}}address"):
            element.set("location", address)
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")


# zeep ships py.typed without annotations; calls go through Any rather than a cast each.
_zeep: Any = zeep

ANSWER_LIMITS: Final = xmlsafe.Limits(max_bytes=16 * 1024 * 1024, max_elements=10_000,
                                      max_depth=64)
"""What an answer (envelope, fault, WSDL) from the other side may be: the packet travels
towards it, never back, so a few KB is normal and 16 MB is generous."""


def zeep_settings() -> Any:
    """zeep's parse settings for every client the adapters build.

    zeep parses with its own lxml parser, so every body it will read is first screened
    by :func:`screen_answer` (a requests hook); these settings are the second line:
    a DOCTYPE or entity refused, no imports fetched beyond the WSDL itself, libxml2's
    size and depth guards on, no recovery from malformed XML.
    """
    return _zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                          forbid_external=True, xml_huge_tree=False)


def screen_answer(response: Any, *args: object, **kwargs: object) -> None:
    """requests hook: the bus's pre-parse guards (size, UTF-16/32-aware DOCTYPE scan,
    element count) on a body before zeep parses it; an unsafe one is zeep's
    XMLSyntaxError, which callers already treat as a broken answer."""
    body = response.content or b""
    if not body.strip():
        return
    try:
        xmlsafe.screen(body, ANSWER_LIMITS, "answer")
    except errors.PacketError as exc:
        raise _zeep.exceptions.XMLSyntaxError(
            f"unsafe answer from {response.url}: {exc.code}: {exc.message}") from None

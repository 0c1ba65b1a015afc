"""An eOffice on a real loopback socket, speaking ``eoffice.wsdl`` as the README defines it.

No eOffice installation can be had for tests and there is no specification to test
against, so this simulator *is* the executable form of the interface: it answers only
what the WSDL allows, with the fault codes of :mod:`adapters.eoffice.protocol`, and keeps
what a faithful eOffice must keep (one stored item per idempotency key). The adapter's
tests talk to it over sockets through zeep, so envelopes, SOAPAction, WS-Security headers
and HTTP statuses are exercised for real.

Failure modes switch at runtime from the test thread: ``ok()``, ``down()`` (stop
listening; ``ok()`` listens again on the same port), ``slow(seconds)``,
``fault(code, times=None)``, ``http_error(status, times=None)`` (a bare HTTP answer with
no SOAP body, as a proxy or a crashed application server gives), ``bad_credentials()``.

It also plays eOffice in the other direction: :meth:`EofficeSimulator.send_to_bus` calls
the bus's own SOAP endpoint (SendEdoc / SendStatus) with zeep. Standalone::

    python -m adapters.eoffice.simulator --port 8081 [--username lgsp --password-env VAR]
"""

from __future__ import annotations

import argparse
import binascii
import itertools
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

from lxml import etree

from adapters.eoffice.archive import ARCHIVE_OPERATIONS, ArchiveFault, ArchiveService
from adapters.eoffice.bus_client import BusFault, BusReceipt, send_to_bus
from adapters.eoffice.protocol import FAULT_CODES, NS, OPERATIONS, SOAP_ENV, WSSE, action
from adapters.eoffice.protocol import wsdl_bytes as packaged_wsdl
from adapters.simulation import LoopbackServer, OwnedHTTPServer
from bus import errors, xmlsafe
from bus.edxml import read_packet
from bus.migrate.source import Source

__all__ = ["PATH", "BusFault", "BusReceipt", "EofficeSimulator", "Received"]

PATH = "/eoffice/DocumentExchange"
MAX_ENVELOPE_BYTES = 256 * 1024 * 1024
_KIND_OF = {operation: kind for kind, operation in OPERATIONS.items()}
_FIELDS = ("idempotencyKey", "documentId", "recipient", "packet")
_XML = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class Received:
    """One stored document or status, as eOffice filed it."""

    kind: str
    key: str
    document_id: str
    recipient: str
    reference: str
    packet: bytes = field(repr=False)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class SoapFault(Exception):  # noqa: N818 - it is the answer, not an error of the simulator
    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


@dataclass
class _Rules:
    mode: str = "ok"
    delay_s: float = 0.0
    code: str = ""
    status: int = 500
    times: int | None = None
    retry_after: int | None = None


def _parse(body: bytes) -> etree._Element:
    """Through the bus's hardened parser; the packet's base64, which may exceed libxml2's
    text-node guard, is lifted out before parsing and put back on the tree."""
    limits = xmlsafe.Limits(max_bytes=MAX_ENVELOPE_BYTES, max_elements=1000)
    try:
        data = xmlsafe.screen(body, limits, "request")
        lifted = xmlsafe.lift_text(data, b"packet")
        root = xmlsafe.parse(lifted.data if lifted else data, limits, "request")
    except errors.DtdForbidden:
        raise SoapFault("InvalidRequest", "DTDs and entities are not accepted") from None
    except errors.PacketError as exc:
        raise SoapFault("InvalidRequest", exc.message) from None
    if lifted is not None:
        for element in root.iter(f"{{{NS}}}packet"):
            if element.text == lifted.token:
                start, end = lifted.span
                element.text = data[start:end].decode("ascii", "replace")
    return root


def _envelope(content: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "eo": NS})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(content)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def fault_xml(fault: SoapFault) -> bytes:
    side = FAULT_CODES.get(fault.code, "Server")
    node = etree.Element(f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(node, "faultcode").text = f"soap:{side}"
    etree.SubElement(node, "faultstring").text = fault.message
    error = etree.SubElement(etree.SubElement(node, "detail"), f"{{{NS}}}Error")
    etree.SubElement(error, f"{{{NS}}}code").text = fault.code
    etree.SubElement(error, f"{{{NS}}}message").text = fault.message
    if fault.retry_after is not None:
        etree.SubElement(error, f"{{{NS}}}retryAfter").text = str(fault.retry_after)
    return _envelope(node)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so that down() leaves no kept-alive
    # connection still being served, as a stopped eOffice would not.
    server: OwnedHTTPServer[EofficeSimulator]

    def _send(self, status: int, body: bytes, content_type: str = _XML) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        query = self.path.partition("?")[2].lower()
        if "wsdl" in (part.partition("=")[0] for part in query.split("&")):
            self._send(200, packaged_wsdl(self.server.owner.url))
        else:
            self._send(404, b"not found; the WSDL is at ?wsdl", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_ENVELOPE_BYTES:
            self._send(413, b"request too large", "text/plain")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        action_header = (self.headers.get("SOAPAction") or "").strip().strip('"')
        status, reply, content_type = self.server.owner.answer(body, action_header)
        self._send(status, reply, content_type)

    def log_message(self, format: str, *args: object) -> None:
        return None


class EofficeSimulator(LoopbackServer):
    """eOffice's document-exchange service. ``username=None`` turns credentials off."""

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1",
                 username: str | None = None, password: str | None = None,
                 hosted: Iterable[str] | None = None, archive: Source | None = None) -> None:
        super().__init__(_Handler, self, port=port, host=host, name="eoffice-sim")
        self.archive = ArchiveService(archive) if archive is not None else None
        self.username, self.password = username, password
        self.hosted = frozenset(hosted) if hosted is not None else None
        self._lock = threading.Lock()
        self._rules = _Rules()
        self._by_key: dict[str, Received] = {}
        self._sequence = itertools.count(1)
        self.requests: list[tuple[str, int]] = []

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._bind_host

    @host.setter
    def host(self, value: str) -> None:
        self._bind_host = value

    @property
    def url(self) -> str:
        """The SOAP endpoint (the adapter's ``endpoint``); the WSDL is at ``url + '?wsdl'``."""
        return f"http://{self.host}:{self.port}{PATH}"

    # ---- modes -------------------------------------------------------------------------

    def _set(self, rules: _Rules) -> None:
        with self._lock:
            self._rules = rules

    def ok(self) -> None:
        self._set(_Rules())
        self.start()

    def slow(self, seconds: float) -> None:
        """Answer after ``seconds``; what was sent is stored after the wait, as a slow
        eOffice would commit it even though the caller gave up."""
        self._set(_Rules(mode="slow", delay_s=seconds))

    def fault(self, code: str, *, times: int | None = None,
              retry_after: int | None = None) -> None:
        if code not in FAULT_CODES:
            raise ValueError(f"{code!r} is not an eOffice fault code ({sorted(FAULT_CODES)})")
        self._set(_Rules(mode="fault", code=code, times=times, retry_after=retry_after))

    def http_error(self, status: int = 500, *, times: int | None = None) -> None:
        self._set(_Rules(mode="http", status=status, times=times))

    def bad_credentials(self) -> None:
        """Reject every credential, as after eOffice's password was changed."""
        self._set(_Rules(mode="bad_credentials"))

    # ---- what eOffice holds ------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._by_key.values())

    @property
    def documents(self) -> list[Received]:
        return [r for r in self.received if r.kind == "edoc"]

    @property
    def statuses(self) -> list[Received]:
        return [r for r in self.received if r.kind == "status"]

    def reference_for(self, key: str) -> str | None:
        with self._lock:
            found = self._by_key.get(key)
        return found.reference if found else None

    # ---- the service -------------------------------------------------------------------

    def _take_rules(self) -> _Rules:
        with self._lock:
            rules = self._rules
            if rules.mode in ("fault", "http") and rules.times is not None:
                if rules.times <= 0:
                    return _Rules()
                rules.times -= 1
            return _Rules(**vars(rules))

    def answer(self, body: bytes, soap_action: str) -> tuple[int, bytes, str]:
        rules = self._take_rules()
        if rules.mode == "slow" and self._stopping.wait(rules.delay_s):
            self._log("stopped", 503)
            return 503, b"shutting down", "text/plain"
        if rules.mode == "http":
            self._log("http", rules.status)
            page = f"<html><body>HTTP {rules.status}</body></html>".encode()
            return rules.status, page, "text/html; charset=utf-8"
        try:
            reply = self._serve(body, soap_action, rules)
        except SoapFault as fault:
            self._log(fault.code, 500)
            return 500, fault_xml(fault), _XML
        except Exception as exc:
            self._log("InternalError", 500)
            return 500, fault_xml(SoapFault("InternalError", type(exc).__name__)), _XML
        return 200, reply, _XML

    def _log(self, outcome: str, status: int) -> None:
        with self._lock:
            self.requests.append((outcome, status))

    def _authenticate(self, header: etree._Element | None, rules: _Rules) -> None:
        if self.username is None:
            return
        token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken") \
            if header is not None else None
        if token is None:
            raise SoapFault("Unauthorized", "a WS-Security UsernameToken is required")
        password = token.find(f"{{{WSSE}}}Password")
        kind = password.get("Type", "") if password is not None else ""
        if kind and not kind.endswith("#PasswordText"):
            raise SoapFault("Unauthorized", "only PasswordText is accepted")
        given = (token.findtext(f"{{{WSSE}}}Username"),
                 password.text if password is not None else None)
        if rules.mode == "bad_credentials" or given != (self.username, self.password):
            raise SoapFault("Unauthorized", "unknown user or wrong password")

    def _serve(self, body: bytes, soap_action: str, rules: _Rules) -> bytes:
        root = _parse(body)
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise SoapFault("InvalidRequest", f"expected a SOAP 1.1 Envelope ({SOAP_ENV})")
        request = root.find(f"{{{SOAP_ENV}}}Body/*")
        operation = etree.QName(request).localname if request is not None else ""
        if request is not None and operation in ARCHIVE_OPERATIONS and self.archive:
            self._authenticate(root.find(f"{{{SOAP_ENV}}}Header"), rules)
            try:
                return _envelope(self.archive.answer(operation, request))
            except ArchiveFault as fault:
                raise SoapFault(fault.code, fault.message) from None
        if request is None or request.tag != f"{{{NS}}}{operation}" or operation not in _KIND_OF:
            raise SoapFault("InvalidRequest", f"the Body must hold ReceiveDocument or "
                                              f"ReceiveStatus in {NS}")
        if soap_action and soap_action != action(operation):
            raise SoapFault("InvalidRequest", f"SOAPAction {soap_action!r} does not match "
                                              f"{operation}")
        self._authenticate(root.find(f"{{{SOAP_ENV}}}Header"), rules)
        if rules.mode == "fault":
            retry = rules.retry_after if rules.retry_after is not None else (
                5 if rules.code == "Busy" else None)
            raise SoapFault(rules.code, f"simulated {rules.code}", retry)
        values = {name: request.findtext(f"{{{NS}}}{name}") for name in _FIELDS}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise SoapFault("InvalidRequest", f"{operation} lacks {', '.join(missing)}")
        key, document_id, recipient, encoded = (str(values[n]).strip() for n in _FIELDS)
        kind = _KIND_OF[operation]
        packet = self._validate(kind, encoded)
        if self.hosted is not None and recipient not in self.hosted:
            raise SoapFault("UnknownRecipient", f"{recipient} is not hosted by this eOffice")
        with self._lock:
            found = self._by_key.get(key)
            duplicate = found is not None
            if found is None:
                found = Received(kind, key, document_id, recipient,
                                 f"EO-{next(self._sequence):06d}", packet, datetime.now(UTC))
                self._by_key[key] = found
            self.requests.append(("duplicate" if duplicate else "stored", 200))
        return self._ack(operation, found, duplicate)

    @staticmethod
    def _validate(kind: str, encoded: str) -> bytes:
        try:
            packet = binascii.a2b_base64("".join(encoded.split()), strict_mode=True)
        except binascii.Error as exc:
            raise SoapFault("InvalidDocument", f"packet is not valid base64: {exc}") from None
        try:
            read = read_packet(packet)
        except errors.LgspError as exc:
            raise SoapFault("InvalidDocument", f"{exc.code}: {exc.message}") from None
        if read.kind != kind:
            raise SoapFault("InvalidDocument", f"a {read.kind} packet sent as a {kind}")
        return packet

    @staticmethod
    def _ack(operation: str, found: Received, duplicate: bool) -> bytes:
        response = etree.Element(f"{{{NS}}}{operation}Response")
        ack = etree.SubElement(response, f"{{{NS}}}ack")
        etree.SubElement(ack, f"{{{NS}}}reference").text = found.reference
        etree.SubElement(ack, f"{{{NS}}}duplicate").text = "true" if duplicate else "false"
        etree.SubElement(ack, f"{{{NS}}}receivedAt").text = found.at.isoformat()
        return _envelope(response)

    # ---- eOffice → bus -----------------------------------------------------------------

    def send_to_bus(self, bus_soap_url: str, api_key: str, packet: bytes, *,
                    timeout_s: float = 30.0) -> BusReceipt:
        """Sends ``packet`` to the bus as eOffice does: SendEdoc or SendStatus on /soap."""
        return send_to_bus(bus_soap_url, api_key, packet, timeout_s=timeout_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a simulated eOffice SOAP service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--username", help="require a UsernameToken with this user")
    parser.add_argument("--password-env", default="LGSP_EOFFICE_PASSWORD",
                        help="environment variable holding the password (with --username)")
    parser.add_argument("--hosted", action="append", metavar="ORGAN_ID",
                        help="identifiers this eOffice hosts (default: any)")
    args = parser.parse_args(argv)
    password = os.environ.get(args.password_env) if args.username else None
    if args.username and not password:
        parser.error(f"--username needs the password in ${args.password_env}")
    sim = EofficeSimulator(port=args.port, host=args.host, username=args.username,
                           password=password, hosted=args.hosted)
    with sim:
        print(f"eOffice simulator on {sim.url} (WSDL: {sim.url}?wsdl); Ctrl-C stops it",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

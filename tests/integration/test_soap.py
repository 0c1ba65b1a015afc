"""The SOAP 1.1 door with zeep as the real client, loading the WSDL from the server.

Faults must carry the same stable codes as REST; envelope-level attacks (DOCTYPE, bad
base64, oversize) are sent as raw bytes, since a well-behaved client never produces them.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep
import zeep.exceptions
from lxml import etree

from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from tests.api_server import ApiServer, api_key, raw_http, running_bus

NS = "urn:lgsp-bus:soap:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_bus(tmp_path_factory.mktemp("soap")) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ApiServer) -> Any:
    return zeep.Client(server.url + "/soap?wsdl",
                       transport=zeep.Transport(timeout=30, operation_timeout=60))


def key(system: str) -> dict[str, str]:
    return {"ApiKey": f"dev-{system}-key"}


def edoc(*to: str, sender: str = "000.00.12.H37", subject: str = "Công văn về chuyển đổi số",
         attachment: bytes | None = None) -> Edoc:
    builder = EdocBuilder(sender).to(*(to or ("000.00.00.H37",))).subject(subject).signer("B")
    if attachment is not None:
        builder.attach("scan.pdf", attachment)
    return builder.build()


def fault_of(call: Any) -> tuple[str, dict[str, str], str]:
    """(faultcode, detail fields by local name, faultstring) of a call that must fail."""
    with pytest.raises(zeep.exceptions.Fault) as caught:
        call()
    fault = caught.value
    assert fault.detail is not None
    error = fault.detail.find(f"{{{NS}}}Error")
    assert error is not None
    fields = {etree.QName(child).localname: child.text or "" for child in error}
    return fault.code, fields, fault.message


def envelope(body: str, *, api_key: str | None = "dev-eoffice-key",
             namespace: str = SOAP_ENV) -> bytes:
    header = (f'<soap:Header><lgsp:ApiKey>{api_key}</lgsp:ApiKey></soap:Header>'
              if api_key else "")
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{namespace}" '
            f'xmlns:lgsp="{NS}">{header}<soap:Body>{body}</soap:Body></soap:Envelope>').encode()


def send_edoc_body(packet: bytes | str) -> str:
    text = packet if isinstance(packet, str) else base64.b64encode(packet).decode()
    return f"<lgsp:SendEdoc><lgsp:packet>{text}</lgsp:packet></lgsp:SendEdoc>"


def raw_fault(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    out = {"faultcode": fault.findtext("faultcode") or "",
           "faultstring": fault.findtext("faultstring") or ""}
    error = fault.find(f"detail/{{{NS}}}Error")
    assert error is not None
    for child in error:
        out[etree.QName(child).localname] = child.text or ""
    return out


def soap_post(server: ApiServer, data: bytes, headers: dict[str, str] | None = None
              ) -> httpx.Response:
    return httpx.post(server.url + "/soap", content=data, timeout=60,
                      headers={"Content-Type": "text/xml; charset=utf-8", **(headers or {})})


# ------------------------------------------------------------------ WSDL


def wsdl_address(response: httpx.Response) -> str | None:
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    found = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert found is not None
    return found.get("location")


def test_wsdl_names_the_server_address_never_the_host_header(server: ApiServer) -> None:
    """A client-chosen Host must not steer other clients' calls (issue 11, item 6)."""
    assert wsdl_address(httpx.get(server.url + "/soap?wsdl")) == server.url + "/soap"
    spoofed = httpx.get(server.url + "/soap?WSDL", headers={"Host": "attacker.example:8443"})
    assert wsdl_address(spoofed) == server.url + "/soap"
    plain = httpx.get(server.url + "/soap")
    assert plain.status_code == 400 and plain.json()["code"] == "InvalidRequest"


def test_wsdl_names_the_configured_public_url(tmp_path: Path) -> None:
    with running_bus(tmp_path, public_url="https://lgsp.langson.gov.vn/") as running:
        answer = httpx.get(running.url + "/soap?wsdl", headers={"Host": "attacker.example"})
        assert wsdl_address(answer) == "https://lgsp.langson.gov.vn/soap"


# ------------------------------------------------------------------ operations


def test_send_edoc_returns_a_receipt(server: ApiServer, client: Any) -> None:
    packet = edoc("000.00.00.H37", "000.00.32.H37")
    receipt = client.service.SendEdoc(packet=packet_bytes(packet), _soapheaders=key("eoffice"))
    assert receipt.document_id == packet.document_id and receipt.kind == "edoc"
    assert receipt.existing is False
    routed = {(r.recipient, r.destination) for r in receipt.recipients.item}
    assert routed == {("000.00.00.H37", "vnpt_ioffice"), ("000.00.32.H37", "hcm_egov")}
    seen = httpx.get(f"{server.url}/api/v1/edocs/{receipt.id}", headers=api_key("eoffice"))
    assert seen.status_code == 200
    assert {d["id"] for d in seen.json()["deliveries"]} == {
        r.delivery for r in receipt.recipients.item}


def test_key_in_the_http_header_works_too(server: ApiServer) -> None:
    transport = zeep.Transport(timeout=30)
    transport.session.headers.update(api_key("eoffice"))
    with_header = zeep.Client(server.url + "/soap?wsdl", transport=transport)
    receipt = with_header.service.SendEdoc(packet=packet_bytes(edoc()))
    assert receipt.kind == "edoc" and len(receipt.recipients.item) == 1


def test_resubmission_returns_the_original_receipt(client: Any) -> None:
    data = packet_bytes(edoc())
    first = client.service.SendEdoc(packet=data, _soapheaders=key("eoffice"))
    again = client.service.SendEdoc(packet=data, _soapheaders=key("eoffice"))
    assert again.existing is True and first.existing is False
    assert again.id == first.id
    assert again.recipients.item[0].delivery == first.recipients.item[0].delivery


def test_send_status_and_read_it_back(client: Any) -> None:
    packet = edoc()
    original = client.service.SendEdoc(packet=packet_bytes(packet), _soapheaders=key("eoffice"))
    status = status_for(packet, "03", at=datetime(2025, 7, 3, 14, 0, 0))
    receipt = client.service.SendStatus(packet=packet_bytes(status),
                                        _soapheaders=key("vnpt_ioffice"))
    assert receipt.kind == "status" and receipt.recipients.item[0].destination == "eoffice"

    answer = client.service.GetEdocStatus(id=original.id, _soapheaders=key("eoffice"))
    assert answer.id == original.id and answer.sender == "000.00.12.H37"
    assert answer.received_at.tzinfo is not None
    (delivery,) = answer.deliveries.item
    assert (delivery.recipient, delivery.destination, delivery.state, delivery.attempts) == (
        "000.00.00.H37", "vnpt_ioffice", "pending", 0)
    (reported,) = answer.business_statuses.item
    assert (reported.code, reported.meaning, reported.organ_id) == (
        "03", "accepted", "000.00.00.H37")
    assert reported.reported_at == "2025-07-03T14:00:00"
    by_recipient = client.service.GetEdocStatus(id=original.id, _soapheaders=key("vnpt_ioffice"))
    assert by_recipient.id == original.id


# ------------------------------------------------------------------ faults

GOOD = packet_bytes(edoc(attachment=b"%PDF-1.4 scan"))
_ENCODED = re.search(rb"ContentTransferEncoded[^>]*>([^<]+)<", GOOD)
assert _ENCODED is not None

FAULTS: dict[str, tuple[str, bytes, str]] = {
    "not xml": ("SendEdoc", b"definitely not xml", "MalformedXml"),
    "doctype in packet": ("SendEdoc", GOOD.replace(
        b"?>\n", b'?>\n<!DOCTYPE edXML [<!ENTITY e "x">]>\n', 1), "DtdForbidden"),
    "status as edoc": ("SendEdoc", packet_bytes(status_for(
        edoc("000.00.12.H37", sender="000.00.00.H37"), "01")), "UnsupportedPacket"),
    "edoc as status": ("SendStatus", GOOD, "UnsupportedPacket"),
    "schema": ("SendEdoc", re.sub(rb"<edXML:Subject>[^<]*</edXML:Subject>", b"", GOOD),
               "SchemaInvalid"),
    "attachment": ("SendEdoc", GOOD.replace(_ENCODED.group(1), b"!!!!"), "AttachmentInvalid"),
    "identifier": ("SendEdoc", GOOD.replace(b">000.00.00.H37<", b">000 00 00 H37<"),
                   "InvalidIdentifier"),
    "sender": ("SendEdoc", packet_bytes(edoc("000.00.12.H37", sender="000.00.31.H37")),
               "SenderMismatch"),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_refusals_are_client_faults_with_the_rest_code(client: Any, case: str) -> None:
    operation, data, code = FAULTS[case]
    call = getattr(client.service, operation)
    faultcode, detail, message = fault_of(lambda: call(packet=data, _soapheaders=key("eoffice")))
    assert faultcode == "soap:Client"
    assert detail["code"] == code and detail["message"] == message and message
    if code in ("SchemaInvalid", "AttachmentInvalid", "InvalidIdentifier"):
        assert int(detail["line"]) > 0 and detail["path"].startswith("/edXML/")
    if code == "SchemaInvalid":
        assert detail["line"] == "5"
        assert detail["path"] == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def test_duplicate_document_id_is_a_fault(client: Any) -> None:
    first = EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("A").signer("B") \
        .document_id("dup-soap-1").build()
    second = EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("Khác").signer("B") \
        .document_id("dup-soap-1").build()
    client.service.SendEdoc(packet=packet_bytes(first), _soapheaders=key("eoffice"))
    _, detail, _ = fault_of(lambda: client.service.SendEdoc(
        packet=packet_bytes(second), _soapheaders=key("eoffice")))
    assert detail["code"] == "DuplicateDocumentId"


def test_unknown_document_is_not_found(client: Any) -> None:
    faultcode, detail, _ = fault_of(lambda: client.service.GetEdocStatus(
        id="f" * 32, _soapheaders=key("eoffice")))
    assert (faultcode, detail["code"]) == ("soap:Client", "NotFound")


BAD_ENVELOPES: dict[str, tuple[bytes, str, str]] = {
    "doctype": (b'<!DOCTYPE x [<!ENTITY a "b">]>' + envelope(send_edoc_body("")).split(
        b"?>\n", 1)[1], "DtdForbidden", "DOCTYPE"),
    "base64 junk": (envelope(send_edoc_body("PD94bWwg*&#x21;")), "MalformedXml",
                    "not valid base64"),
    "base64 unpadded": (envelope(send_edoc_body("PD94bWwgdmVyc2lvbj0iMS4wIj8+P")),
                        "MalformedXml", "not valid base64"),
    "truncated envelope": (envelope(send_edoc_body("ok"))[:-20], "MalformedXml", "well-formed"),
    "soap 1.2": (envelope(send_edoc_body("ok"), namespace="http://www.w3.org/2003/05/soap-envelope"),
                 "InvalidRequest", "SOAP 1.1"),
    "unknown operation": (envelope("<lgsp:DeleteEverything/>"), "InvalidRequest", "SendEdoc"),
    "no packet": (envelope("<lgsp:SendEdoc/>"), "InvalidRequest", "packet"),
    "no key": (envelope(send_edoc_body("ok"), api_key=None), "Unauthenticated", "ApiKey"),
    "wrong key": (envelope(send_edoc_body("ok"), api_key="wrong-key"), "Unauthenticated",
                  "not valid"),
    "too deep": (envelope("<a>" * 40 + "</a>" * 40), "TooDeep", "deep"),
}


@pytest.mark.parametrize("case", list(BAD_ENVELOPES))
def test_bad_envelopes_are_refused(server: ApiServer, case: str) -> None:
    data, code, hint = BAD_ENVELOPES[case]
    fault = raw_fault(soap_post(server, data))
    assert fault["faultcode"] == "soap:Client"
    assert fault["code"] == code and hint in fault["faultstring"], fault


def test_envelope_over_the_cap_is_refused_before_reading(server: ApiServer) -> None:
    head = (f"POST /soap HTTP/1.1\r\nHost: bus\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {server.bus.settings.max_body_bytes * 2}\r\n\r\n").encode()
    answer = raw_http(server.url, head)
    assert answer.status == 500 and answer.seconds < 1.0
    assert b"<lgsp:code>PayloadTooLarge</lgsp:code>" in answer.body
    assert b"<faultcode>soap:Client</faultcode>" in answer.body


def test_wrong_http_header_key_is_refused_before_reading(server: ApiServer) -> None:
    head = (b"POST /soap HTTP/1.1\r\nHost: bus\r\nX-API-Key: wrong\r\n"
            b"Content-Length: 5000\r\n\r\n")
    answer = raw_http(server.url, head)
    assert answer.status == 500 and b"<lgsp:code>Unauthenticated</lgsp:code>" in answer.body


def test_server_failure_is_a_server_fault(server: ApiServer, client: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret connection string")

    monkeypatch.setattr(server.bus, "submit", explode)
    faultcode, detail, message = fault_of(lambda: client.service.SendEdoc(
        packet=packet_bytes(edoc()), _soapheaders=key("eoffice")))
    assert (faultcode, detail["code"]) == ("soap:Server", "InternalError")
    assert "secret" not in message and "secret" not in detail["message"]
    assert "secret connection string" in server.log_text()


def test_metrics_count_the_soap_channel(server: ApiServer, client: Any) -> None:
    client.service.SendEdoc(packet=packet_bytes(edoc()), _soapheaders=key("eoffice"))
    soap_post(server, envelope(send_edoc_body("@@@")))
    text = httpx.get(server.url + "/metrics").text
    assert re.search(r'lgsp_documents_received_total\{channel="soap",kind="edoc"\} [1-9]', text)
    assert 'lgsp_documents_refused_total{channel="soap",code="MalformedXml"}' in text


# ------------------------------------------------------------------ large packets


def test_large_scanned_document_over_soap(server: ApiServer, client: Any) -> None:
    scan = b"%PDF-1.7\n" + os.urandom(12 * 1024 * 1024)
    packet = packet_bytes(edoc(attachment=scan))
    receipt = client.service.SendEdoc(packet=packet, _soapheaders=key("eoffice"))
    assert receipt.kind == "edoc" and receipt.existing is False


def test_packet_in_cdata_reads_the_same(server: ApiServer) -> None:
    packet = base64.b64encode(packet_bytes(edoc())).decode()
    response = soap_post(server, envelope(
        f"<lgsp:SendEdoc><lgsp:packet><![CDATA[{packet}]]></lgsp:packet></lgsp:SendEdoc>"))
    assert response.status_code == 200, response.text
    root = etree.fromstring(response.content)
    assert root.findtext(f".//{{{NS}}}kind") == "edoc"

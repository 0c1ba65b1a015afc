"""Who may send and who may look, over REST and SOAP.

A system sends only as the organisations the directory assigns to it; it sees only what
it submitted or what was addressed to an organisation it hosts; anything else answers
404 exactly like a document that does not exist, in the listing too. Operators see all.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import zeep
import zeep.exceptions
from lxml import etree

from bus.edxml import EdocBuilder, packet_bytes, status_for
from bus.settings import REPO_ROOT
from bus.store.tables import documents
from tests.api_server import ApiServer, api_key, raw_http, running_bus

EOFFICE, IOFFICE, EGOV = api_key("eoffice"), api_key("vnpt_ioffice"), api_key("hcm_egov")
OPERATOR = {"X-API-Key": "dev-operator-key"}
SOAP_NS = "urn:lgsp-bus:soap:v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    folder = tmp_path_factory.mktemp("auth")
    with running_bus(folder / "bus", credentials=REPO_ROOT / "config" / "credentials.yaml",
                     max_body_bytes=128 * 1024) as running:
        assert running.bus.operator_systems == frozenset({"operator"})
        yield running


@pytest.fixture(scope="module")
def to_commune(server: ApiServer) -> str:
    """An eOffice document for a commune: visible to eoffice and hcm_egov only."""
    packet = EdocBuilder("000.00.12.H37").to("000.00.31.H37").subject("Mật").signer("C").build()
    response = httpx.post(server.url + "/api/v1/edocs", content=packet_bytes(packet),
                          headers=EOFFICE)
    assert response.status_code == 202
    doc_id: str = response.json()["id"]
    return doc_id


def stored(server: ApiServer) -> int:
    with server.bus.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar_one())


def _packet() -> bytes:
    return packet_bytes(EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("S")
                        .signer("D").build())


# ------------------------------------------------------------------ REST


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "dev-eoffice-kez"},
                                     {"X-API-Key": "DEV-EOFFICE-KEY"},
                                     {"Authorization": "Bearer dev-eoffice-key"}],
                         ids=["none", "empty", "wrong", "case", "other-header"])
def test_missing_or_wrong_credentials_are_401(server: ApiServer, headers: dict[str, str],
                                              to_commune: str) -> None:
    before = stored(server)
    for method, path, data in [("POST", "/api/v1/edocs", _packet()),
                               ("POST", "/api/v1/statuses", _packet()),
                               ("GET", f"/api/v1/edocs/{to_commune}", None),
                               ("GET", "/api/v1/edocs", None)]:
        response = httpx.request(method, server.url + path, content=data, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "Unauthenticated"
        assert response.headers["www-authenticate"].startswith("ApiKey")
        assert "eoffice" not in response.json()["message"]
    assert stored(server) == before


def test_credentials_are_checked_before_the_body_is_read(server: ApiServer) -> None:
    head = (b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\nX-API-Key: guess\r\n"
            b"Content-Length: 100000\r\n\r\n")
    answer = raw_http(server.url, head)
    assert answer.status == 401 and answer.seconds < 1.0
    huge = (b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\n"
            b"Content-Length: 999999999\r\n\r\n")
    assert raw_http(server.url, huge).status == 401


def test_a_system_sends_only_as_organisations_it_hosts(server: ApiServer) -> None:
    as_office = EdocBuilder("000.00.00.H37").to("000.00.12.H37").subject("X").signer("E").build()
    response = httpx.post(server.url + "/api/v1/edocs", content=packet_bytes(as_office),
                          headers=EOFFICE)
    assert response.status_code == 403 and response.json()["code"] == "SenderMismatch"
    ok = httpx.post(server.url + "/api/v1/edocs", content=packet_bytes(as_office),
                    headers=IOFFICE)
    assert ok.status_code == 202
    forged = status_for(as_office, "03", sender="000.00.31.H37")
    response = httpx.post(server.url + "/api/v1/statuses", content=packet_bytes(forged),
                          headers=EOFFICE)
    assert response.status_code == 403 and response.json()["code"] == "SenderMismatch"


def test_documents_of_others_do_not_exist(server: ApiServer, to_commune: str) -> None:
    url = f"{server.url}/api/v1/edocs/{to_commune}"
    assert httpx.get(url, headers=EOFFICE).status_code == 200
    assert httpx.get(url, headers=EGOV).status_code == 200
    assert httpx.get(url, headers=OPERATOR).status_code == 200
    hidden = httpx.get(url, headers=IOFFICE)
    missing = httpx.get(f"{server.url}/api/v1/edocs/{'0' * 32}", headers=IOFFICE)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["code"] == missing.json()["code"] == "NotFound"
    assert hidden.json()["message"].replace(to_commune, "0" * 32) == missing.json()["message"]


def _listed(server: ApiServer, headers: dict[str, str], **params: Any) -> set[str]:
    response = httpx.get(server.url + "/api/v1/edocs", headers=headers,
                         params={"limit": 500, **params})
    assert response.status_code == 200
    return {item["id"] for item in response.json()["items"]}


def test_listing_shows_only_visible_documents(server: ApiServer, to_commune: str) -> None:
    assert to_commune in _listed(server, EOFFICE)
    assert to_commune in _listed(server, EGOV)
    assert to_commune in _listed(server, OPERATOR)
    assert to_commune not in _listed(server, IOFFICE)
    assert _listed(server, IOFFICE, recipient="000.00.31.H37") == set()
    assert to_commune not in _listed(server, IOFFICE, sender="000.00.12.H37")
    assert _listed(server, OPERATOR) >= _listed(server, EOFFICE) | _listed(server, IOFFICE)


# ------------------------------------------------------------------ SOAP


@pytest.fixture(scope="module")
def client(server: ApiServer) -> Any:
    return zeep.Client(server.url + "/soap?wsdl", transport=zeep.Transport(timeout=30))


def _fault_code(call: Any) -> str:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        call()
    assert caught.value.code == "soap:Client"
    code = caught.value.detail.findtext(f"{{{SOAP_NS}}}Error/{{{SOAP_NS}}}code")
    return str(code)


def test_soap_without_or_with_wrong_credentials(server: ApiServer, client: Any) -> None:
    before = stored(server)
    assert _fault_code(lambda: client.service.SendEdoc(packet=_packet())) == "Unauthenticated"
    assert _fault_code(lambda: client.service.SendEdoc(
        packet=_packet(), _soapheaders={"ApiKey": "dev-eoffice-kez"})) == "Unauthenticated"
    transport = zeep.Transport(timeout=30)
    transport.session.headers["X-API-Key"] = "wrong"
    wrong_header = zeep.Client(server.url + "/soap?wsdl", transport=transport)
    assert _fault_code(lambda: wrong_header.service.SendEdoc(
        packet=_packet(), _soapheaders={"ApiKey": "dev-eoffice-key"})) == "Unauthenticated"
    assert stored(server) == before


def test_soap_sender_mismatch_and_hidden_documents(client: Any, to_commune: str) -> None:
    as_office = EdocBuilder("000.00.00.H37").to("000.00.12.H37").subject("Y").signer("F").build()
    assert _fault_code(lambda: client.service.SendEdoc(
        packet=packet_bytes(as_office), _soapheaders={"ApiKey": "dev-eoffice-key"})
    ) == "SenderMismatch"
    assert _fault_code(lambda: client.service.GetEdocStatus(
        id=to_commune, _soapheaders={"ApiKey": "dev-vnpt_ioffice-key"})) == "NotFound"
    seen = client.service.GetEdocStatus(id=to_commune, _soapheaders={"ApiKey": "dev-hcm_egov-key"})
    assert seen.id == to_commune


def test_soap_fault_does_not_echo_the_key(server: ApiServer) -> None:
    envelope = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
                f'xmlns:l="{SOAP_NS}"><soap:Header><l:ApiKey>s3cr3t-guess</l:ApiKey>'
                f'</soap:Header><soap:Body><l:GetEdocStatus><l:id>x</l:id></l:GetEdocStatus>'
                f'</soap:Body></soap:Envelope>').encode()
    response = httpx.post(server.url + "/soap", content=envelope,
                          headers={"Content-Type": "text/xml"})
    assert response.status_code == 500 and b"s3cr3t-guess" not in response.content
    root = etree.fromstring(response.content)
    assert root.findtext(f".//{{{SOAP_NS}}}code") == "Unauthenticated"


def test_a_client_hanging_up_mid_body_is_not_logged_as_a_failure(server: ApiServer) -> None:
    """Cut-off uploads are routine at a door facing many networks: one info line, no
    error with a traceback for an operator to chase."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\nX-API-Key: dev-eoffice-key"
                     b"\r\nContent-Length: 100000\r\n\r\n<?xml version='1.0'?><edXML")
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while "request.abandoned" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "request.abandoned" in server.log_text()
    assert "request.failed" not in server.log_text()

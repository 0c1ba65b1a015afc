"""Status injection, through every door of a real server (issue 11, item 5).

The outside battery's case: HCM Egov's key posted "06 completed" for a document eOffice
had sent only to 000.00.00.H37; the bus attached it, and the status's own record then
showed the victim's internal id. contract.md: a status about a document the bus holds
is accepted only from an organisation that received it (13: only from its sender), else
403 StatusNotAllowed, with nothing stored. Each door (REST, SOAP, the /vxp facade, the
HCM Egov poller) is driven as its real client drives it; answers must come fast and
must not carry the victim's internal id.
"""

from __future__ import annotations

import base64
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import httpx
import pytest
import sqlalchemy as sa
from lxml import etree

from adapters.vnpt_ioffice.simulator import IofficeSimulator
from bus.delivery.pollers import BusInbox
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.settings import REPO_ROOT
from bus.store.tables import business_statuses, documents
from tests.adapters.hcm_egov_support import make_adapter, set_secrets, simulator
from tests.api_server import ApiServer, api_key, running_bus

SO_TTTT: Final = "000.00.12.H37"   # eoffice
VP_UBND: Final = "000.00.00.H37"   # vnpt_ioffice (also its /vxp systemId)
XA_31: Final = "000.00.31.H37"     # hcm_egov
EOFFICE, IOFFICE, EGOV = api_key("eoffice"), api_key("vnpt_ioffice"), api_key("hcm_egov")
VXP_SECRET: Final = "dev-vnpt_ioffice-vxp-secret"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_NS: Final = "urn:lgsp-bus:soap:v1"
FAST_S: Final = 1.0
VXP_SYSTEMS: Final = f"""
version: 1
development_secrets: true
systems:
  "{VP_UBND}":
    system: vnpt_ioffice
    secret_env: LGSP_TEST_VXP_SECRET_UNSET
"""


@dataclass
class Sent:
    edoc: Edoc
    id: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("status-injection")
    config = root / "config"
    config.mkdir()
    shutil.copy(REPO_ROOT / "config" / "directory.yaml", config / "directory.yaml")
    (config / "vxp_systems.yaml").write_text(VXP_SYSTEMS, encoding="utf-8")
    with running_bus(root / "bus", directory=config / "directory.yaml") as running:
        yield running


def edoc(sender: str, *to: str) -> Edoc:
    return (EdocBuilder(sender).to(*to).subject("Kế hoạch chuyển đổi số")
            .signer("Nguyễn Văn A", "Giám đốc").code("12", "KH")
            .document_id(f"{sender},2025/07/01,{uuid.uuid4().hex}").build())


def send(server: ApiServer, sender: str, *to: str, key: dict[str, str] = EOFFICE) -> Sent:
    packet = edoc(sender, *to)
    answer = httpx.post(server.url + "/api/v1/edocs", content=packet_bytes(packet),
                        headers=key, timeout=30)
    assert answer.status_code == 202, answer.text
    return Sent(packet, answer.json()["id"])


def to_ioffice_only(server: ApiServer) -> Sent:
    """The victim: eOffice's document for 000.00.00.H37 (VNPT-iOffice) alone."""
    return send(server, SO_TTTT, VP_UBND)


def count(server: ApiServer) -> int:
    with server.bus.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(documents))
                   .scalar_one())


def reported(server: ApiServer, doc: str) -> list[tuple[str, str]]:
    bs = business_statuses.c
    with server.bus.store.engine.connect() as conn:
        return [(r.code, r.organ_id) for r in conn.execute(
            sa.select(bs.code, bs.organ_id).where(bs.document == doc).order_by(bs.id))]


# ------------------------------------------------------------------ REST


def test_rest_refuses_the_battery_case(server: ApiServer) -> None:
    victim = to_ioffice_only(server)
    before = count(server)
    forged = packet_bytes(status_for(victim.edoc, "06", sender=XA_31))
    started = time.monotonic()
    answer = httpx.post(server.url + "/api/v1/statuses", content=forged, headers=EGOV,
                        timeout=30)
    elapsed = time.monotonic() - started
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "StatusNotAllowed" and elapsed < FAST_S
    assert victim.id not in answer.text
    assert count(server) == before and reported(server, victim.id) == []

    detail = httpx.get(f"{server.url}/api/v1/edocs/{victim.id}", headers=EOFFICE).json()
    assert detail["business_statuses"] == []


def test_rest_refuses_a_recall_from_anyone_but_the_sender(server: ApiServer) -> None:
    victim = send(server, SO_TTTT, XA_31)
    forged = packet_bytes(status_for(victim.edoc, "13", sender=VP_UBND))
    answer = httpx.post(server.url + "/api/v1/statuses", content=forged, headers=IOFFICE)
    assert answer.status_code == 403 and answer.json()["code"] == "StatusNotAllowed"
    recall = packet_bytes(status_for(victim.edoc, "13"))
    assert httpx.post(server.url + "/api/v1/statuses", content=recall,
                      headers=EOFFICE).status_code == 202
    # recorded under the recipient asked to give it back (issue 13), not the requester
    assert reported(server, victim.id) == [("13", XA_31)]


def test_rest_unmatched_status_is_routed_and_its_record_links_nothing(
        server: ApiServer) -> None:
    """Data recorded before the check, or a DocumentId the bus never saw: the status's
    own record shows no id of a document its reader may not read."""
    never_sent = edoc(SO_TTTT, XA_31)
    answer = httpx.post(server.url + "/api/v1/statuses", headers=EGOV,
                        content=packet_bytes(status_for(never_sent, "03")))
    assert answer.status_code == 202, answer.text
    detail = httpx.get(f"{server.url}/api/v1/edocs/{answer.json()['id']}",
                       headers=EGOV).json()
    assert detail["kind"] == "status" and detail["refers_to"] is None


def test_rest_a_legitimate_status_is_attached_and_linked_for_those_who_may_read(
        server: ApiServer) -> None:
    shared = send(server, SO_TTTT, VP_UBND, XA_31)
    answer = httpx.post(server.url + "/api/v1/statuses", headers=IOFFICE,
                        content=packet_bytes(status_for(shared.edoc, "03")))
    assert answer.status_code == 202, answer.text
    status_id = answer.json()["id"]
    assert shared.id not in answer.text
    assert reported(server, shared.id) == [("03", VP_UBND)]
    mine = httpx.get(f"{server.url}/api/v1/edocs/{status_id}", headers=IOFFICE).json()
    assert mine["refers_to"] == shared.id          # iOffice received the original
    by_sender = httpx.get(f"{server.url}/api/v1/edocs/{shared.id}", headers=EOFFICE).json()
    assert [s["status_document"] for s in by_sender["business_statuses"]] == [status_id]
    # the other recipient sees that 03 was reported, not the id of iOffice's record
    other = httpx.get(f"{server.url}/api/v1/edocs/{shared.id}", headers=EGOV).json()
    assert [(s["code"], s["status_document"]) for s in other["business_statuses"]] == [
        ("03", None)]
    assert httpx.get(f"{server.url}/api/v1/edocs/{status_id}",
                     headers=EGOV).status_code == 404


# ------------------------------------------------------------------ SOAP


def _soap_send_status(server: ApiServer, packet: bytes, key: str) -> httpx.Response:
    body = (f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{SOAP_ENV}" '
            f'xmlns:lgsp="{SOAP_NS}"><soap:Header><lgsp:ApiKey>{key}</lgsp:ApiKey>'
            f'</soap:Header><soap:Body><lgsp:SendStatus><lgsp:packet>'
            f'{base64.b64encode(packet).decode()}</lgsp:packet></lgsp:SendStatus>'
            '</soap:Body></soap:Envelope>')
    return httpx.post(server.url + "/soap", content=body.encode(), timeout=30,
                      headers={"Content-Type": "text/xml; charset=utf-8"})


def _fault_code(response: httpx.Response) -> str:
    root = etree.fromstring(response.content)
    return root.findtext(f".//{{{SOAP_NS}}}Error/{{{SOAP_NS}}}code") or ""


def test_soap_send_status_refuses_the_battery_case(server: ApiServer) -> None:
    victim = to_ioffice_only(server)
    before = count(server)
    started = time.monotonic()
    answer = _soap_send_status(server, packet_bytes(status_for(victim.edoc, "06",
                                                               sender=XA_31)),
                               "dev-hcm_egov-key")
    elapsed = time.monotonic() - started
    assert answer.status_code == 500 and b"soap:Client" in answer.content
    assert _fault_code(answer) == "StatusNotAllowed" and elapsed < FAST_S
    assert victim.id.encode() not in answer.content
    assert count(server) == before and reported(server, victim.id) == []
    good = _soap_send_status(server, packet_bytes(status_for(victim.edoc, "06")),
                             "dev-vnpt_ioffice-key")
    assert good.status_code == 200, good.text
    assert victim.id.encode() not in good.content
    assert reported(server, victim.id) == [("06", VP_UBND)]


# ------------------------------------------------------------------ the /vxp facade


def test_vxp_send_edoc_with_messagetype_status_refuses_the_forgery(server: ApiServer) -> None:
    """iOffice (000.00.00.H37) reports on a document eOffice sent to a commune only."""
    victim = send(server, SO_TTTT, XA_31)
    before = count(server)
    ioffice = IofficeSimulator(server.url + "/vxp", VP_UBND, VXP_SECRET)
    try:
        started = time.monotonic()
        reply = ioffice.send_status(packet_bytes(status_for(victim.edoc, "06",
                                                            sender=VP_UBND)))
        elapsed = time.monotonic() - started
        assert reply.http_status == 200 and reply.body["status"] == "FAIL", reply.body
        assert reply.code == "StatusNotAllowed" and elapsed < FAST_S
        assert reply.body["DocId"] == "" and victim.id not in str(reply.body)
        assert count(server) == before and reported(server, victim.id) == []

        mine = send(server, SO_TTTT, VP_UBND)
        ok = ioffice.send_status(packet_bytes(status_for(mine.edoc, "03")))
        assert ok.ok, ok.body
        assert ok.body["DocId"] != mine.id
        assert reported(server, mine.id) == [("03", VP_UBND)]
    finally:
        ioffice.close()


# ------------------------------------------------------------------ the HCM Egov poller


def test_poller_acknowledges_the_forgery_as_failed_with_the_code(
        server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = to_ioffice_only(server)
    legit = send(server, SO_TTTT, XA_31)
    set_secrets(monkeypatch)
    with simulator() as sim:
        adapter = make_adapter(sim)
        adapter.open()
        try:
            forged = sim.put_outbox(packet_bytes(status_for(victim.edoc, "06",
                                                            sender=XA_31)))
            real = sim.put_outbox(packet_bytes(status_for(legit.edoc, "03")))
            before = count(server)
            assert adapter.poll(BusInbox(server.bus, "hcm_egov")) == 1
        finally:
            adapter.close()
        refusal = sim.ack_of(forged)
        assert refusal is not None and refusal["Result"] == "fail"
        assert "StatusNotAllowed" in str(refusal) and victim.id not in str(refusal)
        accepted = sim.ack_of(real)
        assert accepted is not None and accepted["Result"] == "done"
        assert legit.id not in str(accepted)
    assert count(server) == before + 1
    assert reported(server, victim.id) == []
    assert reported(server, legit.id) == [("03", XA_31)]

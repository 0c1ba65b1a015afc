"""The scaled-out bus end to end, as separate processes on loopback: two ``lgsp serve
--no-workers`` ingress processes and two ``lgsp worker`` processes on RabbitMQ and
PostgreSQL, driven only through their public doors (REST with httpx, SOAP with zeep
reading /soap?wsdl) and observed at a loopback destination and through the status API.

Routes are reloaded only on SIGHUP here (the file watcher's period is set to an hour), so
a change seen by one ingress process and not by the other proves the signal did it.
"""

from __future__ import annotations

import collections
import copy
import signal
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep

from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from tests.cluster import (
    BusProcess,
    Cluster,
    fresh_database,
    fresh_vhost,
    routes_document,
    wait_until,
    write_routes,
)
from tests.http_sink import HttpSink
from tests.servers import PostgresServer, RabbitMQServer

pytestmark = [pytest.mark.services, pytest.mark.slow]

TRACE_ORGAN = "00.37.W00"  # Settings.bus_organ_id: the bus's own TraceHeader


def key(system: str) -> dict[str, str]:
    return {"X-API-Key": f"dev-{system}-key"}


def edoc(sender: str, *recipients: str, subject: str) -> Edoc:
    return (EdocBuilder(sender).to(*recipients).code("42", "UBND-E2E")
            .subject(subject, "Nội dung").signer("Nguyễn Văn An", "Chánh Văn phòng").build())


@pytest.fixture
def cluster(tmp_path: Path, postgres: PostgresServer,
            rabbitmq: RabbitMQServer) -> Iterator[tuple[Cluster, HttpSink]]:
    with HttpSink() as sink, Cluster(tmp_path / "cluster", routes=routes_document(sink),
                                     database_url=fresh_database(postgres),
                                     broker_url=fresh_vhost(rabbitmq),
                                     reload_check_s=3600.0) as running:
        running.launch("ingress", 2)
        running.launch("worker", 2)
        yield running, sink


def effects_at(sink: HttpSink, path: str) -> list[bytes]:
    return [r.body for r in sink.requests if r.effect and r.path == path]


def post(process: BusProcess, path: str, data: bytes, system: str) -> dict[str, Any]:
    response = httpx.post(process.url + path, content=data, headers=key(system), timeout=30)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_documents_and_statuses_over_rest_and_soap_reach_their_destinations(
        cluster: tuple[Cluster, HttpSink]) -> None:
    running, sink = cluster
    a, b = running.by_role("ingress")

    # A document over REST through one ingress process, to two systems.
    first = edoc("000.00.12.H37", "000.00.31.H37", "000.00.00.H37",
                 subject="Công văn gửi qua REST")
    receipt = post(a, "/api/v1/edocs", packet_bytes(first), "eoffice")
    assert {(r["recipient"], r["destination"]) for r in receipt["recipients"]} == {
        ("000.00.31.H37", "hcm_egov"), ("000.00.00.H37", "vnpt_ioffice")}

    # A document over SOAP through the other, with the client built from the WSDL.
    soap = zeep.Client(b.url + "/soap?wsdl", transport=zeep.Transport(timeout=30))
    second = edoc("000.00.31.H37", "000.00.12.H37", subject="Công văn gửi qua SOAP")
    soap_receipt = soap.service.SendEdoc(packet=packet_bytes(second),
                                         _soapheaders={"ApiKey": "dev-hcm_egov-key"})
    assert soap_receipt.existing is False
    assert [(r.recipient, r.destination) for r in soap_receipt.recipients.item] == [
        ("000.00.12.H37", "eoffice")]

    wait_until(lambda: sink.effects >= 3, 60, what="three document effects",
               explain=lambda: f"states={running.states()}")
    for path, document in (("/hcm_egov", first), ("/vnpt_ioffice", first),
                           ("/eoffice", second)):
        [body] = effects_at(sink, path)
        assert document.document_id is not None
        assert document.document_id.encode() in body and TRACE_ORGAN.encode() in body

    # The recipient's clerk reports 01, 03, 06 from its own system, over both doors and
    # both ingress processes; each status goes back to the sender's system.
    stamps = [datetime(2025, 3, 1, 8, 0), datetime(2025, 3, 1, 9, 30),
              datetime(2025, 3, 4, 16, 45)]
    statuses = [packet_bytes(status_for(first, code, at=at))
                for code, at in zip(("01", "03", "06"), stamps, strict=True)]
    post(b, "/api/v1/statuses", statuses[0], "hcm_egov")
    soap_a = zeep.Client(a.url + "/soap?wsdl", transport=zeep.Transport(timeout=30))
    status_receipt = soap_a.service.SendStatus(packet=statuses[1],
                                               _soapheaders={"ApiKey": "dev-hcm_egov-key"})
    assert [r.destination for r in status_receipt.recipients.item] == ["eoffice"]
    post(a, "/api/v1/statuses", statuses[2], "hcm_egov")

    def reported() -> list[str]:
        seen = httpx.get(f"{a.url}/api/v1/edocs/{receipt['id']}", headers=key("eoffice"),
                         timeout=10).json()
        return [s["code"] for s in seen["business_statuses"]]

    wait_until(lambda: len(effects_at(sink, "/eoffice")) == 4, 60,
               what="three statuses delivered to the sender's system",
               explain=lambda: f"states={running.states()}")
    assert reported() == ["01", "03", "06"]
    codes = collections.Counter(
        code for body in effects_at(sink, "/eoffice")
        for code in ("01", "03", "06") if f"<edXML:StatusCode>{code}<".encode() in body)
    assert codes == {"01": 1, "03": 1, "06": 1}

    def detail() -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{b.url}/api/v1/edocs/{receipt['id']}",
                                          headers=key("hcm_egov"), timeout=10).json()
        return found

    # A delivery is recorded just after the sink answers: allow the commit its moment.
    wait_until(lambda: {d["state"] for d in detail()["deliveries"]} == {"delivered"}, 30,
               what="the first document delivered to both", explain=lambda: str(detail()))
    assert [s["code"] for s in detail()["latest_statuses"]] == ["06"]
    # The sink has the last status before the worker commits its outcome: wait for that.
    wait_until(lambda: running.states() == {"delivered": 6}, 30,
               what="all six deliveries recorded as delivered",
               explain=lambda: f"states={running.states()}")
    print(f"\n[e2e] 2 documents (REST, SOAP) and 3 statuses (REST, SOAP, REST) through 2 "
          f"ingress processes: {sink.effects} effects, states {running.states()}")


def test_sighup_applies_a_routes_edit_and_refuses_an_invalid_one(
        cluster: tuple[Cluster, HttpSink]) -> None:
    running, sink = cluster
    a, b = running.by_role("ingress")
    original: Mapping[str, Any] = routes_document(sink)

    def send(process: BusProcess, subject: str) -> set[str]:
        packet = edoc("000.00.12.H37", "000.00.32.H37", subject=subject)
        receipt = post(process, "/api/v1/edocs", packet_bytes(packet), "eoffice")
        return {r["destination"] for r in receipt["recipients"]}

    assert send(a, "Trước khi sửa routes.yaml") == {"hcm_egov"}

    edited = copy.deepcopy(dict(original))
    edited["rules"] = [{"name": "commune-mail-to-archive",
                        "match": {"kind": "edoc", "recipient_system": "hcm_egov"},
                        "copy_to": ["archive"]}]
    write_routes(running.routes_path, edited)
    reloads = len(a.events("routes.reloaded"))
    a.send(signal.SIGHUP)
    wait_until(lambda: len(a.events("routes.reloaded")) > reloads, 20,
               what="ingress a reloaded routes after SIGHUP", explain=lambda: a.log_tail(10))
    assert send(a, "Sau SIGHUP") == {"hcm_egov", "archive"}
    assert send(b, "Tiến trình không nhận SIGHUP") == {"hcm_egov"}

    broken = copy.deepcopy(edited)
    broken["rules"].append({"name": "typo", "match": {"kind": "edoc"}, "copy_to": ["archiv"]})
    write_routes(running.routes_path, broken)
    refusals = len(a.events("routes.reload_refused"))
    a.send(signal.SIGHUP)
    [refused] = wait_until(lambda: a.events("routes.reload_refused")[refusals:], 20,
                           what="the invalid edit refused", explain=lambda: a.log_tail(10))
    problems = " ".join(refused["problems"])
    assert "archiv" in problems and str(running.routes_path) in problems
    ready = httpx.get(a.url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert send(a, "Sau một lần sửa sai") == {"hcm_egov", "archive"}

    wait_until(lambda: sink.effects == 6, 60, what="every delivery",
               explain=lambda: f"states={running.states()}")
    assert len(effects_at(sink, "/archive")) == 2
    print(f"\n[sighup] reload applied on the signalled process only; invalid edit refused: "
          f"{problems[:200]}")

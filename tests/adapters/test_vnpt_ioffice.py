"""VNPT-iOffice through the provincial-axis facade, over real sockets.

A real bus (tests/api_server.py) runs with embedded delivery threads; its vnpt_ioffice
destination uses the mailbox adapter and every other destination posts to a loopback
sink. iOffice is played by ``adapters.vnpt_ioffice.simulator``, which signs requests
with its own implementation of edxml.md §7.1 and imports no bus code, so these tests
prove that the facade speaks the protocol, not that the bus agrees with itself.
Assertions read the database and the sink, never only what the facade answered. Each
test leaves iOffice's mailbox empty; every wait has a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import sqlalchemy as sa
import yaml
from pydantic import ValidationError

from adapters.vnpt_ioffice import VnptIofficeAdapter
from adapters.vnpt_ioffice.simulator import IofficeSimulator, VxpReply
from bus.adapter import Delivery
from bus.api.vxp_systems import RegistryFile, load_registry
from bus.delivery.embedded import EmbeddedDispatcher
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.errors import ConfigInvalid
from bus.settings import REPO_ROOT
from bus.store.tables import deliveries, documents, events
from tests.api_server import ApiServer, api_key, running_bus
from tests.http_sink import HttpSink

SYSTEM_ID: Final = "000.00.00.H37"
SECRET: Final = "dev-vnpt_ioffice-vxp-secret"
VP_UBND: Final = "000.00.00.H37"   # hosted by vnpt_ioffice
SO_TTTT: Final = "000.00.12.H37"   # hosted by eoffice
WAIT_S: Final = 15.0
VXP_SYSTEMS: Final = f"""
version: 1
development_secrets: true
systems:
  "{SYSTEM_ID}":
    system: vnpt_ioffice
    secret_env: LGSP_TEST_VXP_SECRET_UNSET
"""


@dataclasses.dataclass
class Province:
    server: ApiServer
    sink: HttpSink
    config: Path

    @property
    def endpoint(self) -> str:
        return self.server.url + "/vxp"

    def ioffice(self, **kwargs: Any) -> IofficeSimulator:
        return IofficeSimulator(self.endpoint, kwargs.pop("system_id", SYSTEM_ID),
                                kwargs.pop("secret", SECRET), **kwargs)

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        with self.server.bus.store.engine.connect() as conn:
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).one()
        return dict(row._mapping)

    def wait_state(self, delivery_id: str, *states: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while True:
            row = self.delivery(delivery_id)
            if row["state"] in states or time.monotonic() > deadline:
                assert row["state"] in states, row
                return row
            time.sleep(0.02)

    def documents(self) -> int:
        with self.server.bus.store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(documents))
                       .scalar_one())

    def actions(self, delivery_id: str) -> list[str]:
        with self.server.bus.store.engine.connect() as conn:
            return list(conn.execute(sa.select(events.c.action).where(
                events.c.delivery == delivery_id).order_by(events.c.id)).scalars())

    def from_eoffice(self, edoc: Edoc) -> str:
        """Sends as eOffice over REST; returns the delivery id of the iOffice recipient."""
        response = httpx.post(self.server.url + "/api/v1/edocs", content=packet_bytes(edoc),
                              headers=api_key("eoffice"), timeout=WAIT_S)
        assert response.status_code == 202, response.text
        [target] = [r for r in response.json()["recipients"]
                    if r["destination"] == "vnpt_ioffice"]
        return str(target["delivery"])


def _routes(folder: Path, sink: HttpSink) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text(encoding="utf-8"))
    for name, destination in raw["destinations"].items():
        destination["adapter"] = "http"
        destination["options"] = {"url": sink.url(f"/{name}/edxml"), "timeout_s": 5}
    raw["destinations"]["vnpt_ioffice"] = {"adapter": "vnpt_ioffice",
                                           "options": {"system_id": SYSTEM_ID}}
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    with running_province(tmp_path_factory.mktemp("ioffice")) as running:
        yield running


@contextlib.contextmanager
def running_province(root: Path) -> Iterator[Province]:
    """The sample province's directory, iOffice registered at the facade, every other
    destination an HTTP sink, and the embedded dispatcher delivering."""
    config = root / "config"
    config.mkdir()
    shutil.copy(REPO_ROOT / "config" / "directory.yaml", config / "directory.yaml")
    (config / "vxp_systems.yaml").write_text(VXP_SYSTEMS, encoding="utf-8")
    with HttpSink() as sink, running_bus(root / "bus", routes=_routes(root, sink),
                                         directory=config / "directory.yaml",
                                         poll_interval_s=0.05) as server:
        dispatcher = EmbeddedDispatcher.from_bus(server.bus)
        server.bus.dispatcher = dispatcher
        dispatcher.start()
        try:
            yield Province(server, sink, config)
        finally:
            assert dispatcher.stop(15.0)


@pytest.fixture
def ioffice(province: Province) -> Iterator[IofficeSimulator]:
    sim = province.ioffice()
    leftovers = sim.list_received("edoc").items + sim.list_received("status").items
    assert leftovers == [], "a previous test left items in the mailbox"
    yield sim
    sim.close()


def edoc(sender: str = SO_TTTT, *to: str, subject: str = "Kế hoạch chuyển đổi số") -> Edoc:
    return (EdocBuilder(sender).to(*(to or (VP_UBND,))).subject(subject)
            .signer("Nguyễn Văn A", "Giám đốc").code(str(uuid.uuid4().int % 10_000), "KH")
            .document_id(f"{sender},2025/07/01,{uuid.uuid4().hex}").build())


def failed(reply: VxpReply, code: str) -> str:
    """A FAIL in the SDK's shape, HTTP 200 so that every SDK reads the code."""
    assert reply.http_status == 200, reply
    assert reply.body["status"] == "FAIL" and reply.code == code, reply.body
    assert reply.desc
    return reply.desc


# ------------------------------------------------------------------ sending


def test_ioffice_sends_an_edoc_that_reaches_another_agency(province: Province,
                                                           ioffice: IofficeSimulator) -> None:
    packet = packet_bytes(edoc(VP_UBND, SO_TTTT))
    reply = ioffice.send_edoc(packet, [SO_TTTT])
    assert reply.ok and reply.http_status == 200, reply.body
    doc_id = reply.body["DocId"]
    with province.server.bus.store.engine.connect() as conn:
        [row] = conn.execute(sa.select(deliveries.c.id).where(deliveries.c.document == doc_id))
    delivered = province.wait_state(row.id, "delivered")
    assert province.sink.reference_for(f"{doc_id}:{SO_TTTT}:eoffice") is not None
    assert delivered["destination"] == "eoffice"
    sent = ioffice.get_sent_edoc_list(doc_id)
    assert sent.ok
    [item] = sent.items
    assert (item["toCode"], item["receiveStatus"], item["sendStatus"]) == (SO_TTTT, "done", "done")
    again = ioffice.send_edoc(packet, [SO_TTTT])
    assert again.ok and again.body["DocId"] == doc_id


def test_refusals_of_the_door_come_back_as_fail_with_the_stable_code(
        province: Province, ioffice: IofficeSimulator) -> None:
    before = province.documents()
    desc = failed(ioffice.send_edoc(packet_bytes(edoc(SO_TTTT, VP_UBND)), [VP_UBND]),
                  "SenderMismatch")
    assert SO_TTTT in desc
    failed(ioffice.send_edoc(b"<edXML><unclosed>", [SO_TTTT]), "MalformedXml")
    reply = ioffice.send_status(packet_bytes(edoc(VP_UBND, SO_TTTT)))
    failed(reply, "UnsupportedPacket")
    assert reply.body["DocId"] == ""          # the Java SDK reads DocId even on FAIL
    assert province.documents() == before


# ------------------------------------------------------------------ receiving


def test_an_edoc_for_ioffice_waits_in_its_mailbox_until_acknowledged(
        province: Province, ioffice: IofficeSimulator) -> None:
    delivery_id = province.from_eoffice(edoc())
    awaiting = province.wait_state(delivery_id, "awaiting")
    assert awaiting["receipt_reference"] == delivery_id
    [item] = ioffice.list_received("edoc").items
    assert (item["docId"], item["from"], item["to"]) == (delivery_id, SO_TTTT, VP_UBND)
    assert ioffice.list_received("status").items == []
    outcome = ioffice.poll_once()
    assert (outcome.stored, outcome.acknowledged, outcome.errors) == (1, 1, [])
    delivered = province.wait_state(delivery_id, "delivered")
    assert delivered["delivered_at"] is not None
    stored = ioffice.received[delivery_id]
    assert stored == province.server.bus.store.payload(_payload_sha(province, delivery_id))
    assert b"00.37.W00" in stored             # the bus's TraceHeader travels with it
    assert province.actions(delivery_id)[-2:] == ["fetched", "acknowledged"]


def test_a_refusal_by_ioffice_refuses_the_delivery_with_its_reason(
        province: Province, ioffice: IofficeSimulator) -> None:
    delivery_id = province.from_eoffice(edoc())
    province.wait_state(delivery_id, "awaiting")
    ioffice.refuse_next(1, "Gửi nhầm đơn vị, đề nghị gửi lại")
    outcome = ioffice.poll_once()
    assert (outcome.refused, outcome.stored) == (1, 0), outcome
    refused = province.wait_state(delivery_id, "refused")
    assert "Gửi nhầm đơn vị, đề nghị gửi lại" in refused["last_error"]
    assert SYSTEM_ID in refused["last_error"]
    failed(ioffice.update_status(delivery_id, "done"), "InvalidRequest")
    assert province.delivery(delivery_id)["state"] == "refused"


def test_processing_changes_nothing_and_unknown_statuses_are_refused(
        province: Province, ioffice: IofficeSimulator) -> None:
    delivery_id = province.from_eoffice(edoc())
    province.wait_state(delivery_id, "awaiting")
    assert ioffice.update_status(delivery_id, "processing").ok
    assert province.delivery(delivery_id)["state"] == "awaiting"
    failed(ioffice.update_status(delivery_id, "archived"), "MalformedRequest")
    assert ioffice.poll_once().acknowledged == 1
    assert "processing" in province.actions(delivery_id)
    province.wait_state(delivery_id, "delivered")


def test_a_lost_acknowledgement_is_absorbed_one_effect(province: Province,
                                                       ioffice: IofficeSimulator) -> None:
    delivery_id = province.from_eoffice(edoc())
    province.wait_state(delivery_id, "awaiting")
    ioffice.stop_acknowledging()
    assert ioffice.poll_once().stored == 1
    listed_again = ioffice.poll_once()      # still pending: listed again, not stored again
    assert (listed_again.listed, listed_again.stored) == (1, 0)
    assert province.delivery(delivery_id)["state"] == "awaiting"
    ioffice.resume_acknowledging()
    outcome = ioffice.poll_once()
    assert (outcome.stored, outcome.acknowledged) == (0, 1)
    province.wait_state(delivery_id, "delivered")
    assert ioffice.update_status(delivery_id, "done").ok     # a resent ack: OK, no effect
    actions = province.actions(delivery_id)
    assert actions.count("acknowledged") == 1 and actions.count("fetched") == 1
    assert list(ioffice.received) == [delivery_id]


def test_statuses_flow_both_ways(province: Province, ioffice: IofficeSimulator) -> None:
    original = edoc()
    delivery_id = province.from_eoffice(original)
    province.wait_state(delivery_id, "awaiting")
    assert ioffice.poll_once().acknowledged == 1
    status = packet_bytes(status_for(original, "03", description="Đã vào sổ"))
    reply = ioffice.send_status(status)
    assert reply.ok, reply.body
    [row] = _deliveries_of(province, reply.body["DocId"])
    province.wait_state(row, "delivered")
    [seen] = [r for r in province.sink.requests if r.path == "/eoffice/edxml"
              and b"<edXML:StatusCode>03</edXML:StatusCode>" in r.body]
    detail = httpx.get(f"{province.server.url}/api/v1/edocs/{_document_of(province, delivery_id)}",
                       headers=api_key("eoffice"), timeout=WAIT_S).json()
    assert [(s["code"], s["organ_id"]) for s in detail["business_statuses"]] == [("03", VP_UBND)]
    # and back: eOffice's status about a document iOffice sent reaches iOffice's mailbox
    sent = edoc(VP_UBND, SO_TTTT)
    assert ioffice.send_edoc(packet_bytes(sent), [SO_TTTT]).ok
    answer = httpx.post(province.server.url + "/api/v1/statuses", headers=api_key("eoffice"),
                        content=packet_bytes(status_for(sent, "06")), timeout=WAIT_S)
    assert answer.status_code == 202, answer.text
    [back] = [r["delivery"] for r in answer.json()["recipients"]]
    province.wait_state(back, "awaiting")
    [item] = ioffice.list_received("status").items
    assert item["messageType"] == "status" and item["docId"] == back
    assert ioffice.poll_once().acknowledged == 1
    assert b"<edXML:StatusCode>06</edXML:StatusCode>" in ioffice.received[back]
    province.wait_state(back, "delivered")
    assert seen.body


def test_while_ioffice_is_down_deliveries_wait_then_arrive(province: Province,
                                                           ioffice: IofficeSimulator) -> None:
    ids = [province.from_eoffice(edoc(subject=f"Văn bản số {n}")) for n in range(3)]
    for delivery_id in ids:
        province.wait_state(delivery_id, "awaiting")
    time.sleep(1.0)                          # nobody polls: nothing moves, nothing is lost
    assert {province.delivery(d)["state"] for d in ids} == {"awaiting"}
    stop = threading.Event()
    loop = threading.Thread(target=ioffice.run, args=(stop, 0.1), daemon=True)
    loop.start()
    try:
        for delivery_id in ids:
            province.wait_state(delivery_id, "delivered")
    finally:
        stop.set()
        loop.join(10.0)
    assert not loop.is_alive()
    assert sorted(ioffice.received) == sorted(ids)


def test_a_system_sees_only_its_own_mailbox(province: Province,
                                            ioffice: IofficeSimulator) -> None:
    reply = ioffice.send_edoc(packet_bytes(edoc(VP_UBND, SO_TTTT)), [SO_TTTT])
    [other] = _deliveries_of(province, reply.body["DocId"])   # a delivery to eOffice
    province.wait_state(other, "delivered")
    failed(ioffice.get_edoc(other), "NotFound")
    failed(ioffice.update_status(other, "fail"), "NotFound")
    failed(ioffice.get_sent_edoc_list(_document_of(province, province.from_eoffice(edoc()))),
           "NotFound")
    assert ioffice.poll_once().acknowledged == 1     # empties the mailbox again


# ------------------------------------------------------------------ authentication


def test_a_wrong_secret_is_refused_and_nothing_is_accepted(province: Province) -> None:
    before = province.documents()
    intruder = province.ioffice(secret="not-the-secret")
    desc = failed(intruder.send_edoc(packet_bytes(edoc(VP_UBND, SO_TTTT)), [SO_TTTT]),
                  "BadSignature")
    assert SYSTEM_ID in desc
    failed(intruder.list_received(), "BadSignature")
    assert province.documents() == before
    assert _refused_metric(province, "BadSignature") >= 2


def test_an_unknown_system_id_is_refused(province: Province) -> None:
    failed(province.ioffice(system_id="000.00.99.H37").list_received(), "UnknownSystem")


@pytest.mark.parametrize("skew_s", [1000.0, -1000.0])
def test_a_clock_off_by_a_quarter_hour_is_refused_a_few_seconds_are_not(
        province: Province, skew_s: float) -> None:
    sim = province.ioffice()
    sim.clock_skew_s = skew_s
    desc = failed(sim.list_received(), "ClockSkew")
    assert "NTP" in desc and "TIME ZONE" not in desc
    sim.clock_skew_s = skew_s / 60
    assert sim.list_received().ok


def test_a_tampered_body_fails_the_file_hash(province: Province) -> None:
    before = province.documents()
    sim = province.ioffice()
    call = sim.prepare_send(packet_bytes(edoc(VP_UBND, SO_TTTT, subject="Bản gốc")),
                            to=[SO_TTTT])
    forged = packet_bytes(edoc(VP_UBND, SO_TTTT, subject="Bản bị sửa"))
    failed(sim.call(dataclasses.replace(call, body=forged + b"\r\n")), "HashMismatch")
    assert province.documents() == before


def test_tampered_signed_headers_are_refused(province: Province,
                                             ioffice: IofficeSimulator) -> None:
    delivery_id = province.from_eoffice(edoc())
    province.wait_state(delivery_id, "awaiting")
    call = ioffice.prepare("getEdoc", [("docId", "someone-elses-item")], body=b"{}")
    swapped = {**call.headers, "XroadVnpt-docId": delivery_id}
    failed(ioffice.call(dataclasses.replace(call, headers=swapped)), "HeaderMismatch")
    resigned = call.headers["XroadVnpt-sign-header"].replace("someone-elses-item", delivery_id)
    forged = {**swapped, "XroadVnpt-sign-header": resigned}
    failed(ioffice.call(dataclasses.replace(call, headers=forged)), "BadSignature")
    fresh = province.ioffice()                # its map holds no docId yet: add one unsigned
    listing = fresh.prepare("getReceivedEdocList", [("messagetype", "edoc")])
    unsigned = dataclasses.replace(listing, url=fresh.endpoint + "/getEdoc",
                                   headers={**listing.headers, "XroadVnpt-docId": delivery_id})
    assert "signed" in failed(fresh.call(unsigned), "MalformedRequest")
    assert province.delivery(delivery_id)["state"] == "awaiting"
    assert ioffice.poll_once().acknowledged == 1


def test_a_registered_system_without_its_secret_is_disabled_until_set(
        province: Province) -> None:
    path = province.config / "vxp_systems.yaml"
    sim = province.ioffice()
    try:
        path.write_text(VXP_SYSTEMS.replace("development_secrets: true",
                                            "development_secrets: false"), encoding="utf-8")
        desc = failed(sim.list_received(), "UnknownSystem")
        assert "LGSP_TEST_VXP_SECRET_UNSET" in desc
        verdict = RegistryFile(path).readiness(province.server.bus.reloader.current().directory)
        assert verdict is not None and "LGSP_TEST_VXP_SECRET_UNSET is not set" in verdict
    finally:
        path.write_text(VXP_SYSTEMS, encoding="utf-8")
    assert sim.list_received().ok


def test_the_status_api_shows_a_delivery_awaiting_pickup(province: Province,
                                                        ioffice: IofficeSimulator) -> None:
    delivery_id = province.from_eoffice(edoc())
    province.wait_state(delivery_id, "awaiting")
    try:
        detail = httpx.get(f"{province.server.url}/api/v1/edocs/"
                           f"{_document_of(province, delivery_id)}",
                           headers=api_key("eoffice"), timeout=WAIT_S)
    finally:
        assert ioffice.poll_once().acknowledged == 1
    assert detail.status_code == 200, detail.text
    [view] = detail.json()["deliveries"]
    assert view["state"] == "awaiting" and view["receipt_reference"] == delivery_id


# ------------------------------------------------------------------ the rest of the API


def test_agencies_are_the_directory(ioffice: IofficeSimulator) -> None:
    reply = ioffice.get_agencies()
    assert reply.ok
    agencies = {a["code"]: a for a in reply.items}
    assert agencies[SO_TTTT]["pid"] == VP_UBND and agencies[SO_TTTT]["name"].startswith("Sở")
    assert set(agencies[VP_UBND]) == {"id", "pid", "code", "name", "mail"}


def test_operations_the_facade_does_not_offer(ioffice: IofficeSimulator) -> None:
    desc = failed(ioffice.call(ioffice.prepare("dropTables", [])), "UnknownOperation")
    assert "downloadEdoc" in desc and "registerAgency" in desc


def test_the_simulator_runs_standalone(province: Province, tmp_path: Path) -> None:
    delivery_id = province.from_eoffice(edoc())
    province.wait_state(delivery_id, "awaiting")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "adapters.vnpt_ioffice.simulator", "--endpoint",
         province.endpoint, "--system-id", SYSTEM_ID, "--secret", SECRET, "--store",
         str(tmp_path), "--once"], capture_output=True, text=True, timeout=60, env=env,
        cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [saved] = tmp_path.rglob(f"{delivery_id}.edxml")
    assert saved.read_bytes().startswith(b"<?xml")
    province.wait_state(delivery_id, "delivered")


# ------------------------------------------------------------------ adapter and config


def test_the_adapter_answers_awaiting_pickup_without_io() -> None:
    adapter = VnptIofficeAdapter.from_options("vnpt_ioffice", {"system_id": SYSTEM_ID})
    assert adapter.capabilities == {"mailbox"}
    delivery = Delivery(payload=b"<edXML/>", idempotency_key="doc:000.00.00.H37:vnpt_ioffice",
                        document_id="d", kind="edoc", sender=SO_TTTT, recipient=VP_UBND,
                        destination="vnpt_ioffice", headers={"X-LGSP-Delivery": "abc"})
    receipt = adapter.deliver(delivery)
    assert receipt.awaiting_pickup and receipt.reference == "abc"
    with pytest.raises(ValidationError):
        VnptIofficeAdapter.from_options("vnpt_ioffice", {"system_id": SYSTEM_ID, "url": "x"})
    with pytest.raises(ValidationError):
        VnptIofficeAdapter.from_options("vnpt_ioffice", {})


def test_the_sample_registration_loads_and_the_environment_wins() -> None:
    path = REPO_ROOT / "config" / "vxp_systems.yaml"
    sample = load_registry(path, {}).systems[SYSTEM_ID]
    assert (sample.system, sample.secret, sample.development_secret) == (
        "vnpt_ioffice", SECRET, True)
    real = load_registry(path, {"LGSP_VXP_SECRET_VNPT_IOFFICE": "s3cret"}).systems[SYSTEM_ID]
    assert (real.secret, real.development_secret) == ("s3cret", False)
    assert "s3cret" not in repr(real)


def test_bad_registrations_are_refused_with_where(tmp_path: Path) -> None:
    path = tmp_path / "vxp_systems.yaml"
    path.write_text("systems:\n  a: {system: eoffice}\n  b: {system: eoffice}\n"
                    "  c: {system: hcm_egov, secret: inline}\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid) as caught:
        load_registry(path, {})
    assert "systems/c/secret" in str(caught.value.problems)
    path.write_text("systems:\n  a: {system: eoffice}\n  b: {system: eoffice}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigInvalid, match="already registered"):
        load_registry(path, {})
    assert RegistryFile(tmp_path / "missing.yaml").current().systems == {}


# ------------------------------------------------------------------ helpers


def _deliveries_of(province: Province, document: str) -> list[str]:
    with province.server.bus.store.engine.connect() as conn:
        return list(conn.execute(sa.select(deliveries.c.id).where(
            deliveries.c.document == document)).scalars())


def _document_of(province: Province, delivery_id: str) -> str:
    return str(province.delivery(delivery_id)["document"])


def _payload_sha(province: Province, delivery_id: str) -> str:
    with province.server.bus.store.engine.connect() as conn:
        return str(conn.execute(sa.select(documents.c.payload_sha256).where(
            documents.c.id == _document_of(province, delivery_id))).scalar_one())


def _refused_metric(province: Province, code: str) -> float:
    value = province.server.bus.metrics.registry.get_sample_value(
        "lgsp_documents_refused_total", {"code": code, "channel": "vxp"})
    return float(value or 0.0)


def test_getedoc_data_is_the_packet_in_base64(province: Province,
                                              ioffice: IofficeSimulator) -> None:
    delivery_id = province.from_eoffice(edoc())
    province.wait_state(delivery_id, "awaiting")
    fetched = ioffice.get_edoc(delivery_id)
    assert fetched.ok
    packet = base64.b64decode(fetched.body["data"], validate=True)
    assert packet.decode("utf-8").startswith("<?xml")
    assert ioffice.poll_once().acknowledged == 1

"""The eoffice adapter against the simulated eOffice, over real loopback sockets.

Assertions are about effects (what eOffice stored, under which key) and about the bus's
decision (Receipt, Retry, Refuse), never about which zeep call was made: the simulator
is the interface's executable definition, so what passes here is what a faithful eOffice
would see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
import zeep.exceptions
from lxml import etree
from pydantic import ValidationError

from adapters.eoffice import EofficeAdapter
from adapters.eoffice.bus_client import BusFault
from adapters.eoffice.protocol import NS, SOAP_ENV, wsdl_bytes
from adapters.eoffice.simulator import EofficeSimulator
from bus.adapter import Delivery, Receipt, Refuse, Retry
from bus.delivery.worker import DeliveryWorker
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.settings import REPO_ROOT
from tests.api_server import running_bus

PASSWORD_ENV = "LGSP_TEST_EOFFICE_PASSWORD"
PASSWORD = "correct horse battery staple"
DICT = "000.00.12.H37"  # hosted by eOffice in the sample directory
UBND = "000.00.00.H37"


def edoc(sender: str = UBND, *to: str) -> Edoc:
    return (EdocBuilder(sender).to(*(to or (DICT,))).subject("Công văn về chuyển đổi số")
            .signer("Nguyễn Văn A").build())


def delivery(packet: bytes, *, kind: str = "edoc", key: str | None = None,
             recipient: str = DICT, document_id: str = "doc-1") -> Delivery:
    key = key or f"bus-{time.monotonic_ns()}:{recipient}:eoffice"
    return Delivery(payload=packet, idempotency_key=key, document_id=document_id, kind=kind,
                    sender=UBND, recipient=recipient, destination="eoffice")


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def sim() -> Iterator[EofficeSimulator]:
    with EofficeSimulator(username="lgsp", password=PASSWORD) as running:
        yield running


def make_adapter(sim: EofficeSimulator, **options: Any) -> EofficeAdapter:
    config = {"endpoint": sim.url, "username": "lgsp", "password_env": PASSWORD_ENV,
              "timeout_s": 5, **options}
    adapter = EofficeAdapter.from_options("eoffice", config)
    assert isinstance(adapter, EofficeAdapter)
    return adapter


@pytest.fixture
def adapter(sim: EofficeSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[EofficeAdapter]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    built = make_adapter(sim)
    built.open()
    yield built
    built.close()


# ------------------------------------------------------------------ happy paths


def test_edoc_goes_through_receive_document(sim: EofficeSimulator,
                                            adapter: EofficeAdapter) -> None:
    packet = edoc()
    data = packet_bytes(packet)
    receipt = adapter.deliver(delivery(data, key="b1:000.00.12.H37:eoffice",
                                       document_id=packet.document_id or ""))
    assert isinstance(receipt, Receipt) and receipt.duplicate is False
    (stored,) = sim.documents
    assert receipt.reference == stored.reference == sim.reference_for("b1:000.00.12.H37:eoffice")
    assert (stored.packet, stored.document_id, stored.recipient) == (
        data, packet.document_id, DICT)
    assert sim.statuses == []


def test_status_goes_through_receive_status(sim: EofficeSimulator,
                                            adapter: EofficeAdapter) -> None:
    original = edoc(DICT, UBND)
    status = packet_bytes(status_for(original, "03", at=datetime(2025, 7, 3, 14, 0)))
    receipt = adapter.deliver(delivery(status, kind="status",
                                       document_id=original.document_id or ""))
    (stored,) = sim.statuses
    assert receipt.reference == stored.reference and receipt.duplicate is False
    assert stored.packet == status and stored.document_id == original.document_id
    assert sim.documents == []


def test_same_key_twice_is_one_document(sim: EofficeSimulator, adapter: EofficeAdapter) -> None:
    sent = delivery(packet_bytes(edoc()), key="b2:000.00.12.H37:eoffice")
    first = adapter.deliver(sent)
    again = adapter.deliver(sent)
    assert len(sim.documents) == 1
    assert again.duplicate is True and first.duplicate is False
    assert again.reference == first.reference


def test_wsdl_served_by_eoffice_is_enough(sim: EofficeSimulator,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation publishing the WSDL needs no endpoint: the served address is used."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    remote = EofficeAdapter.from_options("eoffice", {
        "wsdl": sim.url + "?wsdl", "username": "lgsp", "password_env": PASSWORD_ENV})
    try:
        assert remote.check() is None
        assert remote.deliver(delivery(packet_bytes(edoc()))).reference == "EO-000001"
    finally:
        remote.close()


# ------------------------------------------------------------------ temporary failures


def test_down_is_retried_and_recovers(sim: EofficeSimulator, adapter: EofficeAdapter) -> None:
    assert adapter.deliver(delivery(packet_bytes(edoc()))).reference  # a pooled connection
    sent = delivery(packet_bytes(edoc()))
    sim.down()
    with pytest.raises(Retry, match="cannot reach eOffice"):
        adapter.deliver(sent)
    assert adapter.check() is not None
    sim.ok()
    assert adapter.deliver(sent).duplicate is False
    assert len(sim.documents) == 2


def test_slow_answer_times_out_then_the_repeat_is_a_duplicate(
        sim: EofficeSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    impatient = make_adapter(sim, timeout_s=0.5)
    sent = delivery(packet_bytes(edoc()))
    sim.slow(1.5)
    started = time.monotonic()
    with pytest.raises(Retry, match=r"within 0\.5s"):
        impatient.deliver(sent)
    assert time.monotonic() - started < 1.4
    # eOffice committed after the bus gave up: the retry must not file it twice.
    assert wait_until(lambda: len(sim.documents) == 1, 5)
    sim.ok()
    repeat = impatient.deliver(sent)
    assert repeat.duplicate is True and repeat.reference == sim.documents[0].reference
    assert len(sim.documents) == 1
    impatient.close()


@pytest.mark.parametrize("code", ["Busy", "DatabaseUnavailable", "InternalError"])
def test_server_faults_are_retried(sim: EofficeSimulator, adapter: EofficeAdapter,
                                   code: str) -> None:
    sim.fault(code, times=1)
    with pytest.raises(Retry, match=code) as caught:
        adapter.deliver(delivery(packet_bytes(edoc())))
    if code == "Busy":
        assert caught.value.delay_s == 5.0  # the fault's retryAfter
    assert sim.documents == []
    assert adapter.deliver(delivery(packet_bytes(edoc()))).reference


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_errors_without_a_fault_are_retried(sim: EofficeSimulator,
                                                 adapter: EofficeAdapter, status: int) -> None:
    sim.http_error(status)
    with pytest.raises(Retry, match=f"HTTP {status}"):
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert sim.documents == []


# ------------------------------------------------------------------ permanent refusals


@pytest.mark.parametrize("code", ["InvalidDocument", "UnknownRecipient", "InvalidRequest"])
def test_client_faults_are_refused(sim: EofficeSimulator, adapter: EofficeAdapter,
                                   code: str) -> None:
    sim.fault(code)
    with pytest.raises(Refuse) as caught:
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert caught.value.code == code
    assert sim.documents == []


def test_a_bad_packet_is_refused_by_eoffice_itself(sim: EofficeSimulator,
                                                   adapter: EofficeAdapter) -> None:
    with pytest.raises(Refuse, match="MalformedXml") as caught:
        adapter.deliver(delivery(b"<edXML><not-closed></edXML>"))
    assert caught.value.code == "InvalidDocument"
    status = packet_bytes(status_for(edoc(DICT, UBND), "01"))
    with pytest.raises(Refuse, match="status packet sent as a edoc"):
        adapter.deliver(delivery(status, kind="edoc"))
    assert sim.received == []


def test_a_recipient_eoffice_does_not_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with EofficeSimulator(username="lgsp", password=PASSWORD, hosted=[DICT]) as sim:
        hosted_only = make_adapter(sim)
        with pytest.raises(Refuse) as caught:
            hosted_only.deliver(delivery(packet_bytes(edoc(UBND, "000.00.31.H37")),
                                         recipient="000.00.31.H37"))
        assert caught.value.code == "UnknownRecipient"
        assert hosted_only.deliver(delivery(packet_bytes(edoc()))).reference
        hosted_only.close()


def test_bad_credential_is_refused_naming_the_setting(sim: EofficeSimulator,
                                                      adapter: EofficeAdapter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sim.bad_credentials()
    with pytest.raises(Refuse, match=PASSWORD_ENV) as caught:
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert caught.value.code == "Unauthorized"

    sim.ok()
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    wrong = make_adapter(sim)
    with pytest.raises(Refuse, match=PASSWORD_ENV):
        wrong.deliver(delivery(packet_bytes(edoc())))
    wrong.close()

    anonymous = EofficeAdapter.from_options("eoffice", {"endpoint": sim.url})
    with pytest.raises(Refuse, match="sends no credential") as caught:
        anonymous.deliver(delivery(packet_bytes(edoc())))
    assert caught.value.code == "Unauthorized"
    anonymous.close()
    assert sim.documents == []


@pytest.mark.parametrize("status", [401, 403])
def test_gateway_401_403_is_refused_naming_the_setting(sim: EofficeSimulator,
                                                       adapter: EofficeAdapter,
                                                       status: int) -> None:
    sim.http_error(status)
    with pytest.raises(Refuse, match=f"HTTP {status}.*{PASSWORD_ENV}") as caught:
        adapter.deliver(delivery(packet_bytes(edoc())))
    assert caught.value.code == f"HTTP{status}"


def test_a_wrong_endpoint_is_refused(sim: EofficeSimulator, adapter: EofficeAdapter) -> None:
    sim.http_error(404)
    with pytest.raises(Refuse, match="check endpoint"):
        adapter.deliver(delivery(packet_bytes(edoc())))


# ------------------------------------------------------------------ configuration


def test_missing_password_is_retried_and_reported(sim: EofficeSimulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    unset = make_adapter(sim)
    with pytest.raises(Retry, match=f"{PASSWORD_ENV}.*not set"):
        unset.deliver(delivery(packet_bytes(edoc())))
    assert PASSWORD_ENV in (unset.check() or "")
    assert sim.requests == []


@pytest.mark.parametrize("options", [
    {},
    {"endpoint": "ftp://eoffice.example/soap"},
    {"endpoint": "http://127.0.0.1:1/x", "username": "lgsp"},
    {"endpoint": "http://127.0.0.1:1/x", "timeout_s": 0},
    {"endpoint": "http://127.0.0.1:1/x", "password": "in-the-yaml"},
])
def test_bad_options_are_refused_when_routes_load(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EofficeAdapter.from_options("eoffice", options)


def test_constructor_and_close_do_no_io() -> None:
    """Routes load long before delivery: nothing may connect until open()."""
    built = EofficeAdapter.from_options("eoffice", {"endpoint": "http://127.0.0.1:9/none"})
    built.close()
    built.close()
    with pytest.raises(Retry, match="cannot reach"):
        built.deliver(delivery(packet_bytes(edoc())))
    built.close()


def test_close_is_idempotent_and_open_again_works(sim: EofficeSimulator,
                                                  adapter: EofficeAdapter) -> None:
    adapter.close()
    adapter.close()
    adapter.open()
    assert adapter.deliver(delivery(packet_bytes(edoc()))).reference


def test_packaged_wsdl_is_the_one_served() -> None:
    root = etree.fromstring(wsdl_bytes("http://eoffice.example/x"))
    (address,) = root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == "http://eoffice.example/x"
    assert root.get("targetNamespace") == NS


# ------------------------------------------------------------------ the fault table


def _fault(code: str | None, detail_code: str | None) -> zeep.exceptions.Fault:
    detail = None
    if detail_code is not None:
        detail = etree.Element("detail")
        error = etree.SubElement(detail, f"{{{NS}}}Error")
        etree.SubElement(error, f"{{{NS}}}code").text = detail_code
        etree.SubElement(error, f"{{{NS}}}message").text = "m"
    fault: Any = zeep.exceptions.Fault  # untyped constructor
    return fault("m", code=code, detail=detail)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("faultcode", "detail", "decision"), [
    ("soap:Server", "InvalidDocument", Refuse),       # a known code beats the faultcode
    ("soap:Client", "Busy", Retry),
    ("soap:Client", "SomethingNew", Refuse),          # unknown code: the faultcode decides
    ("soap:Client.Auth", None, Refuse),
    ("SOAP-ENV:Server", "SomethingNew", Retry),
    ("soap:VersionMismatch", None, Refuse),
    (None, None, Retry),                              # no fault element: unreadable
])
def test_fault_decisions(faultcode: str | None, detail: str | None, decision: type) -> None:
    built = EofficeAdapter.from_options("eoffice", {"endpoint": "http://127.0.0.1:9/x"})
    assert isinstance(built, EofficeAdapter)
    assert isinstance(built.decide_fault(_fault(faultcode, detail)), decision)


def test_soap_action_must_match_the_operation(sim: EofficeSimulator) -> None:
    body = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:eo="{NS}"><soap:Body>'
            '<eo:ReceiveDocument/></soap:Body></soap:Envelope>').encode()
    status, reply, _ = sim.answer(body, f"{NS}#ReceiveStatus")
    assert status == 500 and b"InvalidRequest" in reply and b"soap:Client" in reply


# ------------------------------------------------------------------ eOffice → bus


def test_eoffice_sends_to_the_bus_soap_endpoint(tmp_path: Path) -> None:
    sim = EofficeSimulator()
    with running_bus(tmp_path / "bus") as server:
        packet = edoc(DICT, UBND)
        data = packet_bytes(packet)
        receipt = sim.send_to_bus(server.url + "/soap", "dev-eoffice-key", data)
        assert (receipt.kind, receipt.document_id, receipt.existing) == (
            "edoc", packet.document_id, False)
        assert [(r.recipient, r.destination) for r in receipt.recipients] == [
            (UBND, "vnpt_ioffice")]
        again = sim.send_to_bus(server.url + "/soap", "dev-eoffice-key", data)
        assert again.existing is True and again.id == receipt.id

        # The UBND answers through its own system; eOffice then reports on a document
        # it received, and the bus routes that status back to VNPT-iOffice.
        incoming = edoc(UBND, DICT)
        sim.send_to_bus(server.url + "/soap", "dev-vnpt_ioffice-key", packet_bytes(incoming))
        status = sim.send_to_bus(server.url + "/soap", "dev-eoffice-key",
                                 packet_bytes(status_for(incoming, "03")))
        assert status.kind == "status"
        assert [r.destination for r in status.recipients] == ["vnpt_ioffice"]

        with pytest.raises(BusFault) as caught:
            sim.send_to_bus(server.url + "/soap", "not-a-key", data)
        assert caught.value.code == "Unauthenticated"


def _routes_with_eoffice(folder: Path, sim: EofficeSimulator) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text(encoding="utf-8"))
    raw["destinations"]["eoffice"] = {"adapter": "eoffice", "options": {
        "endpoint": sim.url, "username": "lgsp", "password_env": PASSWORD_ENV, "timeout_s": 5}}
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_round_trip_through_the_bus(tmp_path: Path, sim: EofficeSimulator,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents for eOffice's agencies arrive by ReceiveDocument; the status another
    system reports on a document eOffice sent arrives by ReceiveStatus."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    routes = _routes_with_eoffice(tmp_path, sim)
    with running_bus(tmp_path / "bus", routes=routes) as server:
        soap = server.url + "/soap"
        worker = DeliveryWorker.from_bus(server.bus, name="test-eoffice")
        try:
            incoming = edoc(UBND, DICT)
            (to_eoffice,) = sim.send_to_bus(soap, "dev-vnpt_ioffice-key",
                                            packet_bytes(incoming)).recipients
            assert to_eoffice.destination == "eoffice"
            assert worker.handle(to_eoffice.delivery) == "delivered"
            (stored,) = sim.documents
            assert stored.document_id == incoming.document_id and stored.recipient == DICT

            outgoing = edoc(DICT, UBND)
            sim.send_to_bus(soap, "dev-eoffice-key", packet_bytes(outgoing))
            answer = status_for(outgoing, "03", at=datetime(2025, 7, 3, 14, 0))
            (back,) = sim.send_to_bus(soap, "dev-vnpt_ioffice-key",
                                      packet_bytes(answer)).recipients
            assert (back.recipient, back.destination) == (DICT, "eoffice")
            assert worker.handle(back.delivery) == "delivered"
            (status,) = sim.statuses
            assert status.document_id == outgoing.document_id
        finally:
            worker.close()

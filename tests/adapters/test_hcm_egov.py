"""The ``hcm_egov`` adapter against its simulator over real loopback sockets: every
answer the platform can give, mapped onto the bus's three decisions.

The simulator is strict (decodes the Authorization header and compares every key, reads
each packet with the bus's reader, counts effects per Idempotency-Key), so a passing test
here means the adapter speaks the interface README.md describes, not merely that some
request went out. Every wait is bounded by the adapter's timeout or an explicit deadline.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from adapters.hcm_egov import HcmEgovAdapter
from adapters.hcm_egov.protocol import DOCUMENTS_PATH, STATUSES_PATH, parse_envelope
from adapters.hcm_egov.simulator import HcmEgovSimulator
from bus.adapter import Receipt, Refuse, Retry
from bus.edxml import packet_bytes, status_for
from tests.adapters.hcm_egov_support import (
    ACCESS,
    ACCESS_ENV,
    APP,
    PARTNER,
    PARTNER_CUS,
    SECRET,
    SECRET_ENV,
    SO_TTTT,
    XA_31,
    delivery,
    edoc,
    edoc_delivery,
    make_adapter,
    options,
    set_secrets,
    simulator,
)


@pytest.fixture
def sim() -> Iterator[HcmEgovSimulator]:
    with simulator() as running:
        yield running


@pytest.fixture
def adapter(sim: HcmEgovSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[HcmEgovAdapter]:
    set_secrets(monkeypatch)
    built = make_adapter(sim)
    built.open()
    yield built
    built.close()


# ------------------------------------------------------------------ happy paths


def test_edoc_is_delivered_with_a_receipt(sim: HcmEgovSimulator,
                                          adapter: HcmEgovAdapter) -> None:
    packet = edoc()
    receipt = adapter.deliver(delivery(packet_bytes(packet)))
    [stored] = sim.documents
    assert receipt == Receipt(reference=stored.reference, detail=receipt.detail,
                              duplicate=False)
    assert stored.document_id == packet.document_id
    assert stored.recipient == XA_31
    assert stored.body == packet_bytes(packet)
    call = sim.calls[-1]
    assert (call.method, call.path, call.status) == ("POST", DOCUMENTS_PATH, 200)
    assert call.headers["content-type"] == "application/xml"
    assert call.headers["idempotency-key"] == "doc-1:000.00.31.H37:hcm_egov"
    assert call.headers["x-lgsp-delivery"] == "dl-1"


def test_status_goes_to_the_statuses_endpoint(sim: HcmEgovSimulator,
                                              adapter: HcmEgovAdapter) -> None:
    original = edoc(XA_31, SO_TTTT)  # the commune wrote to eOffice, which answers 03
    status = status_for(original, "03")
    receipt = adapter.deliver(delivery(packet_bytes(status), kind="status", key="st-1"))
    [stored] = sim.statuses
    assert sim.documents == []
    assert receipt.reference == stored.reference and not receipt.duplicate
    assert (stored.status_code, stored.document_id) == ("03", original.document_id)
    assert sim.calls[-1].path == STATUSES_PATH


def test_authorization_is_base64_of_compact_json_with_the_five_keys(
        sim: HcmEgovSimulator, adapter: HcmEgovAdapter) -> None:
    adapter.deliver(edoc_delivery())
    header = sim.calls[-1].headers["authorization"]
    raw = base64.b64decode(header, validate=True)
    expected = {"AppName": APP, "AccessKey": ACCESS, "SecretKey": SECRET,
                "PartnerCode": PARTNER, "PartnerCodeCus": PARTNER_CUS}
    assert json.loads(raw) == expected
    assert raw == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    assert not header.startswith(("Basic ", "Bearer "))


def test_the_same_key_twice_is_one_effect(sim: HcmEgovSimulator,
                                          adapter: HcmEgovAdapter) -> None:
    first = adapter.deliver(edoc_delivery(key="k-dup"))
    second = adapter.deliver(delivery(sim.documents[0].body, key="k-dup"))
    assert sim.effects == 1
    assert second.duplicate and not first.duplicate
    assert second.reference == first.reference
    other = adapter.deliver(delivery(sim.documents[0].body, key="k-other"))
    assert sim.effects == 2 and other.reference != first.reference


def test_the_same_key_with_other_content_is_refused(sim: HcmEgovSimulator,
                                                    adapter: HcmEgovAdapter) -> None:
    adapter.deliver(edoc_delivery(key="k-1"))
    with pytest.raises(Refuse) as refused:
        adapter.deliver(edoc_delivery(key="k-1", subject="Một văn bản khác"))
    assert refused.value.code == "HTTP409"
    assert sim.effects == 1


# ------------------------------------------------------------------ outages


def test_down_is_retried_then_delivered(sim: HcmEgovSimulator, adapter: HcmEgovAdapter) -> None:
    sim.down()
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery())
    assert "unreachable" in retry.value.reason and retry.value.delay_s is None
    sim.ok()
    assert adapter.deliver(edoc_delivery()).reference == sim.documents[0].reference


def test_slow_answer_is_a_timeout_retry_and_the_retry_is_one_effect(
        sim: HcmEgovSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)
    adapter = make_adapter(sim, timeout_s=0.4)
    sim.slow(2.0)
    started = time.monotonic()
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery(key="k-slow"))
    assert time.monotonic() - started < 1.8  # gave up before the answer came
    assert "no answer within 0.4s" in retry.value.reason
    # The platform committed the document after all; the retry must not make a second.
    assert sim.wait_for(lambda: sim.effects == 1, timeout=5)
    sim.ok()
    receipt = adapter.deliver(delivery(sim.documents[0].body, key="k-slow"))
    assert receipt.duplicate and sim.effects == 1
    adapter.close()


@pytest.mark.parametrize(("retry_after", "expected"), [("7", 7.0), ("86400", 60.0)])
def test_429_honours_retry_after_capped(sim: HcmEgovSimulator, adapter: HcmEgovAdapter,
                                        retry_after: str, expected: float) -> None:
    sim.throttle(retry_after, times=1)
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery())
    assert retry.value.delay_s == expected
    assert "429" in retry.value.reason
    assert sim.effects == 0
    assert adapter.deliver(edoc_delivery()).reference is not None


def test_429_with_an_http_date(sim: HcmEgovSimulator, adapter: HcmEgovAdapter) -> None:
    sim.throttle(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery())
    assert retry.value.delay_s is not None and 25 <= retry.value.delay_s <= 31


def test_429_without_retry_after_leaves_back_off_to_the_bus(
        sim: HcmEgovSimulator, adapter: HcmEgovAdapter) -> None:
    sim.fail(429)
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery())
    assert retry.value.delay_s is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried(sim: HcmEgovSimulator, adapter: HcmEgovAdapter, status: int) -> None:
    sim.fail(status, retry_after="3" if status == 503 else None)
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery())
    assert str(status) in retry.value.reason
    assert retry.value.delay_s == (3.0 if status == 503 else None)
    assert sim.effects == 0


def test_an_answer_that_is_not_an_envelope_is_retried(sim: HcmEgovSimulator,
                                                      adapter: HcmEgovAdapter) -> None:
    sim.garble(times=1)
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery())
    assert "not an HCM Egov envelope" in retry.value.reason
    assert adapter.deliver(edoc_delivery()).reference


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("status", [401, 403])
def test_forced_401_403_are_refused_naming_the_variables(
        sim: HcmEgovSimulator, adapter: HcmEgovAdapter, status: int) -> None:
    sim.fail(status)
    with pytest.raises(Refuse) as refused:
        adapter.deliver(edoc_delivery())
    assert refused.value.code == f"HTTP{status}"
    assert ACCESS_ENV in refused.value.reason and SECRET_ENV in refused.value.reason


def test_a_wrong_secret_is_refused_by_the_platform(sim: HcmEgovSimulator,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch, secret="not-the-secret")
    with pytest.raises(Refuse) as refused:
        make_adapter(sim).deliver(edoc_delivery())
    assert refused.value.code == "HTTP401"
    assert "SecretKey" in refused.value.reason and SECRET_ENV in refused.value.reason
    assert sim.effects == 0


def test_a_partner_the_platform_does_not_know_is_forbidden(
        sim: HcmEgovSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)
    with pytest.raises(Refuse) as refused:
        make_adapter(sim, partner_code_cus="UBND-H99").deliver(edoc_delivery())
    assert refused.value.code == "HTTP403"
    assert "'UBND-H99'" in refused.value.reason
    assert sim.effects == 0


def test_a_missing_secret_is_retried_naming_the_variable(
        sim: HcmEgovSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ACCESS_ENV, ACCESS)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    adapter = make_adapter(sim)
    with pytest.raises(Retry) as retry:
        adapter.deliver(edoc_delivery())
    assert SECRET_ENV in retry.value.reason
    assert sim.calls == []
    assert adapter.check() is not None and SECRET_ENV in (adapter.check() or "")
    adapter.close()


def test_an_invalid_packet_is_refused_with_the_description(
        sim: HcmEgovSimulator, adapter: HcmEgovAdapter) -> None:
    with pytest.raises(Refuse) as refused:
        adapter.deliver(delivery(b"<edXMLEnvelope>not finished"))
    assert refused.value.code == "HTTP422"
    assert "MalformedXml" in refused.value.reason
    assert "không hợp lệ" in refused.value.reason


def test_a_status_sent_as_an_edoc_is_refused(sim: HcmEgovSimulator,
                                             adapter: HcmEgovAdapter) -> None:
    status = status_for(edoc(SO_TTTT, XA_31), "13")
    with pytest.raises(Refuse) as refused:
        adapter.deliver(delivery(packet_bytes(status), kind="edoc"))
    assert refused.value.code == "HTTP422"


def test_a_recipient_the_platform_does_not_host_is_refused(
        sim: HcmEgovSimulator, adapter: HcmEgovAdapter) -> None:
    with pytest.raises(Refuse) as refused:
        adapter.deliver(delivery(packet_bytes(edoc(SO_TTTT, "000.00.99.H37")),
                                 recipient="000.00.99.H37"))
    assert refused.value.code == "HTTP404"
    assert "000.00.99.H37" in refused.value.reason


def test_an_oversized_packet_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    set_secrets(monkeypatch)
    with simulator(max_body_bytes=1000) as small, pytest.raises(Refuse) as refused:
        make_adapter(small).deliver(edoc_delivery())
    assert refused.value.code == "HTTP413"


# ------------------------------------------------------------------ the mapping itself


def _response(status: int, body: object, headers: dict[str, str] | None = None
              ) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers or {})


@pytest.mark.parametrize(("status", "body", "decision"), [
    (200, {"StatusCode": 422, "Status": False, "Description": "Sai", "ResultObject": None},
     Refuse),
    (200, {"StatusCode": 503, "Status": False, "Description": "Bận", "ResultObject": None},
     Retry),
    (200, {"statusCode": "200", "status": "Success", "description": "OK",
           "resultObject": {"documentId": 42}}, Receipt),
    (404, b"<html>nginx</html>", Retry),
    (413, b"<html>Request Entity Too Large</html>", Refuse),
    (302, b"", Retry),
])
def test_answers_inside_and_outside_the_envelope(
        monkeypatch: pytest.MonkeyPatch, status: int, body: object, decision: type) -> None:
    """Platforms of this family answer HTTP 200 with the failure inside the envelope, and
    proxies answer without one; both must land on the right decision."""
    set_secrets(monkeypatch)
    sim = simulator()  # never started: the answers are built, not fetched
    adapter = make_adapter(sim)

    def send(request: httpx.Request) -> httpx.Response:
        return _response(status, body)

    adapter._client = httpx.Client(base_url=sim.base_url,
                                   transport=httpx.MockTransport(send))
    if decision is Receipt:
        assert adapter.deliver(edoc_delivery()).reference == "42"
    else:
        with pytest.raises(decision):
            adapter.deliver(edoc_delivery())
    adapter.close()


# ------------------------------------------------------------------ configuration


def test_config_forbids_unknown_options_and_secrets_in_place_of_names(
        sim: HcmEgovSimulator) -> None:
    with pytest.raises(ValidationError):
        HcmEgovAdapter.from_options("x", options(sim, password="x"))
    with pytest.raises(ValidationError):
        HcmEgovAdapter.from_options("x", options(sim, secret_key_env="sk live 123!"))
    with pytest.raises(ValidationError):
        HcmEgovAdapter.from_options("x", options(sim, base_url="ftp://egov.example"))
    with pytest.raises(ValidationError):
        HcmEgovAdapter.from_options("x", options(sim, timeout_s=0))


def test_construction_does_no_io_and_close_is_idempotent() -> None:
    adapter = HcmEgovAdapter.from_options("hcm_egov", {
        "base_url": "http://192.0.2.1:9/", "app_name": "a", "partner_code": "p",
        "partner_code_cus": "c"})
    assert adapter.config.base_url == "http://192.0.2.1:9"
    assert adapter.capabilities == frozenset({"deliver", "poll"})
    adapter.close()
    adapter.open()
    adapter.close()
    adapter.close()


def test_check_reports_reachability(sim: HcmEgovSimulator, adapter: HcmEgovAdapter) -> None:
    assert adapter.check() is None
    sim.fail(403, times=1)
    forbidden = adapter.check()
    assert forbidden is not None and "403" in forbidden and SECRET_ENV in forbidden
    sim.down()
    reason = adapter.check()
    assert reason is not None and "unreachable" in reason


def test_envelope_parsing() -> None:
    assert parse_envelope(b"not json") is None
    assert parse_envelope(b"[]") is None
    assert parse_envelope(b'{"Description": "no code"}') is None
    envelope = parse_envelope(b'{"StatusCode": 200, "Status": true, "Description": "OK"}')
    assert envelope is not None and envelope.ok
    failed = parse_envelope(b'{"StatusCode": 200, "Status": "Error", "Description": "x"}')
    assert failed is not None and not failed.ok


# ------------------------------------------------------------------ standalone


class _RecordingInbox:
    def __init__(self) -> None:
        self.packets: list[tuple[bytes, str | None]] = []

    def submit(self, packet: bytes, *, source_id: str | None = None) -> dict[str, Any]:
        self.packets.append((packet, source_id))
        return {"id": f"bus-{len(self.packets)}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_simulator_runs_standalone(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m adapters.hcm_egov.simulator``: modes and the outbox over HTTP."""
    port = _free_port()
    env = {**os.environ, "LGSP_HCM_EGOV_ACCESS_KEY": ACCESS, "LGSP_HCM_EGOV_SECRET_KEY": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "adapters.hcm_egov.simulator", "--port", str(port),
         "--app-name", APP, "--partner-code", PARTNER, "--partner-code-cus", PARTNER_CUS],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(base + "/_simulator/state", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        queued = httpx.post(base + "/_simulator/outbox", timeout=5,
                            content=packet_bytes(edoc(XA_31, SO_TTTT)))
        item = queued.json()["ResultObject"]["Id"]
        set_secrets(monkeypatch)
        adapter = HcmEgovAdapter.from_options("hcm_egov", options(simulator(), base_url=base))
        httpx.post(base + "/_simulator/mode", json={"mode": "fail", "status": 503,
                                                    "retry_after": "4"}, timeout=5)
        with pytest.raises(Retry) as retry:
            adapter.poll(_RecordingInbox())
        assert retry.value.delay_s == 4.0
        httpx.post(base + "/_simulator/mode", json={"mode": "ok"}, timeout=5)
        inbox = _RecordingInbox()
        assert adapter.poll(inbox) == 1
        assert inbox.packets[0][1] == item
        assert adapter.deliver(edoc_delivery()).reference
        adapter.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
    assert process.returncode == 0

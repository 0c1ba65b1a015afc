"""The http adapter against a real loopback destination: each HTTP answer maps to the
bus decision the README promises, and every request carries what a destination needs to
deduplicate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
from pydantic import ValidationError

from adapters.http import HttpAdapter, HttpConfig, retry_after_s
from bus.adapter import Delivery, Refuse, Retry
from bus.edxml import EdocBuilder, packet_bytes
from tests.http_sink import HttpSink

KEY_ENV = "LGSP_TEST_SINK_KEY"


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server


def _adapter(sink: HttpSink, **options: object) -> Iterator[HttpAdapter]:
    adapter = HttpAdapter.from_options("archive", {"url": sink.url("/archive"), **options})
    assert isinstance(adapter, HttpAdapter)
    adapter.open()
    try:
        yield adapter
    finally:
        adapter.close()


@pytest.fixture
def adapter(sink: HttpSink) -> Iterator[HttpAdapter]:
    yield from _adapter(sink, timeout_s=2)


def _delivery(key: str = "doc1:000.00.31.H37:archive") -> Delivery:
    edoc = (EdocBuilder("000.00.12.H37").to("000.00.31.H37")
            .subject("Về việc thử nghiệm trục").signer("Nguyễn Văn A").build())
    return Delivery(payload=packet_bytes(edoc), idempotency_key=key,
                    document_id=edoc.document_id or "", kind="edoc", sender="000.00.12.H37",
                    recipient="000.00.31.H37", destination="archive",
                    headers={"X-LGSP-Delivery": "d1"})


def test_2xx_is_a_receipt_with_the_destination_id_and_every_header(
    sink: HttpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "s3cret")
    delivery = _delivery()
    for adapter in _adapter(sink, headers={"X-Province": "H37"}, api_key_env=KEY_ENV):
        receipt = adapter.deliver(delivery)
    [request] = sink.requests
    print(f"\n[http] receipt={receipt} path={request.path} bytes={len(request.body)}")
    assert receipt.reference is not None and len(receipt.reference) == 32
    assert not receipt.duplicate
    assert request.body == delivery.payload
    assert request.headers["content-type"] == "application/xml"
    assert request.headers["idempotency-key"] == delivery.idempotency_key
    assert request.headers["x-lgsp-document"] == delivery.document_id
    assert request.headers["x-lgsp-recipient"] == "000.00.31.H37"
    assert request.headers["x-lgsp-delivery"] == "d1"
    assert request.headers["x-province"] == "H37"
    assert request.headers["x-api-key"] == "s3cret"
    assert request.headers["user-agent"].startswith("lgsp-bus/")


def test_same_key_twice_is_one_effect_with_the_same_reference(
    sink: HttpSink, adapter: HttpAdapter
) -> None:
    first = adapter.deliver(_delivery())
    second = adapter.deliver(_delivery())
    print(f"\n[http] effects={sink.effects} requests={len(sink.requests)}")
    assert first.reference == second.reference
    assert (sink.effects, len(sink.requests), sink.duplicates) == (1, 2, 1)


def test_409_is_a_receipt_marked_duplicate(sink: HttpSink, adapter: HttpAdapter) -> None:
    sink.fail(409, times=1)
    receipt = adapter.deliver(_delivery())
    assert receipt.duplicate
    assert receipt.detail is not None and "409" in receipt.detail


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 415, 422])
def test_client_errors_are_refusals(sink: HttpSink, adapter: HttpAdapter, status: int) -> None:
    sink.fail(status)
    with pytest.raises(Refuse) as refused:
        adapter.deliver(_delivery())
    assert refused.value.code == f"HTTP{status}"
    assert f"HTTP {status}" in refused.value.reason


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retries(sink: HttpSink, adapter: HttpAdapter,
                                        status: int) -> None:
    sink.fail(status)
    with pytest.raises(Retry) as retry:
        adapter.deliver(_delivery())
    assert retry.value.delay_s is None
    assert f"HTTP {status}" in retry.value.reason


def test_retry_after_seconds_and_dates_are_honoured(sink: HttpSink,
                                                    adapter: HttpAdapter) -> None:
    sink.fail(503, retry_after="7")
    with pytest.raises(Retry) as retry:
        adapter.deliver(_delivery())
    assert retry.value.delay_s == 7.0
    later = formatdate(time.time() + 120, usegmt=True)
    parsed = retry_after_s(later)
    assert parsed is not None and 110 <= parsed <= 121
    assert retry_after_s("soon") is None


def test_connection_refused_is_a_retry(sink: HttpSink, adapter: HttpAdapter) -> None:
    sink.down()
    began = time.monotonic()
    with pytest.raises(Retry) as retry:
        adapter.deliver(_delivery())
    print(f"\n[http] refused connection detected in {time.monotonic() - began:.3f}s")
    assert "ConnectError" in retry.value.reason
    sink.ok()
    assert adapter.deliver(_delivery()).reference is not None


def test_timeout_is_a_retry(sink: HttpSink) -> None:
    sink.slow(1.0)
    for adapter in _adapter(sink, timeout_s=0.2):
        began = time.monotonic()
        with pytest.raises(Retry) as retry:
            adapter.deliver(_delivery())
        took = time.monotonic() - began
    print(f"\n[http] timed out after {took:.3f}s")
    assert "no answer within 0.2s" in retry.value.reason
    assert took < 0.9


def test_missing_api_key_variable_is_named(sink: HttpSink,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    for adapter in _adapter(sink, api_key_env=KEY_ENV):
        with pytest.raises(Retry, match=KEY_ENV):
            adapter.deliver(_delivery())
        reason = adapter.check()
    assert reason is not None and KEY_ENV in reason
    assert sink.requests == []


def test_check_reports_reachability(sink: HttpSink, adapter: HttpAdapter) -> None:
    assert adapter.check() is None
    sink.down()
    reason = adapter.check()
    assert reason is not None and "unreachable" in reason


def test_close_is_idempotent_and_open_again_works(sink: HttpSink,
                                                  adapter: HttpAdapter) -> None:
    adapter.close()
    adapter.close()
    adapter.open()
    assert adapter.deliver(_delivery()).reference is not None


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({}, "url"),
        ({"url": "http://127.0.0.1/x", "timeout_s": 0}, "timeout_s"),
        ({"url": "http://127.0.0.1/x", "proxy": "http://p"}, "proxy"),
        ({"url": "http://127.0.0.1/x", "headers": {"X-A": "a\r\nX-B: b"}}, "headers"),
    ],
)
def test_config_is_validated(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as invalid:
        HttpConfig.model_validate(options)
    assert field in {str(e["loc"][0]) for e in invalid.value.errors()}

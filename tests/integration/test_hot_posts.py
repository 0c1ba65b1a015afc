"""The submission POSTs are served in front of FastAPI's router (bus.api.hot), and answer
exactly as the router's endpoints would: same statuses, codes, bodies and headers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from bus.api.hot import HotPosts
from bus.api.rest import create_app
from bus.app import Bus
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.settings import load_settings
from tests.api_server import api_key

CAP = 64 * 1024
EOFFICE = api_key("eoffice")


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    folder: Path = tmp_path_factory.mktemp("hot")
    running = Bus(load_settings(environ={}, data_dir=folder, max_body_bytes=CAP))
    yield running
    running.close()


def _edoc(document_id: str, sender: str = "000.00.12.H37") -> Edoc:
    return (EdocBuilder(sender).to("000.00.00.H37").subject("Báo cáo")
            .signer("Nguyễn Văn A", "Giám đốc").code("7", "BC-STTTT")
            .document_id(document_id).build())


def _packet(document_id: str, sender: str = "000.00.12.H37") -> bytes:
    return packet_bytes(_edoc(document_id, sender))


def _router_only(app: FastAPI) -> FastAPI:
    """The same application with the hot layer taken out: the router answers."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotPosts]
    app.middleware_stack = None
    return app


class _CountingRouter:
    """Stands in for the application's router and notes every request it is given."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.paths: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append((scope["method"], scope["path"]))
        await self.router(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.router, name)


def _counting(app: FastAPI) -> _CountingRouter:
    counting = _CountingRouter(app.router)
    app.router = counting  # type: ignore[assignment]
    app.middleware_stack = None
    return counting


def test_submissions_are_answered_in_front_of_the_router(bus: Bus) -> None:
    app = create_app(bus)
    router = _counting(app)
    with TestClient(app) as client:
        sent = _edoc("hot-1")
        first = client.post("/api/v1/edocs", content=packet_bytes(sent), headers=EOFFICE)
        assert first.status_code == 202, first.text
        receipt = first.json()
        assert first.headers["location"] == f"/api/v1/edocs/{receipt['id']}"
        assert first.headers["x-request-id"]
        answered = client.post("/api/v1/statuses", content=packet_bytes(status_for(sent, "03")),
                               headers=api_key("vnpt_ioffice"))
        assert answered.status_code == 202, answered.text
        assert answered.json()["kind"] == "status"
    assert router.paths == []


def test_other_methods_on_the_same_paths_still_reach_the_router(bus: Bus) -> None:
    app = create_app(bus)
    router = _counting(app)
    with TestClient(app) as client:
        listed = client.get("/api/v1/edocs", headers=EOFFICE)
        assert listed.status_code == 200, listed.text
        assert "items" in listed.json() or listed.json()
        wrong = client.put("/api/v1/edocs", content=b"<x/>", headers=EOFFICE)
        assert wrong.status_code == 405
    assert router.paths == [("GET", "/api/v1/edocs"), ("PUT", "/api/v1/edocs")]


def _cases() -> list[tuple[str, str, bytes, dict[str, str]]]:
    good = _packet("hot-same-1")
    return [
        ("accepted", "/api/v1/edocs", good, EOFFICE),
        ("resubmitted", "/api/v1/edocs", good, EOFFICE),
        ("same id, other bytes", "/api/v1/edocs", _packet("hot-same-1").replace(
            "Báo cáo".encode(), "Báo cáo 2".encode()), EOFFICE),
        ("no key", "/api/v1/edocs", good, {}),
        ("empty key", "/api/v1/edocs", good, {"X-API-Key": ""}),
        ("wrong key", "/api/v1/edocs", good, {"X-API-Key": "nope"}),
        ("not xml", "/api/v1/edocs", b"hello", EOFFICE),
        ("a DTD", "/api/v1/edocs", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]>'
         b"<a>&e;</a>", EOFFICE),
        ("too large", "/api/v1/edocs", b"<a>" + b"x" * CAP + b"</a>", EOFFICE),
        ("bad length", "/api/v1/edocs", good, {**EOFFICE, "Content-Length": "12x"}),
        ("sender mismatch", "/api/v1/edocs", _packet("hot-same-2", "000.00.31.H37"), EOFFICE),
        ("edoc at statuses", "/api/v1/statuses", _packet("hot-same-3"), EOFFICE),
    ]


_KEPT_HEADERS = ("content-type", "www-authenticate", "retry-after")


def _answers(app: FastAPI) -> list[tuple[str, int, Any, dict[str, str]]]:
    out: list[tuple[str, int, Any, dict[str, str]]] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for name, path, body, headers in _cases():
            try:
                got = client.post(path, content=body, headers=headers)
            except Exception as exc:  # a transport-level refusal is an answer too
                out.append((name, 0, type(exc).__name__, {}))
                continue
            payload: Any = got.json()
            if isinstance(payload, dict):
                payload = {k: v for k, v in payload.items()
                           if k not in ("id", "recipients", "details", "original")}
            kept = {h: got.headers[h] for h in _KEPT_HEADERS if h in got.headers}
            kept["location"] = "yes" if "location" in got.headers else "no"
            kept["x-request-id"] = "yes" if got.headers.get("x-request-id") else "no"
            out.append((name, got.status_code, payload, kept))
    return out


def test_the_hot_door_answers_as_the_router_does(tmp_path: Path) -> None:
    answers = []
    for label, build in (("hot", create_app), ("router", lambda b: _router_only(create_app(b)))):
        folder = tmp_path / label
        one = Bus(load_settings(environ={}, data_dir=folder, max_body_bytes=CAP))
        try:
            answers.append(_answers(build(one)))
        finally:
            one.close()
    hot, router = answers
    for a, b in zip(hot, router, strict=True):
        assert a == b, f"{a[0]}: hot {a[1:]} vs router {b[1:]}"
    assert {a[1] for a in hot} >= {202, 200, 409, 401, 400, 413, 403}


def test_an_unclaimed_failure_is_the_coded_500_with_the_request_id(bus: Bus) -> None:
    app = create_app(bus)
    real = bus.submit
    gone = threading.Event()

    def broken(*args: Any, **kwargs: Any) -> Any:
        gone.set()
        raise RuntimeError("a bug")

    bus.submit = broken  # type: ignore[method-assign]
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            got = client.post("/api/v1/edocs", content=_packet("hot-500"),
                              headers={**EOFFICE, "X-Request-Id": "req-hot-500"})
    finally:
        bus.submit = real  # type: ignore[method-assign]
    assert gone.is_set()
    assert got.status_code == 500
    assert got.json()["code"] == "InternalError"
    assert got.json()["request_id"] == "req-hot-500"
    assert got.headers["x-request-id"] == "req-hot-500"
    assert "a bug" not in got.text


def test_the_openapi_document_still_describes_both_posts(bus: Bus) -> None:
    paths = create_app(bus).openapi()["paths"]
    for path in ("/api/v1/edocs", "/api/v1/statuses"):
        post = paths[path]["post"]
        assert "application/xml" in post["requestBody"]["content"]
        assert {"202", "401", "413", "422"} <= set(post["responses"])


def test_the_receipt_is_encoded_once_per_submission(bus: Bus, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    """The store already wrote the receipt as JSON text; the 202 extends that text."""
    real = json.dumps
    receipts: list[Any] = []

    def counting(value: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(value, dict) and {"id", "kind", "recipients"} <= value.keys():
            receipts.append(value)
        return real(value, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", counting)
    with TestClient(create_app(bus)) as client:
        got = client.post("/api/v1/edocs", content=_packet("hot-once"), headers=EOFFICE)
        assert len(receipts) == 1
        again = client.post("/api/v1/edocs", content=_packet("hot-once"), headers=EOFFICE)
    assert got.status_code == 202 and again.status_code == 200
    body = got.json()
    assert body["existing"] is False and body["document_id"] == "hot-once"
    assert again.json() == {**body, "existing": True}
    assert got.headers["content-type"] == "application/json"


def test_no_request_looks_for_an_opentelemetry_provider(bus: Bus,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI's own telemetry is off: without an SDK it found no provider on every
    request, three environment look-ups each time, and could never find one."""
    from opentelemetry import _logs, metrics, trace

    asked: list[str] = []
    for module, name in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider"),
                         (_logs, "get_logger_provider")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name,
                            lambda real=real, name=name: asked.append(name) or real())
    with TestClient(create_app(bus)) as client:
        assert client.get("/healthz").status_code == 200
        sent = client.post("/api/v1/edocs", content=_packet("hot-otel-1"), headers=EOFFICE)
        assert sent.status_code == 202, sent.text
    assert asked == []

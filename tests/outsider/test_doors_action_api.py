"""The operator action API attacked from outside: keys, reasons, body limits, the bulk
stop switch. Fixture and helpers: :mod:`tests.outsider.doors_kit`."""

from __future__ import annotations

import socket
import time

import httpx

from tests.outsider.doors_kit import (
    AXIS_KEY,
    BOUND_S,
    EOFFICE_KEY,
    OPERATOR_KEY,
    Bus,
    assert_coded,
    csrf_of,
    timed,
)

# ------------------------------------------------------------------ operator action API


def _post(bus: Bus, path: str, key: str | None, **kw) -> tuple[httpx.Response, float]:
    headers = {"X-API-Key": key} if key else {}
    headers.update(kw.pop("headers", {}))
    return timed(httpx.post, bus.base + path, headers=headers, timeout=10, **kw)


def test_action_api_refuses_non_operator_keys(bus: Bus) -> None:
    d = bus.deliveries[0]
    for key in (EOFFICE_KEY, AXIS_KEY, "dev-hcm_egov-key", "dev-vnpt_ioffice-key"):
        for action in ("resend", "park", "cancel"):
            r, dt = _post(bus, f"/api/v1/deliveries/{d}/{action}", key, json={"reason": "x"})
            assert_coded(r, 403, dt)
        r, dt = _post(bus, "/api/v1/deliveries/bulk/cancel", key, json={"reason": "x", "ids": [d]})
        assert_coded(r, 403, dt)
        r, dt = timed(httpx.put, bus.base + "/api/v1/deliveries/bulk/stop",
                      headers={"X-API-Key": key}, json={"on": True}, timeout=10)
        assert_coded(r, 403, dt)
    r, dt = _post(bus, f"/api/v1/deliveries/{d}/park", None, json={"reason": "x"})
    assert_coded(r, 401, dt)
    r, dt = _post(bus, f"/api/v1/deliveries/{d}/park", "dev-operator-key-guess",
                  json={"reason": "x"})
    assert_coded(r, 401, dt)


def test_action_api_reason_required_and_bounded(bus: Bus) -> None:
    d = bus.deliveries[0]
    path = f"/api/v1/deliveries/{d}/cancel"
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": None}, {"reason": 5},
                 {"reason": "x" * 100_000}):
        r, dt = _post(bus, path, OPERATOR_KEY, json=body)
        assert_coded(r, (400, 422), dt)
    r, dt = _post(bus, path, OPERATOR_KEY, content=b"x" * (20 * 1024 * 1024),
                  headers={"Content-Type": "application/json"})
    assert_coded(r, 413, dt)
    r, dt = _post(bus, path, OPERATOR_KEY, content=b"{not json",
                  headers={"Content-Type": "application/json"})
    assert_coded(r, 400, dt)
    r, dt = _post(bus, f"/api/v1/deliveries/{d}/explode", OPERATOR_KEY, json={"reason": "x"})
    assert_coded(r, (400, 404), dt)
    r, dt = _post(bus, "/api/v1/deliveries/" + "a" * 5000 + "/park", OPERATOR_KEY,
                  json={"reason": "x"})
    assert_coded(r, (400, 404), dt)


def test_bulk_form_malformed_is_a_clear_4xx(bus: Bus) -> None:
    for body in ({"reason": "x"}, {"reason": "x", "ids": "abc"}, [1, 2],
                 {"reason": "x", "ids": [{"$ne": 1}]}, {"reason": "x", "ids": ["z"] * 100_000}):
        r, dt = _post(bus, "/api/v1/deliveries/bulk/park", OPERATOR_KEY, json=body)
        assert_coded(r, (400, 413, 422), dt)


def _raw_headers_then_wait(bus: Bus, head: str, sent_body: int = 1024) -> tuple[str, float]:
    """Announce a 50 MB body, send 1 KB of it, and read what the bus answers."""
    host, port = bus.base.rsplit(":", 1)[0][7:], int(bus.base.rsplit(":", 1)[1])
    t = time.monotonic()
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(head.encode() + b"x" * sent_body)
        s.settimeout(BOUND_S)
        try:
            data = s.recv(4096).decode(errors="replace")
        except TimeoutError:
            data = ""
    return data, time.monotonic() - t


def test_action_api_checks_key_before_reading_body(bus: Bus) -> None:
    d = bus.deliveries[0]
    for key_line, status in (("", "401"), (f"X-API-Key: {EOFFICE_KEY}\r\n", "403")):
        head = (f"POST /api/v1/deliveries/{d}/park HTTP/1.1\r\nHost: x\r\n{key_line}"
                "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n")
        data, dt = _raw_headers_then_wait(bus, head)
        assert data.startswith(f"HTTP/1.1 {status}"), data[:200]
        assert dt < BOUND_S
        head = head.replace(f"/{d}/park", "/bulk/park")
        data, dt = _raw_headers_then_wait(bus, head)
        assert data.startswith(f"HTTP/1.1 {status}"), data[:200]


def test_bulk_stop_switch_stops_bulk_actions(bus: Bus) -> None:
    put = lambda body: timed(httpx.put, bus.base + "/api/v1/deliveries/bulk/stop",  # noqa: E731
                             headers={"X-API-Key": OPERATOR_KEY}, json=body, timeout=10)
    r, dt = put({"on": "yes please"})
    assert_coded(r, (400, 422), dt)
    r, _ = put({"on": True})
    assert r.status_code == 200 and r.json()["on"] is True
    try:
        r, dt = _post(bus, "/api/v1/deliveries/bulk/cancel", OPERATOR_KEY,
                      json={"reason": "stopped?", "ids": bus.deliveries})
        assert_coded(r, 409, dt)
    finally:
        r, _ = put({"on": False})
        assert r.json()["on"] is False
    assert "s-cancelled" not in bus.sessions["op"].get(f"/console/documents/{bus.doc}").text


def test_console_cookie_is_no_credential_for_the_api(bus: Bus) -> None:
    """A browser's session cookie must not authorise the JSON API (CSRF by form post)."""
    op = bus.sessions["op"]
    r, dt = timed(op.post, f"/api/v1/deliveries/{bus.deliveries[0]}/cancel",
                  json={"reason": "cookie only"})
    assert_coded(r, 401, dt)
    r, dt = timed(op.post, f"/api/v1/deliveries/{bus.deliveries[0]}/cancel",
                  content=b'{"reason": "text/plain form"}', headers={"Content-Type": "text/plain"})
    assert_coded(r, 401, dt)
    r, dt = timed(op.get, f"/api/v1/edocs/{bus.doc}/evidence")
    assert_coded(r, 401, dt)


def test_bulk_ids_are_capped(bus: Bus) -> None:
    r, dt = _post(bus, "/api/v1/deliveries/bulk/resend", OPERATOR_KEY,
                  json={"reason": "x", "ids": [f"id{i}" for i in range(20_000)]})
    assert_coded(r, (400, 413, 422), dt)


def test_console_bulk_stop_needs_csrf_and_operator(bus: Bus) -> None:
    op = bus.sessions["op"]
    r, dt = timed(op.post, "/console/bulk-stop", data={"on": "1", "next": "/console/queues"})
    assert r.status_code in (400, 403) and dt < BOUND_S
    for name in ("aud", "nax"):
        c = bus.sessions[name]
        token = csrf_of(c.get("/console/documents").text)
        r = c.post("/console/bulk-stop", data={"csrf": token, "on": "1", "next": "/"})
        assert r.status_code in (403, 404), (name, r.status_code)
    r = httpx.get(bus.base + "/api/v1/deliveries/bulk/stop",
                  headers={"X-API-Key": OPERATOR_KEY}, timeout=10)
    assert r.json()["on"] is False

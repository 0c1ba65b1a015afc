"""The HTTP server's own limits, against the real bus app on a loopback port, over raw
sockets: what an idle, slow, oversized or malformed client gets, and that everyone else
is still served meanwhile.

Setting ``LGSP_TEST_STOCK_UVICORN=1`` runs the same tests on plain uvicorn (no
:mod:`bus.server`); every test here then fails, which is how each was checked to test
the limits rather than uvicorn.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp

from bus.api.rest import create_app
from bus.app import Bus
from bus.server import build_server
from bus.settings import Settings, load_settings

STOCK = os.environ.get("LGSP_TEST_STOCK_UVICORN") == "1"
FAST: dict[str, Any] = {"header_timeout_s": 1.0, "body_idle_timeout_s": 1.0,
                        "keep_alive_s": 1.0, "max_header_bytes": 16 * 1024}


@contextlib.contextmanager
def serving(app: ASGIApp, settings: Settings) -> Iterator[tuple[str, int]]:
    """Runs ``app`` under ``settings`` on a free loopback port; yields (host, port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    if STOCK:
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                               lifespan="off"))
    else:
        server = build_server(app, settings, bind=False, lifespan="off",
                              timeout_graceful_shutdown=2)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "server thread did not stop"


@contextlib.contextmanager
def bus_server(tmp_path: Path, **overrides: Any) -> Iterator[tuple[str, int]]:
    settings = load_settings(environ={}, data_dir=tmp_path, **{**FAST, **overrides})
    bus = Bus(settings)
    try:
        with serving(create_app(bus), settings) as address:
            yield address
    finally:
        bus.close()


def read_until_close(conn: socket.socket, limit_s: float) -> tuple[bytes, bool, float]:
    """Everything the server sends until it closes or ``limit_s`` passes:
    (bytes, closed, seconds)."""
    started = time.monotonic()
    data = b""
    conn.settimeout(0.1)
    while time.monotonic() - started < limit_s:
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True, time.monotonic() - started
        if not chunk:
            return data, True, time.monotonic() - started
        data += chunk
    return data, False, time.monotonic() - started


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers.get("content-type", "").startswith("application/json"), raw[:300]
    return int(lines[0].split()[1]), headers, json.loads(body)


def get(address: tuple[str, int], path: str = "/healthz") -> tuple[int, float]:
    started = time.monotonic()
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: bus\r\nConnection: close\r\n\r\n".encode())
        data, _, _ = read_until_close(conn, 5)
    return int(data.split(b" ", 2)[1]), time.monotonic() - started


def test_silent_and_idle_connections_are_closed(tmp_path: Path) -> None:
    with bus_server(tmp_path) as address:
        with socket.create_connection(address) as silent:
            data, closed, seconds = read_until_close(silent, 4)
        assert closed and data == b"" and seconds < 2.5, (closed, seconds)

        with socket.create_connection(address) as kept:
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: bus\r\n\r\n")
            data, closed, seconds = read_until_close(kept, 4)
        assert data.startswith(b"HTTP/1.1 200") and closed and seconds < 2.5, (data, seconds)


def test_headers_sent_a_byte_at_a_time_are_cut_off(tmp_path: Path) -> None:
    with bus_server(tmp_path) as address, socket.create_connection(address) as conn:
        started = time.monotonic()
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bus\r\nX-Slow: ")
        answer = b""
        while time.monotonic() - started < 5:
            try:
                conn.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
            readable, _, _ = select.select([conn], [], [], 0.2)
            if readable:
                answer, _, _ = read_until_close(conn, 2)
                break
        seconds = time.monotonic() - started
    assert seconds < 2.5, seconds
    status, _, body = parse(answer)
    assert status == 408 and body["code"] == "RequestTimeout", body
    assert "did not arrive within 1 s" in body["message"]


def test_one_megabyte_header_is_431_fast_and_others_stay_served(tmp_path: Path) -> None:
    with bus_server(tmp_path) as address:
        answers: list[bytes] = []

        def hostile() -> None:
            with socket.create_connection(address, timeout=5) as conn:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bus\r\nX-Big: "
                                 + b"a" * (1024 * 1024) + b"\r\n\r\n")
                answers.append(read_until_close(conn, 5)[0])

        started = time.monotonic()
        attacker = threading.Thread(target=hostile)
        attacker.start()
        status, healthz_s = get(address)
        attacker.join(10)
        seconds = time.monotonic() - started
    assert status == 200 and healthz_s < 0.5, healthz_s
    assert seconds < 2.0, seconds
    code, _, body = parse(answers[0])
    assert code == 431 and body["code"] == "HeadersTooLarge", body


def test_oversized_headers_in_one_segment_are_431(tmp_path: Path) -> None:
    with bus_server(tmp_path) as address, socket.create_connection(address) as conn:
        conn.sendall(b"GET /vxp/getEdoc HTTP/1.1\r\nHost: bus\r\nX-Big: " + b"a" * 20000
                     + b"\r\n\r\n")
        data, _, seconds = read_until_close(conn, 4)
    status, _, body = parse(data)
    assert status == 431 and seconds < 1.5
    assert body["status"] == "FAIL" and body["ErrorCode"] == "HeadersTooLarge", body
    assert "16384 bytes" in body["ErrorDesc"]


def test_body_shorter_than_its_content_length_is_cut_off(tmp_path: Path) -> None:
    with bus_server(tmp_path) as address, socket.create_connection(address) as conn:
        conn.sendall(b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\n"
                     b"X-API-Key: dev-eoffice-key\r\nContent-Type: application/xml\r\n"
                     b"Content-Length: 100000\r\n\r\n<edXML:MessageHeader")
        data, closed, seconds = read_until_close(conn, 5)
    assert closed and seconds < 2.5, (closed, seconds, data[:200])
    status, _, body = parse(data)
    assert status == 408 and body["code"] == "RequestTimeout", body
    assert "body stopped arriving" in body["message"]


def test_connection_cap_answers_coded_503_then_serves_again(tmp_path: Path) -> None:
    with bus_server(tmp_path, max_connections=3, header_timeout_s=10.0) as address:
        held = [socket.create_connection(address) for _ in range(3)]
        try:
            time.sleep(0.2)
            started = time.monotonic()
            with socket.create_connection(address, timeout=5) as extra:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: bus\r\n\r\n")
                data, closed, _ = read_until_close(extra, 3)
            status, headers, body = parse(data)
            assert status == 503 and body["code"] == "TooManyConnections", body
            assert headers["retry-after"] == "2"
            assert closed and time.monotonic() - started < 1.0
            held.pop().close()
            time.sleep(0.2)
            assert get(address)[0] == 200
        finally:
            for conn in held:
                conn.close()


@pytest.mark.parametrize("request_bytes", [
    b"G@T /healthz HTTP/1.1\r\nHost: bus\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost bus\r\n\r\n",
    b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\nContent-Length: 1x\r\n\r\n",
])
def test_framing_errors_answer_coded_json(tmp_path: Path, request_bytes: bytes) -> None:
    with bus_server(tmp_path) as address, socket.create_connection(address) as conn:
        conn.sendall(request_bytes)
        data, closed, seconds = read_until_close(conn, 4)
    status, _, body = parse(data)
    assert status == 400 and body["code"] == "InvalidRequest" and closed and seconds < 1.0
    assert "not valid HTTP/1.1" in body["message"], body


def test_sdk_non_ascii_header_under_vxp_answers_in_the_sdk_shape(tmp_path: Path) -> None:
    # The Java SDK writes 'Đông' as the low 8 bits of each character: 0x10 'Ã'... .
    value = "".join(chr(ord(c) & 0xFF) for c in "Sở Nội vụ Đông").encode("latin-1")
    with bus_server(tmp_path) as address, socket.create_connection(address) as conn:
        conn.sendall(b"POST /vxp/sendEdoc HTTP/1.1\r\nHost: bus\r\nfrom: " + value
                     + b"\r\nContent-Length: 2\r\n\r\n{}")
        data, _, seconds = read_until_close(conn, 4)
    status, _, body = parse(data)
    assert status == 400 and seconds < 1.0
    assert set(body) == {"status", "ErrorCode", "ErrorDesc"}, body
    assert body["status"] == "FAIL" and body["ErrorCode"] == "MalformedRequest"
    assert "header values must be ASCII (percent-encode non-ASCII values)" in body["ErrorDesc"]


def test_junk_pipelined_behind_a_request_is_refused_without_an_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by the door fuzz: the framing refusal ended the connection's write side while
    the request before the junk was still in the application, whose answer then raised
    "Cannot call write() after write_eof()" inside the server."""
    with bus_server(tmp_path) as address, socket.create_connection(address) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bus\r\n\r\nG@T / HTTP/1.1\r\n\r\n")
        data, closed, _ = read_until_close(conn, 4)
        time.sleep(0.2)
    status, _, body = parse(data)
    assert status == 400 and body["code"] == "InvalidRequest" and closed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def _download_refusal(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_a_framing_error_on_download_edoc_has_an_empty_body(tmp_path: Path) -> None:
    """Found by the door fuzz: the SDK saves any body downloadEdoc answers as the document,
    so the server's own refusals there are empty, with the code in headers, like the
    facade's (bus.api.vxp)."""
    with bus_server(tmp_path) as address, socket.create_connection(address) as conn:
        conn.sendall(b"GET /vxp//downloadEdoc HTTP/1.1\r\nHost: bus\r\n"
                     b"Content-Length: 12abc\r\n\r\n{}")
        data, _, seconds = read_until_close(conn, 4)
    status, headers, body = _download_refusal(data)
    assert (status, body, headers["x-lgsp-error-code"]) == (400, b"", "MalformedRequest")
    assert "not valid HTTP/1.1" in headers["x-lgsp-error"] and seconds < 1.0


def test_the_connection_cap_on_download_edoc_has_an_empty_body(tmp_path: Path) -> None:
    with bus_server(tmp_path, max_connections=2, header_timeout_s=10.0) as address:
        held = [socket.create_connection(address) for _ in range(2)]
        try:
            time.sleep(0.2)
            with socket.create_connection(address, timeout=5) as extra:
                extra.sendall(b"GET /vxp/downloadEdoc HTTP/1.1\r\nHost: bus\r\n\r\n")
                data, _, _ = read_until_close(extra, 3)
        finally:
            for conn in held:
                conn.close()
    status, headers, body = _download_refusal(data)
    assert (status, body, headers["x-lgsp-error-code"]) == (503, b"", "TooManyConnections")
    assert headers["retry-after"] == "2"


def test_file_descriptor_soft_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"hard descriptor limit {hard} leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        with bus_server(tmp_path):
            raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, raised), hard))
    assert raised == hard or (hard == resource.RLIM_INFINITY and raised > 256), raised


def test_no_page_loads_code_from_another_host(tmp_path: Path) -> None:
    """Government networks have no internet: /docs and /redoc pulled Swagger UI and ReDoc
    from a public CDN, so they are off; the description stays at /openapi.json."""
    with bus_server(tmp_path) as address:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            with socket.create_connection(address, timeout=5) as conn:
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: bus\r\nConnection: close\r\n\r\n"
                             .encode())
                data, _, _ = read_until_close(conn, 3)
            status, _, body = parse(data)
            assert status == 404 and body["code"] == "NotFound", (path, body)
        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: bus\r\nConnection: close\r\n\r\n")
            data, _, _ = read_until_close(conn, 3)
    status, _, spec = parse(data)
    assert status == 200 and spec["paths"]["/api/v1/edocs"]
    assert "cdn" not in json.dumps(spec).lower()


async def _large_answer(scope: Any, receive: Any, send: Any) -> None:
    chunk = b"x" * (1024 * 1024)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(256 * len(chunk)).encode())]})
    for _ in range(256):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_client_that_stops_reading_its_answer_is_disconnected(tmp_path: Path) -> None:
    settings = load_settings(environ={}, data_dir=tmp_path, **FAST)
    with serving(_large_answer, settings) as address, \
            socket.create_connection(address) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.sendall(b"GET /large HTTP/1.1\r\nHost: bus\r\n\r\n")
        time.sleep(3.0)
        data, closed, seconds = read_until_close(conn, 5)
    assert closed and seconds < 2.0, (len(data), seconds)
    assert len(data) < 64 * 1024 * 1024

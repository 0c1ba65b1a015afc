"""The http adapter's own connection (``adapters/http/transport.py``) against real
loopback destinations: kept alive where the destination allows it, replaced when the
destination closed it while idle, dropped after an oversized or failed answer, and over
TLS checked against the trusted bundle with one TLS context per adapter."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import adapters.http.transport as transport
from adapters.http import HttpAdapter
from bus.adapter import Delivery, Retry


class _Destination(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, idle_close_s: float | None = None, answer: bytes = b'{"id":"r1"}',
                 context: ssl.SSLContext | None = None) -> None:
        self.peers: list[int] = []
        self.bodies: list[bytes] = []
        self.answer = answer
        self.idle_close_s = idle_close_s
        self.context = context
        super().__init__(("127.0.0.1", 0), _KeepAlive)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True)
        return sock, address

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.server_address[1]}/in"


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Destination
    timeout: ClassVar[float | None] = None

    def setup(self) -> None:
        self.timeout = self.server.idle_close_s
        super().setup()

    def do_POST(self) -> None:
        self.server.peers.append(self.client_address[1])
        self.server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.answer)))
        self.end_headers()
        self.wfile.write(self.server.answer)

    def log_message(self, format: str, *args: object) -> None:
        return None


def _serving(server: _Destination) -> Iterator[_Destination]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _delivery(n: int = 1) -> Delivery:
    return Delivery(payload=b"<edXMLEnvelope>%d</edXMLEnvelope>" % n,
                    idempotency_key=f"doc{n}:000.00.31.H37:archive", document_id=f"d{n}",
                    kind="edoc", sender="000.00.12.H37", recipient="000.00.31.H37",
                    destination="archive")


def _adapter(url: str) -> HttpAdapter:
    adapter = HttpAdapter.from_options("archive", {"url": url, "timeout_s": 2})
    assert isinstance(adapter, HttpAdapter)
    return adapter


def test_deliveries_share_one_kept_alive_connection() -> None:
    for server in _serving(_Destination()):
        adapter = _adapter(server.url())
        try:
            receipts = [adapter.deliver(_delivery(n)) for n in range(3)]
        finally:
            adapter.close()
        assert [r.reference for r in receipts] == ["r1"] * 3
        assert server.bodies == [_delivery(n).payload for n in range(3)]
        assert len(set(server.peers)) == 1


def test_a_connection_the_destination_closed_while_idle_is_replaced_not_failed() -> None:
    for server in _serving(_Destination(idle_close_s=0.1)):
        adapter = _adapter(server.url())
        try:
            adapter.deliver(_delivery(1))
            time.sleep(0.4)  # the destination has closed its end by now
            receipt = adapter.deliver(_delivery(2))
        finally:
            adapter.close()
        assert receipt.reference == "r1"
        assert len(set(server.peers)) == 2


def test_an_answer_longer_than_the_cap_is_cut_and_its_connection_not_reused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "_ANSWER_CAP", 64)
    for server in _serving(_Destination(answer=b'{"id":"r1","pad":"' + b"x" * 500 + b'"}')):
        adapter = _adapter(server.url())
        try:
            first = adapter.deliver(_delivery(1))
            second = adapter.deliver(_delivery(2))
        finally:
            adapter.close()
        assert first.reference is None and second.reference is None  # cut JSON
        assert len(set(server.peers)) == 2


def test_a_destination_that_vanished_is_a_connect_error_retry() -> None:
    for server in _serving(_Destination()):
        url = server.url()
    adapter = _adapter(url)
    try:
        with pytest.raises(Retry, match="ConnectError"):
            adapter.deliver(_delivery())
    finally:
        adapter.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "key.pem",
                    "-out", "cert.pem"], cwd=folder, check=True, capture_output=True,
                   timeout=30)
    return folder


def _tls(folder: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_tls_is_checked_against_the_bundle_with_one_context_per_adapter(
        certificate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import certifi

    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    for server in _serving(_Destination(context=_tls(certificate))):
        untrusted = _adapter(server.url("https"))
        try:
            with pytest.raises(Retry, match=r"ConnectError.*CERTIFICATE_VERIFY_FAILED"):
                untrusted.deliver(_delivery())
        finally:
            untrusted.close()
        monkeypatch.setattr(certifi, "where", lambda: str(certificate / "cert.pem"))
        trusted = _adapter(server.url("https"))
        try:
            receipts = [trusted.deliver(_delivery(n)) for n in range(3)]
        finally:
            trusted.close()
        assert [r.reference for r in receipts] == ["r1"] * 3
    assert len(built) == 2  # one per adapter, not one per request


def test_a_url_with_a_space_or_vietnamese_letters_is_sent_percent_encoded() -> None:
    seen: list[str] = []

    class _Recording(_KeepAlive):
        def do_POST(self) -> None:
            seen.append(self.path)
            super().do_POST()

    server = _Destination()
    server.RequestHandlerClass = _Recording
    for running in _serving(server):
        base = f"http://127.0.0.1:{running.server_address[1]}"
        adapter = _adapter(base + "/văn thư/in?to=Sở Nội vụ&x=%2F")
        try:
            assert adapter.deliver(_delivery()).reference == "r1"
        finally:
            adapter.close()
    assert seen == ["/v%C4%83n%20th%C6%B0/in?to=S%E1%BB%9F%20N%E1%BB%99i%20v%E1%BB%A5&x=%2F"]


def test_credentials_in_the_url_are_sent_as_basic_authorization() -> None:
    seen: list[str | None] = []

    class _Recording(_KeepAlive):
        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization"))
            super().do_POST()

    server = _Destination()
    server.RequestHandlerClass = _Recording
    for running in _serving(server):
        adapter = _adapter(f"http://archive:p%40ss@127.0.0.1:{running.server_address[1]}/in")
        try:
            adapter.deliver(_delivery())
        finally:
            adapter.close()
    assert seen == ["Basic YXJjaGl2ZTpwQHNz"]  # archive:p@ss

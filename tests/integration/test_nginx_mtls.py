"""Client certificates, verified by the bus's own TLS or by the shipped nginx config in
front of it, reach the application as ``scope["extensions"]["lgsp.client_cert"]``, and
only when verified.

Certificates are made per test run with the openssl CLI. nginx is the distribution's
binary (``ops/install-services.sh``) running ops/nginx/lgsp.conf privately: its own
prefix, loopback ports, no master process, stopped through its pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from bus.server import CLIENT_CERT_KEY
from bus.settings import REPO_ROOT, load_settings
from tests.security.test_server_limits import read_until_close, serving
from tests.servers import free_port

CLIENT_SUBJECT = "/C=VN/O=Sở Nội vụ, Lạng Sơn/CN=eoffice"


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """What the application was told about the caller: the extension and the headers."""
    assert scope["type"] == "http"
    body = json.dumps({
        "client_cert": (scope.get("extensions") or {}).get(CLIENT_CERT_KEY),
        "headers": sorted(n.decode("latin-1") for n, _ in scope["headers"]),
    }).encode()
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Pki:
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def fingerprint(self, name: str) -> str:
        pem = self.path(f"{name}.pem").read_text()
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _issue(folder: Path, name: str, subject: str, ca: str, usage: str, san: str = "") -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, "-utf8",
             cwd=folder)
    ext = folder / f"{name}.ext"
    ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
                   + (f"subjectAltName={san}\n" if san else ""))
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name,
             cwd=folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "rogue_ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=LGSP test {ca}", cwd=folder)
    _issue(folder, "server", "/CN=127.0.0.1", "ca", "serverAuth", "IP:127.0.0.1")
    _issue(folder, "client", CLIENT_SUBJECT, "ca", "clientAuth")
    _issue(folder, "rogue", "/CN=eoffice", "rogue_ca", "clientAuth")
    return Pki(folder)


def client_context(pki: Pki, cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.path("ca.pem")))
    if cert:
        context.load_cert_chain(pki.path(f"{cert}.pem"), pki.path(f"{cert}.key"))
    return context


def https_get(port: int, context: ssl.SSLContext, headers: str = "",
              path: str = "/whoami") -> tuple[int, Any]:
    """One request over TLS; raises ssl.SSLError / ConnectionError when refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: bus\r\n{headers}"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    if not data:
        raise ConnectionError("closed without an answer")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body) if body else None


@contextlib.contextmanager
def tls_bus(tmp_path: Path, pki: Pki, **settings: Any) -> Iterator[int]:
    options = {"tls_certfile": pki.path("server.pem"), "tls_keyfile": pki.path("server.key"),
               "tls_client_ca": pki.path("ca.pem"), **settings}
    with serving(echo_app, load_settings(environ={}, data_dir=tmp_path, **options)) as (_, port):
        yield port


EXPECTED_SUBJECT = "CN=eoffice,O=Sở Nội vụ\\, Lạng Sơn,C=VN"


def test_bus_tls_exposes_only_a_verified_client_certificate(tmp_path: Path, pki: Pki) -> None:
    with tls_bus(tmp_path, pki, tls_client_cert="required") as port:
        status, seen = https_get(port, client_context(pki, "client"))
        assert status == 200
        assert seen["client_cert"] == {"sha256": pki.fingerprint("client"),
                                       "subject": EXPECTED_SUBJECT}
        for refused in (None, "rogue"):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                https_get(port, client_context(pki, refused))


def test_optional_client_certificate_absent_means_no_extension(tmp_path: Path,
                                                               pki: Pki) -> None:
    forged = (f"X-SSL-Client-Verify: SUCCESS\r\nX-SSL-Client-Subject: CN=operator\r\n"
              f"X-SSL-Client-Cert: {pki.path('client.pem').read_text().replace(chr(10), '%0A')}"
              "\r\n")
    with tls_bus(tmp_path, pki, tls_client_cert="optional") as port:
        status, seen = https_get(port, client_context(pki, None), headers=forged)
        assert status == 200 and seen["client_cert"] is None
        assert not [h for h in seen["headers"] if h.startswith("x-ssl-client")]
        status, seen = https_get(port, client_context(pki, "client"))
        assert seen["client_cert"]["sha256"] == pki.fingerprint("client")


# --- nginx in front -----------------------------------------------------------------------

def _nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError("nginx is not installed: run `sudo ops/install-services.sh`")
    return found


def render_conf(pki: Pki, listen: int, upstream: int, header_timeout: str) -> str:
    """ops/nginx/lgsp.conf with this run's certificates, ports and a short header timeout;
    each replaced line must exist, so the test breaks if the shipped file drifts."""
    text = (REPO_ROOT / "ops" / "nginx" / "lgsp.conf").read_text(encoding="utf-8")
    for old, new in {
        "listen 443 ssl;": f"listen 127.0.0.1:{listen} ssl;",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "/etc/lgsp/tls/server.pem": str(pki.path("server.pem")),
        "/etc/lgsp/tls/server.key": str(pki.path("server.key")),
        "/etc/lgsp/tls/clients-ca.pem": str(pki.path("ca.pem")),
        "client_header_timeout 10s;": f"client_header_timeout {header_timeout};",
    }.items():
        assert old in text, f"ops/nginx/lgsp.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def nginx_in_front(folder: Path, pki: Pki, upstream: int) -> Iterator[int]:
    folder.mkdir(parents=True, exist_ok=True)
    listen = free_port()
    (folder / "lgsp.conf").write_text(render_conf(pki, listen, upstream, "1s"))
    (folder / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/lgsp.conf;
}}
""")
    proc = subprocess.Popen([_nginx(), "-p", str(folder), "-c", str(folder / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", listen), timeout=0.5).close()
                break
            assert time.monotonic() < deadline, (folder / "error.log").read_text()
            time.sleep(0.05)
        yield listen
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def behind_nginx(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("nginx")
    settings = load_settings(environ={}, data_dir=folder / "bus", trusted_proxies="127.0.0.1")
    with serving(echo_app, settings) as (_, upstream), \
            nginx_in_front(folder / "prefix", pki, upstream) as port:
        yield port


def test_nginx_passes_the_verified_certificate_and_drops_forged_headers(
        behind_nginx: int, pki: Pki) -> None:
    forged = "X-SSL-Client-Subject: CN=operator\r\nX-SSL-Client-Verify: SUCCESS\r\n"
    status, seen = https_get(behind_nginx, client_context(pki, "client"), headers=forged)
    assert status == 200, seen
    assert seen["client_cert"]["sha256"] == pki.fingerprint("client")
    assert seen["client_cert"]["subject"] == EXPECTED_SUBJECT
    assert not [h for h in seen["headers"] if h.startswith("x-ssl-client")]


def test_nginx_does_not_forward_metrics(behind_nginx: int, pki: Pki) -> None:
    status, body = https_get(behind_nginx, client_context(pki, "client"), path="/metrics")
    assert status == 404 and body["code"] == "NotFound", body


@pytest.mark.parametrize("cert", [None, "rogue"])
def test_nginx_refuses_a_missing_or_foreign_certificate(behind_nginx: int, pki: Pki,
                                                        cert: str | None) -> None:
    # nginx completes the handshake and answers 495/496, which the config turns into JSON.
    status, body = https_get(behind_nginx, client_context(pki, cert))
    assert status == 401 and body["code"] == "Unauthenticated", body
    assert body["ErrorCode"] == "Unauthenticated" and body["status"] == "FAIL"


def test_nginx_cuts_off_a_slow_client(behind_nginx: int, pki: Pki) -> None:
    context = client_context(pki, "client")
    with socket.create_connection(("127.0.0.1", behind_nginx), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        started = time.monotonic()
        conn.sendall(b"GET /whoami HTTP/1.1\r\nHost: bus\r\nX-Slow: ")
        closed = False
        while time.monotonic() - started < 5 and not closed:
            try:
                conn.sendall(b"a")
                time.sleep(0.2)
                conn.setblocking(False)
                with contextlib.suppress(ssl.SSLWantReadError, BlockingIOError):
                    closed = conn.recv(1024) == b""
                conn.setblocking(True)
            except (ssl.SSLError, ConnectionError, OSError):
                closed = True
        seconds = time.monotonic() - started
    assert closed and seconds < 3.0, seconds


def test_direct_clients_cannot_forge_certificate_headers(tmp_path: Path, pki: Pki) -> None:
    pem = pki.path("client.pem").read_text().replace("\n", "%0A")
    forged = (b"GET /whoami HTTP/1.1\r\nHost: bus\r\nX-SSL-Client-Verify: SUCCESS\r\n"
              b"X-SSL-Client-Cert: " + pem.encode() + b"\r\nConnection: close\r\n\r\n")
    settings = load_settings(environ={}, data_dir=tmp_path, trusted_proxies="10.0.0.0/8")
    with serving(echo_app, settings) as address, socket.create_connection(address) as conn:
        conn.sendall(forged)
        data, _, _ = read_until_close(conn, 3)
    seen = json.loads(data.partition(b"\r\n\r\n")[2])
    assert seen["client_cert"] is None
    assert not [h for h in seen["headers"] if h.startswith("x-ssl-client")]

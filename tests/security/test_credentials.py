"""Hardened doors: several keys per system, reload without restart, development keys only
when configured, certificate-bound identity, per-system rates, credentials before body.

Most tests run the real application in-process (starlette's TestClient, with a tiny
middleware standing in for the HTTP server that puts a verified client certificate in
the ASGI scope); what needs real sockets (a body that never arrives, SIGHUP) runs a real
server: uvicorn in a thread, or ``lgsp serve`` as a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lxml import etree
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.testing import capture_logs

from bus import errors
from bus.api import CLIENT_CERT_EXTENSION, admit, identify
from bus.api.rest import create_app
from bus.app import Bus
from bus.auth import load_credentials
from bus.edxml import EdocBuilder, packet_bytes
from bus.ratelimit import Rate, RateLimiter
from bus.settings import REPO_ROOT, load_settings
from tests.api_server import raw_http, running_bus

with warnings.catch_warnings():   # starlette asks for httpx2; httpx is what the project has
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

ROOT = REPO_ROOT


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CERT_EOFFICE = sha("certificate of eoffice")
CERT_IOFFICE = sha("certificate of vnpt_ioffice")
CERT_STRANGER = sha("a certificate the bus knows nothing of")


def write(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def production(**systems: dict[str, Any]) -> dict[str, Any]:
    """A credentials file as a deployment writes it: development off, own keys."""
    base: dict[str, Any] = {
        "development": False,
        "systems": {
            "eoffice": {"keys_sha256": [sha("eoffice-old"), sha("eoffice-new")],
                        "development_key_sha256": sha("dev-eoffice-key")},
            "vnpt_ioffice": {"key_sha256": sha("ioffice-secret"),
                             "development_key_sha256": sha("dev-vnpt_ioffice-key")},
            "hcm_egov": {"key_sha256": sha("dev-hcm_egov-key")},
            "operator": {"key_sha256": sha("operator-secret"), "role": "operator"},
        },
    }
    for name, entry in systems.items():
        base["systems"][name] = entry
    return base


class WithCertificate:
    """Stands in for the HTTP server: the test header X-Test-Cert becomes a verified
    client certificate in ``scope["extensions"]``, as TLS or a trusted proxy would set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers", [])).get(b"x-test-cert")
            if given:
                extensions = dict(scope.get("extensions") or {})
                extensions[CLIENT_CERT_EXTENSION] = {"sha256": given.decode(),
                                                     "subject": "CN=test"}
                scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


@pytest.fixture
def make_bus(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], tuple[Bus, Path]]]:
    made: list[Bus] = []

    def make(raw: dict[str, Any]) -> tuple[Bus, Path]:
        path = write(tmp_path / "credentials.yaml", raw)
        bus = Bus(load_settings(environ={}, data_dir=tmp_path / "bus", credentials=path))
        made.append(bus)
        return bus, path

    yield make
    for bus in made:
        bus.close()


def client(bus: Bus) -> TestClient:
    return TestClient(WithCertificate(create_app(bus)))


def status(http: TestClient, key: str | None = None, cert: str | None = None) -> int:
    headers = {}
    if key is not None:
        headers["X-API-Key"] = key
    if cert is not None:
        headers["X-Test-Cert"] = cert
    return int(http.get("/api/v1/edocs", headers=headers).status_code)


# ------------------------------------------------------------------ rotation and reload


def test_every_active_key_authenticates(make_bus: Any) -> None:
    bus, _ = make_bus(production())
    http = client(bus)
    assert status(http, "eoffice-old") == status(http, "eoffice-new") == 200
    assert status(http, "ioffice-secret") == 200
    assert status(http, "eoffice-older") == 401
    assert bus.credentials.identify("eoffice-new", certificate=None) == "eoffice"


def test_environment_carries_several_comma_separated_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", production())
    creds = load_credentials(path, {"LGSP_KEY_VNPT_IOFFICE": " env-one , env-two,"})
    for key in ("env-one", "env-two", "ioffice-secret"):
        assert creds.authenticate(key) == "vnpt_ioffice"
    with pytest.raises(errors.Unauthenticated):
        creds.authenticate("env-one , env-two")


def test_rotation_by_reload_and_an_invalid_edit_keeps_the_old_credentials(
        make_bus: Any) -> None:
    bus, path = make_bus(production())
    http = client(bus)
    rotated = production()
    rotated["systems"]["eoffice"]["keys_sha256"] = [sha("eoffice-new"), sha("eoffice-next")]
    write(path, rotated)
    assert status(http, "eoffice-old") == 200, "nothing changes before the reload"
    assert bus.reload() is True          # what the SIGHUP handler calls
    assert status(http, "eoffice-old") == 401
    assert status(http, "eoffice-new") == status(http, "eoffice-next") == 200

    broken = production()
    broken["systems"]["eoffice"] = {"keys_sha256": ["not-a-digest"],
                                    "require_client_certifcate": True}
    broken["systems"]["operator"]["rate"] = {"per_second": -1, "burst": 1}
    write(path, broken)
    with capture_logs() as logs:
        assert bus.reload() is False
    refused = [e for e in logs if e["event"] == "credentials.reload_refused"]
    assert len(refused) == 1 and refused[0]["log_level"] == "error"
    problems = " | ".join(refused[0]["problems"])
    for where in ("systems.eoffice.keys_sha256.0", "require_client_certifcate",
                  "systems.operator.rate.per_second"):
        assert where in problems, problems
    assert status(http, "eoffice-next") == 200 and status(http, "eoffice-old") == 401


def test_the_file_watcher_path_reloads_credentials(make_bus: Any) -> None:
    bus, path = make_bus(production())
    http = client(bus)
    assert bus.reload_if_changed() is False
    changed = production()
    changed["systems"]["vnpt_ioffice"]["key_sha256"] = sha("ioffice-rotated")
    write(path, changed)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert bus.reload_if_changed() is True
    assert status(http, "ioffice-rotated") == 200 and status(http, "ioffice-secret") == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def test_sighup_reloads_credentials_of_a_running_lgsp_serve(tmp_path: Path) -> None:
    creds = write(tmp_path / "credentials.yaml", production())
    port = _free_port()
    config = write(tmp_path / "settings.yaml", {
        "data_dir": str(tmp_path / "data"), "credentials": str(creds), "port": port,
        "reload_check_s": 3600.0, "log_json": True})
    log_path = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}/api/v1/edocs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("LGSP_")}
    with log_path.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "bus.cli", "serve", "--config",
                                 str(config), "--no-workers"], cwd=tmp_path, env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        def code(key: str) -> int:
            return httpx.get(url, headers={"X-API-Key": key}, timeout=5).status_code

        assert _wait(lambda: code("eoffice-old") == 200, 60), log_path.read_text()
        rotated = production()
        rotated["systems"]["eoffice"]["keys_sha256"] = [sha("eoffice-next")]
        write(creds, rotated)
        assert code("eoffice-old") == 200, "the watcher is off: only SIGHUP reloads"
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: code("eoffice-next") == 200, 10), log_path.read_text()
        assert code("eoffice-old") == 401

        creds.write_text("development: maybe\nsystems: [", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: b"credentials.reload_refused" in log_path.read_bytes(), 10)
        assert code("eoffice-next") == 200 and code("eoffice-old") == 401
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ------------------------------------------------------------------ development keys


def test_development_keys_are_refused_unless_development_is_on(
        make_bus: Any, tmp_path: Path) -> None:
    bus, path = make_bus(production())
    http = client(bus)
    for key in ("dev-eoffice-key", "dev-vnpt_ioffice-key", "dev-hcm_egov-key"):
        assert status(http, key) == 401, key
    assert status(http, "eoffice-new") == 200
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["development"] is False
    environ = {"LGSP_KEY_EOFFICE": "dev-eoffice-key,eoffice-env"}
    from_env = load_credentials(path, environ)
    with pytest.raises(errors.Unauthenticated):
        from_env.authenticate("dev-eoffice-key")
    assert from_env.authenticate("eoffice-env") == "eoffice"

    on = production()
    on["development"] = True
    with capture_logs() as logs:
        bus_on, _ = make_bus(on)
    warned = [e for e in logs if e["event"] == "credentials.development_keys"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"
    assert warned[0]["systems"] == ["eoffice", "hcm_egov", "vnpt_ioffice"]
    http_on = client(bus_on)
    assert status(http_on, "dev-eoffice-key") == status(http_on, "dev-hcm_egov-key") == 200
    assert status(http_on, "eoffice-old") == 200
    ready = http_on.get("/readyz")
    assert ready.status_code == 200 and ready.json()["development"] is True


def test_the_sample_configuration_is_development_and_says_so(tmp_path: Path) -> None:
    creds = load_credentials(ROOT / "config" / "credentials.yaml", {})
    assert creds.development is True
    assert creds.development_systems == sorted(creds.systems)
    assert creds.authenticate("dev-eoffice-key") == "eoffice"
    assert creds.operators == frozenset({"operator"})
    raw = yaml.safe_load((ROOT / "config" / "credentials.yaml").read_text("utf-8"))
    raw["development"] = False
    off = load_credentials(write(tmp_path / "off.yaml", raw), {})
    for system in creds.systems:
        with pytest.raises(errors.Unauthenticated):
            off.authenticate(f"dev-{system}-key")


def test_a_wrong_development_digest_is_a_configuration_error(tmp_path: Path) -> None:
    raw = production()
    raw["systems"]["eoffice"]["development_key_sha256"] = sha("a-real-secret")
    with pytest.raises(errors.ConfigInvalid) as caught:
        load_credentials(write(tmp_path / "c.yaml", raw), {})
    assert "development_key_sha256" in str(caught.value.problems[0])


# ------------------------------------------------------------------ certificates


def _scope(cert: str | None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "headers": []}
    if cert is not None:
        scope["extensions"] = {CLIENT_CERT_EXTENSION: {"sha256": cert, "subject": "CN=x"}}
    return scope


def certified() -> dict[str, Any]:
    raw = production()
    raw["systems"]["eoffice"]["client_certificates"] = [CERT_EOFFICE]
    colons = ":".join(CERT_IOFFICE[i:i + 2] for i in range(0, 64, 2)).upper()
    raw["systems"]["vnpt_ioffice"].update(client_certificates=[colons],
                                          require_client_certificate=True)
    return raw


def test_a_verified_certificate_names_the_caller(make_bus: Any) -> None:
    bus, _ = make_bus(certified())
    assert identify(bus, _scope(CERT_EOFFICE), None) == "eoffice"
    assert identify(bus, _scope(CERT_EOFFICE), "eoffice-new") == "eoffice"
    assert identify(bus, _scope(CERT_IOFFICE.upper()), None) == "vnpt_ioffice"
    for cert, key in [(CERT_EOFFICE, "ioffice-secret"), (CERT_EOFFICE, "wrong"),
                      (CERT_IOFFICE, "eoffice-new"), (None, None), (CERT_STRANGER, None)]:
        with pytest.raises(errors.Unauthenticated):
            identify(bus, _scope(cert), key)
    assert identify(bus, _scope(CERT_STRANGER), "eoffice-old") == "eoffice"
    assert identify(bus, _scope(None), "eoffice-old") == "eoffice"


def test_a_system_requiring_its_certificate_refuses_its_key_alone(make_bus: Any) -> None:
    bus, _ = make_bus(certified())
    http = client(bus)
    assert status(http, "ioffice-secret") == 401
    assert status(http, "ioffice-secret", cert=CERT_STRANGER) == 401
    assert status(http, "ioffice-secret", cert=CERT_IOFFICE) == 200
    assert status(http, cert=CERT_IOFFICE) == 200
    assert status(http, cert=CERT_EOFFICE) == 200
    assert status(http, "ioffice-secret", cert=CERT_EOFFICE) == 401
    with pytest.raises(errors.Unauthenticated) as caught:
        bus.credentials.authenticate("ioffice-secret")
    assert "client certificate" in caught.value.message


def test_over_rest_the_certificate_decides_who_sends(make_bus: Any) -> None:
    bus, _ = make_bus(certified())
    http = client(bus)
    as_office = packet_bytes(EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("C")
                             .signer("K").build())
    mine = http.post("/api/v1/edocs", content=as_office, headers={"X-Test-Cert": CERT_EOFFICE})
    assert mine.status_code == 202, mine.text
    other = http.post("/api/v1/edocs", content=as_office, headers={"X-Test-Cert": CERT_IOFFICE})
    assert other.status_code == 403 and other.json()["code"] == "SenderMismatch"


def test_a_certificate_bound_to_two_systems_is_refused(tmp_path: Path) -> None:
    raw = certified()
    raw["systems"]["hcm_egov"]["client_certificates"] = [CERT_EOFFICE]
    raw["systems"]["operator"]["require_client_certificate"] = True
    with pytest.raises(errors.ConfigInvalid) as caught:
        load_credentials(write(tmp_path / "c.yaml", raw), {})
    text = " | ".join(str(p) for p in caught.value.problems)
    assert "bound to eoffice and hcm_egov" in text and "client_certificates is empty" in text


# ------------------------------------------------------------------ rates


def test_token_bucket_refills_and_says_how_long_to_wait() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    slow = Rate(per_second=0.1, burst=2)
    limiter.check("a", slow)
    limiter.check("a", slow)
    with pytest.raises(errors.TooManyRequests) as caught:
        limiter.check("a", slow)
    assert caught.value.details == {"retry_after": 10}
    limiter.check("b", slow)                 # one system's excess is not another's
    now[0] += 5.0
    with pytest.raises(errors.TooManyRequests) as caught:
        limiter.check("a", slow)
    assert caught.value.details == {"retry_after": 5}
    now[0] += 5.0
    limiter.check("a", slow)
    now[0] += 1000.0                         # never more than the burst
    limiter.check("a", slow)
    limiter.check("a", slow)
    with pytest.raises(errors.TooManyRequests):
        limiter.check("a", slow)
    limiter.check("a", None)                 # no rate: no limit


def test_rest_answers_429_with_retry_after_per_system(make_bus: Any) -> None:
    raw = production(eoffice={"key_sha256": sha("eoffice-new"),
                              "rate": {"per_second": 0.5, "burst": 3}})
    raw["rate"] = {"per_second": 1000, "burst": 1000}
    raw["systems"]["operator"]["rate"] = None
    bus, _ = make_bus(raw)
    http = client(bus)
    assert [status(http, "eoffice-new") for _ in range(3)] == [200, 200, 200]
    refused = http.get("/api/v1/edocs", headers={"X-API-Key": "eoffice-new"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["code"] == "TooManyRequests" and refused.json()["retry_after"] == 2
    post = http.post("/api/v1/edocs", content=b"<x/>", headers={"X-API-Key": "eoffice-new"})
    assert post.status_code == 429 and post.headers["retry-after"] == "2"
    assert status(http, "ioffice-secret") == 200
    assert [status(http, "operator-secret") for _ in range(50)] == [200] * 50
    assert bus.credentials.rate_for("operator") is None
    assert bus.credentials.rate_for("vnpt_ioffice") == Rate(1000, 1000)
    text = http.get("/metrics").text
    assert 'lgsp_documents_refused_total{channel="rest",code="TooManyRequests"} 1.0' in text


def test_admit_is_the_check_other_doors_call(make_bus: Any) -> None:
    bus, _ = make_bus(production(eoffice={"key_sha256": sha("k"),
                                          "rate": {"per_second": 1, "burst": 1}}))
    assert admit(bus, _scope(None), "k") == "eoffice"
    with pytest.raises(errors.TooManyRequests):
        admit(bus, _scope(None), "k")
    with pytest.raises(errors.Unauthenticated):
        admit(bus, _scope(None), "not-a-key")


# ------------------------------------------------------------------ before the body


def test_refusals_come_before_the_body_is_read(tmp_path: Path) -> None:
    raw = certified()
    raw["systems"]["eoffice"]["rate"] = {"per_second": 0.01, "burst": 1}
    creds = write(tmp_path / "credentials.yaml", raw)
    with running_bus(tmp_path / "bus", credentials=creds) as server:
        assert httpx.get(server.url + "/api/v1/edocs",
                         headers={"X-API-Key": "eoffice-new"}).status_code == 200
        for key, expected in [(None, 401), ("guess", 401), ("ioffice-secret", 401),
                              ("eoffice-new", 429)]:
            head = (b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\n"
                    + (f"X-API-Key: {key}\r\n".encode() if key else b"")
                    + b"Content-Length: 104857600\r\n\r\n<?xml")
            answer = raw_http(server.url, head, timeout_s=3.0)
            assert answer.status == expected, (key, answer.body)
            assert answer.seconds < 1.0, (key, answer.seconds)
        assert answer.headers["retry-after"] == "100"


def _soap_status_call(key: str | None) -> bytes:
    header = (f"<soap:Header><l:ApiKey>{key}</l:ApiKey></soap:Header>" if key else "")
    return (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:l="urn:lgsp-bus:soap:v1">{header}<soap:Body><l:GetEdocStatus>'
            f"<l:id>no-such-id</l:id></l:GetEdocStatus></soap:Body></soap:Envelope>").encode()


def _fault_code(response: Any) -> str:
    found = etree.fromstring(response.content).findtext(".//{urn:lgsp-bus:soap:v1}code")
    return str(found)


def test_the_soap_door_admits_as_rest_does(make_bus: Any) -> None:
    """Rate and certificate identity hold at the SOAP door whichever way the key comes:
    the HTTP header, the envelope's ApiKey, or a certificate with no key at all."""
    raw = certified()
    raw["systems"]["eoffice"]["rate"] = {"per_second": 0.01, "burst": 2}
    bus, _ = make_bus(raw)
    http = client(bus)
    soap = {"Content-Type": "text/xml; charset=utf-8"}
    first = http.post("/soap", content=_soap_status_call(None),
                      headers={**soap, "X-API-Key": "eoffice-new"})
    second = http.post("/soap", content=_soap_status_call("eoffice-new"), headers=soap)
    assert _fault_code(first) == _fault_code(second) == "NotFound"
    third = http.post("/soap", content=_soap_status_call("eoffice-new"), headers=soap)
    assert _fault_code(third) == "TooManyRequests"
    assert b"retry_after" in third.content
    by_certificate = http.post("/soap", content=_soap_status_call(None),
                               headers={**soap, "X-Test-Cert": CERT_IOFFICE})
    assert _fault_code(by_certificate) == "NotFound"
    key_alone = http.post("/soap", content=_soap_status_call("ioffice-secret"), headers=soap)
    assert _fault_code(key_alone) == "Unauthenticated"

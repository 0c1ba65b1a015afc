"""The new doors attacked from outside: the operator console, the operator action API and
the read endpoints for evidence, deadlines, overdue documents and reconciliations.

Written from README.md, contract.md and a running bus only (never the bus's source). One
bus per module, started as a user starts it (``python -m bus.cli serve``), console users
created with ``python -m bus.cli users add``. Every test asserts the secure behaviour and a
time bound.

Order matters: the console throttles failed logins per address for minutes, and every
request here comes from 127.0.0.1, so the sessions are opened in the fixture and the tests
that fail logins on purpose run last.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKET = REPO / "config" / "examples" / "packet.edxml"
OPERATOR_KEY = "dev-operator-key"
EOFFICE_KEY = "dev-eoffice-key"
AXIS_KEY = "dev-national_axis-key"
BOUND_S = 2.0  # every refusal and every page: well under this on a quiet machine
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
USERS = {  # name: (role, system)
    "op": ("operator", None),
    "aud": ("auditor", None),
    "off": ("officer", "eoffice"),  # the sender's system
    "nax": ("officer", "national_axis"),  # neither sender nor recipient
    "spare": ("officer", "eoffice"),
    "spare2": ("officer", "eoffice"),
    "gone": ("officer", "eoffice"),
}


def _pw(name: str) -> str:
    return f"Outsider-{name}-passw0rd!"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    for key in list(env):
        if key.startswith("LGSP_"):
            del env[key]
    return env


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xss_packet() -> bytes:
    p = PACKET.read_text(encoding="utf-8")
    p = p.replace("215/STTTT-VP", "217/OUTS-VP")
    p = p.replace("<edXML:CodeNumber>215", "<edXML:CodeNumber>217")
    p = p.replace("<edXML:CodeNotation>STTTT-VP", "<edXML:CodeNotation>OUTS-VP")
    p = re.sub(r"<edXML:Subject>[^<]*</edXML:Subject>",
               "<edXML:Subject>XSSSUBJ" + _xml_escape(XSS) + "</edXML:Subject>", p)
    p = p.replace("<edXML:OrganId>000.00.12.H37</edXML:OrganId>\n        </edXML:From>",
                  "<edXML:OrganId>000.00.12.H37</edXML:OrganId>\n"
                  "<edXML:OrganName>ORG" + _xml_escape(XSS) + "</edXML:OrganName>\n"
                  "        </edXML:From>")
    return p.encode("utf-8")


class Bus:
    def __init__(self, base: str) -> None:
        self.base = base
        self.data = Path()
        self.doc = ""
        self.deliveries: list[str] = []
        self.sessions: dict[str, httpx.Client] = {}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=10.0)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def login(bus: Bus, user: str, password: str, *, next_: str = "/console/documents",
          headers: dict[str, str] | None = None) -> tuple[httpx.Client, httpx.Response]:
    c = bus.client()
    if headers:
        c.headers.update(headers)
    page = c.get("/console/login")
    assert page.status_code == 200
    r = c.post("/console/login", data={"csrf": csrf_of(page.text), "next": next_,
                                       "user": user, "password": password})
    return c, r


@pytest.fixture(scope="module")
def bus():
    tmp = Path(tempfile.mkdtemp(prefix="lgsp-outsider-doors-"))
    data = tmp / "data"
    data.mkdir()
    env = _env()

    def add_cmd(name: str) -> list[str]:
        role, system = USERS[name]
        cmd = [sys.executable, "-m", "bus.cli", "users", "add", "--data-dir", str(data),
               "--password-stdin", "--role", role, name]
        return cmd + (["--system", system] if system else [])

    names = list(USERS)
    # the first creates the database; the others in parallel, any that lost a race again
    subprocess.run(add_cmd(names[0]), input=_pw(names[0]) + "\n", text=True, cwd=REPO,
                   env=env, check=True, capture_output=True, timeout=30)
    port = _free_port()
    b = Bus(f"http://127.0.0.1:{port}")
    b.data = data
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "bus.cli", "serve", "--data-dir", str(data),
                             "--port", str(port)], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        procs = {}
        for name in names[1:]:
            p = subprocess.Popen(add_cmd(name), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
            p.stdin.write(_pw(name) + "\n")
            p.stdin.close()
            procs[name] = p
        for name, p in procs.items():
            try:
                rc = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            if rc != 0:
                subprocess.run(add_cmd(name), input=_pw(name) + "\n", text=True, cwd=REPO,
                               env=env, check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text(errors="replace")
            try:
                if httpx.get(b.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "bus did not start"
            time.sleep(0.2)
        r = httpx.post(b.base + "/api/v1/edocs", content=_xss_packet(),
                       headers={"X-API-Key": EOFFICE_KEY}, timeout=30)
        assert r.status_code in (200, 202), r.text
        b.doc = r.json()["id"]
        b.deliveries = [x["delivery"] for x in r.json()["recipients"]]
        for name in ("op", "aud", "off", "nax"):
            c, resp = login(b, name, _pw(name))
            assert resp.status_code == 303, (name, resp.status_code, resp.text[:300])
            b.sessions[name] = c
        yield b
    finally:
        for c in b.sessions.values():
            c.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def timed(fn, *a, **kw):
    t = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t


def assert_coded(r: httpx.Response, status: int | tuple[int, ...], dt: float) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert dt < BOUND_S, dt
    assert "Traceback" not in r.text
    body = r.json()
    assert isinstance(body.get("code"), str) and body["code"], body


# --------------------------------------------------------------------------- console


def test_console_security_headers_forbid_framing(bus: Bus) -> None:
    for path in ("/console/login", "/console/documents", f"/console/documents/{bus.doc}"):
        r, dt = timed(bus.sessions["op"].get, path)
        assert r.status_code == 200 and dt < BOUND_S
        assert r.headers.get("x-frame-options", "").upper() == "DENY"
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert r.headers.get("x-content-type-options") == "nosniff"
        assert "no-store" in r.headers.get("cache-control", "")


def test_console_without_session_shows_nothing(bus: Bus) -> None:
    c = bus.client()
    for path in ("/console/documents", f"/console/documents/{bus.doc}", "/console/queues",
                 "/console/state"):
        r, dt = timed(c.get, path)
        assert r.status_code in (303, 302, 401, 403), (path, r.status_code)
        assert "XSSSUBJ" not in r.text and dt < BOUND_S
        if r.status_code in (302, 303):
            assert r.headers["location"].startswith("/console/login")


def test_session_cookie_flags_and_fresh_id_on_login(bus: Bus) -> None:
    """Session fixation: a cookie planted before login is never the session after it."""
    c = bus.client()
    planted = "attacker-chosen-session-id-0123456789abcdef"
    c.cookies.set("lgsp_console", planted, domain="127.0.0.1", path="/")
    page = c.get("/console/login")
    r, dt = timed(c.post, "/console/login",
                  data={"csrf": csrf_of(page.text), "next": "/console/documents",
                        "user": "spare", "password": _pw("spare")})
    assert r.status_code == 303 and dt < BOUND_S
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("lgsp_console="))
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert value and value != planted and len(value) >= 32
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=strict" in flags
    # the planted id itself is no session
    other = bus.client()
    other.cookies.set("lgsp_console", planted, domain="127.0.0.1", path="/")
    assert other.get("/console/documents").status_code in (302, 303, 401)
    bus.sessions["spare"] = c


def test_logout_really_ends_the_session(bus: Bus) -> None:
    c = bus.sessions.pop("spare")
    stolen = c.cookies.get("lgsp_console")
    page = c.get("/console/documents")
    assert page.status_code == 200
    r, dt = timed(c.post, "/console/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code in (302, 303) and dt < BOUND_S
    replay = bus.client()
    replay.cookies.set("lgsp_console", stolen, domain="127.0.0.1", path="/")
    r = replay.get("/console/documents")
    assert r.status_code in (302, 303, 401) and "XSSSUBJ" not in r.text


def test_logout_without_csrf_token_does_not_log_out(bus: Bus) -> None:
    c = bus.sessions["aud"]
    r, dt = timed(c.post, "/console/logout", data={})
    assert r.status_code in (400, 403) and dt < BOUND_S
    assert c.get("/console/documents").status_code == 200


def test_login_post_without_csrf_is_refused(bus: Bus) -> None:
    c = bus.client()
    r, dt = timed(c.post, "/console/login", data={"next": "/console/documents",
                                                  "user": "op", "password": _pw("op")})
    assert r.status_code in (400, 403) and dt < BOUND_S
    assert "lgsp_console=" not in " ".join(r.headers.get_list("set-cookie"))


def test_actions_without_or_with_foreign_csrf_are_refused(bus: Bus) -> None:
    op = bus.sessions["op"]
    foreign = csrf_of(bus.sessions["off"].get("/console/documents").text)
    form = {"action": "cancel", "reason": "csrf probe", "ids": bus.deliveries[0],
            "next": "/console/documents"}
    for extra in ({}, {"csrf": foreign}, {"csrf": "x" * 43}):
        r, dt = timed(op.post, "/console/actions", data={**form, **extra})
        assert r.status_code in (400, 403), (extra, r.status_code)
        assert dt < BOUND_S
    doc = op.get(f"/console/documents/{bus.doc}").text
    assert "s-cancelled" not in doc


def test_explain_upload_without_csrf_is_refused(bus: Bus) -> None:
    r, dt = timed(bus.sessions["op"].post, "/console/explain",
                  files={"packet": ("p.edxml", PACKET.read_bytes(), "application/xml")})
    assert r.status_code in (400, 403) and dt < BOUND_S


def test_stored_xss_in_subject_is_escaped_everywhere(bus: Bus) -> None:
    op = bus.sessions["op"]
    for path in ("/console/documents", f"/console/documents/{bus.doc}",
                 "/console/documents?words=XSSSUBJ"):
        r, dt = timed(op.get, path)
        assert r.status_code == 200 and dt < BOUND_S
        assert "XSSSUBJ" in r.text
        assert "<script>alert" not in r.text and "<img src=x" not in r.text
    z = zipfile.ZipFile(io.BytesIO(httpx.get(
        f"{bus.base}/api/v1/edocs/{bus.doc}/evidence",
        headers={"X-API-Key": OPERATOR_KEY}, timeout=10).content))
    summary = z.read("summary.html").decode("utf-8")
    assert "XSSSUBJ" in summary
    assert "<script>alert" not in summary and "<img src=x" not in summary


def test_reflected_xss_in_search_parameters_is_escaped(bus: Bus) -> None:
    op = bus.sessions["op"]
    payload = '"><script>alert(9)</script><svg onload=alert(8)>'
    for field in ("document_id", "code", "sender", "recipient", "words"):
        r, dt = timed(op.get, "/console/documents", params={field: payload})
        assert dt < BOUND_S and r.status_code in (200, 400), (field, r.status_code)
        assert "<script>alert(9)" not in r.text and "<svg onload" not in r.text


def test_malformed_search_parameters_are_a_clear_4xx(bus: Bus) -> None:
    op = bus.sessions["op"]
    for params in ({"since": "2026-13-45"}, {"until": "'; drop table documents;--"},
                   {"state": "<svg>"}, {"since": "9" * 400}, {"words": "w" * 20000},
                   {"cursor": "%%%"}, {"page": "-1"}):
        r, dt = timed(op.get, "/console/documents", params=params)
        assert r.status_code < 500 and dt < BOUND_S, (params, r.status_code)
        assert "Traceback" not in r.text


def test_login_next_is_no_open_redirect(bus: Bus) -> None:
    for nxt in ("https://evil.example/", "//evil.example/", "/\\evil.example",
                "\\\\evil.example", "javascript:alert(1)", "http:evil.example",
                "/%2f%2fevil.example", "/\t/evil.example"):
        c, r = login(bus, "spare2", _pw("spare2"), next_=nxt)
        assert r.status_code == 303
        loc = r.headers["location"]
        assert loc.startswith("/") and not loc.startswith("//") and "\\" not in loc, (nxt, loc)
        assert "evil.example" not in loc or loc.startswith("/console"), (nxt, loc)
        c.close()


def test_language_switch_next_is_no_open_redirect(bus: Bus) -> None:
    c = bus.client()
    for nxt in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r, dt = timed(c.get, "/console/lang/en", params={"next": nxt})
        assert r.status_code in (302, 303, 400) and dt < BOUND_S
        loc = r.headers.get("location", "/")
        assert loc.startswith("/") and not loc.startswith("//") and "evil" not in loc


def test_post_forms_next_is_no_open_redirect(bus: Bus) -> None:
    op = bus.sessions["op"]
    token = csrf_of(op.get("/console/queues").text)
    for nxt in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        for path, form in (("/console/actions", {"action": "resend", "reason": "redirect probe",
                                                  "ids": "no-such-delivery"}),
                           ("/console/bulk-stop", {"on": "0"})):
            r, dt = timed(op.post, path, data={"csrf": token, "next": nxt, **form})
            assert dt < BOUND_S and r.status_code < 500, (path, r.status_code)
            loc = r.headers.get("location", "/")
            assert loc.startswith("/") and not loc.startswith("//") and "evil" not in loc
    c, r = login(bus, "off", _pw("off"))
    assert r.status_code == 303
    token = csrf_of(c.get("/console/documents").text)
    r = c.post("/console/logout", data={"csrf": token, "next": "https://evil.example/"})
    loc = r.headers.get("location", "/")
    assert loc.startswith("/") and not loc.startswith("//") and "evil" not in loc
    c.close()


def test_static_files_no_path_traversal(bus: Bus) -> None:
    c = bus.client()
    for path in ("/console/static/../../../../etc/passwd",
                 "/console/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/console/static/..%2f..%2f..%2fREADME.md",
                 "/console/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fconfig%2fcredentials.yaml",
                 "/console/static/....//....//README.md",
                 "/console/static/%252e%252e/%252e%252e/README.md",
                 "/console/static/..\\..\\..\\README.md"):
        r, dt = timed(c.get, path)
        assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert dt < BOUND_S
        assert "root:" not in r.text and "lgsp-bus" not in r.text and "keys_sha256" not in r.text
    assert c.get("/console/static/console.css").status_code == 200


def test_officer_cannot_reach_other_agencies_document(bus: Bus) -> None:
    nax = bus.sessions["nax"]
    for path in (f"/console/documents/{bus.doc}",):
        r, dt = timed(nax.get, path)
        assert r.status_code == 404 and dt < BOUND_S
        assert "XSSSUBJ" not in r.text
    for params in ({}, {"document_id": "000.00.12.H37,2026/01/05,217/OUTS-VP"},
                   {"sender": "000.00.12.H37"}, {"recipient": "000.00.00.H37"},
                   {"code": "217"}, {"words": "%"}, {"words": "_"}, {"state": "pending"}):
        r = nax.get("/console/documents", params=params)
        assert r.status_code in (200, 400)
        assert bus.doc not in r.text
    for path in ("/console/queues", "/console/state"):
        assert nax.get(path).status_code in (403, 404)
    # the sender's own officer does see it
    assert bus.sessions["off"].get(f"/console/documents/{bus.doc}").status_code == 200


def test_officer_and_auditor_cannot_act_on_deliveries(bus: Bus) -> None:
    for name in ("aud", "nax", "off"):
        c = bus.sessions[name]
        token = csrf_of(c.get("/console/documents").text)
        r, dt = timed(c.post, "/console/actions",
                      data={"csrf": token, "action": "cancel", "reason": "not mine",
                            "ids": bus.deliveries[0], "next": "/console/documents"})
        assert r.status_code in (403, 404), (name, r.status_code)
        assert dt < BOUND_S
    assert "s-cancelled" not in bus.sessions["op"].get(f"/console/documents/{bus.doc}").text


def test_operator_console_action_needs_a_reason(bus: Bus) -> None:
    op = bus.sessions["op"]
    token = csrf_of(op.get(f"/console/documents/{bus.doc}").text)
    for reason in ("", "   "):
        r, dt = timed(op.post, "/console/actions",
                      data={"csrf": token, "action": "cancel", "reason": reason,
                            "ids": bus.deliveries[0], "next": f"/console/documents/{bus.doc}"})
        assert dt < BOUND_S
        assert r.status_code in (303, 400, 422)
    assert "s-cancelled" not in op.get(f"/console/documents/{bus.doc}").text


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


# --------------------------------------------------- evidence, deadlines, overdue, reconciliations


def _get(bus: Bus, path: str, key: str | None, **kw) -> tuple[httpx.Response, float]:
    headers = {"X-API-Key": key} if key else {}
    return timed(httpx.get, bus.base + path, headers=headers, timeout=10, **kw)


def test_evidence_and_deadlines_hidden_from_unrelated_systems(bus: Bus) -> None:
    for suffix in ("evidence", "deadlines"):
        r, dt = _get(bus, f"/api/v1/edocs/{bus.doc}/{suffix}", AXIS_KEY)
        assert_coded(r, 404, dt)
        assert "XSSSUBJ" not in r.text
        r, dt = _get(bus, f"/api/v1/edocs/{bus.doc}/{suffix}", None)
        assert_coded(r, 401, dt)
        r, dt = _get(bus, f"/api/v1/edocs/{bus.doc}/{suffix}", EOFFICE_KEY)
        assert r.status_code == 200 and dt < BOUND_S


def test_overdue_shows_unrelated_system_nothing_of_others(bus: Bus) -> None:
    later = {"at": "2030-01-02T09:00:00+07:00"}  # every stage of the document is late by then
    r, dt = _get(bus, "/api/v1/overdue", OPERATOR_KEY, params=later)
    assert r.status_code == 200 and dt < BOUND_S
    assert bus.doc in r.text  # so the check below is not vacuous
    for params in ({}, later, {**later, "destination": "hcm_egov"}):
        r, dt = _get(bus, "/api/v1/overdue", AXIS_KEY, params=params)
        assert r.status_code == 200 and dt < BOUND_S
        assert bus.doc not in r.text and r.json()["count"] == 0
        for d in bus.deliveries:
            assert d not in r.text


def test_reconciliations_only_for_operator_systems(bus: Bus) -> None:
    for key in (EOFFICE_KEY, AXIS_KEY):
        r, dt = _get(bus, "/api/v1/reconciliations", key)
        assert_coded(r, (403, 404), dt)
        r, dt = _get(bus, "/api/v1/reconciliations/anything", key)
        assert_coded(r, (403, 404), dt)
    r, dt = _get(bus, "/api/v1/reconciliations", OPERATOR_KEY)
    assert r.status_code == 200 and dt < BOUND_S


def test_feedback_report_needs_a_key_and_refuses_bad_periods_with_a_code(bus: Bus) -> None:
    r, dt = _get(bus, "/api/v1/reports/feedback", None)
    assert_coded(r, 401, dt)
    for key in (OPERATOR_KEY, EOFFICE_KEY):
        r, dt = _get(bus, "/api/v1/reports/feedback", key)
        assert r.status_code == 200 and dt < BOUND_S, r.text
    for bad in ({"from": "2026-02-30"}, {"from": "x' or 1=1--"}, {"to": "9" * 40},
                {"format": "../../etc/passwd"}, {"limit": "-1"}):
        r, dt = _get(bus, "/api/v1/reports/feedback", OPERATOR_KEY, params=bad)
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)
        assert_coded(r, r.status_code, dt)


def test_read_endpoints_malformed_parameters_are_coded_4xx(bus: Bus) -> None:
    weird = ({"at": "2026-13-45"}, {"at": "x' or 1=1--"}, {"at": "9" * 400}, {"at": "1e400"},
             {"at": "inf"}, {"at": "nan"}, {"at": "2026-06-01T00:00:00+99:00"},
             {"date": "garbage"}, {"date": "9" * 300}, {"date": "2026-01-01'--"},
             {"stage": "x"}, {"destination": "' or 1=1--"},
             {"limit": "-1"}, {"limit": "99999999999999999999"}, {"limit": "abc"},
             {"cursor": "%%%"}, {"format": "../../etc/passwd"}, {"since": "2026-02-30"})
    paths = ("/api/v1/overdue", "/api/v1/reconciliations", f"/api/v1/edocs/{bus.doc}/deadlines",
             f"/api/v1/edocs/{bus.doc}/evidence")
    t0 = time.monotonic()
    for params in weird:
        for path in paths:
            r, dt = _get(bus, path, OPERATOR_KEY, params=params)
            assert r.status_code < 500, (path, params, r.status_code, r.text[:300])
            assert dt < BOUND_S and "Traceback" not in r.text
            if r.status_code >= 400:
                assert r.json().get("code"), r.text
    assert time.monotonic() - t0 < 20
    for path in ("/api/v1/reconciliations/" + "a" * 3000, "/api/v1/reconciliations/1%00",
                 "/api/v1/edocs/%00/evidence", "/api/v1/edocs/" + "a" * 4000 + "/deadlines",
                 "/api/v1/reconciliations/..%2f..%2fetc%2fpasswd"):
        r, dt = _get(bus, path, OPERATOR_KEY)
        assert_coded(r, (400, 404), dt)
        assert "root:" not in r.text


def test_overdue_at_out_of_range_is_a_coded_400(bus: Bus) -> None:
    for key in (OPERATOR_KEY, AXIS_KEY):
        for at in ("1e12", "-1e12", "253402300800", "99999999999999999999",
                   "9999-12-31T23:59:59+14:00", "9999-12-31T23:59:59-12:00"):
            r, dt = _get(bus, "/api/v1/overdue", key, params={"at": at})
            assert_coded(r, 400, dt)


def test_reconciliations_impossible_date_is_a_coded_400(bus: Bus) -> None:
    for date in ("2026-02-30", "2026-13-01", "0000-01-01"):
        r, dt = _get(bus, "/api/v1/reconciliations", OPERATOR_KEY, params={"date": date})
        assert_coded(r, 400, dt)


def test_console_explain_refuses_xxe_and_reads_no_file(bus: Bus) -> None:
    op = bus.sessions["op"]
    token = csrf_of(op.get("/console/state").text)
    xxe = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&e;</edXML>')
    r, dt = timed(op.post, "/console/explain", data={"csrf": token},
                  files={"packet": ("p.edxml", xxe, "application/xml")})
    assert r.status_code in (200, 400, 422) and dt < BOUND_S
    assert "DtdForbidden" in r.text and "root:" not in r.text
    # an officer may not use it at all
    nax = bus.sessions["nax"]
    r = nax.post("/console/explain", data={"csrf": csrf_of(nax.get("/console/documents").text)},
                 files={"packet": ("p.edxml", PACKET.read_bytes(), "application/xml")})
    assert r.status_code in (403, 404)


def test_redirect_target_has_no_header_injection(bus: Bus) -> None:
    c = bus.sessions["op"]
    for nxt in ("/console/documents\r\nSet-Cookie: evil=1", "/console/documents\nX-Evil: 1"):
        r, dt = timed(c.get, "/console/lang/vi", params={"next": nxt})
        assert dt < BOUND_S and r.status_code in (302, 303, 400)
        loc = r.headers.get("location", "")
        assert "\r" not in loc and "\n" not in loc
        assert not any(v.startswith("evil=") for v in r.headers.get_list("set-cookie"))
        assert "x-evil" not in r.headers


def test_huge_login_fields_are_refused_fast(bus: Bus) -> None:
    c = bus.client()
    token = csrf_of(c.get("/console/login").text)
    for user, pw in (("op", "p" * 200_000), ("u" * 200_000, "x"), ("op", "p" * 60_000)):
        r, dt = timed(c.post, "/console/login",
                      data={"csrf": token, "next": "/", "user": user, "password": pw})
        assert r.status_code in (400, 401, 413, 422) and dt < BOUND_S
        assert "lgsp_console=" not in " ".join(r.headers.get_list("set-cookie"))


def test_removed_user_session_ends(bus: Bus) -> None:
    c, r = login(bus, "gone", _pw("gone"))
    assert r.status_code == 303 and c.get("/console/documents").status_code == 200
    subprocess.run([sys.executable, "-m", "bus.cli", "users", "remove", "--data-dir",
                    str(bus.data), "gone"], cwd=REPO, env=_env(), check=True,
                   capture_output=True, timeout=30)
    t = time.monotonic()
    r = c.get("/console/documents")
    assert r.status_code in (302, 303, 401) and time.monotonic() - t < BOUND_S
    c.close()


# ------------------------------------------------ login failures last (they throttle 127.0.0.1)


def test_login_failure_does_not_enumerate_users(bus: Bus) -> None:
    known, dt_known = timed(login, bus, "op", "wrong-password-1")
    unknown, dt_unknown = timed(login, bus, "nobody-here", "wrong-password-1")
    r1, r2 = known[1], unknown[1]
    assert r1.status_code == r2.status_code == 401
    msg = lambda r: re.sub(r'value="[^"]*"', "", r.text)  # noqa: E731 - tokens differ
    assert msg(r1) == msg(r2)
    assert dt_known < BOUND_S and dt_unknown < BOUND_S
    assert abs(dt_known - dt_unknown) < 0.5


def test_brute_force_is_throttled_even_for_the_right_password(bus: Bus) -> None:
    t0 = time.monotonic()
    for i in range(8):
        _, r = login(bus, "spare2", f"guess-{i}")
        assert r.status_code in (401, 429)
    _, r = login(bus, "spare2", _pw("spare2"))
    assert r.status_code in (401, 429), "the right password got in after 8 wrong guesses"
    assert time.monotonic() - t0 < 15


def _attempt_from(bus: Bus, src: str, user: str, password: str) -> str:
    """One login from a chosen loopback source address: OK, LOCKED or WRONG."""
    with httpx.Client(base_url=bus.base, follow_redirects=False, timeout=10,
                      transport=httpx.HTTPTransport(local_address=src)) as c:
        page = c.get("/console/login")
        r = c.post("/console/login", data={"csrf": csrf_of(page.text), "next": "/",
                                           "user": user, "password": password})
    if r.status_code == 303:
        return "OK"
    assert r.status_code in (401, 429)
    return "LOCKED" if ("quá nhiều" in r.text or r.status_code == 429) else "WRONG"


def test_own_good_login_does_not_reset_the_address_throttle(bus: Bus) -> None:
    """Spraying: wrong guesses at one user, a good login as one's own, guesses at the next."""
    t0 = time.monotonic()
    src = "127.0.0.9"
    seen = [_attempt_from(bus, src, "spare", f"g{i}") for i in range(4)]
    seen.append(_attempt_from(bus, src, "nax", _pw("nax")))
    seen += [_attempt_from(bus, src, "spare2", f"g{i}") for i in range(4)]
    assert "LOCKED" in seen[5:], seen
    assert time.monotonic() - t0 < 15


def test_lockout_does_not_enumerate_users(bus: Bus) -> None:
    """Per-user lock-out looks the same for a user that does not exist."""
    t0 = time.monotonic()
    out = {}
    for j, user in enumerate(("aud", "no-such-user-zz")):
        out[user] = [_attempt_from(bus, f"127.0.{10 + j}.{i + 1}", user, f"g{i}")
                     for i in range(6)]
    assert out["aud"] == out["no-such-user-zz"], out
    assert time.monotonic() - t0 < 20


def test_throttle_not_lifted_by_forged_forwarded_for(bus: Bus) -> None:
    # 127.0.0.1 is locked out by now (the tests above failed logins on purpose)
    _, r = login(bus, "op", _pw("op"))
    assert r.status_code in (401, 429)
    _, r = login(bus, "op", _pw("op"), headers={"X-Forwarded-For": "203.0.113.77"})
    assert r.status_code in (401, 429), "a forged X-Forwarded-For lifted the throttle"

"""What the tests of the new doors share (test_doors_*.py): the bus they attack, started as a
user starts it, with its console users, one document and open console sessions, and the
assertions every answer must pass.

Written from README.md, contract.md and a running bus only (never the bus's source). One
bus per module, started as a user starts it (``python -m bus.cli serve``), console users
created with ``python -m bus.cli users add``. Every test asserts the secure behaviour and a
time bound.

Order matters: the console throttles failed logins per address for minutes, and every
request here comes from 127.0.0.1, so the sessions are opened in the fixture and the tests
that fail logins on purpose run last."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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

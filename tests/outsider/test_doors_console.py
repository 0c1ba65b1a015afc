"""The operator console attacked from outside: headers, sessions, CSRF, XSS, redirects,
traversal, visibility by role, and login failures last (they throttle 127.0.0.1).
Fixture and helpers: :mod:`tests.outsider.doors_kit`."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
import zipfile

import httpx

from tests.outsider.doors_kit import (
    BOUND_S,
    OPERATOR_KEY,
    PACKET,
    REPO,
    Bus,
    _env,
    _pw,
    csrf_of,
    login,
    timed,
)

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

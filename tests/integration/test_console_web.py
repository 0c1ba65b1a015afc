"""The console and the action API through a real bus server, as a browser and a script
reach them: sessions, CSRF, roles and scope, escaping, the action endpoints.

Hostile cases: a subject and a reason carrying markup, a planted session cookie (session
fixation), an officer editing URLs to reach another agency's document, a POST without
the CSRF token, a non-operator system calling the action API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bus.console import actions
from bus.console.web import COOKIE
from tests.api_server import api_key
from tests.console_support import COMMITTEE, PASSWORD, Province, province

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    with province(tmp_path_factory.mktemp("console")) as running:
        running.user("op", "operator")
        running.user("auditor", "auditor")
        running.user("commune", "officer", system="hcm_egov")
        running.user("committee", "officer", system="vnpt_ioffice")
        yield running


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def login(bus: Province, name: str) -> httpx.Client:
    client = httpx.Client(base_url=bus.url, timeout=15)
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"user": name, "password": PASSWORD,
                                                 "csrf": _csrf(form.text)})
    assert answer.status_code == 303, answer.text
    return client


def test_pages_need_a_session(bus: Province) -> None:
    for path in ("/console/documents", "/console/queues", "/console/state",
                 "/console/documents/abc"):
        answer = httpx.get(bus.url + path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login?next=")
    answer = httpx.post(bus.url + "/console/actions", data={"ids": "x", "action": "resend",
                                                           "reason": "x"})
    assert answer.status_code == 303


def test_session_cookie_flags_and_security_headers(bus: Province) -> None:
    client = httpx.Client(base_url=bus.url)
    form = client.get("/console/login")
    assert "default-src 'none'" in form.headers["content-security-policy"]
    answer = client.post("/console/login", data={"user": "op", "password": PASSWORD,
                                                 "csrf": _csrf(form.text)})
    cookie = next(v for k, v in answer.headers.multi_items()
                  if k == "set-cookie" and v.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test below
    assert "Max-Age=28800" in cookie


def test_secure_cookies_when_configured(tmp_path: Path) -> None:
    with province(tmp_path, console_secure_cookies=True) as running:
        running.user("op", "operator")
        form = httpx.get(running.url + "/console/login")
        assert "Secure" in form.headers["set-cookie"]
        # A browser sends Secure cookies over HTTPS only; this client is told to send it.
        login_cookie = form.headers["set-cookie"].split(";")[0]
        answer = httpx.post(running.url + "/console/login", headers={"Cookie": login_cookie},
                            data={"user": "op", "password": PASSWORD,
                                  "csrf": _csrf(form.text)})
        assert answer.status_code == 303
        cookie = answer.headers.get_list("set-cookie")
        assert any(c.startswith("__Host-" + COOKIE + "=") and "Secure" in c and "Path=/"
                   in c for c in cookie)


def test_a_wrong_password_is_refused_and_logins_are_throttled(tmp_path: Path) -> None:
    with province(tmp_path) as running:
        running.user("op", "operator")
        client = httpx.Client(base_url=running.url)
        for _ in range(5):
            form = client.get("/console/login")
            answer = client.post("/console/login", data={
                "user": "op", "password": "wrong-password", "csrf": _csrf(form.text)})
            assert answer.status_code == 401
            assert "Sai tên đăng nhập hoặc mật khẩu." in answer.text
        form = client.get("/console/login")
        answer = client.post("/console/login", data={
            "user": "op", "password": PASSWORD, "csrf": _csrf(form.text)})
        assert answer.status_code == 401 and "chờ năm phút" in answer.text


def _login_from(url: str, address: str, name: str, password: str) -> int:
    with httpx.Client(base_url=url, timeout=15,
                      transport=httpx.HTTPTransport(local_address=address)) as client:
        form = client.get("/console/login")
        return client.post("/console/login", data={
            "user": name, "password": password, "csrf": _csrf(form.text)}).status_code


def test_a_stranger_guessing_cannot_lock_the_operator_out_of_their_workstation(
        tmp_path: Path) -> None:
    with province(tmp_path) as running:
        running.user("op", "operator")
        assert _login_from(running.url, "127.0.0.20", "op", PASSWORD) == 303
        guesses = [_login_from(running.url, f"127.0.1.{i + 1}", "op", f"guess-{i}")
                   for i in range(6)]
        assert guesses[-1] == 401 and guesses.count(401) == 6
        assert _login_from(running.url, "127.0.0.20", "op", PASSWORD) == 303
        assert _login_from(running.url, "127.0.0.21", "op", PASSWORD) == 401


def test_login_without_its_csrf_token_is_refused(bus: Province) -> None:
    client = httpx.Client(base_url=bus.url)
    client.get("/console/login")
    answer = client.post("/console/login", data={"user": "op", "password": PASSWORD,
                                                 "csrf": "forged"})
    assert answer.status_code == 403 and COOKIE not in answer.headers.get("set-cookie", "")


def test_session_fixation_a_planted_cookie_never_becomes_a_session(bus: Province) -> None:
    planted = "attacker-chosen-token-0123456789"
    client = httpx.Client(base_url=bus.url, cookies={COOKIE: planted})
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"user": "op", "password": PASSWORD,
                                                 "csrf": _csrf(form.text)})
    issued = answer.cookies.get(COOKIE)
    assert issued and issued != planted
    attacker = httpx.Client(base_url=bus.url, cookies={COOKIE: planted})
    assert attacker.get("/console/documents").status_code == 303
    victim = httpx.Client(base_url=bus.url, cookies={COOKIE: issued})
    assert victim.get("/console/documents").status_code == 200


def test_logout_ends_the_session_server_side(bus: Province) -> None:
    client = login(bus, "auditor")
    token = client.cookies.get(COOKIE)
    page = client.get("/console/documents")
    assert client.post("/console/logout", data={"csrf": _csrf(page.text)}).status_code == 303
    again = httpx.Client(base_url=bus.url, cookies={COOKIE: token or ""})
    assert again.get("/console/documents").status_code == 303


def test_markup_in_subject_code_and_reason_is_shown_as_text(bus: Province) -> None:
    ids = bus.parked("Công văn " + XSS, code="99/" + "UB<b>x</b>")
    client = login(bus, "op")
    page = client.get(f"/console/documents/{ids['document']}")
    answer = client.post("/console/actions", data={
        "csrf": _csrf(page.text), "ids": ids["delivery"], "action": "cancel",
        "reason": XSS})
    assert answer.status_code == 200
    for url in (f"/console/documents/{ids['document']}",
                "/console/documents?words=" + "Công"):
        html = client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert "<b>x</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in client.get(
        f"/console/documents/{ids['document']}").text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(bus: Province) -> None:
    ids = bus.parked("Không có CSRF")
    client = login(bus, "op")
    for data in ({}, {"csrf": "forged"}):
        answer = client.post("/console/actions", data={
            "ids": ids["delivery"], "action": "resend", "reason": "tấn công", **data})
        assert answer.status_code == 403
        assert "Biểu mẫu đã hết hạn" in answer.text
    answer = client.post("/console/bulk-stop", data={"on": "1"})
    assert answer.status_code == 403
    assert not actions.stop_switch(bus.server.bus.store)
    assert bus.state(ids["delivery"]) == "parked"


def test_operator_resends_from_the_console_and_the_action_is_in_the_history(
        bus: Province) -> None:
    ids = bus.parked("Gửi lại từ bảng điều khiển")
    client = login(bus, "op")
    page = client.get(f"/console/documents/{ids['document']}")
    assert 'class="state s-parked"' in page.text
    answer = client.post("/console/actions", data={
        "csrf": _csrf(page.text), "ids": ids["delivery"], "action": "resend",
        "reason": "hệ thống xã đã hoạt động lại", "next": f"/console/documents/{ids['document']}"})
    assert answer.status_code == 200 and "tạm giữ → chờ gửi" in answer.text
    bus.wait_state(ids["delivery"], "delivered")
    page = client.get(f"/console/documents/{ids['document']}")
    assert 'class="state s-delivered"' in page.text
    assert "Vận hành viên: gửi lại" in page.text
    assert "console:op" in page.text and "hệ thống xã đã hoạt động lại" in page.text
    detail = httpx.get(f"{bus.url}/api/v1/edocs/{ids['document']}",
                       headers=api_key("operator")).json()
    resend = [h for h in detail["deliveries"][0]["history"] if h["action"] == "resend"]
    assert resend[0]["actor"] == "console:op"
    assert resend[0]["detail"]["reason"] == "hệ thống xã đã hoạt động lại"


def test_a_missing_reason_is_refused(bus: Province) -> None:
    ids = bus.parked("Không có lý do")
    client = login(bus, "op")
    page = client.get(f"/console/documents/{ids['document']}")
    answer = client.post("/console/actions", data={
        "csrf": _csrf(page.text), "ids": ids["delivery"], "action": "resend", "reason": " "})
    assert answer.status_code == 400 and "InvalidRequest" in answer.text
    assert bus.state(ids["delivery"]) == "parked"


def test_an_officer_sees_only_their_agencys_documents_even_by_url(bus: Province) -> None:
    ours = bus.send("Văn bản gửi xã 31")
    theirs = bus.send("Văn bản gửi văn phòng UBND tỉnh", to=COMMITTEE)
    commune = login(bus, "commune")
    listing = commune.get("/console/documents").text
    assert ours["document"] in listing and theirs["document"] not in listing
    assert commune.get(f"/console/documents/{ours['document']}").status_code == 200
    tampered = commune.get(f"/console/documents/{theirs['document']}")
    assert tampered.status_code == 404
    assert "văn phòng UBND tỉnh" not in tampered.text
    found = commune.get("/console/documents", params={"words": "văn phòng"}).text
    assert theirs["document"] not in found
    committee = login(bus, "committee")
    assert committee.get(f"/console/documents/{theirs['document']}").status_code == 200
    assert committee.get(f"/console/documents/{ours['document']}").status_code == 404
    for path in ("/console/queues", "/console/state"):
        assert commune.get(path).status_code == 403


def test_officers_and_auditors_cannot_act(bus: Province) -> None:
    ids = bus.parked("Chỉ xem")
    for name in ("commune", "auditor"):
        client = login(bus, name)
        page = client.get(f"/console/documents/{ids['document']}")
        assert page.status_code == 200 and 'id="apply"' not in page.text
        answer = client.post("/console/actions", data={
            "csrf": _csrf(page.text), "ids": ids["delivery"], "action": "cancel",
            "reason": "thử quyền"})
        assert answer.status_code == 403
    assert bus.state(ids["delivery"]) == "parked"


def test_search_by_fields_and_paging(bus: Province) -> None:
    first = bus.send("Kế hoạch chuyển đổi số năm 2027", code="345/KH-UBND")
    client = login(bus, "auditor")
    for params in ({"code": "345/KH"}, {"words": "chuyển đổi số"},
                   {"sender": "000.00.12.H37", "words": "2027"},
                   {"recipient": "000.00.31.H37", "words": "Kế hoạch"}):
        assert first["document"] in client.get("/console/documents", params=params).text
    assert first["document"] not in client.get(
        "/console/documents", params={"code": "346/KH"}).text
    assert first["document"] not in client.get(
        "/console/documents", params={"since": "2099-01-01"}).text
    for _ in range(26):
        bus.send("Trang")
    page = client.get("/console/documents", params={"words": "Trang"}).text
    assert page.count('class="subject"') == 25
    following = re.search(r'id="next" href="([^"]+)"', page)
    assert following
    rest = client.get(following.group(1).replace("&amp;", "&")).text
    assert rest.count('class="subject"') == 1
    bad = client.get("/console/documents", params={"since": "hôm qua"})
    assert bad.status_code == 400 and "InvalidRequest" in bad.text


def test_queues_parked_list_and_the_stop_switch_from_the_console(bus: Province) -> None:
    ids = bus.parked("Hàng đợi")
    client = login(bus, "op")
    page = client.get("/console/queues")
    assert ids["delivery"] in page.text and "HTTP 503" in page.text
    answer = client.post("/console/bulk-stop", data={"csrf": _csrf(page.text), "on": "1"})
    assert answer.status_code == 303
    assert actions.stop_switch(bus.server.bus.store)
    page = client.get("/console/queues")
    assert "ĐANG DỪNG" in page.text
    answer = client.post("/console/actions", data={
        "csrf": _csrf(page.text), "ids": [ids["delivery"], "0" * 32], "action": "resend",
        "reason": "hàng loạt"})
    assert answer.status_code == 409 and "stop switch" in answer.text
    client.post("/console/bulk-stop", data={"csrf": _csrf(page.text), "on": "0"})
    assert not actions.stop_switch(bus.server.bus.store)


def test_english_and_the_state_page_with_explain(bus: Province) -> None:
    client = login(bus, "op")
    assert client.get("/console/lang/en", params={"next": "/console/state"}).status_code == 303
    page = client.get("/console/state")
    assert "Readiness" in page.text and "Explain routing" in page.text
    assert 'id="ready"' in page.text
    from bus.edxml import EdocBuilder, packet_bytes

    packet = packet_bytes(EdocBuilder("000.00.12.H37").to("000.00.31.H37", COMMITTEE)
                          .subject("giải thích").signer("A").build())
    answer = client.post("/console/explain", data={"csrf": _csrf(page.text)},
                         files={"packet": ("p.edxml", packet, "application/xml")})
    assert answer.status_code == 200
    assert "delivery for 000.00.31.H37 -&gt; hcm_egov" in answer.text
    assert "delivery for 000.00.00.H37 -&gt; vnpt_ioffice" in answer.text
    answer = client.post("/console/explain", data={"csrf": _csrf(page.text)},
                         files={"packet": ("p.edxml", b"<not-xml", "application/xml")})
    assert "MalformedXml" in answer.text
    client.get("/console/lang/vi")
    assert "Sẵn sàng" in client.get("/console/state").text
    assert client.get("/console/lang/en", params={"next": "https://evil.example/"}) \
        .headers["location"] == "/console/documents"


def test_action_api_for_operator_systems_only(bus: Province) -> None:
    ids = bus.parked("API")
    url = f"{bus.url}/api/v1/deliveries/{ids['delivery']}"
    refused = httpx.post(url + "/cancel", json={"reason": "x"}, headers=api_key("eoffice"))
    assert refused.status_code == 403 and refused.json()["code"] == "NotPermitted"
    assert httpx.post(url + "/cancel", json={"reason": "x"}).status_code == 401
    missing = httpx.post(url + "/cancel", json={}, headers=api_key("operator"))
    assert missing.status_code == 400 and missing.json()["code"] == "InvalidRequest"
    empty = httpx.post(url + "/cancel", json={"reason": ""}, headers=api_key("operator"))
    assert empty.status_code == 400
    assert bus.state(ids["delivery"]) == "parked"
    done = httpx.post(url + "/resend", json={"reason": "qua API"}, headers=api_key("operator"))
    assert done.status_code == 200, done.text
    assert done.json() | {"document": ""} == {"delivery": ids["delivery"], "document": "",
                                               "action": "resend", "before": "parked",
                                               "after": "pending"}
    bus.wait_state(ids["delivery"], "delivered")
    again = httpx.post(url + "/park", json={"reason": "x"}, headers=api_key("operator"))
    assert again.status_code == 409 and again.json()["code"] == "StateConflict"
    unknown = httpx.post(f"{bus.url}/api/v1/deliveries/{'0' * 32}/park", json={"reason": "x"},
                         headers=api_key("operator"))
    assert unknown.status_code == 404


def test_bulk_api_and_its_stop_switch(bus: Province) -> None:
    first, second = bus.parked("Hàng loạt 1"), bus.parked("Hàng loạt 2")
    url = f"{bus.url}/api/v1/deliveries/bulk"
    op = api_key("operator")
    assert httpx.put(url + "/stop", json={"on": True}, headers=api_key("eoffice")) \
        .status_code == 403
    assert httpx.put(url + "/stop", json={"on": True}, headers=op).json() == {"on": True}
    assert httpx.get(url + "/stop", headers=op).json() == {"on": True}
    stopped = httpx.post(url + "/cancel", json={"ids": [first["delivery"]], "reason": "x"},
                         headers=op)
    assert stopped.status_code == 409 and stopped.json()["code"] == "StateConflict"
    httpx.put(url + "/stop", json={"on": False}, headers=op)
    answer = httpx.post(url + "/cancel", json={
        "ids": [first["delivery"], second["delivery"], "0" * 32], "reason": "gửi nhầm"},
        headers=op, timeout=15)
    assert answer.status_code == 200
    body = answer.json()
    assert [d["delivery"] for d in body["done"]] == [first["delivery"], second["delivery"]]
    assert [(r["delivery"], r["code"]) for r in body["refused"]] == [("0" * 32, "NotFound")]
    assert bus.state(first["delivery"]) == bus.state(second["delivery"]) == "cancelled"
    scrape = httpx.get(bus.url + "/metrics", timeout=10).text
    assert 'lgsp_operator_actions_total{action="cancel",outcome="done",via="api"} 2.0' \
        in scrape
    assert 'lgsp_operator_actions_total{action="cancel",outcome="NotFound",via="api"} 1.0' \
        in scrape


def test_a_refused_reload_and_its_problems_show_on_the_state_page(tmp_path: Path) -> None:
    with province(tmp_path) as running:
        running.user("op", "operator")
        routes = running.server.bus.settings.routes
        good = routes.read_text(encoding="utf-8")
        assert "outside: outside" in good
        routes.write_text(good.replace("outside: outside", "outside: no_such_destination"),
                          encoding="utf-8")
        assert not running.server.bus.reload()
        page = login(running, "op").get("/console/state").text
        refusal = page[page.index('id="last-refusal"'):]
        assert "no_such_destination" in refusal[:2000]
        assert "Số lần nạp lại bị từ chối</dt><dd>1</dd>" in page


def test_the_action_api_checks_the_key_before_reading_the_body(bus: Province) -> None:
    from tests.api_server import raw_http

    # Headers promise a body that never comes: a door that read the body before the key
    # would wait for it; this one answers 401 at once.
    request = (b"POST /api/v1/deliveries/" + b"0" * 32 + b"/resend HTTP/1.1\r\n"
               b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    answer = raw_http(bus.url, request, timeout_s=5)
    assert answer.status == 401
    request = request.replace(b"Host: x", b"Host: x\r\nX-API-Key: dev-eoffice-key")
    assert raw_http(bus.url, request, timeout_s=5).status == 403


def test_an_oversized_login_form_is_refused_before_it_is_read(bus: Province) -> None:
    answer = httpx.post(bus.url + "/console/login", content=b"user=" + b"a" * 100_000,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413 and "PayloadTooLarge" in answer.text

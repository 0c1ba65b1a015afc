"""The facade's whole SDK surface (edxml.md §7.2), over real sockets, signed by bus.vxp.

A real bus (tests/api_server.py) with embedded delivery threads; requests are built with
:mod:`bus.vxp` the way the SDK builds them (one timestamp per "service object", keys that
stick), and the answers are checked for the shape the SDK reads: status, ErrorCode and
ErrorDesc non-null, nothing null in lists, an empty body for a refused download.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from bus import vxp
from bus.directory import requests as agency_requests
from bus.edxml import packet_bytes
from bus.ratelimit import Rate, RateLimiter
from bus.store.tables import deliveries, documents
from tests.adapters.test_vnpt_ioffice import (
    SECRET,
    SO_TTTT,
    SYSTEM_ID,
    VP_UBND,
    VXP_SYSTEMS,
    Province,
    edoc,
    running_province,
)
from tests.api_server import raw_http

CREDS: Final = vxp.Credentials(SYSTEM_ID, SECRET)
VIETNAM: Final = ZoneInfo("Asia/Ho_Chi_Minh")
FAST_S: Final = 3.0


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    with running_province(tmp_path_factory.mktemp("sdk")) as running:
        yield running


def send(province: Province, request: vxp.SignedRequest, *, path: str | None = None,
         method: str | None = None) -> httpx.Response:
    url = province.endpoint + (path if path is not None else "/" + request.operation.value)
    return httpx.request(method or request.method, url, headers=request.headers,
                         content=request.body or None, timeout=15.0)


def answer(response: httpx.Response, code: str = "0") -> dict[str, Any]:
    """The SDK's reading: the three fields present and non-null, then the code."""
    body = response.json()
    assert isinstance(body, dict), body
    for key in ("status", "ErrorCode", "ErrorDesc"):
        assert isinstance(body.get(key), str), (key, body)
    assert body["ErrorCode"] == code, body
    assert body["status"] == ("OK" if code == "0" else "FAIL"), body
    return body


def no_nulls(items: list[dict[str, Any]]) -> None:
    for item in items:
        assert all(value is not None for value in item.values()), item


def awaiting(province: Province, n: int = 1) -> list[str]:
    ids = [province.from_eoffice(edoc()) for _ in range(n)]
    for delivery_id in ids:
        province.wait_state(delivery_id, "awaiting")
    return ids


def drain(province: Province) -> None:
    """Acknowledges whatever waits, so that every test starts with an empty mailbox."""
    with province.server.bus.store.engine.connect() as conn:
        ids = list(conn.execute(sa.select(deliveries.c.id).where(
            deliveries.c.destination == "vnpt_ioffice",
            deliveries.c.state == "awaiting")).scalars())
    for delivery_id in ids:
        province.server.bus.store.acknowledge(delivery_id, ok=True, actor="test")


@pytest.fixture
def mailbox(province: Province) -> Iterator[Province]:
    drain(province)
    yield province
    drain(province)


# ------------------------------------------------------------------ downloadEdoc


def test_download_is_byte_identical_to_what_getedoc_decodes_to(mailbox: Province) -> None:
    [item] = awaiting(mailbox)
    fetched = answer(send(mailbox, vxp.get_edoc(CREDS, item)))
    response = send(mailbox, vxp.download_edoc(CREDS, item, "/opt/ioffice/store"))
    assert response.request.method == "GET" and response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == base64.b64decode(fetched["data"], validate=True)
    assert response.content.startswith(b"<?xml")


def test_every_refused_download_has_an_empty_body(mailbox: Province) -> None:
    [item] = awaiting(mailbox)
    wrong = vxp.Credentials(SYSTEM_ID, "not-the-secret")
    cases = {
        "NotFound": vxp.download_edoc(CREDS, "no-such-item"),
        "BadSignature": vxp.download_edoc(wrong, item),
        "ClockSkew": vxp.download_edoc(CREDS, item, now=datetime.now(UTC) - timedelta(hours=2,
                                                                                    minutes=30)),
    }
    for code, request in cases.items():
        response = send(mailbox, request)
        assert response.content == b"", (code, response.content)
        assert 400 <= response.status_code < 500
        assert response.headers["x-lgsp-error-code"] == code
        assert response.headers["x-lgsp-error"]
    unsigned = httpx.get(mailbox.endpoint + "/downloadEdoc", timeout=15.0)   # downloadEdoc2
    assert unsigned.content == b"" and unsigned.status_code == 400
    assert unsigned.headers["x-lgsp-error-code"] == "MalformedRequest"
    assert "not signed" in unsigned.headers["x-lgsp-error"]


# ------------------------------------------------------------------ counts


def test_counts_are_the_pending_mailbox_by_message_type(mailbox: Province) -> None:
    awaiting(mailbox, 3)
    edocs = answer(send(mailbox, vxp.count_receive(CREDS, vxp.MessageType.EDOC)))
    statuses = answer(send(mailbox, vxp.count_receive(CREDS, vxp.MessageType.STATUS)))
    assert type(edocs["count"]) is int and edocs["count"] == 3
    assert statuses["count"] == 0
    # a stale messagetype in the SDK's map does not change what the operation counts
    stale = vxp.sign(vxp.Operation.COUNT_RECEIVE_EDOC, CREDS, [("messagetype", "status")],
                     body=b"{}")
    assert answer(send(mailbox, stale))["count"] == 3


# ------------------------------------------------------------------ directory views


def test_qd20_agencies_are_strings_never_null(province: Province) -> None:
    body = answer(send(province, vxp.get_agencies_list_qd20(CREDS)))
    items = {item["code"]: item for item in body["data"]}
    assert set(items[VP_UBND]) == {"code", "id", "mail", "name", "code102"}
    no_nulls(list(items.values()))
    assert all(isinstance(v, str) for item in items.values() for v in item.values())
    assert items[VP_UBND]["code102"] == VP_UBND and items[VP_UBND]["mail"] == ""


def test_synchronize_unit_lists_the_directory_with_replaced_codes_deleted(
        province: Province) -> None:
    body = answer(send(province, vxp.get_synchronize_unit(CREDS)))
    units = {unit["code"]: unit for unit in body["data"]}
    no_nulls(list(units.values()))
    fields = {"id", "pid", "code", "name", "mail", "centerCode", "modifyDate", "version",
              "deleted", "isAgency"}
    assert all(set(unit) == fields for unit in units.values())
    assert all(type(unit["version"]) is int for unit in units.values())
    assert units["000.00.33.H37"]["deleted"] is True          # merged on 2025-07-01
    assert units[SO_TTTT]["deleted"] is False and units[SO_TTTT]["pid"] == VP_UBND
    assert units[SO_TTTT]["centerCode"] == "00.37.W00" and units[SO_TTTT]["isAgency"] is True
    later = (datetime.now(VIETNAM) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert answer(send(province, vxp.get_synchronize_unit(CREDS, since=later)))["data"] == []
    everything = answer(send(province, vxp.get_synchronize_unit(CREDS, since="2000-01-01")))
    assert len(everything["data"]) == len(units)
    answer(send(province, vxp.get_synchronize_unit(CREDS, since="yesterday")),
           "MalformedRequest")


# ------------------------------------------------------------------ register / delete


def _register(province: Province, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = vxp.sign(vxp.Operation.REGISTER_AGENCY, CREDS, [], body=raw, **kwargs)
    return send(province, request)


def test_register_agency_waits_for_an_administrator(province: Province) -> None:
    engine = province.server.bus.store.engine
    agency = {"id": "", "pid": VP_UBND, "code": "000.00.40.H37",
              "name": "Ban Quản lý dự án", "mail": "bqlda@langson.gov.vn"}
    desc = answer(_register(province, agency))["ErrorDesc"]
    assert "administrator" in desc
    [pending] = [r for r in agency_requests.list_requests(engine)
                 if r.code == "000.00.40.H37"]
    assert (pending.action, pending.system, pending.parent, pending.name) == (
        "register", "vnpt_ioffice", VP_UBND, "Ban Quản lý dự án")
    later = datetime.now(UTC) + timedelta(seconds=2)      # a new service object
    assert "already requested" in answer(_register(province, agency, now=later))["ErrorDesc"]
    assert province.server.bus.reloader.current().directory.host_of("000.00.40.H37") is None
    approved = agency_requests.decide(engine, pending.id, approve=True, actor="test")
    assert approved.state == "approved"
    edit = agency_requests.directory_edit(approved, "config/directory.yaml")
    assert '"000.00.40.H37":' in edit and "system: vnpt_ioffice" in edit


@pytest.mark.parametrize(("body", "code", "word"), [
    ({"code": "000.00.41.H37", "name": "X", "mail": "not-an-address"}, "InvalidRequest", "mail"),
    ({"code": "000.00.41.H37", "mail": "a@b.vn"}, "InvalidRequest", "name"),
    ({"code": "000 00 41", "name": "X"}, "InvalidRequest", "identifier"),
    ({"code": "000.00.41.H37", "name": "X", "pid": SO_TTTT}, "SenderMismatch", "pid"),
    ({"code": SO_TTTT, "name": "X"}, "InvalidRequest", "another system"),
])
def test_register_agency_refuses_what_an_administrator_should_never_see(
        province: Province, body: dict[str, Any], code: str, word: str) -> None:
    desc = answer(_register(province, body), code)["ErrorDesc"]
    assert word in desc
    codes = [r.code for r in agency_requests.list_requests(province.server.bus.store.engine)]
    assert "000.00.41.H37" not in codes


def test_register_agency_with_a_deeply_nested_body_is_invalid(province: Province) -> None:
    """Found by the door fuzz: JSON nested past the decoder's recursion limit was a 500."""
    request = vxp.sign(vxp.Operation.REGISTER_AGENCY, CREDS, [], body=b"[" * 40_000)
    assert "JSON object" in answer(send(province, request), "InvalidRequest")["ErrorDesc"]


def test_delete_agency_is_a_request_for_own_agencies_only(province: Province) -> None:
    engine = province.server.bus.store.engine
    answer(send(province, vxp.delete_agency(CREDS, SO_TTTT)), "SenderMismatch")
    answer(send(province, vxp.delete_agency(CREDS, "000.00.99.H37")), "NotFound")
    answer(send(province, vxp.delete_agency(CREDS, VP_UBND)))
    [request] = [r for r in agency_requests.list_requests(engine) if r.action == "delete"]
    assert request.code == VP_UBND and request.state == "pending"
    assert province.server.bus.reloader.current().directory.host_of(VP_UBND) == "vnpt_ioffice"
    answer(_register(province, {"code": "000.00.42.H37", "name": "Tạm"}))
    withdrawn = answer(send(province, vxp.delete_agency(CREDS, "000.00.42.H37")))
    assert "withdrawn" in withdrawn["ErrorDesc"]


# ------------------------------------------------------------------ paths and methods


def test_doubled_slashes_reach_the_operation(mailbox: Province) -> None:
    awaiting(mailbox, 1)
    request = vxp.count_receive(CREDS, vxp.MessageType.EDOC)
    assert answer(send(mailbox, request, path="//countReceiveEdoc"))["count"] == 1
    listing = vxp.get_received_edoc_list(CREDS, vxp.MessageType.EDOC)
    assert len(answer(send(mailbox, listing, path="///getReceivedEdocList/"))["data"]) == 1


def test_unknown_paths_and_methods_answer_in_the_sdk_shape(province: Province) -> None:
    request = vxp.get_agencies_list(CREDS)
    for path in ("/nested/getEdoc", "", "/", "/dropTables"):
        response = send(province, request, path=path)
        assert response.status_code == 200
        answer(response, "UnknownOperation")
    wrong = send(province, request, path="/getAgenciesList", method="PUT")
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    answer(wrong, "MalformedRequest")


# ------------------------------------------------------------------ time zones


def _registration(province: Province, extra: str) -> Iterator[None]:
    path = province.config / "vxp_systems.yaml"
    path.write_text(VXP_SYSTEMS + extra, encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(VXP_SYSTEMS, encoding="utf-8")


def test_a_utc_jvm_is_told_its_time_zone_is_wrong(province: Province) -> None:
    utc = vxp.get_agencies_list(CREDS, tz=ZoneInfo("UTC"))
    desc = answer(send(province, utc), "ClockSkew")["ErrorDesc"]
    assert "TIME ZONE" in desc and "-25200s" in desc and "UTC+00:00" in desc
    assert "-Duser.timezone=Asia/Ho_Chi_Minh" in desc and "timezone: UTC" in desc
    assert answer(send(province, vxp.get_agencies_list(CREDS)))["data"]


def test_a_system_registered_with_its_zone_is_read_in_that_zone(province: Province) -> None:
    for _ in _registration(province, "    timezone: UTC\n"):
        time.sleep(0.01)
        assert answer(send(province, vxp.get_agencies_list(CREDS, tz=ZoneInfo("UTC"))))["data"]
        desc = answer(send(province, vxp.get_agencies_list(CREDS)), "ClockSkew")["ErrorDesc"]
        assert "registers it as UTC" in desc and "TIME ZONE" in desc
    assert answer(send(province, vxp.get_agencies_list(CREDS)))["data"]


def test_a_stale_service_object_keeps_its_own_message(province: Province) -> None:
    stale = vxp.get_agencies_list(CREDS, now=datetime.now(UTC) - timedelta(minutes=25))
    desc = answer(send(province, stale), "ClockSkew")["ErrorDesc"]
    assert "TIME ZONE" not in desc and "service object" in desc and "1500s old" in desc


def test_the_bus_writes_its_trace_header_in_the_configured_zone(mailbox: Province) -> None:
    [item] = awaiting(mailbox)
    packet = base64.b64decode(answer(send(mailbox, vxp.get_edoc(CREDS, item)))["data"])
    text = packet.decode("utf-8")
    start = text.index("<edXML:OrganId>00.37.W00</edXML:OrganId>")
    stamp = text[start:].split("<edXML:Timestamp>")[1].split("<")[0]
    written = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S").replace(tzinfo=VIETNAM)
    assert abs((written - datetime.now(UTC)).total_seconds()) < 120, stamp


# ------------------------------------------------------------------ non-ASCII parameters


def test_non_ascii_header_values_are_named_not_called_a_bad_signature(
        province: Province) -> None:
    reason = "Gửi nhầm"   # ử → 0xED, ầ → 0xA7: bytes the HTTP parser lets through
    stamp = vxp.format_timestamp(datetime.now(UTC))
    signed = {"XroadVnpt-systemid": SYSTEM_ID, "XroadVnpt-docId": "x",
              "XroadVnpt-status": "fail", "XroadVnpt-description": reason,
              "XroadVnpt-timestamp": stamp, "XroadVnpt-Content-Type": "application/json"}
    sign_header = json.dumps(signed, ensure_ascii=False, separators=(",", ":"))
    low8 = {k: "".join(chr(ord(c) & 0xFF) for c in v).encode("latin-1")
            for k, v in signed.items()}
    headers = {**low8, "XroadVnpt-sign-header-key": ";".join(
        k.removeprefix("XroadVnpt-") for k in signed),
        "XroadVnpt-sign-header": "".join(chr(ord(c) & 0xFF) for c in sign_header)
        .encode("latin-1"),
        "XroadVnpt-hash-header": vxp.hash_header(SECRET, sign_header),
        "Content-Type": "application/json"}
    response = httpx.post(province.endpoint + "/updateStatus", headers=headers, content=b"{}",
                          timeout=15.0)
    desc = answer(response, "MalformedRequest")["ErrorDesc"]
    assert "XroadVnpt-description carries non-ASCII bytes" in desc
    assert 'URLEncoder.encode(value, "UTF-8")' in desc


# ------------------------------------------------------------------ authentication first


def test_an_unauthenticated_upload_is_refused_before_its_body(province: Province) -> None:
    before = province.server.bus.store.engine
    request = vxp.send_edoc(vxp.Credentials(SYSTEM_ID, "forged"), b"<edXML/>",
                            sender=VP_UBND, recipients=[SO_TTTT])
    head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()
                   if k.lower() != "content-length")
    raw = (f"POST /vxp/sendEdoc HTTP/1.1\r\nHost: bus\r\n{head}"
           f"Content-Length: {100 * 1024 * 1024}\r\n\r\n").encode("latin-1") + b"<edXML>" * 8
    reply = raw_http(province.server.url, raw, timeout_s=FAST_S)
    assert reply.seconds < FAST_S
    body = json.loads(reply.body)
    assert (body["status"], body["ErrorCode"], body["DocId"]) == ("FAIL", "BadSignature", "")
    assert before is province.server.bus.store.engine


# ------------------------------------------------------------------ replay


def test_a_replayed_state_change_is_refused(mailbox: Province) -> None:
    [item] = awaiting(mailbox)
    ack = vxp.update_status(CREDS, item, vxp.AckStatus.DONE)
    answer(send(mailbox, ack))
    desc = answer(send(mailbox, ack), "Replayed")["ErrorDesc"]
    assert "new SDK service object" in desc
    packet = packet_bytes(edoc(VP_UBND, SO_TTTT))
    sent = vxp.send_edoc(CREDS, packet, sender=VP_UBND, recipients=[SO_TTTT])
    first = answer(send(mailbox, sent))
    replayed = answer(send(mailbox, sent), "Replayed")
    assert replayed["DocId"] == ""
    with mailbox.server.bus.store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(documents).where(
            documents.c.id == first["DocId"])).scalar_one()
    assert count == 1
    again = vxp.send_edoc(CREDS, packet, sender=VP_UBND, recipients=[SO_TTTT],
                          now=datetime.now(UTC) + timedelta(seconds=1))
    assert answer(send(mailbox, again))["DocId"] == first["DocId"]   # the way out works


def test_one_service_object_polling_is_never_taken_for_a_replay(mailbox: Province) -> None:
    """The SDK's own pattern: one timestamp for the object's life, keys that stick."""
    first, second = awaiting(mailbox, 2)
    built = datetime.now(UTC)
    keys: dict[str, str] = {}

    def sdk(operation: vxp.Operation, body: bytes = b"", **params: str) -> httpx.Response:
        keys.update(params)
        return send(mailbox, vxp.sign(operation, CREDS, list(keys.items()), body=body,
                                      now=built))

    for _ in range(2):     # identical signed headers each round
        answer(sdk(vxp.Operation.COUNT_RECEIVE_EDOC, b"{}", messagetype="edoc"))
        answer(sdk(vxp.Operation.GET_RECEIVED_EDOC_LIST, messagetype="edoc"))
    for item in (first, second):
        answer(sdk(vxp.Operation.GET_EDOC, b"{}", docId=item))
        # after the first ack, status=done sticks: getEdoc and updateStatus sign the same
        answer(sdk(vxp.Operation.UPDATE_STATUS, b"{}", docId=item, status="done"))
    for item in (first, second):
        mailbox.wait_state(item, "delivered")


def test_a_body_cut_off_mid_upload_does_not_spend_the_signature(mailbox: Province) -> None:
    packet = packet_bytes(edoc(VP_UBND, SO_TTTT))
    request = vxp.send_edoc(CREDS, packet, sender=VP_UBND, recipients=[SO_TTTT])
    head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    raw = (f"POST /vxp/sendEdoc HTTP/1.1\r\nHost: bus\r\n{head}"
           f"Content-Length: {len(request.body)}\r\n\r\n").encode("latin-1")
    host, port = mailbox.server.url.removeprefix("http://").split(":")
    import socket

    with socket.create_connection((host, int(port)), timeout=FAST_S) as conn:
        conn.sendall(raw + request.body[: len(request.body) // 2])
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while True:       # the server notices the disconnect and gives the signature back
        reply = send(mailbox, request)
        if reply.json()["ErrorCode"] != "Replayed" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer(reply)["DocId"]


# ------------------------------------------------------------------ national-axis client


def test_the_national_axis_client_stamps_in_its_configured_zone() -> None:
    from adapters.national_axis.config import NationalAxisConfig

    config = NationalAxisConfig(endpoint="http://axis.example", system_id="00.37.W00",
                                secret_env="X")
    assert config.timezone == "Asia/Ho_Chi_Minh"
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    request = vxp.get_agencies_list(CREDS, now=moment, tz=ZoneInfo(config.timezone))
    assert request.headers["XroadVnpt-timestamp"] == "02012026T100405+0000"
    with pytest.raises(ValueError, match="IANA"):
        NationalAxisConfig(endpoint="http://axis.example", system_id="00.37.W00",
                           secret_env="X", timezone="Mars/Olympus")


def test_settings_refuse_an_unknown_zone(tmp_path: Path) -> None:
    from bus.errors import ConfigInvalid
    from bus.settings import load_settings

    assert load_settings(environ={}).zone.key == "Asia/Ho_Chi_Minh"
    with pytest.raises(ConfigInvalid, match="IANA"):
        load_settings(environ={"LGSP_TIMEZONE": "Asia/Hanoi_City"})


def test_one_service_object_registers_two_agencies(province: Province) -> None:
    """The agency is the unsigned body: two registrations sign identical headers."""
    built = datetime.now(UTC)
    for code in ("000.00.50.H37", "000.00.51.H37"):
        answer(_register(province, {"code": code, "name": f"Đơn vị {code}"}, now=built))
    answer(_register(province, {"code": "000.00.51.H37", "name": "Đơn vị 000.00.51.H37"},
                     now=built), "Replayed")
    codes = [r.code for r in agency_requests.list_requests(province.server.bus.store.engine)]
    assert {"000.00.50.H37", "000.00.51.H37"} <= set(codes)


def test_a_system_over_its_rate_is_told_to_wait_in_the_sdk_shape(
        province: Province, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rate is checked after the signature, so only the verified system's budget is
    spent; the answer is the SDK's shape with the wait in it."""
    bus = province.server.bus
    monkeypatch.setattr(bus.credentials, "rate_for", lambda system: Rate(0.01, 2))
    codes = [send(province, vxp.get_agencies_list(CREDS)).json()["ErrorCode"]
             for _ in range(3)]
    assert codes[:2] == ["0", "0"]
    body = answer(send(province, vxp.get_agencies_list(CREDS)), "TooManyRequests")
    assert body["retry_after"] >= 1
    forged = vxp.Credentials(SYSTEM_ID, "not-the-secret")
    monkeypatch.setattr(bus.credentials, "rate_for", lambda system: Rate(0.01, 1))
    bus.rate_limiter = RateLimiter()
    for _ in range(3):
        answer(send(province, vxp.get_agencies_list(forged)), "BadSignature")
    answer(send(province, vxp.get_agencies_list(CREDS)))

"""VNPT-iOffice's view of the bus: the /vxp facade driven by an SDK-style client.

Written from edxml.md §7–§7.2, README.md and config/*.yaml only. Where the documents
leave a detail open (message wording, error code names beyond contract.md's table) the
assertions are loose on purpose: keywords, not sentences.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.outsider import packets
from tests.outsider.conftest import mailbox_ids, wait_new_item
from tests.outsider.harness import (
    EOFFICE_KEY,
    IOFFICE_SECRET,
    IOFFICE_SYSTEM_ID,
    RECIPIENT,
    REPO_ROOT,
    SENDER,
    Server,
    post_edoc,
    start_server,
)
from tests.outsider.sdk_client import (
    USER_AGENT,
    RawResponse,
    SdkService,
    hash_file,
    json_string_of_list,
    raw_request,
    sdk_timestamp,
)


def _post_document(server: Server) -> packets.DocData:
    d = packets.DocData()
    resp = post_edoc(server, packets.canonical(d))
    assert resp.status_code == 202, resp.text
    return d


def _triplet(resp: RawResponse) -> dict[str, object]:
    """The answer as JSON, with the three fields the SDK needs all present and non-null."""
    body = resp.body.decode("utf-8", errors="replace")
    try:
        obj = json.loads(body)
    except ValueError:
        pytest.fail(f"answer is not JSON (HTTP {resp.status}): {body[:300]!r}")
    assert isinstance(obj, dict), obj
    for key in ("status", "ErrorCode", "ErrorDesc"):
        assert obj.get(key) is not None, f"{key} missing or null in {obj}"
    return obj


def _no_nulls(value: object, where: str = "") -> None:
    if value is None:
        pytest.fail(f"null at {where or 'top'}")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_nulls(v, f"{where}.{k}")
    if isinstance(value, list):
        for i, v in enumerate(value):
            _no_nulls(v, f"{where}[{i}]")


# ----------------------------------------------------------------------- the self-check

def test_client_wire_format_matches_the_documented_examples() -> None:
    """The client's own helpers reproduce §7.1's examples (so failures below are the bus)."""
    from datetime import datetime
    assert sdk_timestamp(datetime(2026, 11, 21, 5, 46, 47, 921000)) == "21112026T054647+0921"
    assert json_string_of_list(["000.00.00.H37"]) == '"[\\"000.00.00.H37\\"]"'
    # sha256("x") = 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881
    assert hash_file(b"x") == "2d711642b726b0441627ca9fbac32f5c853fb1903cc4db2258717921a4881"
    svc = SdkService("http://127.0.0.1:1/vxp", IOFFICE_SYSTEM_ID, "s")
    svc._put({"servicetype": "eDoc", "messagetype": "edoc", "hash-file": "ab",
              "from": SENDER, "to": json_string_of_list([RECIPIENT])})
    headers = dict(svc.signed_headers("application/octet-stream"))
    assert headers["XroadVnpt-sign-header-key"] == (
        b"systemid;servicetype;messagetype;hash-file;from;to;timestamp;Content-Type")


# ----------------------------------------------------------------------- round trip

def test_round_trip_rest_to_ioffice_mailbox(server: Server, ioffice: SdkService,
                                            tmp_path: Path) -> None:
    before = mailbox_ids(ioffice)
    d = _post_document(server)
    doc_id, packet = wait_new_item(server, before, d.document_id)

    listing = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
    res = listing.get_received_edoc_list()
    assert res is not None and res.status == "OK" and res.ErrorCode == "0", res
    item = next(i for i in res.data if str(i["docId"]) == doc_id)
    for key in ("docId", "serviceType", "messageType", "created_time", "updated_time",
                "from", "to", "status", "status_desc"):
        assert key in item, f"{key} missing from list item {item}"
    assert SENDER in json.dumps(item["from"])

    got = ioffice.get_edoc(doc_id)
    assert got is not None and got.ErrorCode == "0", got
    assert base64.b64decode(got.data) == packet
    assert got.file_path is not None and Path(got.file_path).read_bytes() == packet

    # downloadEdoc on the same (sticky) object, to the caller's local folder
    dl = ioffice.download_edoc(doc_id, str(tmp_path / "dl"))
    saved = Path(dl.file_path or "").read_bytes() if dl.file_path else b""
    assert dl.status == "SUCCESS", dl
    assert saved == packet, f"downloadEdoc saved {saved[:200]!r}, not getEdoc's packet"

    done = ioffice.update_status(doc_id, "done")
    assert done is not None and done.status == "OK" and done.ErrorCode == "0", done
    assert doc_id not in mailbox_ids(SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET))


def test_count_receive_edoc_follows_the_mailbox(server: Server, ioffice: SdkService) -> None:
    def count() -> int:
        res = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET).count_receive_edoc()
        assert res is not None and res.ErrorCode == "0", res
        assert isinstance(res.count, int), res
        return res.count

    before_ids = mailbox_ids(ioffice)
    before = count()
    d = _post_document(server)
    doc_id, _ = wait_new_item(server, before_ids, d.document_id)
    assert count() == before + 1
    done = ioffice.update_status(doc_id, "done")
    assert done is not None and done.ErrorCode == "0", done
    assert count() == before


def test_ioffice_sends_and_reads_its_sent_list(server: Server, ioffice: SdkService) -> None:
    """sendEdoc from iOffice's agency; then, on the same object, getSentEdocList."""
    d = packets.DocData(sender=RECIPIENT, sender_name="UBND", recipient=SENDER)
    data = packets.canonical(d)
    started = time.monotonic()
    sent = ioffice.send_edoc(RECIPIENT, [SENDER], data)
    elapsed = time.monotonic() - started
    assert sent is not None and sent.status == "OK" and sent.ErrorCode == "0", sent
    assert sent.DocId, sent
    assert elapsed < 2.5, f"sendEdoc took {elapsed:.1f}s: no '100 Continue' for the SDK"
    lst = ioffice.get_sent_edoc_list(sent.DocId)
    assert lst is not None and lst.status == "OK" and lst.ErrorCode == "0", lst
    assert isinstance(lst.data, list) and lst.data, lst
    for row in lst.data:  # §7: per recipient, sendStatus and receiveStatus
        assert "sendStatus" in row and "receiveStatus" in row, row


def test_status_from_eoffice_reaches_ioffice_and_its_count(server: Server,
                                                          ioffice: SdkService) -> None:
    """iOffice sends; eOffice answers 01 over REST; iOffice's status mailbox and
    countReceiveStatus see it; updateStatus done takes it off both."""
    d = packets.DocData(sender=RECIPIENT, sender_name="UBND", recipient=SENDER)
    sent = ioffice.send_edoc(RECIPIENT, [SENDER], packets.canonical(d))
    assert sent is not None and sent.ErrorCode == "0", sent

    def status_ids() -> set[str]:
        res = SdkService(server.vxp, IOFFICE_SYSTEM_ID,
                         IOFFICE_SECRET).get_received_edoc_list(messagetype="status")
        assert res is not None and res.ErrorCode == "0", res
        return {str(i["docId"]) for i in res.data or []}

    def count() -> int | None:
        res = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET).count_receive_status()
        assert res is not None, res
        return res.count

    before_ids, before = status_ids(), count()
    resp = httpx.post(server.base + "/api/v1/statuses", headers={"X-API-Key": EOFFICE_KEY},
                      content=packets.status_packet(SENDER, RECIPIENT, d.document_id, "01",
                                                    "Đã đến"), timeout=30.0)
    assert resp.status_code == 202, resp.text
    deadline = time.monotonic() + 30.0
    new: set[str] = set()
    while time.monotonic() < deadline and not new:
        new = status_ids() - before_ids
        time.sleep(0.3)
    assert len(new) == 1, f"status not in iOffice's status mailbox: {new}"
    (doc_id,) = new
    got = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET).get_edoc(doc_id)
    assert got is not None and got.ErrorCode == "0", got
    assert d.document_id.encode() in base64.b64decode(got.data)
    during = count()
    fresh = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
    assert fresh.update_status(doc_id, "done").ErrorCode == "0"  # type: ignore[union-attr]
    assert doc_id not in status_ids()
    after = count()
    assert before is not None and (during, after) == (before + 1, before), (before, during, after)


def test_get_agencies_list(ioffice: SdkService) -> None:
    res = ioffice.get_agencies_list()
    assert res is not None and res.ErrorCode == "0", res
    codes = {a["code"] for a in res.data}
    assert {RECIPIENT, SENDER} <= codes
    for agency in res.data:
        assert {"id", "pid", "code", "name", "mail"} <= set(agency), agency


# ----------------------------------------------------------------------- §7.2 operations

def test_counts_answer_an_integer(server: Server, ioffice: SdkService) -> None:
    for res in (ioffice.count_receive_edoc(), ioffice.count_receive_status()):
        assert res is not None and res.status == "OK" and res.ErrorCode == "0", res
        assert isinstance(res.count, int) and res.count >= 0, res
        raw = _triplet(res.raw)  # type: ignore[arg-type]
        assert isinstance(raw["count"], int | str) and str(raw["count"]).isdigit(), raw


def test_count_after_download_carries_sticky_keys(server: Server, ioffice: SdkService,
                                                  tmp_path: Path) -> None:
    """§7.2: a count after a download still carries docId and filePath, signed."""
    ioffice.download_edoc("no-such-doc", str(tmp_path / "dl"))
    res = ioffice.count_receive_edoc()
    assert res is not None and res.status == "OK" and isinstance(res.count, int), res


def test_qd20_list_has_no_nulls(ioffice: SdkService) -> None:
    res = ioffice.get_agencies_list_qd20()
    assert res is not None and res.ErrorCode == "0", res
    assert res.data is not None, "the SDK dropped the list (a null in some field)"
    assert RECIPIENT in {row.get("code") for row in res.data}, res.data
    _no_nulls(_triplet(res.raw))  # type: ignore[arg-type]


def test_synchronize_unit_has_no_nulls(ioffice: SdkService) -> None:
    res = ioffice.get_synchronize_unit()
    assert res is not None and res.ErrorCode == "0", res
    assert res.data is not None, "the SDK dropped the list (null or non-integer version)"
    assert RECIPIENT in {row.get("code") for row in res.data}, res.data
    _no_nulls(_triplet(res.raw))  # type: ignore[arg-type]


def test_register_and_delete_agency_answer_in_sdk_shape(ioffice: SdkService) -> None:
    body = json.dumps({"id": "000.00.99.H37", "pid": RECIPIENT, "code": "000.00.99.H37",
                       "name": "Phòng thử nghiệm", "mail": "thunghiem@langson.gov.vn"})
    for res in (ioffice.register_agency({}, body),
                ioffice.delete_agency({"code": "000.00.99.H37"})):
        assert res is not None and res.status is not None, res
        obj = _triplet(res.raw)  # type: ignore[arg-type]
        assert str(obj["ErrorDesc"]).strip(), obj


def test_download_of_missing_document_writes_no_file_content(ioffice: SdkService,
                                                             tmp_path: Path) -> None:
    res = ioffice.download_edoc("does-not-exist", str(tmp_path / "dl"))
    assert (res.status, res.ErrorCode) == ("FAIL", "100"), (
        "an error was saved as the document: "
        + Path(res.file_path or "").read_bytes()[:200].decode(errors="replace"))


def test_download_edoc2_unsigned_writes_no_file_content(server: Server, ioffice: SdkService,
                                                        tmp_path: Path) -> None:
    d = _post_document(server)
    doc_id, _ = wait_new_item(server, set(), d.document_id)
    res = ioffice.download_edoc2(doc_id, str(tmp_path / "dl2"))
    assert (res.status, res.ErrorCode) == ("FAIL", "100"), (
        "unsigned downloadEdoc produced a file: "
        + Path(res.file_path or "").read_bytes()[:200].decode(errors="replace"))
    assert ioffice.update_status(doc_id, "done").ErrorCode == "0"  # type: ignore[union-attr]


def test_download_with_wrong_secret_writes_no_file_content(server: Server,
                                                          tmp_path: Path) -> None:
    svc = SdkService(server.vxp, IOFFICE_SYSTEM_ID, "not-the-secret")
    res = svc.download_edoc("anything", str(tmp_path / "dl3"))
    assert (res.status, res.ErrorCode) == ("FAIL", "100"), res


# ----------------------------------------------------------------------- answer shape

@pytest.mark.parametrize(("method", "path", "signed"), [
    ("POST", "/vxp/noSuchOperation", True),
    ("POST", "/vxp/noSuchOperation", False),
    ("POST", "/vxp/getReceivedEdocList", False),
    ("GET", "/vxp/sendEdoc", False),
    ("POST", "/vxp/", False),
    ("GET", "/vxp", False),
    ("POST", "/vxp/a/b/c", False),
    ("PUT", "/vxp/getEdoc", True),
    ("DELETE", "/vxp/updateStatus", False),
])
def test_every_vxp_answer_carries_the_three_fields(server: Server, method: str, path: str,
                                                  signed: bool) -> None:
    svc = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
    headers = [("User-Agent", USER_AGENT)]
    if signed:
        headers += svc.signed_headers("application/json")
    resp = raw_request("127.0.0.1", server.port, method, path, headers,
                       b"{}" if method in ("POST", "PUT") else None, expect_continue=False)
    obj = _triplet(resp)
    assert obj["status"] == "FAIL" and obj["ErrorCode"] != "0", obj


def test_wrong_secret_answer_carries_the_three_fields(server: Server) -> None:
    svc = SdkService(server.vxp, IOFFICE_SYSTEM_ID, "wrong-secret")
    res = svc.get_received_edoc_list()
    assert res is not None and res.status == "FAIL", res
    assert res.ErrorCode not in (None, "0") and res.ErrorDesc, res


def test_trailing_slash_endpoint_works(server: Server, tmp_path: Path) -> None:
    svc = SdkService(server.vxp + "/", IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
    res = svc.get_received_edoc_list()
    assert res is not None and res.status == "OK" and res.ErrorCode == "0", (
        res, res.raw.body[:200] if res and res.raw else None)
    count = svc.count_receive_edoc()
    assert count is not None and isinstance(count.count, int), count


# ----------------------------------------------------------------------- replay

def test_long_lived_object_may_poll_the_same_list_twice(ioffice: SdkService) -> None:
    """The SDK stamps once: two identical read-only polls are normal traffic, not replay."""
    first = ioffice.get_received_edoc_list()
    second = ioffice.get_received_edoc_list()
    assert first is not None and first.ErrorCode == "0", first
    assert second is not None and second.ErrorCode == "0", second


def test_replayed_state_changing_request_is_refused(server: Server, ioffice: SdkService) -> None:
    d = _post_document(server)
    doc_id, _ = wait_new_item(server, set(), d.document_id)
    first = ioffice.update_status(doc_id, "processing")
    assert first is not None and first.ErrorCode == "0", first
    again = ioffice.replay("POST", "updateStatus", b"{}")
    obj = _triplet(again)
    assert obj["status"] == "FAIL" and obj["ErrorCode"] == "Replayed", obj
    fresh = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
    assert fresh.update_status(doc_id, "done").ErrorCode == "0"  # type: ignore[union-attr]


# ----------------------------------------------------------------------- non-ASCII values

@pytest.mark.parametrize("text", [
    # every low byte >= 0x20 (ô -> 0xF4, ậ -> 0xAD): reaches the bus as obs-text
    "Không nhận",
    # đ -> 0x11, ă -> 0x03: the SDK puts control bytes on the wire; real text is like this
    "Không nhận được tệp đính kèm, đề nghị gửi lại bản có chữ ký số",
], ids=["obs-text", "control-bytes"])
def test_vietnamese_description_sent_the_sdk_way_is_explained(server: Server,
                                                              ioffice: SdkService,
                                                              text: str) -> None:
    d = _post_document(server)
    doc_id, _ = wait_new_item(server, set(), d.document_id)
    res = ioffice.update_status_with({"docId": doc_id, "status": "fail", "description": text})
    assert res is not None, f"answer is not JSON: {ioffice.last_response_body[:200]!r}"
    assert res.status == "FAIL" and res.ErrorCode not in (None, "0"), res
    assert re.search(r"percent|url.?encod|%[0-9A-F]{2}", res.ErrorDesc or "", re.I), res
    fresh = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
    ok = fresh.update_status_with({"docId": doc_id, "status": "fail",
                                   "description": quote(text)})
    assert ok is not None and ok.status == "OK" and ok.ErrorCode == "0", ok


# ----------------------------------------------------------------------- time zones

def test_jvm_on_utc_is_served_or_told_its_zone_is_wrong(server: Server) -> None:
    svc = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET, zone="UTC")
    res = svc.get_received_edoc_list()
    assert res is not None and res.status is not None, res
    if res.ErrorCode == "0":
        return
    desc = res.ErrorDesc or ""
    assert re.search(r"zone", desc, re.I), desc
    assert "-Duser.timezone" in desc, desc
    assert "NTP" not in desc, f"a time-zone problem explained as a clock one: {desc}"


def _zone_option(config_text: str) -> str:
    """The zone option as the file's header documents it, once the feature lands;
    until then the name the issue gives (``timezone``)."""
    documented = re.findall(r"^#\s+(\w*zone\w*)\s{2,}", config_text, re.M | re.I)
    return documented[0] if documented else "timezone"


def test_jvm_on_utc_is_served_when_its_zone_is_registered(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """An operator registers ``timezone: UTC`` for the system in config/vxp_systems.yaml."""
    tmp = tmp_path_factory.mktemp("lgsp-utc")
    src = (REPO_ROOT / "config" / "vxp_systems.yaml").read_text(encoding="utf-8")
    marker = "    system: vnpt_ioffice\n"
    assert marker in src
    cfg = tmp / "vxp_systems.yaml"
    cfg.write_text(src.replace(marker, f"{marker}    {_zone_option(src)}: UTC\n"),
                   encoding="utf-8")
    srv = start_server(tmp, settings_yaml=f"vxp_systems: {json.dumps(str(cfg))}\n")
    try:
        utc = SdkService(srv.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET, zone="UTC")
        res = utc.get_received_edoc_list()
        assert res is not None and res.status == "OK" and res.ErrorCode == "0", res
        count = utc.count_receive_edoc()
        assert count is not None and count.ErrorCode == "0", count
    finally:
        srv.stop()


def test_stale_service_object_is_told_to_renew_it(server: Server) -> None:
    """The SDK stamps once; an object older than max_age_s (300 s in vxp_systems.yaml)
    is refused, and the message says to rebuild the service object."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo
    built = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) - timedelta(seconds=900)
    svc = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET, now=built)
    res = svc.get_received_edoc_list()
    assert res is not None and res.status == "FAIL" and res.ErrorCode not in (None, "0"), res
    assert re.search(r"renew|rebuild|recreate|new service object", res.ErrorDesc or "", re.I), res


@pytest.mark.parametrize(("system_id", "timestamp"), [
    ("000.00.99.H37", None),  # a systemId the registry does not know
    (IOFFICE_SYSTEM_ID, "2026-11-21T05:46:47Z"),  # not the SDK's format
])
def test_refused_identity_answers_in_sdk_shape(server: Server, system_id: str,
                                               timestamp: str | None) -> None:
    svc = SdkService(server.vxp, system_id, IOFFICE_SECRET)
    if timestamp is not None:
        svc.timestamp = timestamp
    res = svc.get_received_edoc_list()
    assert res is not None and res.status == "FAIL", res
    assert res.ErrorCode not in (None, "0") and res.ErrorDesc, res


def test_unsigned_http_client_gets_sdk_shape(server: Server) -> None:
    resp = httpx.post(server.vxp + "/getReceivedEdocList", timeout=10.0)
    obj = resp.json()
    for key in ("status", "ErrorCode", "ErrorDesc"):
        assert obj.get(key) is not None, obj

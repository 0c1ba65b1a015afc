"""The VXP wire rules of edxml.md §7.1, pinned by vectors written out by hand.

Each expected string below was derived from the rules, not produced by the code under
test: a regression in byte order, padding or escaping changes what the national axis
(and every SDK-based system talking to our facade) sees, so it must fail loudly here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from bus import vxp

SECRET = "c2VjcmV0LWxvb2tzLWxpa2UtYmFzZTY0"  # looks like base64: must NOT be decoded
CREDS = vxp.Credentials("000.00.00.H37", SECRET)
# 05:46:47.921 in Vietnam (UTC+7) on 21 Nov 2026 = the §7.1 example timestamp.
MOMENT = datetime(2026, 11, 20, 22, 46, 47, 921000, tzinfo=UTC)
SECRETS = {"000.00.00.H37": SECRET}.get


# ---- primitives --------------------------------------------------------------------------

def test_timestamp_is_day_month_year_then_milliseconds_on_four_digits() -> None:
    assert vxp.format_timestamp(MOMENT) == "21112026T054647+0921"
    assert vxp.format_timestamp(MOMENT.replace(microsecond=7000)) == "21112026T054647+0007"
    assert vxp.parse_timestamp("21112026T054647+0921") == MOMENT


@pytest.mark.parametrize("text", ["2111202T054647+0921", "21112026T054647", "21112026T054647+1500",
                                  "32112026T054647+0000", "21112026 054647+0000"])
def test_malformed_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        vxp.parse_timestamp(text)


def test_naive_datetime_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError):
        vxp.format_timestamp(datetime(2026, 1, 1))


def test_hash_file_drops_the_zero_padding_of_each_byte() -> None:
    # SHA-256("abc") = ba7816bf 8f01cfea ... b410ff61 f20015ad (FIPS 180-2): 01 → 1, 03 → 3,
    # 00 → 0.
    assert vxp.hash_file(b"abc") == "ba7816bf8f1cfea414140de5dae2223b0361a396177a9cb410ff61f2015ad"
    # SHA-256("8") = 2c624232cdd221771294dfbb310aca000a0df6ac8b66b696d90ef06fdefb64a3:
    # bytes 0a ca 00 0a 0d ... 0e become a ca 0 a d ... e.
    assert vxp.hash_file(b"8") == "2c624232cdd221771294dfbb31aca0adf6ac8b66b696d9ef06fdefb64a3"
    assert len(vxp.hash_file(b"8")) < 64


def test_hash_header_is_lowercase_hex_hmac_sha256_keyed_with_utf8_secret() -> None:
    # RFC 4231 test case 2.
    assert vxp.hash_header("Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_to_is_a_json_string_literal_of_a_json_array() -> None:
    assert vxp.encode_to(["000.00.00.H37"]) == '"[\\"000.00.00.H37\\"]"'
    assert vxp.encode_to(["A", "B"]) == '"[\\"A\\",\\"B\\"]"'
    assert vxp.decode_to('"[\\"A\\",\\"B\\"]"') == ["A", "B"]
    assert vxp.decode_to('["A"]') == ["A"]
    assert vxp.decode_to("A, B") == ["A", "B"]


def test_edoc_body_is_the_file_then_crlf() -> None:
    assert vxp.edoc_body(b"<edXMLEnvelope/>") == b"<edXMLEnvelope/>\r\n"
    assert vxp.strip_crlf(b"<x/>\r\n") == b"<x/>"
    assert vxp.strip_crlf(b"<x/>\r\n\r\n") == b"<x/>\r\n"


# ---- the signed header set ---------------------------------------------------------------

def test_send_edoc_headers_match_the_sdk_byte_for_byte() -> None:
    request = vxp.send_edoc(CREDS, b"abc", sender="000.00.12.H37",
                            recipients=["000.00.00.H37"], now=MOMENT)
    h = request.headers
    expected_sign_header = (
        '{"XroadVnpt-systemid":"000.00.00.H37","XroadVnpt-servicetype":"eDoc",'
        '"XroadVnpt-messagetype":"edoc",'
        '"XroadVnpt-hash-file":"ba7816bf8f1cfea414140de5dae2223b0361a396177a9cb410ff61f2015ad",'
        '"XroadVnpt-from":"000.00.12.H37","XroadVnpt-to":"\\"[\\\\\\"000.00.00.H37\\\\\\"]\\"",'
        '"XroadVnpt-timestamp":"21112026T054647+0921",'
        '"XroadVnpt-Content-Type":"application/octet-stream"}')
    assert h["XroadVnpt-sign-header"] == expected_sign_header
    assert h["XroadVnpt-sign-header-key"] == (
        "systemid;servicetype;messagetype;hash-file;from;to;timestamp;Content-Type")
    assert h["XroadVnpt-to"] == '"[\\"000.00.00.H37\\"]"'
    assert h["User-Agent"] == "JAVASDKAgent/1.0.0 XRoad/VPCP"
    assert h["XroadVnpt-version"] == "3.0.201608"
    assert h["Content-Type"] == "application/octet-stream"
    keyed = hmac.new(SECRET.encode("utf-8"), expected_sign_header.encode(), hashlib.sha256)
    assert h["XroadVnpt-hash-header"] == keyed.hexdigest()
    decoded = hmac.new(base64.b64decode(SECRET), expected_sign_header.encode(), hashlib.sha256)
    assert h["XroadVnpt-hash-header"] != decoded.hexdigest()
    assert request.body == b"abc\r\n"
    assert request.url("http://axis/vxp/") == "http://axis/vxp/sendEdoc"
    # The JSON is compact and keeps insertion order; decoding it gives the header values.
    assert list(json.loads(expected_sign_header)) == [
        "XroadVnpt-" + k for k in h["XroadVnpt-sign-header-key"].split(";")]


def test_status_send_has_no_to_and_other_operations_sign_their_parameters() -> None:
    status = vxp.send_edoc(CREDS, b"s", sender="A", message_type=vxp.MessageType.STATUS,
                           now=MOMENT)
    assert "XroadVnpt-to" not in status.headers
    assert status.headers["XroadVnpt-messagetype"] == "status"
    get = vxp.get_edoc(CREDS, "doc-1", now=MOMENT)
    assert get.body == b"{}" and get.headers["Content-Type"] == "application/json"
    assert get.headers["XroadVnpt-sign-header-key"] == (
        "systemid;servicetype;docId;timestamp;Content-Type")
    ack = vxp.update_status(CREDS, "doc-1", vxp.AckStatus.DONE, now=MOMENT)
    assert ack.headers["XroadVnpt-status"] == "done"
    assert ack.url("http://a") == "http://a/updateStatus"
    assert vxp.get_received_edoc_list(CREDS, vxp.MessageType.EDOC, now=MOMENT).body == b""


def test_header_values_must_be_plain_ascii() -> None:
    with pytest.raises(ValueError):
        vxp.send_edoc(CREDS, b"x", sender="A\r\nX-Evil: 1", recipients=["B"], now=MOMENT)


# ---- verification ------------------------------------------------------------------------

def _verify(request: vxp.SignedRequest, *, now: datetime = MOMENT, body: bytes | None = None,
            headers: dict[str, str] | None = None, **kw: object) -> vxp.VerifiedRequest:
    return vxp.verify(headers if headers is not None else request.headers,
                      request.body if body is None else body, SECRETS, now=now,
                      **kw)  # type: ignore[arg-type]


def _send() -> vxp.SignedRequest:
    return vxp.send_edoc(CREDS, b"<edoc/>", sender="000.00.12.H37",
                         recipients=["000.00.00.G22", "000.00.00.G23"], now=MOMENT)


def test_a_signed_request_verifies_and_yields_its_packet() -> None:
    verified = _verify(_send(), require_hash=True)
    assert verified.system_id == "000.00.00.H37"
    assert verified.packet == b"<edoc/>"
    assert verified.recipients() == ["000.00.00.G22", "000.00.00.G23"]
    assert verified.param("FROM") == "000.00.12.H37"
    assert verified.timestamp == MOMENT


def test_header_names_are_case_insensitive_and_body_without_crlf_is_accepted() -> None:
    request = _send()
    lowered = {k.lower(): v for k, v in request.headers.items()}
    assert _verify(request, headers=lowered, body=b"<edoc/>", require_hash=True).packet == (
        b"<edoc/>")


def test_signature_is_checked_over_the_string_as_received() -> None:
    request = _send()
    # Same JSON object, re-serialised with spaces: the signature no longer matches.
    respaced = json.dumps(json.loads(request.sign_header))
    headers = {**request.headers, "XroadVnpt-sign-header": respaced}
    with pytest.raises(vxp.BadSignature):
        _verify(request, headers=headers)


DEEP_JSON = "[" * 5000  # past the JSON decoder's recursion limit, well inside 32 KB of headers


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    """Found by the door fuzz: a signed sign-header, a ``to`` or an axis answer nested
    deeper than the JSON decoder recurses raised RecursionError, a 500 at the facade."""
    request = _send()
    headers = {**request.headers, "XroadVnpt-sign-header": DEEP_JSON,
               "XroadVnpt-hash-header": vxp.hash_header(SECRET, DEEP_JSON)}
    with pytest.raises(vxp.MalformedRequest, match="not JSON"):
        _verify(request, headers=headers)
    assert vxp.decode_to(DEEP_JSON) == []
    assert vxp.decode_to(json.dumps(DEEP_JSON)) == []
    with pytest.raises(vxp.MalformedAnswer):
        vxp.parse_answer(DEEP_JSON.encode())


def test_unknown_system_and_wrong_secret_are_distinct() -> None:
    stranger = vxp.send_edoc(vxp.Credentials("999.99.99.Z99", SECRET), b"x", sender="A",
                             recipients=["B"], now=MOMENT)
    with pytest.raises(vxp.UnknownSystem):
        _verify(stranger)
    forged = vxp.send_edoc(vxp.Credentials("000.00.00.H37", "wrong"), b"x", sender="A",
                           recipients=["B"], now=MOMENT)
    with pytest.raises(vxp.BadSignature) as caught:
        _verify(forged)
    assert caught.value.answer()["ErrorCode"] == "BadSignature"
    assert caught.value.answer()["status"] == "FAIL"


def test_a_listed_header_that_differs_from_the_signed_value_is_refused() -> None:
    request = _send()
    headers = {**request.headers, "XroadVnpt-to": vxp.encode_to(["000.00.00.X99"])}
    with pytest.raises(vxp.HeaderMismatch):
        _verify(request, headers=headers)
    headers = {k: v for k, v in request.headers.items() if k != "XroadVnpt-Content-Type"}
    _verify(request, headers=headers)  # falls back to the real Content-Type
    headers["Content-Type"] = "application/json"
    with pytest.raises(vxp.HeaderMismatch):
        _verify(request, headers=headers)


def test_unsigned_stale_headers_are_ignored_but_readable() -> None:
    # The SDK keeps earlier keys in its map: a getEdoc may carry an old hash-file.
    request = vxp.get_edoc(CREDS, "doc-9", now=MOMENT)
    headers = {**request.headers, "XroadVnpt-hash-file": "0", "XroadVnpt-to": '"[]"'}
    verified = _verify(request, headers=headers)
    assert verified.param("docId") == "doc-9"


def test_clock_skew_has_its_own_error_and_window() -> None:
    request = _send()
    with pytest.raises(vxp.ClockSkew) as caught:
        _verify(request, now=MOMENT + timedelta(minutes=6))
    assert "NTP" in caught.value.message
    assert caught.value.code == vxp.ErrorCode.CLOCK_SKEW
    _verify(request, now=MOMENT - timedelta(minutes=4, seconds=59))
    _verify(request, now=MOMENT + timedelta(minutes=6), skew_s=600)


def test_body_must_match_hash_file_when_required() -> None:
    request = _send()
    with pytest.raises(vxp.HashMismatch):
        _verify(request, body=b"<other/>\r\n", require_hash=True)
    _verify(request, body=b"<other/>\r\n")  # not required: e.g. a stale hash-file
    headers = {k: v for k, v in request.headers.items() if k != "XroadVnpt-hash-file"}
    with pytest.raises(vxp.VxpError):
        _verify(request, headers=headers, require_hash=True)


def test_missing_or_unsigned_essentials_are_malformed() -> None:
    request = _send()
    for name in ("XroadVnpt-systemid", "XroadVnpt-sign-header", "XroadVnpt-hash-header",
                 "XroadVnpt-timestamp"):
        headers = {k: v for k, v in request.headers.items() if k != name}
        with pytest.raises(vxp.VxpError):
            _verify(request, headers=headers)
    unsigned = vxp.sign(vxp.Operation.GET_EDOC, CREDS, [("docId", "d")], now=MOMENT)
    keys = unsigned.headers["XroadVnpt-sign-header-key"].replace(";timestamp", "")
    sign_header = json.dumps({k: v for k, v in json.loads(unsigned.sign_header).items()
                              if k != "XroadVnpt-timestamp"}, separators=(",", ":"))
    headers = {**unsigned.headers, "XroadVnpt-sign-header-key": keys,
               "XroadVnpt-sign-header": sign_header,
               "XroadVnpt-hash-header": vxp.hash_header(SECRET, sign_header)}
    with pytest.raises(vxp.MalformedRequest):
        _verify(unsigned, headers=headers)


def test_an_unpadded_hmac_is_tolerated() -> None:
    request = vxp.get_edoc(CREDS, "d", now=MOMENT)
    digest = bytes.fromhex(request.headers["XroadVnpt-hash-header"])
    unpadded = "".join(format(b, "x") for b in digest)
    _verify(request, headers={**request.headers, "XroadVnpt-hash-header": unpadded})


# ---- answers -----------------------------------------------------------------------------

def test_answers_round_trip() -> None:
    raw = vxp.encode_answer(vxp.ok_answer(DocId="42"))
    assert json.loads(raw) == {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success",
                               "DocId": "42"}
    answer = vxp.parse_answer(raw)
    assert answer.ok and answer.doc_id == "42"
    failed = vxp.parse_answer(vxp.encode_answer(vxp.fail_answer("Busy", "try later")))
    assert not failed.ok and failed.code == "Busy" and failed.desc == "try later"


def test_ok_with_a_nonzero_error_code_is_not_success() -> None:
    assert not vxp.parse_answer(b'{"status":"OK","ErrorCode":"7","ErrorDesc":"x"}').ok


@pytest.mark.parametrize("raw", [b"<html>502</html>", b"[]", b'{"ErrorCode":"0"}',
                                 b'{"status":"MAYBE"}', b'{"status":"OK"'])
def test_malformed_answers_raise(raw: bytes) -> None:
    with pytest.raises(vxp.MalformedAnswer):
        vxp.parse_answer(raw)


def test_typed_items_parse_leniently() -> None:
    answer = vxp.parse_answer(json.dumps({
        "status": "OK", "ErrorCode": "0", "ErrorDesc": "",
        "data": [{"docId": 17, "serviceType": "eDoc", "messageType": "edoc",
                  "from": "A", "to": ["B"], "status": "initial"}]}).encode())
    item = vxp.ReceivedItem.from_json(answer.items()[0])
    assert item.doc_id == "17" and item.to == '["B"]' and item.created_time == ""
    agency = vxp.Agency.from_json({"id": 1, "pid": "", "code": "000.00.00.G22",
                                   "name": "Bộ X", "mail": "x@gov.vn"})
    assert agency == vxp.Agency("000.00.00.G22", "Bộ X", "1", "", "x@gov.vn")
    with pytest.raises(vxp.MalformedAnswer):
        vxp.ReceivedItem.from_json({"status": "initial"})
    with pytest.raises(vxp.MalformedAnswer):
        vxp.parse_answer(b'{"status":"OK","data":"abc"}').items()

"""The SDK-style client checked against a recording server, not against the bus.

So that a failure of test_vxp_sdk.py is the bus's and not the client's: the wire form of
§7.1 and the answer handling of §7.2, each against a canned answer.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.outsider.sdk_client import SdkService, hash_file

SECRET = "c2VjcmV0LWxvb2tzLWxpa2UtYmFzZTY0"  # looks like base64; used as its UTF-8 bytes


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")


@pytest.fixture()
def recorder() -> Iterator[tuple[Recorder, int]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            raw_headers = [(k, v.encode("latin-1")) for k, v in self.headers.raw_items()]
            rec.requests.append({"method": self.command, "path": self.path,
                                 "headers": raw_headers, "body": body})
            status, headers, payload = rec.answer
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve  # noqa: N815
        do_POST = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec, int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def _hdr(req: dict[str, Any], name: str) -> bytes | None:
    for k, v in req["headers"]:
        if k.lower() == name.lower():
            return bytes(v)
    return None


def _ok(**extra: Any) -> bytes:
    return json.dumps({"status": "OK", "ErrorCode": "0", "ErrorDesc": "ok", **extra}).encode()


def test_send_edoc_wire_form(recorder: tuple[Recorder, int]) -> None:
    rec, port = recorder
    rec.answer = (200, {}, _ok(DocId="42"))
    svc = SdkService(f"http://127.0.0.1:{port}/vxp", "000.00.00.H37", SECRET)
    data = b"<edXML/>"
    res = svc.send_edoc("000.00.00.H37", ["000.00.12.H37"], data)
    assert res is not None and res.DocId == "42"
    req = rec.requests[-1]
    assert req["method"] == "POST" and req["path"] == "/vxp/sendEdoc"
    assert req["body"] == data + b"\r\n"
    assert _hdr(req, "Expect") == b"100-continue"
    assert _hdr(req, "User-Agent") == b"JAVASDKAgent/1.0.0 XRoad/VPCP"
    assert _hdr(req, "XroadVnpt-version") == b"3.0.201608"
    assert _hdr(req, "XroadVnpt-sign-header-key") == (
        b"systemid;servicetype;messagetype;hash-file;from;to;timestamp;Content-Type")
    sign = _hdr(req, "XroadVnpt-sign-header")
    assert sign is not None
    obj = json.loads(sign)
    assert list(obj)[-1] == "XroadVnpt-Content-Type"
    assert obj["XroadVnpt-to"] == '"[\\"000.00.12.H37\\"]"'
    assert obj["XroadVnpt-hash-file"] == hash_file(data)
    expected = hmac.new(SECRET.encode(), sign, hashlib.sha256).hexdigest()
    assert _hdr(req, "XroadVnpt-hash-header") == expected.encode()
    assert _hdr(req, "Content-Type") == b"application/octet-stream"


def test_sticky_parameters_and_stamp_once(recorder: tuple[Recorder, int],
                                          tmp_path: Path) -> None:
    rec, port = recorder
    svc = SdkService(f"http://127.0.0.1:{port}/vxp/", "000.00.00.H37", SECRET)
    rec.answer = (200, {}, b"<edXML/>")
    svc.download_edoc("7", str(tmp_path))
    rec.answer = (200, {}, _ok(count="3"))
    res = svc.count_receive_edoc()
    assert res is not None and res.count == 3
    first, second = rec.requests[-2:]
    assert first["method"] == "GET" and first["path"] == "/vxp//downloadEdoc"
    keys = (_hdr(second, "XroadVnpt-sign-header-key") or b"").split(b";")
    assert b"docId" in keys and b"filePath" in keys
    assert _hdr(first, "XroadVnpt-timestamp") == _hdr(second, "XroadVnpt-timestamp")


def test_download_saves_any_body_and_fails_only_when_empty(recorder: tuple[Recorder, int],
                                                           tmp_path: Path) -> None:
    rec, port = recorder
    svc = SdkService(f"http://127.0.0.1:{port}/vxp", "000.00.00.H37", SECRET)
    rec.answer = (500, {}, b'{"status":"FAIL"}')
    res = svc.download_edoc("a", str(tmp_path))
    assert (res.status, res.ErrorCode) == ("SUCCESS", "0")
    assert Path(res.file_path or "").read_bytes() == b'{"status":"FAIL"}'
    rec.answer = (200, {"Content-Encoding": "gzip"}, gzip.compress(b"<edXML/>"))
    res = svc.download_edoc("b", str(tmp_path))
    assert Path(res.file_path or "").read_bytes() == b"<edXML/>"
    rec.answer = (404, {}, b"")
    res = svc.download_edoc("c", str(tmp_path))
    assert (res.status, res.ErrorCode) == ("FAIL", "100")
    assert Path(res.file_path or "").parent.parent.parent == tmp_path
    rec.answer = (200, {}, b"")
    res2 = svc.download_edoc2("d", str(tmp_path))
    assert (res2.status, res2.ErrorCode) == ("FAIL", "100")
    assert not [k for k, _ in rec.requests[-1]["headers"] if k.lower().startswith("xroadvnpt")]


def test_answer_blanking(recorder: tuple[Recorder, int]) -> None:
    rec, port = recorder
    svc = SdkService(f"http://127.0.0.1:{port}/vxp", "000.00.00.H37", SECRET)
    rec.answer = (200, {}, json.dumps({"status": "OK", "ErrorCode": "0", "ErrorDesc": None,
                                       "data": []}).encode())
    res = svc.get_received_edoc_list()
    assert res is not None and (res.status, res.ErrorCode, res.data) == (None, None, None)
    rec.answer = (502, {}, b"<html>Bad gateway</html>")
    assert svc.get_received_edoc_list() is None


def test_lists_dropped_on_null_and_counts(recorder: tuple[Recorder, int]) -> None:
    rec, port = recorder
    svc = SdkService(f"http://127.0.0.1:{port}/vxp", "000.00.00.H37", SECRET)
    rec.answer = (200, {}, _ok(data=[{"code": "a", "id": "1"}, {"code": "b", "mail": None}]))
    res = svc.get_agencies_list_qd20()
    assert res is not None and res.ErrorCode == "0" and res.data is None
    rec.answer = (200, {}, _ok(data=[{"code": "a", "version": "x"}]))
    res = svc.get_synchronize_unit()
    assert res is not None and res.data is None
    rec.answer = (200, {}, _ok(data=[{"code": "a", "version": "3", "deleted": "true"}]))
    res = svc.get_synchronize_unit()
    assert res is not None and res.data == [{"code": "a", "version": 3, "deleted": True}]
    rec.answer = (200, {}, json.dumps({"status": "FAIL", "ErrorCode": "9", "ErrorDesc": "x",
                                       "count": 5}).encode())
    res = svc.count_receive_status()
    assert res is not None and res.count is None
    assert rec.requests[-1]["body"] == b"{}"


def test_non_ascii_goes_out_as_low_8_bits(recorder: tuple[Recorder, int]) -> None:
    rec, port = recorder
    rec.answer = (200, {}, _ok())
    svc = SdkService(f"http://127.0.0.1:{port}/vxp", "000.00.00.H37", SECRET)
    svc.update_status_with({"docId": "1", "status": "fail", "description": "Không nhận"})
    req = rec.requests[-1]
    assert _hdr(req, "XroadVnpt-description") == bytes(ord(c) & 0xFF for c in "Không nhận")
    sign = _hdr(req, "XroadVnpt-sign-header") or b""
    signed_text = sign.decode("latin-1")
    honest = hmac.new(SECRET.encode(), signed_text.encode("utf-8"), hashlib.sha256).hexdigest()
    sdk = (_hdr(req, "XroadVnpt-hash-header") or b"").decode()
    assert honest != sdk  # what §7.2 says: the received string cannot be verified

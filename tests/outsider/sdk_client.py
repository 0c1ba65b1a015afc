"""An axis-SDK look-alike, written only from edxml.md §7, §7.1 and §7.2.

It reproduces what the official Java SDK (SDKVXP 2.0.1) puts on the wire and how it reads
the answers, quirks included, so that a test can see the bus exactly as VNPT-iOffice and
the other SDK-based systems see it. Nothing here is taken from the bus: where the SDK's
behaviour is a defect (sticky parameters, the stale timestamp, low-8-bit header values,
saving any body as the document), the client has the defect on purpose.

Raw sockets rather than an HTTP library: the SDK's ``Expect: 100-continue`` wait, a
request path with ``//`` and header bytes that are not UTF-8 must go out unaltered.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import socket
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
SDK_VERSION = "3.0.201608"
VIETNAM = "Asia/Ho_Chi_Minh"
CONTINUE_WAIT_S = 3.0


# --------------------------------------------------------------------------- wire helpers

def sdk_timestamp(now: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS``: the ``+`` and four digits are milliseconds, not a zone."""
    millis = now.microsecond // 1000
    return now.strftime("%d%m%YT%H%M%S") + f"+{millis:04d}"


def unpadded_hex(digest: bytes) -> str:
    """Java's ``Integer.toHexString(b & 0xff)`` per byte: 0x0d becomes ``d``."""
    return "".join(format(b, "x") for b in digest)


def hash_file(data: bytes) -> str:
    return unpadded_hex(hashlib.sha256(data).digest())


def json_string_of_list(items: list[str]) -> str:
    """The SDK's ``to``: a JSON string literal whose content is a JSON array."""
    return json.dumps(json.dumps(items, separators=(",", ":")))


def low_8_bits(text: str) -> bytes:
    """How the SDK's HTTP layer writes a header value: each char's low 8 bits."""
    return bytes(ord(c) & 0xFF for c in text)


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    got_continue: bool = False
    waited_for_continue_s: float = 0.0

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def _read_until(sock: socket.socket, buf: bytearray, marker: bytes, deadline: float) -> int:
    while True:
        idx = buf.find(marker)
        if idx >= 0:
            return idx
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before " + repr(marker))
        buf.extend(chunk)


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return status, reason, headers


def _recv_exact(sock: socket.socket, buf: bytearray, n: int, deadline: float) -> bytes:
    while len(buf) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        buf.extend(chunk)
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _read_body(sock: socket.socket, buf: bytearray, headers: list[tuple[str, str]],
               method: str, status: int, deadline: float) -> bytes:
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b""
    hmap = {k.lower(): v for k, v in headers}
    if "chunked" in hmap.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            idx = _read_until(sock, buf, b"\r\n", deadline)
            size = int(bytes(buf[:idx]).split(b";")[0].strip() or b"0", 16)
            del buf[: idx + 2]
            if size == 0:
                _read_until(sock, buf, b"\r\n", deadline)
                return bytes(out)
            out.extend(_recv_exact(sock, buf, size, deadline))
            _recv_exact(sock, buf, 2, deadline)
    if "content-length" in hmap:
        return _recv_exact(sock, buf, int(hmap["content-length"]), deadline)
    while True:  # read to close
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(buf)
        buf.extend(chunk)


def raw_request(host: str, port: int, method: str, path: str,
                headers: list[tuple[str, bytes | str]], body: bytes | None,
                *, expect_continue: bool, timeout_s: float = 30.0) -> RawResponse:
    """One request on a fresh connection, as the SDK opens one per call."""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        lines = [f"{method} {path} HTTP/1.1".encode("ascii")]
        all_headers: list[tuple[str, bytes | str]] = [("Host", f"{host}:{port}")]
        all_headers += headers
        if body is not None:
            all_headers.append(("Content-Length", str(len(body))))
            if expect_continue:
                all_headers.append(("Expect", "100-continue"))
        all_headers.append(("Accept-Encoding", "gzip,deflate"))
        all_headers.append(("Connection", "close"))
        for k, v in all_headers:
            vb = v if isinstance(v, bytes) else v.encode("latin-1")
            lines.append(k.encode("ascii") + b": " + vb)
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        buf = bytearray()
        got_continue = False
        waited = 0.0
        if body is not None:
            if expect_continue:
                started = time.monotonic()
                wait_until = min(deadline, started + CONTINUE_WAIT_S)
                try:
                    idx = _read_until(sock, buf, b"\r\n\r\n", wait_until)
                    status, reason, hdrs = _parse_head(bytes(buf[:idx]))
                    if status == 100:
                        del buf[: idx + 4]
                        got_continue = True
                    else:  # a final answer before the body: the SDK reads it
                        del buf[: idx + 4]
                        waited = time.monotonic() - started
                        payload = _read_body(sock, buf, hdrs, method, status, deadline)
                        return RawResponse(status, reason, hdrs, payload, False, waited)
                except TimeoutError:
                    pass
                waited = time.monotonic() - started
            sock.sendall(body)
        while True:
            idx = _read_until(sock, buf, b"\r\n\r\n", deadline)
            status, reason, hdrs = _parse_head(bytes(buf[:idx]))
            del buf[: idx + 4]
            if status == 100:
                got_continue = True
                continue
            payload = _read_body(sock, buf, hdrs, method, status, deadline)
            return RawResponse(status, reason, hdrs, payload, got_continue, waited)


def _decode_content(resp: RawResponse) -> bytes:
    enc = (resp.header("Content-Encoding") or "").lower()
    if enc == "gzip":
        return gzip.decompress(resp.body)
    if enc == "deflate":
        return zlib.decompress(resp.body)
    return resp.body


# --------------------------------------------------------------------------- answers

@dataclass
class Result:
    """What an SDK method returns; every field None when the SDK blanks it."""
    status: str | None = None
    ErrorCode: str | None = None
    ErrorDesc: str | None = None
    DocId: str | None = None
    data: Any = None
    count: int | None = None
    file_path: str | None = None
    raw: RawResponse | None = field(default=None, repr=False)


_BLANK_MARK = object()


def _parse_json(resp: RawResponse) -> Any:
    try:
        return json.loads(_decode_content(resp).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return _BLANK_MARK


def _head_fields(obj: Any) -> tuple[str, str, str] | None:
    """The three fields every answer needs; None when the SDK would blank the result."""
    if not isinstance(obj, dict):
        return None
    vals = [obj.get("status"), obj.get("ErrorCode"), obj.get("ErrorDesc")]
    if any(v is None for v in vals):
        return None
    return str(vals[0]), str(vals[1]), str(vals[2])


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


# --------------------------------------------------------------------------- the service

class SdkService:
    """One SDK service object: endpoint, systemId, secret, a header map that never forgets.

    ``zone`` is the JVM's default time zone; ``"UTC"`` is a JVM left on container defaults.
    The timestamp is stamped here, once, as the SDK does when its object is built.
    """

    def __init__(self, endpoint: str, system_id: str, secret: str, *, zone: str = VIETNAM,
                 store_dir: str | None = None, retries: int = 0,
                 now: datetime | None = None, timeout_s: float = 30.0) -> None:
        self.endpoint = endpoint
        parts = urlsplit(endpoint)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base_path = parts.path
        self.system_id = system_id
        self.secret = secret
        self.zone = ZoneInfo(zone)
        self.store_dir = store_dir
        self.retries = retries
        self.timeout_s = timeout_s
        stamp_at = now if now is not None else datetime.now(self.zone)
        self.params: dict[str, str] = {"systemid": system_id}
        self.timestamp = sdk_timestamp(stamp_at)
        self.last_request_headers: list[tuple[str, bytes | str]] = []
        self.last_response_body = b""

    # -- the request as the SDK builds it

    def _put(self, extra: dict[str, str] | None) -> None:
        for k, v in (extra or {}).items():
            self.params[k] = v  # a dict keeps the first insertion's position, as LinkedHashMap

    def signed_headers(self, content_type: str) -> list[tuple[str, bytes | str]]:
        self.params["timestamp"] = self.timestamp
        self.params["Content-Type"] = content_type
        keys = list(self.params)
        sign_obj = {f"XroadVnpt-{k}": self.params[k] for k in keys}
        sign_header = json.dumps(sign_obj, separators=(",", ":"), ensure_ascii=False)
        digest = hmac.new(self.secret.encode("utf-8"), sign_header.encode("utf-8"),
                          hashlib.sha256).hexdigest()
        out: list[tuple[str, bytes | str]] = []
        for k in keys:
            out.append((f"XroadVnpt-{k}", low_8_bits(self.params[k])))
        out.append(("XroadVnpt-sign-header-key", low_8_bits(";".join(keys))))
        out.append(("XroadVnpt-sign-header", low_8_bits(sign_header)))
        out.append(("XroadVnpt-hash-header", digest))
        return out

    def _url_path(self, operation: str) -> str:
        # "<endpoint>/<operation>" by plain concatenation: a trailing "/" gives "//op".
        return self.base_path + "/" + operation

    def call(self, method: str, operation: str, *, body: bytes | None,
             content_type: str, signed: bool = True,
             headers_override: list[tuple[str, bytes | str]] | None = None) -> RawResponse:
        if headers_override is not None:
            hdrs = list(headers_override)
        else:
            hdrs = [("User-Agent", USER_AGENT), ("XroadVnpt-version", SDK_VERSION)]
            if signed:
                hdrs += self.signed_headers(content_type)
            if body is not None:
                hdrs.append(("Content-Type", content_type))
        self.last_request_headers = hdrs
        attempt = 0
        while True:
            try:
                resp = raw_request(self.host, self.port, method, self._url_path(operation),
                                   hdrs, body, expect_continue=body is not None and len(body) > 0,
                                   timeout_s=self.timeout_s)
                self.last_response_body = resp.body
                return resp
            except OSError:
                attempt += 1
                if attempt > self.retries:
                    raise

    def replay(self, method: str, operation: str, body: bytes | None) -> RawResponse:
        """The previous request's headers, byte for byte, sent again."""
        return self.call(method, operation, body=body, content_type="",
                         headers_override=self.last_request_headers)

    # -- answer handling common to every method

    @staticmethod
    def _basic(resp: RawResponse) -> tuple[Result | None, Any]:
        obj = _parse_json(resp)
        if obj is _BLANK_MARK:
            return None, None
        head = _head_fields(obj)
        if head is None:
            return Result(raw=resp), obj
        return Result(status=head[0], ErrorCode=head[1], ErrorDesc=head[2], raw=resp), obj

    # -- operations

    def send_edoc(self, from_id: str, to_ids: list[str], data: bytes, *,
                  messagetype: str = "edoc", servicetype: str = "eDoc") -> Result | None:
        self._put({"servicetype": servicetype, "messagetype": messagetype,
                   "hash-file": hash_file(data), "from": from_id,
                   "to": json_string_of_list(to_ids)})
        resp = self.call("POST", "sendEdoc", body=data + b"\r\n",
                         content_type="application/octet-stream")
        res, obj = self._basic(resp)
        if res is not None and res.status is not None and isinstance(obj, dict):
            res.DocId = obj.get("DocId")
        return res

    def get_received_edoc_list(self, messagetype: str = "edoc",
                               servicetype: str = "eDoc") -> Result | None:
        self._put({"servicetype": servicetype, "messagetype": messagetype})
        resp = self.call("POST", "getReceivedEdocList", body=b"",
                         content_type="application/json")
        res, obj = self._basic(resp)
        if res is not None and res.status is not None and isinstance(obj, dict):
            res.data = obj.get("data")
        return res

    def get_edoc(self, doc_id: str, file_path: str = "inbox") -> Result | None:
        self._put({"docId": doc_id, "filePath": file_path})
        resp = self.call("POST", "getEdoc", body=b"{}", content_type="application/json")
        res, obj = self._basic(resp)
        if res is None or res.status is None or not isinstance(obj, dict):
            return res
        res.data = obj.get("data")
        if res.ErrorCode == "0" and isinstance(res.data, str) and self.store_dir:
            import base64
            now = datetime.now(self.zone)
            folder = os.path.join(self.store_dir, file_path, str(now.year), str(now.month))
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, f"{doc_id}.edxml")
            with open(target, "wb") as fh:
                fh.write(base64.b64decode(res.data))
            res.file_path = target
        return res

    def update_status(self, doc_id: str, status: str) -> Result | None:
        self._put({"docId": doc_id, "status": status})
        resp = self.call("POST", "updateStatus", body=b"{}", content_type="application/json")
        return self._basic(resp)[0]

    def update_status_with(self, extra: dict[str, str]) -> Result | None:
        """updateStatus with caller keys of the caller's choosing (e.g. a description)."""
        self._put(extra)
        resp = self.call("POST", "updateStatus", body=b"{}", content_type="application/json")
        return self._basic(resp)[0]

    def get_sent_edoc_list(self, doc_id: str) -> Result | None:
        self._put({"docId": doc_id})
        resp = self.call("POST", "getSentEdocList", body=b"{}", content_type="application/json")
        res, obj = self._basic(resp)
        if res is not None and res.status is not None and isinstance(obj, dict):
            res.data = obj.get("data")
        return res

    def get_agencies_list(self, extra: dict[str, str] | None = None) -> Result | None:
        self._put(extra)
        resp = self.call("POST", "getAgenciesList", body=b"", content_type="application/json")
        res, obj = self._basic(resp)
        if res is not None and res.status is not None and isinstance(obj, dict):
            res.data = obj.get("data")
        return res

    def _save_download(self, resp: RawResponse, doc_id: str, file_path: str) -> Result:
        content = _decode_content(resp)
        now = datetime.now(self.zone)
        folder = os.path.join(file_path, str(now.year), str(now.month))
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, f"{doc_id}.edxml")
        with open(target, "wb") as fh:
            fh.write(content)
        if os.path.getsize(target) > 0:
            return Result(status="SUCCESS", ErrorCode="0", ErrorDesc="SUCCESS",
                          file_path=target, raw=resp)
        return Result(status="FAIL", ErrorCode="100", ErrorDesc="FAIL", file_path=target,
                      raw=resp)

    def download_edoc(self, doc_id: str, file_path: str) -> Result:
        """GET, streams whatever comes back into the file; never reads the answer."""
        self._put({"docId": doc_id, "filePath": file_path})
        resp = self.call("GET", "downloadEdoc", body=None, content_type="application/json")
        return self._save_download(resp, doc_id, file_path)

    def download_edoc2(self, doc_id: str, file_path: str) -> Result:
        resp = self.call("GET", "downloadEdoc", body=None, content_type="",
                         headers_override=[("User-Agent", USER_AGENT)])
        return self._save_download(resp, doc_id, file_path)

    def _count(self, operation: str, extra: dict[str, str] | None) -> Result | None:
        self._put(extra)
        resp = self.call("POST", operation, body=b"{}", content_type="application/json")
        res, obj = self._basic(resp)
        if res is None or res.status is None or not isinstance(obj, dict):
            return res
        if res.status != "FAIL":
            res.count = _as_int(obj.get("count"))
        return res

    def count_receive_edoc(self, extra: dict[str, str] | None = None) -> Result | None:
        return self._count("countReceiveEdoc",
                           extra if extra is not None else {"servicetype": "eDoc",
                                                            "messagetype": "edoc"})

    def count_receive_status(self, extra: dict[str, str] | None = None) -> Result | None:
        return self._count("countReceiveStatus",
                           extra if extra is not None else {"servicetype": "eDoc",
                                                            "messagetype": "status"})

    def get_agencies_list_qd20(self) -> Result | None:
        resp = self.call("POST", "getAgenciesListQD20", body=b"",
                         content_type="application/json")
        res, obj = self._basic(resp)
        if res is None or res.status is None or not isinstance(obj, dict):
            return res
        if res.ErrorCode == "0":
            res.data = _qd20_list(obj.get("data"))
        return res

    def get_synchronize_unit(self, extra: dict[str, str] | None = None) -> Result | None:
        self._put(extra)
        resp = self.call("POST", "getSynchronizeUnit", body=b"",
                         content_type="application/json")
        res, obj = self._basic(resp)
        if res is None or res.status is None or not isinstance(obj, dict):
            return res
        if res.ErrorCode == "0":
            res.data = _sync_list(obj.get("data"))
        return res

    def register_agency(self, header: dict[str, str], body: str) -> Result | None:
        self._put(header)
        resp = self.call("POST", "registerAgency", body=body.encode("utf-8"),
                         content_type="application/json")
        return self._basic(resp)[0]

    def delete_agency(self, header: dict[str, str]) -> Result | None:
        self._put(header)
        resp = self.call("POST", "deleteAgency", body=b"{}", content_type="application/json")
        return self._basic(resp)[0]


QD20_FIELDS = ("code", "id", "mail", "name", "code102")
SYNC_STR_FIELDS = ("id", "pid", "code", "name", "mail", "centerCode", "modifyDate")


def _qd20_list(data: Any) -> list[dict[str, Any]] | None:
    """Each element's optional string fields; an explicit null anywhere drops the list."""
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if not isinstance(item, dict):
            return None
        row: dict[str, Any] = {}
        for key in QD20_FIELDS:
            if key in item:
                if item[key] is None:
                    return None
                row[key] = str(item[key])
        out.append(row)
    return out


def _sync_list(data: Any) -> list[dict[str, Any]] | None:
    """A null anywhere, or a version that is not an integer, drops the whole list."""
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if not isinstance(item, dict) or any(v is None for v in item.values()):
            return None
        row: dict[str, Any] = {}
        for key in SYNC_STR_FIELDS:
            if key in item:
                row[key] = str(item[key])
        if "version" in item:
            version = _as_int(item["version"])
            if version is None:
                return None
            row["version"] = version
        for key in ("deleted", "isAgency"):
            if key in item:
                row[key] = item[key] is True or item[key] == "true"
        out.append(row)
    return out

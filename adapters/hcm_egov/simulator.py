"""A stand-in for HCM Egov Framework 2.0 on a real loopback socket.

No public specification of the platform exists, so the adapter can only be proved
against the interface README.md assumes; this server *is* that interface, executable. It
is strict where a lenient server would hide adapter bugs (the ``Authorization`` header is
decoded and every key compared; packets go through the bus's own reader) and it keeps
effects apart from requests, so a test can tell "sent twice" from "stored twice".

    with HcmEgovSimulator(access_key="a", secret_key="s") as sim:
        sim.fail(429, retry_after="7", times=1)      # then back to normal
        item = sim.put_outbox(packet)                 # as if a commune clerk sent it

Standalone: ``python -m adapters.hcm_egov.simulator --port 8083``; modes then switch
through ``POST /_simulator/mode`` (see README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from adapters.hcm_egov.protocol import (
    DOCUMENTS_PATH,
    OUTBOX_PATH,
    STATUSES_PATH,
    Credentials,
    decode_authorization,
)
from adapters.hcm_egov.sim_http import _Handler
from adapters.hcm_egov.sim_records import (
    ADMIN_PREFIX,
    CUT_AFTER,
    Answer,
    Call,
    OutboxItem,
    Received,
    _envelope,
    _Rules,
)
from adapters.simulation import LoopbackServer
from bus import errors
from bus.edxml import Edoc, read_packet

__all__ = ["Call", "HcmEgovSimulator", "OutboxItem", "Received", "main"]

class HcmEgovSimulator:
    def __init__(self, *, app_name: str = "lgsp-bus", access_key: str = "sim-access-key",
                 secret_key: str = "sim-secret-key",  # noqa: S107 - a simulator's, public
                 partner_code: str = "LGSP-H37",
                 partner_code_cus: str = "H37", hosted: Iterable[str] | None = None,
                 max_body_bytes: int = 50 * 1024 * 1024, port: int = 0,
                 keep_bodies: bool = True) -> None:
        self.credentials = Credentials(app_name, access_key, secret_key, partner_code,
                                       partner_code_cus)
        self.hosted = frozenset(hosted) if hosted is not None else None
        self.max_body_bytes = max_body_bytes
        # A long benchmark stores hundreds of thousands of effects: their digests are
        # kept, their bytes (tens of GB) only when asked.
        self.keep_bodies = keep_bodies
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._rules = _Rules()
        self._received: dict[str, Received] = {}
        self._outbox: dict[str, OutboxItem] = {}
        self._closing = threading.Event()
        # Held, not inherited: this platform stops with close() and has no stop().
        self._listener = LoopbackServer(_Handler, self, port=port, name="hcm-egov-sim")

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._listener.port

    @port.setter
    def port(self, value: int) -> None:
        self._listener.port = value

    def start(self) -> None:
        self._listener.start()

    def close(self) -> None:
        """Stops for good; slow requests still sleeping are woken so nothing lingers."""
        self._closing.set()
        self._listener.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- modes -------------------------------------------------------------------------

    def ok(self) -> None:
        """Normal service; listens again (same port) after :meth:`down`."""
        with self._lock:
            self._rules = _Rules()
        self.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`ok`."""
        self._listener.down()

    def slow(self, seconds: float) -> None:
        """Answer normally after ``seconds``; the effect lands after the sleep."""
        with self._lock:
            self._rules = _Rules(mode="slow", delay_s=seconds)

    def fail(self, status: int = 503, *, times: int | None = None,
             retry_after: str | None = None, path_contains: str | None = None) -> None:
        """Answer ``status`` (429, 5xx, 401, 403, …) in an envelope, for ``times`` requests
        (then normal again) or until changed; only paths containing ``path_contains``."""
        with self._lock:
            self._rules = _Rules(mode="fail", status=status, times=times,
                                 retry_after=retry_after, path_contains=path_contains)

    def throttle(self, retry_after: str = "1", *, times: int | None = None) -> None:
        self.fail(429, times=times, retry_after=retry_after)

    def garble(self, *, times: int | None = None) -> None:
        """Answer HTTP 200 with an HTML page, as a misconfigured gateway would."""
        with self._lock:
            self._rules = _Rules(mode="garble", times=times)

    def cut(self, *, times: int | None = None) -> None:
        """Send only half of each outbox packet, under its full Content-Length, and close
        the connection: a platform or proxy that dies half-way through a large scan."""
        with self._lock:
            self._rules = _Rules(mode="cut", times=times)

    # ---- what the platform holds -------------------------------------------------------

    def received(self, kind: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received.values() if kind is None or r.kind == kind]

    @property
    def documents(self) -> list[Received]:
        return self.received("edoc")

    @property
    def statuses(self) -> list[Received]:
        return self.received("status")

    @property
    def effects(self) -> int:
        with self._lock:
            return len(self._received)

    def effects_for(self, key: str) -> int:
        """Documents or statuses stored under one Idempotency-Key: 0 or 1, by design."""
        with self._lock:
            return 1 if key in self._received else 0

    def put_outbox(self, packet: bytes) -> str:
        """Queues a packet for the bus to collect, as if a commune clerk had sent it.

        Unreadable packets are queued too: the bus must refuse them, not the platform.
        """
        kind = sender = document_id = None
        try:
            read = read_packet(packet).packet
            kind, sender, document_id = read.kind, read.sender, read.document_id
        except errors.LgspError:
            pass
        item = OutboxItem(id=f"OUT-{uuid.uuid4().hex[:12].upper()}", packet=packet, kind=kind,
                          sender=sender, document_id=document_id, created_at=time.time())
        with self._lock:
            self._outbox[item.id] = item
        return item.id

    def outbox(self, *, pending: bool = True) -> list[OutboxItem]:
        with self._lock:
            return [i for i in self._outbox.values() if not pending or i.ack is None]

    def ack_of(self, item_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._outbox[item_id].ack

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # ---- the platform's logic ----------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        path = urlsplit(target).path
        if path.startswith(ADMIN_PREFIX):
            result = self._admin(method, path, body)
        else:
            result = self._api(method, target, headers, body)
        with self._lock:
            self.calls.append(Call(time.time(), method, path, headers, result[0]))
        return result

    def _forced(self, path: str) -> Answer | None:
        """The answer the current mode imposes, if any; a slow mode sleeps here, outside
        the lock, so other requests keep being served meanwhile."""
        with self._lock:
            rules = self._rules
            delay = rules.delay_s if rules.mode == "slow" else 0.0
            applies = rules.mode in ("fail", "garble") and (
                rules.path_contains is None or rules.path_contains in path)
            if applies and rules.times is not None:
                applies = rules.times > 0
                rules.times -= 1 if applies else 0
        if delay:
            self._closing.wait(delay)
        if not applies:
            return None
        if rules.mode == "garble":
            return 200, b"<html><body>Gateway</body></html>", "text/html", {}
        extra = {"Retry-After": rules.retry_after} if rules.retry_after else {}
        return _envelope(rules.status, f"Lỗi mô phỏng {rules.status}", None, extra)

    def _authorised(self, headers: dict[str, str]) -> Answer | None:
        given = decode_authorization(headers.get("authorization"))
        expected = self.credentials.as_json()
        if given is None:
            return _envelope(401, "Thiếu hoặc sai định dạng Authorization")
        for key in ("AccessKey", "SecretKey"):
            if not hmac.compare_digest(str(given.get(key, "")).encode(),
                                       expected[key].encode()):
                return _envelope(401, "AccessKey hoặc SecretKey không đúng")
        for key in ("AppName", "PartnerCode", "PartnerCodeCus"):
            if given.get(key) != expected[key]:
                return _envelope(403, f"Đối tác không được phép ({key})")
        return None

    def _api(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        refused = self._forced(path) or self._authorised(headers)
        if refused is not None:
            return refused
        if method == "POST" and path in (DOCUMENTS_PATH, STATUSES_PATH):
            return self._receive("edoc" if path == DOCUMENTS_PATH else "status", headers, body)
        if path == OUTBOX_PATH and method == "GET":
            limit = parse_qs(parts.query).get("limit", ["50"])[0]
            return self._list(int(limit) if limit.isdigit() else 50)
        if path.startswith(OUTBOX_PATH + "/"):
            rest = path[len(OUTBOX_PATH) + 1:].split("/")
            if method == "GET" and len(rest) == 1:
                return self._fetch(unquote(rest[0]))
            if method == "POST" and len(rest) == 2 and rest[1] == "ack":
                return self._ack(unquote(rest[0]), body)
        return _envelope(404, f"Không có tài nguyên {method} {path}")

    def _receive(self, kind: str, headers: dict[str, str], body: bytes) -> Answer:
        if len(body) > self.max_body_bytes:
            return _envelope(413, f"Gói tin vượt quá {self.max_body_bytes} byte")
        try:
            packet = read_packet(body).packet
        except errors.LgspError as exc:
            return _envelope(422, f"Gói tin edXML không hợp lệ: {exc.code}: {exc.message}")
        if packet.kind != kind:
            return _envelope(422, f"Gói tin {packet.kind} gửi nhầm tới điểm nhận {kind}")
        addressed = (packet.recipients if isinstance(packet, Edoc)
                     else [packet.response_for.organ_id or ""])
        recipient = headers.get("x-lgsp-recipient")
        wanted = [recipient] if recipient else addressed
        if self.hosted is not None and not any(r in self.hosted for r in wanted):
            return _envelope(404, f"Đơn vị nhận {', '.join(wanted)} không thuộc nền tảng")
        digest = hashlib.sha256(body).hexdigest()
        key = headers.get("idempotency-key") or f"sha256:{digest}"
        id_field = "DocumentId" if kind == "edoc" else "ReferenceId"
        with self._lock:
            seen = self._received.get(key)
            if seen is not None:
                if seen.sha256 != digest:
                    return _envelope(409, "Idempotency-Key đã dùng cho nội dung khác")
                return _envelope(200, "Đã nhận trước đó",
                                 {id_field: seen.reference, "Duplicate": True})
            stored = Received(
                reference=f"HCM-{uuid.uuid4().hex[:16].upper()}", key=key, kind=kind,
                recipient=recipient, sender=packet.sender, document_id=packet.document_id,
                status_code=None if isinstance(packet, Edoc) else packet.status_code,
                sha256=digest, body=body if self.keep_bodies else b"",
                at=time.time())
            self._received[key] = stored
        return _envelope(200, "Thành công", {id_field: stored.reference, "Duplicate": False})

    def _list(self, limit: int) -> Answer:
        limit = max(0, min(limit, 500))
        pending = self.outbox()
        items = [{"Id": i.id, "Type": i.kind, "From": i.sender, "DocumentId": i.document_id,
                  "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(i.created_at))}
                 for i in pending[:limit]]
        return _envelope(200, "Thành công", {"Items": items, "HasMore": len(pending) > limit})

    def _fetch(self, item_id: str) -> Answer:
        with self._lock:
            item = self._outbox.get(item_id)
            if item is None or item.ack is not None:
                return _envelope(404, f"Không có mục {item_id} đang chờ")
            rules = self._rules
            cut = rules.mode == "cut" and (rules.times is None or rules.times > 0)
            if cut and rules.times is not None:
                rules.times -= 1
            extra = {CUT_AFTER: str(len(item.packet) // 2)} if cut else {}
            return 200, item.packet, "application/xml", extra

    def _ack(self, item_id: str, body: bytes) -> Answer:
        try:
            ack = json.loads(body)
        except ValueError:
            ack = None
        if not isinstance(ack, dict) or ack.get("Result") not in ("done", "fail"):
            return _envelope(400, "Result phải là done hoặc fail")
        with self._lock:
            item = self._outbox.get(item_id)
            if item is None:
                return _envelope(404, f"Không có mục {item_id}")
            if item.ack is None:
                item.ack = {k: ack.get(k) for k in ("Result", "ReferenceId", "Description")}
            return _envelope(200, "Thành công", {"Id": item_id, **item.ack})

    def _admin(self, method: str, path: str, body: bytes) -> Answer:
        """Unauthenticated controls for manual runs; the server listens on loopback only."""
        if method == "POST" and path == f"{ADMIN_PREFIX}/outbox":
            return _envelope(200, "queued", {"Id": self.put_outbox(body)})
        if method == "GET" and path == f"{ADMIN_PREFIX}/state":
            with self._lock:
                rules = self._rules.mode
            return _envelope(200, rules, {"Documents": len(self.documents),
                                          "Statuses": len(self.statuses),
                                          "OutboxPending": len(self.outbox())})
        if method == "POST" and path == f"{ADMIN_PREFIX}/mode":
            try:
                mode = json.loads(body or b"{}")
                self._set_mode(mode)
            except (ValueError, TypeError, KeyError) as exc:
                return _envelope(400, f"bad mode: {exc}")
            return _envelope(200, f"mode {mode.get('mode')}")
        return _envelope(404, f"no admin resource {method} {path}")

    def _set_mode(self, mode: dict[str, Any]) -> None:
        name = mode["mode"]
        if name == "ok":
            self.ok()
        elif name == "slow":
            self.slow(float(mode["seconds"]))
        elif name == "fail":
            self.fail(int(mode.get("status", 503)), times=mode.get("times"),
                      retry_after=mode.get("retry_after"))
        elif name == "garble":
            self.garble(times=mode.get("times"))
        elif name == "cut":
            self.cut(times=mode.get("times"))
        elif name == "down":
            # Down cannot be undone over a closed socket: it lasts ``seconds``.
            seconds = max(0.1, min(float(mode.get("seconds", 10)), 3600.0))
            threading.Thread(target=self._listener.down, daemon=True).start()
            timer = threading.Timer(seconds, self.ok)
            timer.daemon = True
            timer.start()
        else:
            raise ValueError(f"unknown mode {name!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HCM Egov Framework 2.0 simulator")
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--app-name", default="lgsp-bus")
    parser.add_argument("--partner-code", default="LGSP-H37")
    parser.add_argument("--partner-code-cus", default="H37")
    parser.add_argument("--hosted", nargs="*", default=None,
                        help="organisation ids hosted here (default: accept any)")
    args = parser.parse_args(argv)
    access = os.environ.get("LGSP_HCM_EGOV_ACCESS_KEY", "sim-access-key")
    secret = os.environ.get("LGSP_HCM_EGOV_SECRET_KEY", "sim-secret-key")
    sim = HcmEgovSimulator(app_name=args.app_name, access_key=access, secret_key=secret,
                           partner_code=args.partner_code,
                           partner_code_cus=args.partner_code_cus, hosted=args.hosted,
                           port=args.port)
    sim.start()
    print(f"HCM Egov simulator on {sim.base_url} (Ctrl-C stops)", flush=True)
    try:
        while not sim._closing.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()


if __name__ == "__main__":
    main()

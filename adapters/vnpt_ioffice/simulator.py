"""A stand-in for VNPT-iOffice: a client of the bus's ``/vxp`` facade, as the axis SDK is.

It is written from the protocol description (shared/docs/edxml.md §7, §7.1) and imports
nothing from the bus, on purpose: if the facade verified requests with the same code
that signs them here, a shared mistake would pass every test. Two implementations that
agree only through the wire prove that the facade speaks the protocol.

Like the SDK it keeps one header map for its whole life, so a request carries the
``from``, ``to``, ``hash-file`` or ``docId`` of earlier calls, all signed; unlike the SDK
(which stamps the map once, when the service object is built) it renews the timestamp
on every call, which is what a well-behaved client does.

Failure behaviours, switched from a test or the command line: refuse the next N packets
(``updateStatus fail``), stop acknowledging (a lost ``updateStatus``), sign with a wrong
secret (assign :attr:`IofficeSimulator.secret`), run a clock N seconds off
(:attr:`IofficeSimulator.clock_skew_s`); "down" is simply not polling.

    python -m adapters.vnpt_ioffice.simulator --endpoint http://127.0.0.1:8080/vxp \\
        --system-id 000.00.00.H37 --secret dev-vnpt_ioffice-vxp-secret
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx

__all__ = ["IofficeSimulator", "PollResult", "PreparedCall", "VxpReply", "main"]

PREFIX: Final = "XroadVnpt-"
USER_AGENT: Final = "JAVASDKAgent/1.0.0 XRoad/VPCP"
VERSION: Final = "3.0.201608"
JSON: Final = "application/json"
OCTETS: Final = "application/octet-stream"
#: The SDK formats its clock in the JVM's zone; Vietnam is UTC+7 all year.
VIETNAM: Final = timezone(timedelta(hours=7))


def sdk_timestamp(moment: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS``: the four digits are milliseconds, not a zone."""
    local = moment.astimezone(VIETNAM)
    millis = local.microsecond // 1000
    return local.strftime("%d%m%YT%H%M%S") + "+" + str(millis).rjust(4, "0")


def sdk_file_hash(data: bytes) -> str:
    """Java's ``Integer.toHexString(b & 0xff)`` per byte: no zero padding (0x0d → "d")."""
    return "".join(hex(byte)[2:] for byte in hashlib.sha256(data).digest())


@dataclass(frozen=True)
class PreparedCall:
    """One signed request, ready to send; tests alter it to play an attacker."""

    operation: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class VxpReply:
    """An answer of the axis: ``ok`` only for status OK with ErrorCode "0"."""

    http_status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.body.get("status") == "OK" and str(self.body.get("ErrorCode")) == "0"

    @property
    def code(self) -> str:
        return str(self.body.get("ErrorCode", ""))

    @property
    def desc(self) -> str:
        return str(self.body.get("ErrorDesc", ""))

    @property
    def items(self) -> list[dict[str, Any]]:
        data = self.body.get("data")
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) \
            else []


@dataclass
class PollResult:
    listed: int = 0
    stored: int = 0
    acknowledged: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)


class IofficeSimulator:
    """One iOffice installation: its credentials, its received store, its quirks."""

    def __init__(self, endpoint: str, system_id: str, secret: str, *,
                 organ_id: str = "000.00.00.H37", store_dir: Path | None = None,
                 timeout_s: float = 15.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.system_id = system_id
        self.secret = secret
        self.organ_id = organ_id
        self.store_dir = store_dir
        self.clock_skew_s = 0.0
        self.acknowledging = True
        self.received: dict[str, bytes] = {}
        self.acks: collections.Counter[str] = collections.Counter()
        self.refusals: dict[str, str] = {}
        self._refuse_left = 0
        self._refuse_reason = ""
        self._map: dict[str, str] = {"systemid": system_id}
        self._lock = threading.RLock()
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False)

    def close(self) -> None:
        self._client.close()

    # ---- behaviours --------------------------------------------------------------------

    def refuse_next(self, count: int, reason: str = "Văn bản gửi nhầm đơn vị") -> None:
        with self._lock:
            self._refuse_left, self._refuse_reason = count, reason

    def stop_acknowledging(self) -> None:
        self.acknowledging = False

    def resume_acknowledging(self) -> None:
        self.acknowledging = True

    # ---- the wire ----------------------------------------------------------------------

    def prepare(self, operation: str, params: Iterable[tuple[str, str]], *,
                body: bytes = b"", content_type: str = JSON) -> PreparedCall:
        """Adds ``params`` to the long-lived map, stamps it and signs all of it."""
        with self._lock:
            for key, value in params:
                self._map[key] = value
            moment = datetime.now(UTC) + timedelta(seconds=self.clock_skew_s)
            self._map["timestamp"] = sdk_timestamp(moment)
            self._map["Content-Type"] = content_type
            signed = {PREFIX + key: value for key, value in self._map.items()}
            sign_header = json.dumps(signed, ensure_ascii=False, separators=(",", ":"))
            mac = hmac.new(self.secret.encode("utf-8"), sign_header.encode("utf-8"),
                           hashlib.sha256).hexdigest()
            headers = {"Content-Type": content_type, **signed,
                       PREFIX + "sign-header-key": ";".join(self._map),
                       PREFIX + "sign-header": sign_header, PREFIX + "hash-header": mac,
                       "User-Agent": USER_AGENT, PREFIX + "version": VERSION}
        return PreparedCall(operation, f"{self.endpoint}/{operation}", headers, body)

    def call(self, prepared: PreparedCall) -> VxpReply:
        """Sends one request; raises httpx.HTTPError when the axis cannot be reached."""
        response = self._client.post(prepared.url, headers=prepared.headers,
                                     content=prepared.body)
        try:
            body = json.loads(response.content)
        except ValueError:
            body = {"status": "FAIL", "ErrorCode": f"HTTP{response.status_code}",
                    "ErrorDesc": response.text[:300]}
        return VxpReply(response.status_code, body if isinstance(body, dict) else {})

    # ---- operations --------------------------------------------------------------------

    def send_edoc(self, packet: bytes, to: Sequence[str], *,
                  sender: str | None = None) -> VxpReply:
        return self.call(self.prepare_send(packet, to=to, sender=sender))

    def send_status(self, packet: bytes, *, sender: str | None = None) -> VxpReply:
        return self.call(self.prepare_send(packet, message_type="status", sender=sender))

    def prepare_send(self, packet: bytes, *, to: Sequence[str] = (),
                     message_type: str = "edoc", sender: str | None = None) -> PreparedCall:
        """The file is hashed, the file plus CRLF is sent; ``to`` (edocs only) is a JSON
        string literal of a JSON array, quotes included."""
        params = [("servicetype", "eDoc"), ("messagetype", message_type),
                  ("hash-file", sdk_file_hash(packet)), ("from", sender or self.organ_id)]
        if message_type == "edoc":
            params.append(("to", json.dumps(json.dumps(list(to), separators=(",", ":")))))
        return self.prepare("sendEdoc", params, body=packet + b"\r\n", content_type=OCTETS)

    def list_received(self, message_type: str = "edoc") -> VxpReply:
        params = [("servicetype", "eDoc"), ("messagetype", message_type)]
        return self.call(self.prepare("getReceivedEdocList", params))

    def get_edoc(self, doc_id: str) -> VxpReply:
        return self.call(self.prepare("getEdoc", [("docId", doc_id)], body=b"{}"))

    def update_status(self, doc_id: str, status: str, *, reason: str | None = None) -> VxpReply:
        params = [("docId", doc_id), ("status", status)]
        if reason is not None:
            params.append(("description", _header_text(reason)))
        return self.call(self.prepare("updateStatus", params, body=b"{}"))

    def get_sent_edoc_list(self, doc_id: str) -> VxpReply:
        return self.call(self.prepare("getSentEdocList", [("docId", doc_id)]))

    def get_agencies(self) -> VxpReply:
        return self.call(self.prepare("getAgenciesList", []))

    # ---- receiving ---------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        """list → getEdoc → store → updateStatus, idempotent on docId as the SDK asks."""
        result = PollResult()
        with self._lock:
            try:
                for message_type in ("edoc", "status"):
                    listing = self.list_received(message_type)
                    if not listing.ok:
                        result.errors.append(f"list {message_type}: {listing.code} "
                                             f"{listing.desc}")
                        continue
                    for item in listing.items:
                        result.listed += 1
                        self._receive(str(item.get("docId", "")), result)
            except httpx.HTTPError as exc:
                result.errors.append(f"axis unreachable: {type(exc).__name__}: {exc}")
        return result

    def _receive(self, doc_id: str, result: PollResult) -> None:
        if not doc_id:
            result.errors.append("an item without docId")
            return
        if doc_id not in self.received:
            fetched = self.get_edoc(doc_id)
            packet = _decode(fetched.body.get("data")) if fetched.ok else None
            if packet is None:
                result.errors.append(f"getEdoc {doc_id}: {fetched.code} {fetched.desc}")
                return
            if self._refuse_left > 0:
                self._refuse_left -= 1
                answer = self.update_status(doc_id, "fail", reason=self._refuse_reason)
                if answer.ok:
                    self.refusals[doc_id] = self._refuse_reason
                    result.refused += 1
                return
            self._store(doc_id, packet)
            result.stored += 1
        if not self.acknowledging:
            return
        answer = self.update_status(doc_id, "done")
        if answer.ok:
            self.acks[doc_id] += 1
            result.acknowledged += 1
        else:
            result.errors.append(f"updateStatus {doc_id}: {answer.code} {answer.desc}")

    def _store(self, doc_id: str, packet: bytes) -> None:
        self.received[doc_id] = packet
        if self.store_dir is not None:
            now = datetime.now(VIETNAM)
            folder = self.store_dir / str(now.year) / str(now.month)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{doc_id}.edxml").write_bytes(packet)

    def run(self, stop: threading.Event, interval_s: float = 5.0) -> None:
        """Polls until ``stop`` is set; each wait is bounded by ``interval_s``."""
        while not stop.is_set():
            outcome = self.poll_once()
            for problem in outcome.errors:
                print(f"[ioffice] {problem}", file=sys.stderr)
            if outcome.listed:
                print(f"[ioffice] listed {outcome.listed}, stored {outcome.stored}, "
                      f"acknowledged {outcome.acknowledged}, refused {outcome.refused}")
            stop.wait(interval_s)


def _decode(data: object) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _header_text(text: str) -> str:
    """Percent-encoded UTF-8: header bytes beyond ASCII do not survive the SDK's HTTP
    stack (Java writes them as ISO-8859-1, '?' for Vietnamese letters), and the facade
    unquotes the reason it reads."""
    return quote(text, safe=" ,.;:()/-_")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Play VNPT-iOffice against a VXP endpoint.")
    parser.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:8080/vxp")
    parser.add_argument("--system-id", required=True)
    parser.add_argument("--secret", default=os.environ.get("IOFFICE_VXP_SECRET"),
                        help="or the environment variable IOFFICE_VXP_SECRET")
    parser.add_argument("--organ-id", default="000.00.00.H37", help="the `from` of sends")
    parser.add_argument("--store", type=Path, help="save received packets under this folder")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    parser.add_argument("--refuse-next", type=int, default=0, metavar="N")
    parser.add_argument("--skew", type=float, default=0.0, help="clock offset in seconds")
    parser.add_argument("--send", type=Path, help="send this edXML file first")
    parser.add_argument("--to", nargs="*", default=[], help="recipients of --send")
    parser.add_argument("--once", action="store_true", help="poll once and exit")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or IOFFICE_VXP_SECRET) is required")
    sim = IofficeSimulator(args.endpoint, args.system_id, args.secret,
                           organ_id=args.organ_id, store_dir=args.store)
    sim.clock_skew_s = args.skew
    if args.refuse_next:
        sim.refuse_next(args.refuse_next)
    try:
        if args.send is not None:
            reply = sim.send_edoc(args.send.read_bytes(), args.to)
            print(f"[ioffice] sendEdoc: {json.dumps(reply.body, ensure_ascii=False)}")
        stop = threading.Event()
        if args.once:
            stop.set()
            outcome = sim.poll_once()
            print(f"[ioffice] {outcome}")
            return 1 if outcome.errors else 0
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        sim.run(stop, args.interval)
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

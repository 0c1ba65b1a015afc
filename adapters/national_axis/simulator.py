"""A national axis on a real loopback socket, for tests and for trying the bus offline.

It speaks §7/§7.1 of edxml.md through :mod:`bus.vxp` — the same module the adapter and
the bus's facade use — so a test that passes here proves the signatures, headers and
answers line up, not just that two mocks agree. It keeps registered systems (systemId →
secret), one pending list per system, what each system sent, and an agency list, and it
can misbehave on demand from the test thread:

* ``down()`` / ``ok()`` — stop listening (connections refused) / listen again, same port;
* ``slow(s)`` — answer after ``s`` seconds; ``fail_http(status, times)`` — HTTP errors;
* ``fail(code, desc, times, operation)`` — answer FAIL with that ErrorCode;
* ``skew_clock(s)`` — run the axis clock ``s`` seconds off, so real ClockSkew answers;
* ``list_twice()`` — every pending item listed twice; ``fail_get_edoc_once(doc_id)``;
* ``inject_file(...)`` — a pending item whose packet stays in a file: getEdoc streams its
  base64, so a 500 MB document costs the simulator a few megabytes; ``garble_get_edoc(how)``
  — getEdoc answers spoilt in one of the ways of ``sim_records.GARBLES``;
* for reconciliation: ``lose_confirmation(doc_id)`` (getSentEdocList forgets a send),
  ``record_send(...)`` (a send from this systemId the bus never made), ``inject(...,
  status="done")`` (an item acknowledged although the bus never recorded it).

``python -m adapters.national_axis.simulator --port N --system ID=SECRET`` runs it alone.
Assumed where §7 is silent: protocol errors are HTTP 200 with a FAIL body; a document
sent to a code another registered system hosts (``host()``) lands in that system's
pending list under the same docId; the signed ``XroadVnpt-idempotency-key`` is honoured;
a signed ``date`` (yyyy-MM-dd, axis time) makes getSentEdocList without a docId list that
day's sends (each row with its docId), and getReceivedEdocList list that day's items
whatever their status.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.national_axis.sim_http import _Handler
from adapters.national_axis.sim_records import (
    _PENDING,
    GARBLES,
    AxisItem,
    Call,
    EdocData,
    Reply,
    SentDoc,
    _day,
    _Modes,
    _on,
    _stamp,
    _status_target,
)
from adapters.national_axis.sim_units import UnitBook
from adapters.simulation import LoopbackServer
from bus import vxp

__all__ = ["AxisItem", "AxisSimulator", "Call", "Reply", "SentDoc", "main"]


class AxisSimulator(UnitBook, LoopbackServer):
    def __init__(self, systems: Mapping[str, str] | None = None, *,
                 agencies: Iterable[vxp.Agency] = (), skew_s: float = vxp.DEFAULT_SKEW_S,
                 port: int = 0) -> None:
        super().__init__(_Handler, self, port=port, name="axis-sim")
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = dict(systems or {})
        self._hosts: dict[str, str] = {}
        self.agencies: list[vxp.Agency] = list(agencies)
        self.skew_s = skew_s
        self._items: dict[tuple[str, str], AxisItem] = {}
        self._sent: dict[str, SentDoc] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._modes = _Modes()
        self._clock_offset_s = 0.0
        self._twice = False
        self._fail_once: set[str] = set()
        self._garble: str | None = None
        self._lost: set[tuple[str, str | None]] = set()
        self.calls: list[Call] = []

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/vdxp"

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset_s)

    # ---- set-up and modes ----------------------------------------------------------------

    def register(self, system_id: str, secret: str) -> None:
        with self._lock:
            self._secrets[system_id] = secret

    def host(self, code: str, system_id: str) -> None:
        """Documents sent to ``code`` land in ``system_id``'s pending list."""
        with self._lock:
            self._hosts[code] = system_id

    def ok(self) -> None:
        with self._lock:
            self._modes, self._clock_offset_s, self._twice = _Modes(), 0.0, False
            self._fail_once.clear()
            self._garble = None
        self.start()

    def slow(self, seconds: float) -> None:
        with self._lock:
            self._modes.delay_s = seconds

    def fail_http(self, status: int = 503, *, times: int | None = None) -> None:
        with self._lock:
            self._modes.http_status, self._modes.http_times = status, times

    def fail(self, code: str, desc: str = "", *, times: int | None = None,
             operation: str | None = None) -> None:
        with self._lock:
            self._modes.fail_code, self._modes.fail_desc = code, desc or f"simulated {code}"
            self._modes.fail_times, self._modes.fail_operation = times, operation

    def skew_clock(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset_s = seconds

    def list_twice(self, on: bool = True) -> None:
        with self._lock:
            self._twice = on

    def fail_get_edoc_once(self, doc_id: str) -> None:
        with self._lock:
            self._fail_once.add(doc_id)

    def garble_get_edoc(self, how: str | None) -> None:
        """Spoil every getEdoc answer from now on (None: answer well again)."""
        if how is not None and how not in GARBLES:
            raise ValueError(f"garble {how!r}: one of {', '.join(GARBLES)}")
        with self._lock:
            self._garble = how

    # ---- what a test injects and reads ---------------------------------------------------

    def inject(self, system_id: str, packet: bytes, *, sender: str,
               message_type: str = "edoc", to: Iterable[str] = (),
               status: str = "initial") -> str:
        """Queues ``packet`` for ``system_id`` as if another province had sent it; with
        ``status="done"`` the item is already acknowledged (by a bus that then lost it)."""
        doc_id = uuid.uuid4().hex
        now = self.now()
        with self._lock:
            self._items[(system_id, doc_id)] = AxisItem(doc_id, system_id, message_type,
                                                        sender, list(to), packet, now, now,
                                                        status)
        return doc_id

    def inject_file(self, system_id: str, path: Path, *, sender: str,
                    message_type: str = "edoc", to: Iterable[str] = ()) -> str:
        """As :meth:`inject`, for a packet left in ``path`` (read at each getEdoc)."""
        doc_id = uuid.uuid4().hex
        now = self.now()
        with self._lock:
            self._items[(system_id, doc_id)] = AxisItem(doc_id, system_id, message_type,
                                                        sender, list(to), b"", now, now,
                                                        file=path)
        return doc_id

    def lose_confirmation(self, doc_id: str, recipient: str | None = None) -> None:
        """getSentEdocList stops confirming ``recipient`` of ``doc_id`` (all: None)."""
        with self._lock:
            self._lost.add((doc_id, recipient))

    def restore_confirmation(self, doc_id: str) -> None:
        with self._lock:
            self._lost = {lost for lost in self._lost if lost[0] != doc_id}

    def record_send(self, system_id: str, packet: bytes, *, sender: str,
                    to: Iterable[str]) -> str:
        """A send under ``system_id`` that did not come from the bus under test."""
        doc_id = uuid.uuid4().hex
        with self._lock:
            self._sent[doc_id] = SentDoc(doc_id, system_id, "edoc", sender, list(to), packet,
                                         None, self.now())
        return doc_id

    def forget_sent(self, doc_id: str) -> None:
        with self._lock:
            self._sent.pop(doc_id, None)

    def sent(self, system_id: str | None = None) -> list[SentDoc]:
        with self._lock:
            return [s for s in self._sent.values() if system_id in (None, s.system_id)]

    def effects(self, idempotency_key: str) -> int:
        """Documents the axis holds under one idempotency key: 1 when resends were absorbed."""
        with self._lock:
            return sum(1 for s in self._sent.values() if s.idempotency_key == idempotency_key)

    def pending(self, system_id: str, message_type: str | None = None) -> list[AxisItem]:
        with self._lock:
            return [i for i in self._items.values() if i.system_id == system_id
                    and i.status in _PENDING and message_type in (None, i.message_type)]

    def item(self, system_id: str, doc_id: str) -> AxisItem | None:
        with self._lock:
            return self._items.get((system_id, doc_id))

    def calls_to(self, operation: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.operation == operation]

    # ---- the axis ------------------------------------------------------------------------

    def handle(self, operation: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        with self._lock:
            modes = self._modes
            delay = modes.delay_s
        if delay and self._stopping.wait(delay):
            return 503, vxp.fail_answer(vxp.ErrorCode.BUSY, "shutting down")
        status, answer, system_id = self._answer(operation, headers, body)
        with self._lock:
            self.calls.append(Call(operation, system_id, dict(headers), body, status, answer))
        return status, answer

    def _injected_failure(self, operation: str) -> Reply | None:
        with self._lock:
            m = self._modes
            if m.http_status is not None and m.http_times != 0:
                if m.http_times is not None:
                    m.http_times -= 1
                return m.http_status, vxp.fail_answer(vxp.ErrorCode.INTERNAL, "simulated")
            if (m.fail_code is not None and m.fail_times != 0
                    and m.fail_operation in (None, operation)):
                if m.fail_times is not None:
                    m.fail_times -= 1
                return 200, vxp.fail_answer(m.fail_code, m.fail_desc)
        return None

    def _answer(self, operation: str, headers: list[tuple[str, str]],
                body: bytes) -> tuple[int, dict[str, Any], str | None]:
        injected = self._injected_failure(operation)
        if injected is not None:
            return injected[0], injected[1], None
        try:
            op = vxp.Operation(operation)
        except ValueError:
            return 404, vxp.fail_answer(vxp.ErrorCode.UNKNOWN_OPERATION,
                                        f"no operation {operation!r}"), None
        try:
            request = vxp.verify(headers, body, self._secret_for, now=self.now(),
                                 skew_s=self.skew_s,
                                 require_hash=op is vxp.Operation.SEND_EDOC)
        except vxp.VxpError as exc:
            return 200, exc.answer(), None
        with self._lock:
            status, answer = self._operate(op, request)
        return status, answer, request.system_id

    def _secret_for(self, system_id: str) -> str | None:
        with self._lock:
            return self._secrets.get(system_id)

    def _operate(self, op: vxp.Operation, request: vxp.VerifiedRequest) -> Reply:
        system, doc_id = request.system_id, request.param("docId") or ""
        if op is vxp.Operation.SEND_EDOC:
            return self._send(request)
        if op is vxp.Operation.GET_RECEIVED_EDOC_LIST:
            wanted, day = request.param("messagetype"), _day(request.param("date"))
            items = [i for i in self._items.values() if i.system_id == system
                     and wanted in (None, i.message_type)
                     and (i.status in _PENDING if day is None else _on(i.created, day))]
            listed = [self._listing(i) for i in items for _ in range(2 if self._twice else 1)]
            return 200, vxp.ok_answer(data=listed)
        if op is vxp.Operation.GET_AGENCIES_LIST:
            return 200, vxp.ok_answer(data=[a.to_json() for a in self.agencies])
        if op is vxp.Operation.GET_AGENCIES_LIST_QD20:
            return 200, vxp.ok_answer(data=self.qd20_rows())
        if op is vxp.Operation.GET_SYNCHRONIZE_UNIT:
            return 200, vxp.ok_answer(data=self.unit_rows())
        if op is vxp.Operation.GET_SENT_EDOC_LIST:
            day = _day(request.param("date"))
            if not doc_id and day is not None:
                return 200, vxp.ok_answer(data=[
                    {"docId": s.doc_id, **row} for s in self._sent.values()
                    if s.system_id == system and _on(s.created, day)
                    and (s.doc_id, None) not in self._lost for row in self._sent_rows(s)])
            sent = self._sent.get(doc_id)
            if sent is None or sent.system_id != system or (doc_id, None) in self._lost:
                return 200, vxp.fail_answer(vxp.ErrorCode.NOT_FOUND, f"no sent doc {doc_id}")
            return 200, vxp.ok_answer(data=self._sent_rows(sent))
        item = self._items.get((system, doc_id))
        if op not in (vxp.Operation.GET_EDOC, vxp.Operation.UPDATE_STATUS):
            return 200, vxp.fail_answer(vxp.ErrorCode.UNKNOWN_OPERATION, "not simulated")
        if item is None:
            return 200, vxp.fail_answer(vxp.ErrorCode.NOT_FOUND, f"no item {doc_id}")
        if op is vxp.Operation.GET_EDOC:
            if doc_id in self._fail_once:
                self._fail_once.discard(doc_id)
                return 500, vxp.fail_answer(vxp.ErrorCode.INTERNAL, "simulated getEdoc failure")
            return 200, vxp.ok_answer(data=EdocData(item.packet, item.file, self._garble))
        new = request.param("status") or ""
        if new not in {s.value for s in vxp.AckStatus}:
            return 200, vxp.fail_answer(vxp.ErrorCode.MALFORMED_REQUEST, f"status {new!r}")
        item.status, item.updated = new, self.now()
        return 200, vxp.ok_answer()

    def _listing(self, item: AxisItem) -> dict[str, str]:
        return vxp.ReceivedItem(item.doc_id, vxp.SERVICE_TYPE, item.message_type,
                                _stamp(item.created), _stamp(item.updated), item.sender,
                                vxp.encode_to(item.to), item.status, item.status).to_json()

    def _send(self, request: vxp.VerifiedRequest) -> Reply:
        system, key = request.system_id, request.param(vxp.IDEMPOTENCY_KEY)
        if key is not None and (system, key) in self._by_key:
            earlier = self._by_key[(system, key)]
            return 200, vxp.ok_answer("Duplicate of an earlier send", DocId=earlier)
        message_type = request.param("messagetype") or vxp.MessageType.EDOC.value
        recipients = (request.recipients() if message_type == vxp.MessageType.EDOC
                      else _status_target(request.packet))
        doc_id, now = uuid.uuid4().hex, self.now()
        sent = SentDoc(doc_id, system, message_type, request.param("from") or "", recipients,
                       request.packet, key, now)
        for code in recipients:
            target = self._hosts.get(code)
            if target is not None:
                sent.handed_to[code] = target
                self._items.setdefault((target, doc_id), AxisItem(
                    doc_id, target, message_type, sent.sender, recipients, sent.packet, now,
                    now))
        self._sent[doc_id] = sent
        if key is not None:
            self._by_key[(system, key)] = doc_id
        return 200, vxp.ok_answer(DocId=doc_id)

    def _sent_rows(self, sent: SentDoc) -> list[dict[str, str]]:
        rows = []
        for code in sent.recipients:
            if (sent.doc_id, code) in self._lost:
                continue
            target = sent.handed_to.get(code)
            item = self._items.get((target, sent.doc_id)) if target else None
            receive = item.status if item else "pending"
            rows.append(vxp.SentStatus(
                code, "done", "forwarded by the axis", receive,
                "not connected to this axis" if target is None else f"held by {target}",
                _stamp(sent.created), _stamp(item.updated if item else sent.created),
            ).to_json())
        return rows



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A national document axis on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--system", action="append", default=[], metavar="ID=SECRET",
                        help="register a system (repeatable)")
    parser.add_argument("--host", action="append", default=[], metavar="CODE=ID",
                        help="documents for CODE land in system ID's pending list")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: until Ctrl-C)")
    args = parser.parse_args(argv)
    systems = dict(pair.split("=", 1) for pair in args.system)
    axis = AxisSimulator(systems, port=args.port)
    for pair in args.host:
        code, system_id = pair.split("=", 1)
        axis.host(code, system_id)
    with axis:
        print(axis.endpoint, flush=True)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

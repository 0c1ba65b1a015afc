"""A destination system on a real loopback socket, for proving what a destination sees.

The delivery tests assert *effects*, not calls: a real destination that honours
``Idempotency-Key`` turns the same key twice into one document (and answers the second
request 200 with the same id), so the sink counts both effects (distinct keys accepted)
and raw requests (to show the bus did repeat itself, e.g. after a lease expired).

Modes switch at runtime from the test thread:

* ``ok()`` — accept (the default);
* ``down()`` — stop listening, so connections are refused; ``ok()`` listens again on the
  same port;
* ``fail(status, times=None, retry_after=None)`` — answer an error status, for the next
  ``times`` requests or until changed (5xx for retries, 4xx for refusals);
* ``slow(seconds)`` — accept, after sleeping (the effect lands after the sleep, as a slow
  system would commit it);
* ``poison(marker, status)`` — answer ``status`` to every packet whose body contains
  ``marker``, whatever the mode.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from adapters.simulation import LoopbackServer, OwnedHTTPServer

__all__ = ["HttpSink", "Request"]


@dataclass(frozen=True)
class Request:
    """One request as received; ``headers`` have lower-case names."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    key: str | None
    status: int
    effect: bool


@dataclass
class _Rules:
    mode: str = "ok"
    status: int = 200
    times: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    poison: list[tuple[bytes, int]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: OwnedHTTPServer[HttpSink]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, reply, extra = self.server.owner.answer(self.path, headers, body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


class HttpSink(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_Handler, self, name="http-sink")
        self._lock = threading.Lock()
        self._rules = _Rules()
        self._effects: dict[str, str] = {}
        self.requests: list[Request] = []

    # ---- lifecycle ---------------------------------------------------------------------

    def url(self, path: str = "/edxml") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # ---- modes -------------------------------------------------------------------------

    def ok(self) -> None:
        with self._lock:
            self._rules = _Rules(poison=self._rules.poison)
        self.start()

    def fail(self, status: int = 503, *, times: int | None = None,
             retry_after: str | None = None) -> None:
        with self._lock:
            self._rules = _Rules(mode="fail", status=status, times=times,
                                 retry_after=retry_after, poison=self._rules.poison)

    def slow(self, seconds: float) -> None:
        with self._lock:
            self._rules = _Rules(mode="slow", delay_s=seconds, poison=self._rules.poison)

    def poison(self, marker: bytes, status: int = 500) -> None:
        with self._lock:
            self._rules.poison.append((marker, status))

    # ---- what the destination saw ------------------------------------------------------

    @property
    def effects(self) -> int:
        with self._lock:
            return len(self._effects)

    def effect_keys(self) -> set[str]:
        with self._lock:
            return set(self._effects)

    def reference_for(self, key: str) -> str | None:
        """The id this destination gave the document sent under ``key``."""
        with self._lock:
            return self._effects.get(key)

    def requests_by_key(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(r.key or "" for r in self.requests)

    @property
    def duplicates(self) -> int:
        """Requests that repeated a key already accepted (answered 200, no new effect)."""
        with self._lock:
            return sum(1 for r in self.requests if r.status < 300 and not r.effect)

    def wait_for_effects(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.effects >= count:
                return True
            time.sleep(0.02)
        return self.effects >= count

    # ---- the destination's logic -------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
        key = headers.get("idempotency-key")
        with self._lock:
            rules = self._rules
            poisoned = next((s for marker, s in rules.poison if marker in body), None)
            status, extra = 200, {}
            if poisoned is not None:
                status = poisoned
            elif rules.mode == "fail" and (rules.times is None or rules.times > 0):
                status = rules.status
                if rules.times is not None:
                    rules.times -= 1
                if rules.retry_after is not None:
                    extra["Retry-After"] = rules.retry_after
            delay = rules.delay_s if rules.mode == "slow" and status == 200 else 0.0
        if delay:
            time.sleep(delay)
        with self._lock:
            effect = False
            reply: dict[str, str] = {"error": f"HTTP {status}"}
            if status == 200:
                if key is not None and key in self._effects:
                    reply = {"id": self._effects[key]}
                else:
                    reply = {"id": uuid.uuid4().hex}
                    effect = True
                    self._effects[key or reply["id"]] = reply["id"]
            self.requests.append(Request(time.time(), path, headers, body, key, status,
                                         effect))
        return status, reply, extra

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

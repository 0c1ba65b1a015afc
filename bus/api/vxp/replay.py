"""Which signed axis requests were already carried out, so that a captured one cannot be
played again.

What a replay is follows from how the vendor SDK signs (edxml.md §7.1, §7.2). The
signature covers the header map only: not the operation (the URL path) and not the body
(except sendEdoc's, through ``hash-file``). The SDK stamps the timestamp once per service
object and keeps every key it was ever given. So one service object legitimately sends
identical signed headers again and again: two getReceivedEdocList of a poll loop when
nothing arrived in between, countReceiveEdoc then getReceivedEdocList, even getEdoc(A)
then updateStatus(A, done) once an earlier item was acknowledged (``status=done`` stays
in the map). Hence:

* the key is (systemId, operation, ``XroadVnpt-hash-header``), and only the operations
  that change something are guarded: sendEdoc, updateStatus, registerAgency,
  deleteAgency. Reads (lists, counts, getEdoc, downloadEdoc, agency lists) repeat freely:
  refusing them would break every poll loop, and replaying one changes nothing;
* registerAgency's key also holds the SHA-256 of its body: the agency travels as an
  unsigned body, so one service object registering two agencies sends identical signed
  headers. Anyone holding a captured signature could thus file a different agency
  within the window — but only as a pending request that names the system and waits for
  an administrator, which is why registerAgency never applies anything by itself;
* a legitimate client repeats a guarded call identically only as a retry (the SDK retries
  I/O errors, POSTs included). It is refused ``Replayed`` with the way out: a new service
  object stamps a new timestamp, and the bus's own idempotency (the same packet → the
  same DocId, an acknowledgement twice → "already delivered") makes the resend safe;
* a signature is spent only once the request is carried out: a body cut off mid-upload
  (the commonest retry), one over the cap, a wrong ``hash-file`` or a fault of the bus
  (5xx) gives it back, so the identical retry goes through. While the first is still
  being carried out, an identical second one is refused;
* memory is bounded: an entry lives until its timestamp leaves the system's window
  (timestamp + ``max_age_s``), and at most :data:`MAX_ENTRIES` live at once. When full
  (only authenticated systems add entries) guarded calls are refused TooManyRequests
  rather than let through: a forgotten signature is a replay accepted;
* the memory is the process's: with several bus processes behind one address, a replay
  sent to another process is not caught.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bus import errors, vxp

__all__ = ["GUARDED", "MAX_ENTRIES", "ReplayGuard", "ReplayKey"]

MAX_ENTRIES: Final = 100_000
GUARDED: Final = frozenset({vxp.Operation.SEND_EDOC, vxp.Operation.UPDATE_STATUS,
                            vxp.Operation.REGISTER_AGENCY, vxp.Operation.DELETE_AGENCY})
ReplayKey = tuple[str, str, str]


@dataclass
class _Seen:
    expires: float
    first: float
    done: bool = False


class ReplayGuard:
    """Signatures of guarded requests in flight or carried out, until they expire."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[ReplayKey, _Seen] = {}
        self._expiry: list[tuple[float, ReplayKey]] = []

    def __len__(self) -> int:
        with self._lock:
            self._prune(self.clock())
            return len(self._seen)

    def claim(self, key: ReplayKey, expires_at: float) -> None:
        """Reserves ``key`` until ``expires_at`` (epoch seconds); raises Replayed if it is
        reserved already, TooManyRequests if the memory is full."""
        now = self.clock()
        with self._lock:
            self._prune(now)
            seen = self._seen.get(key)
            if seen is not None:
                raise vxp.Replayed(_replayed(key[1], now - seen.first, seen.done))
            if len(self._seen) >= self.max_entries:
                raise errors.TooManyRequests(
                    "the provincial bus remembers too many recent signed requests to check "
                    "this one for replay; repeat it in a minute",
                    details={"retry_after": 60})
            self._seen[key] = _Seen(max(expires_at, now), now)
            heapq.heappush(self._expiry, (max(expires_at, now), key))
            if len(self._expiry) > 2 * self.max_entries:
                self._expiry = [(s.expires, k) for k, s in self._seen.items()]
                heapq.heapify(self._expiry)

    def done(self, key: ReplayKey) -> None:
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None:
                seen.done = True

    def release(self, key: ReplayKey) -> None:
        """The request was not carried out: an identical retry must go through."""
        with self._lock:
            self._seen.pop(key, None)

    def _prune(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, key = heapq.heappop(self._expiry)
            seen = self._seen.get(key)
            if seen is not None and seen.expires <= now:
                del self._seen[key]


def _replayed(operation: str, age_s: float, done: bool) -> str:
    if not done:
        return (f"an identical signed {operation} request (same XroadVnpt-hash-header) is "
                "being carried out right now; a signed request counts once")
    return (f"this signed {operation} request was already carried out {age_s:.0f}s ago (same "
            "XroadVnpt-hash-header): a signed request counts once. If your system lost the "
            "first answer, build a new SDK service object (it stamps a new timestamp) and "
            "send again: a resent packet gets its original DocId, a repeated "
            "acknowledgement 'already delivered'")

"""Door refusals as audit events, bounded so that a flood cannot fill the disk.

Every refusal is counted in Prometheus already; here it also becomes an event
(``door.refused``: code, channel, the calling system if it was identified, the SHA-256 and
size of the body if the door had read it), sealed into the chain like every other
event. The doors are on the event loop and a refusal must stay fast, so a refusal is
only appended to a buffer in memory; the keeper writes the buffer in one transaction
about once a second.

The bound: per process and per UTC minute, the first :data:`PER_KEY` refusals of each
(code, channel) and at most :data:`PER_MINUTE` in all are recorded one by one; the rest
are counted, and one ``door.refused.more`` event per (code, channel) carries the count
when the minute is over. At most PER_MINUTE + one summary per key a minute, about 150k
small rows a day under a flood that never stops, and usually none.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from sqlalchemy.engine import Engine

from bus.store import Store

PER_KEY: Final = 10
PER_MINUTE: Final = 100
MESSAGE_CHARS: Final = 200


@dataclass
class _Minute:
    start: int
    recorded: int = 0
    per_key: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)


def current_system() -> str | None:
    """The caller the door identified, if any (bound to the log context by ``identify``)."""
    value = structlog.contextvars.get_contextvars().get("system")
    return value if isinstance(value, str) else None


class RefusalLog:
    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._minute = _Minute(self._minute_of(clock()))

    @staticmethod
    def _minute_of(at: float) -> int:
        return int(at // 60) * 60

    def record(self, code: str, channel: str, *, system: str | None = None,
               body: bytes | None = None, message: str | None = None) -> None:
        """Notes one refusal; never raises, never touches the database."""
        now = self.clock()
        key = (code, channel)
        with self._lock:
            self._roll(now)
            minute = self._minute
            if minute.recorded >= PER_MINUTE or minute.per_key.get(key, 0) >= PER_KEY:
                minute.dropped[key] = minute.dropped.get(key, 0) + 1
                return
            minute.recorded += 1
            minute.per_key[key] = minute.per_key.get(key, 0) + 1
            detail: dict[str, Any] = {"code": code, "channel": channel}
            if body is not None:
                detail["size"] = len(body)
            if message:
                detail["message"] = message[:MESSAGE_CHARS]
            self._pending.append({
                "actor": system or "-", "action": "door.refused", "at": now,
                "digest": hashlib.sha256(body).hexdigest() if body is not None else None,
                "detail": detail})

    def _roll(self, now: float) -> None:
        start = self._minute_of(now)
        if start == self._minute.start:
            return
        old = self._minute
        for (code, channel), count in sorted(old.dropped.items()):
            self._pending.append({
                "actor": "bus", "action": "door.refused.more", "at": old.start + 60.0,
                "digest": None, "detail": {"code": code, "channel": channel, "count": count,
                                           "minute_start": old.start}})
        self._minute = _Minute(start)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            self._roll(self.clock())
            pending, self._pending = self._pending, []
        return pending

    def flush(self, engine: Engine, *, final: bool = False) -> int:
        """Writes what is buffered; on ``final`` (shutdown) the running minute's count too.
        On a database error the refusals are put back, to be tried on the next tick."""
        if final:
            with self._lock:
                self._roll(self.clock() + 60.0)
        pending = self.take()
        if not pending:
            return 0
        try:
            with engine.begin() as conn:
                for item in pending:
                    Store.audit(conn, item["actor"], item["action"], at=item["at"],
                                digest=item["digest"], detail=item["detail"])
        except Exception:
            with self._lock:
                self._pending[:0] = pending[-PER_MINUTE * 4:]
            raise
        return len(pending)

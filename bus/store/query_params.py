"""Raw query parameters checked once for both doors: times, cursors, the list query.

Re-exported by :mod:`bus.store.queries`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Final

from bus import errors
from bus.store.read_models import DEFAULT_LIMIT, MAX_LIMIT, ListQuery
from bus.store.tables import STATES


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def parse_time(value: str, name: str) -> float:
    """Epoch seconds or ISO 8601 with an offset; a naive time would be off by hours in +07:00."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return _in_range(number, value, name)
        raise errors.InvalidRequest(f"{name}: {value!r} is not a finite number of seconds")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise errors.InvalidRequest(
            f"{name}: {value!r} is neither epoch seconds nor an ISO 8601 time such as "
            "2025-07-01T08:00:00+07:00") from None
    if moment.tzinfo is None:
        raise errors.InvalidRequest(
            f"{name}: {value!r} has no time zone; add an offset such as +07:00 or Z")
    return _in_range(moment.timestamp(), value, name)


# 1970-01-01 to 9999-12-30 UTC: every instant a date, a calendar and a time zone can
# still convert (the year 10000 does not exist for them).
_EARLIEST: Final = 0.0
_LATEST: Final = 253_402_128_000.0


def _in_range(epoch: float, value: str, name: str) -> float:
    if not _EARLIEST <= epoch <= _LATEST:
        raise errors.InvalidRequest(
            f"{name}: {value!r} is outside 1970-01-01 to 9999-12-30; give a real time")
    return epoch


def encode_cursor(received_at: float, doc_id: str) -> str:
    raw = json.dumps([received_at, doc_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, doc_id = json.loads(raw)
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) \
                or not isinstance(doc_id, str):
            raise ValueError(cursor)
        return float(stamp), doc_id
    except (ValueError, TypeError, binascii.Error):
        raise errors.InvalidRequest(
            "cursor: not a cursor this API issued; pass next_cursor from the previous page "
            "unchanged") from None


def list_query(*, sender: str | None = None, recipient: str | None = None,
               state: str | None = None, kind: str | None = None, since: str | None = None,
               until: str | None = None, limit: int = DEFAULT_LIMIT,
               cursor: str | None = None) -> ListQuery:
    """Checks raw parameters once, so both doors refuse the same input the same way."""
    if state is not None and state not in STATES:
        raise errors.InvalidRequest(f"state: {state!r} is not one of {', '.join(STATES)}")
    if kind is not None and kind not in ("edoc", "status"):
        raise errors.InvalidRequest(f"kind: {kind!r} is not edoc or status")
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidRequest(f"limit: must be between 1 and {MAX_LIMIT}")
    low = parse_time(since, "since") if since else None
    high = parse_time(until, "until") if until else None
    if low is not None and high is not None and high < low:
        raise errors.InvalidRequest("until is earlier than since")
    return ListQuery(sender=sender or None, recipient=recipient or None, state=state, kind=kind,
                     since=low, until=high, limit=limit,
                     after=decode_cursor(cursor) if cursor else None)

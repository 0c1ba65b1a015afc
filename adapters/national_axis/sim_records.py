"""The simulated axis's records: pending items, accepted sends, the calls it answered, the
failure modes a test sets, and the date/recipient helpers its answers use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from bus import vxp
from bus.edxml import StatusPacket, read_packet

_PENDING: Final = frozenset({"initial", "processing"})
Reply = tuple[int, dict[str, Any]]


@dataclass
class AxisItem:
    """One document waiting in a receiving system's pending list."""

    doc_id: str
    system_id: str
    message_type: str
    sender: str
    to: list[str]
    packet: bytes
    created: datetime
    updated: datetime
    status: str = "initial"
    file: Path | None = None
    """Where the packet is when it is too large to hold (``packet`` is then empty)."""


GARBLES: Final = ("bad_base64", "no_data", "cut_short", "broken", "fail_after_data",
                  "escaped_slashes")
"""How ``garble_get_edoc`` spoils getEdoc's answers, as a proxy or a faulty axis would:
a character outside base64 in the middle of ``data``; OK without ``data``; the JSON
ending inside ``data`` (a proxy that cut the body and its length); the connection
closed half-way through the declared length; ``data`` whole but ``status`` FAIL after
it; and, correct but unusual, every ``/`` written ``\\/`` as Java's JSON writers do."""


@dataclass(frozen=True)
class EdocData:
    """getEdoc's ``data``: base64-encoded by the HTTP handler as it writes the answer, so
    a packet kept in a file is never held whole (sim_http.py)."""

    packet: bytes
    file: Path | None = None
    garble: str | None = None

    @property
    def size(self) -> int:
        return self.file.stat().st_size if self.file is not None else len(self.packet)

    def blocks(self) -> Iterator[bytes]:
        """The packet in pieces whose sizes are multiples of 3 (but the last), so their
        base64 encodings concatenate into the whole's."""
        if self.file is None:
            yield self.packet
            return
        with self.file.open("rb") as source:
            while block := source.read(3 << 20):
                yield block


@dataclass
class SentDoc:
    """One accepted sendEdoc, with the systems it was handed on to."""

    doc_id: str
    system_id: str
    message_type: str
    sender: str
    recipients: list[str]
    packet: bytes
    idempotency_key: str | None
    created: datetime
    handed_to: dict[str, str] = field(default_factory=dict)  # recipient code → system


@dataclass(frozen=True)
class Call:
    operation: str
    system_id: str | None
    headers: dict[str, str]
    body: bytes
    http_status: int
    answer: dict[str, Any]


@dataclass
class _Modes:
    delay_s: float = 0.0
    http_status: int | None = None
    http_times: int | None = None
    fail_code: str | None = None
    fail_desc: str = ""
    fail_times: int | None = None
    fail_operation: str | None = None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(vxp.AXIS_TZ).strftime("%Y-%m-%d %H:%M:%S")



def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _on(moment: datetime, day: date) -> bool:
    return moment.astimezone(vxp.AXIS_TZ).date() == day


def _status_target(packet: bytes) -> list[str]:
    """A status goes to the organisation its ResponseFor names (edxml.md §4)."""
    try:
        parsed = read_packet(packet).packet
    except Exception:
        return []
    if isinstance(parsed, StatusPacket) and parsed.response_for.organ_id:
        return [parsed.response_for.organ_id]
    return []

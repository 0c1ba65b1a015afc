"""The simulated axis's records: pending items, accepted sends, the calls it answered, the
failure modes a test sets, and the date/recipient helpers its answers use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
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

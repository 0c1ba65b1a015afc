"""Stage rules and shapes behind :class:`bus.lifecycle.overdue.DeadlineBook`: which statuses
meet or close a stage, the answer models, and the SQL and judging helpers.

Re-exported by :mod:`bus.lifecycle.overdue`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import sqlalchemy as sa
import structlog
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from bus.lifecycle.deadlines import STAGE_CODES, STAGES, DeadlinePolicy
from bus.store.queries import iso
from bus.store.tables import business_statuses, deliveries, delivery_deadlines

log = structlog.get_logger("lgsp.deadlines")

_DEADLINE_COLUMNS: Final = ("delivery", "document", "rule", "started_at", "computed_at",
                            "due_date", *(f"{stage}_due" for stage in STAGES))

MET: Final = {"arrival": ("01", "03", "04", "05", "06"),
              "acceptance": ("03", "04", "05", "06"), "completion": ("06",)}
CLOSING: Final = ("02", "15")
SETTLING: Final = ("06", *CLOSING)
StageState = Literal["met", "late", "open", "overdue", "closed"]


class StageView(BaseModel):
    stage: str
    code: str
    due: str
    state: StageState
    answered_at: str | None = None
    overdue_working_hours: float | None = None


class DeliveryDeadlines(BaseModel):
    delivery: str
    document: str
    recipient: str
    effective_recipient: str
    destination: str
    rule: str | None = None
    due_date: str | None = None
    overdue: bool
    stages: list[StageView]


@dataclass(frozen=True)
class Answer:
    code: str
    at: float



NEVER_SENT: Final = ("withdrawn", "cancelled")
"""Delivery states whose recipient was never meant to get the document after all: a
recall withdrew it, or an operator cancelled it. Nothing can fall due for them."""


def _open_past(stage: str, at: float) -> sa.ColumnElement[bool]:
    """SQL: ``stage`` is due before ``at`` and its recipient has not answered it."""
    dd, bs, dl = delivery_deadlines.c, business_statuses.c, deliveries.c
    due = dd[f"{stage}_due"]
    answered = sa.exists().where(
        bs.document == dd.document,
        sa.or_(bs.organ_id == dl.recipient, bs.organ_id == dl.effective_recipient),
        bs.code.in_(MET[stage] + CLOSING))
    return sa.and_(due.is_not(None), due < at, ~answered)


def _answers(conn: Connection, docs: set[str]) -> dict[tuple[str, str], list[Answer]]:
    out: dict[tuple[str, str], list[Answer]] = {}
    if not docs:
        return out
    bs = business_statuses.c
    for chunk in _chunks(sorted(docs), 500):
        for row in conn.execute(sa.select(bs.document, bs.organ_id, bs.code, bs.received_at)
                                .where(bs.document.in_(chunk))
                                .order_by(bs.received_at, bs.id)):
            out.setdefault((row.document, row.organ_id), []).append(
                Answer(row.code, row.received_at))
    return out


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _stages(row: Any, said: list[Answer], at: float,
            policy: DeadlinePolicy | None) -> Iterator[StageView]:
    closed = min((a.at for a in said if a.code in CLOSING), default=None)
    for stage in STAGES:
        due: float | None = getattr(row, f"{stage}_due")
        if due is None:
            continue
        met = min((a.at for a in said if a.code in MET[stage]), default=None)
        state: StageState
        late_by = None
        if met is not None:
            state = "met" if met <= due else "late"
        elif closed is not None:
            state = "closed"
        elif at > due:
            state = "overdue"
            if policy is not None:
                late_by = round(policy.calendar.working_seconds(due, at) / 3600.0, 2)
        else:
            state = "open"
        yield StageView(stage=stage, code=STAGE_CODES[stage], due=iso(due) or "", state=state,
                        answered_at=iso(met if met is not None else closed),
                        overdue_working_hours=late_by)


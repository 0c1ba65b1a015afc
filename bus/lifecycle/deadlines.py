"""SLA rules: how long each recipient has to answer a document, in working time.

A provincial records office (văn thư) expects three answers from every recipient of a
document, the business statuses of QCVN 102: arrival (01), acceptance into the incoming
register (03) and completion (06). How fast depends on the document: its type, its
urgency ("độ khẩn", OtherInfo/Priority) and where it goes. ``config/deadlines.yaml``
lists rules, first match wins, each giving a working-time limit per stage; the packet's
own DueDate, when it has one, sets or caps the completion deadline.

The file sits beside routes.yaml and the directory and is loaded with them by
:mod:`bus.reloader`, so a reload swaps routes, calendar and rules together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, tzinfo
from pathlib import Path
from typing import Any, Final, Literal

from bus.directory import YamlDocument, read_yaml, schema_problems, sort_problems
from bus.errors import ConfigInvalid, Problem
from bus.lifecycle.calendar import WorkCalendar, parse_calendar

__all__ = ["DEADLINES_SCHEMA", "STAGES", "STAGE_CODES", "URGENCY", "DeadlinePolicy",
           "Deadlines", "DocumentFacts", "SlaRule", "load_policy", "parse_duration"]

DEADLINES_SCHEMA: Final = "deadlines.schema.json"
Stage = Literal["arrival", "acceptance", "completion"]
STAGES: Final[tuple[Stage, ...]] = ("arrival", "acceptance", "completion")
STAGE_CODES: Final[Mapping[str, str]] = {"arrival": "01", "acceptance": "03",
                                         "completion": "06"}
URGENCY: Final[Mapping[str, int]] = {
    "thuong": 0, "thường": 0,
    "khan": 1, "khẩn": 1,
    "thuong_khan": 2, "thượng khẩn": 2,
    "hoa_toc": 3, "hỏa tốc": 3, "hoả tốc": 3,
    "hoa_toc_hen_gio": 4, "hỏa tốc hẹn giờ": 4, "hoả tốc hẹn giờ": 4,
}
"""Names of the urgency levels ("độ khẩn") for the values of OtherInfo/Priority."""
DueDateUse = Literal["cap", "set", "ignore"]
_DURATION: Final = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


@dataclass(frozen=True)
class DocumentFacts:
    """What a rule may look at: the document's header and the delivery's destination."""

    document_type: int | None = None
    priority: int | None = None
    due_date: date | None = None
    destination: str | None = None


@dataclass(frozen=True)
class SlaRule:
    name: str
    limits: Mapping[str, float]
    """Working seconds per stage; a stage absent has no deadline."""
    document_type: frozenset[int] | None = None
    priority: frozenset[int] | None = None
    destination: frozenset[str] | None = None
    due_date: DueDateUse = "cap"
    line: int | None = field(default=None, compare=False)

    def matches(self, facts: DocumentFacts) -> bool:
        return all(wanted is None or value in wanted for wanted, value in (
            (self.document_type, facts.document_type), (self.priority, facts.priority),
            (self.destination, facts.destination)))


@dataclass(frozen=True)
class Deadlines:
    """The instants (epoch seconds) by which each stage is due, fixed when computed."""

    rule: str | None
    due: Mapping[str, float | None]
    due_date: date | None = None


@dataclass(frozen=True)
class DeadlinePolicy:
    calendar: WorkCalendar
    rules: tuple[SlaRule, ...] = ()

    def rule_for(self, facts: DocumentFacts) -> SlaRule | None:
        return next((rule for rule in self.rules if rule.matches(facts)), None)

    def deadlines(self, start: float, facts: DocumentFacts) -> Deadlines:
        """Deadlines of one delivery whose clock starts at ``start`` (the bus's acceptance).

        DueDate is a day, so it means close of office that day (or the last working day
        before it); it caps the rule's completion limit, or replaces it when the rule says
        ``due_date: set``, and stands alone when no rule gives a completion limit.
        """
        rule = self.rule_for(facts)
        due: dict[str, float | None] = {stage: None for stage in STAGES}
        if rule is not None:
            for stage, seconds in rule.limits.items():
                due[stage] = self.calendar.add_working_seconds(start, seconds)
        use = rule.due_date if rule is not None else "cap"
        if facts.due_date is not None and use != "ignore":
            stated = self.calendar.end_of_day(facts.due_date)
            current = due["completion"]
            due["completion"] = stated if use == "set" or current is None \
                else min(current, stated)
        return Deadlines(rule.name if rule else None, due, facts.due_date)


def parse_duration(text: str, day_seconds: float) -> float | None:
    """``2d``, ``4h``, ``1d4h``, ``30m`` in working time; None when not such a text."""
    found = _DURATION.match(text.strip())
    if not found or not any(found.groups()):
        return None
    days, hours, minutes = (int(part or 0) for part in found.groups())
    return days * day_seconds + hours * 3600.0 + minutes * 60.0


def _set(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def parse_rules(doc: YamlDocument, calendar: WorkCalendar) -> tuple[SlaRule, ...]:
    problems = schema_problems(doc, DEADLINES_SCHEMA)
    if problems:
        raise ConfigInvalid(sort_problems(problems), file=doc.file)
    data: dict[str, Any] = doc.data or {}
    rules: list[SlaRule] = []
    names: dict[str, int] = {}
    for index, spec in enumerate(data.get("rules") or []):
        where: tuple[str | int, ...] = ("rules", index)
        name = spec["name"]
        if name in names:
            problems.append(doc.problem((*where, "name"),
                                        f"rule name {name!r} is used twice (rule "
                                        f"{names[name] + 1} too); names must be unique"))
        names.setdefault(name, index)
        limits: dict[str, float] = {}
        for stage in STAGES:
            if stage not in spec:
                continue
            seconds = parse_duration(str(spec[stage]), calendar.day_seconds)
            if seconds is None or seconds <= 0:
                problems.append(doc.problem(
                    (*where, stage), f"{spec[stage]!r} is not a working time; write e.g. "
                                     "2d (working days), 4h (office hours), 1d4h or 30m"))
                continue
            limits[stage] = seconds
        order = [limits[s] for s in STAGES if s in limits]
        if order != sorted(order):
            problems.append(doc.problem(where, f"rule {name!r}: arrival, acceptance and "
                                               "completion limits must not decrease in that "
                                               "order"))
        match = spec.get("match") or {}
        priority: set[int] | None = None
        if "priority" in match:
            priority = set(_set(match["priority"]))
        if "urgency" in match:
            priority = (priority or set()) | {URGENCY[u] for u in _set(match["urgency"])}
        rules.append(SlaRule(
            name=name, limits=limits,
            document_type=frozenset(_set(match["document_type"]))
            if "document_type" in match else None,
            priority=frozenset(priority) if priority is not None else None,
            destination=frozenset(_set(match["destination"]))
            if "destination" in match else None,
            due_date=spec.get("due_date", data.get("due_date", "cap")),
            line=doc.line_of(where)))
    for index, rule in enumerate(rules[:-1]):
        if rule.document_type is None and rule.priority is None and rule.destination is None:
            problems.append(doc.problem(("rules", index),
                                        f"rule {rule.name!r} matches every document, so the "
                                        f"{len(rules) - index - 1} rule(s) below it never "
                                        "apply; move it to the end"))
    if problems:
        raise ConfigInvalid(sort_problems(problems), file=doc.file)
    return tuple(rules)


def load_policy(calendar_path: str | Path, deadlines_path: str | Path,
                zone: tzinfo) -> DeadlinePolicy:
    """Both files checked together: every problem of both, with file and line, at once."""
    problems: list[Problem] = []
    calendar: WorkCalendar | None = None
    cal_doc, found = read_yaml(calendar_path)
    problems += found
    if cal_doc is not None:
        try:
            calendar = parse_calendar(cal_doc, zone)
        except ConfigInvalid as exc:
            problems += exc.problems
    rules_doc, found = read_yaml(deadlines_path)
    problems += found
    rules: tuple[SlaRule, ...] = ()
    if rules_doc is not None:
        try:
            rules = parse_rules(rules_doc, calendar or WorkCalendar(zone))
        except ConfigInvalid as exc:
            problems += exc.problems
    if problems or calendar is None:
        raise ConfigInvalid(problems or [Problem("invalid calendar", file=str(calendar_path))],
                            file=str(deadlines_path))
    return DeadlinePolicy(calendar, rules)

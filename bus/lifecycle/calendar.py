"""Vietnam's working time: which days an office works, during which hours, and arithmetic on it.

Deadlines in Vietnamese administration count in working days ("ngày làm việc"), so the
bus needs the same calendar a văn thư keeps on the wall: Saturdays and Sundays off,
public holidays (Tết and Hùng Kings' day follow the lunar calendar, so a hand-made table
goes stale every year; the maintained ``holidays`` library computes them, and knows the
Government's substituted days: a Saturday worked to bridge a holiday), office hours with
a lunch break, and what the province's administrator decides on top (an extra day off,
a make-up working Saturday) in ``config/calendar.yaml``.

Everything is computed in the bus's ``timezone`` setting, never the host's. Instants are
epoch seconds, as the database stores them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import holidays

from bus.directory import YamlDocument, read_yaml, schema_problems, sort_problems
from bus.errors import ConfigInvalid

__all__ = ["CALENDAR_SCHEMA", "DEFAULT_OFFICE_HOURS", "WorkCalendar", "load_calendar",
           "parse_calendar"]

CALENDAR_SCHEMA: Final = "calendar.schema.json"
DEFAULT_OFFICE_HOURS: Final = ((time(7, 30), time(11, 30)), (time(13, 0), time(17, 0)))
_WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                    "sunday")
_MAX_DAYS: Final = 3660
"""How far arithmetic walks before deciding the calendar has no working time left."""
_DAYS_KEPT: Final = 4096


@lru_cache(maxsize=64)
def _public_holidays(country: str, year: int) -> tuple[dict[date, str], frozenset[date]]:
    table = holidays.country_holidays(country, years=year)
    days = {d: str(name) for d, name in table.items()}
    return days, frozenset(d for d in table.weekend_workdays if d.year == year)


@dataclass(frozen=True)
class WorkCalendar:
    """A country's public holidays, office hours and an administrator's overrides."""

    zone: tzinfo
    country: str = "VN"
    office_hours: tuple[tuple[time, time], ...] = DEFAULT_OFFICE_HOURS
    weekend: frozenset[int] = frozenset({5, 6})
    days_off: Mapping[date, str] = field(default_factory=dict)
    working_days: Mapping[date, str] = field(default_factory=dict)
    _months: dict[tuple[int, int], int] = field(default_factory=dict, compare=False,
                                                 repr=False)
    _days: dict[date, tuple[tuple[float, float], ...]] = field(
        default_factory=dict, compare=False, repr=False)
    _runs: dict[date, _Run] = field(default_factory=dict, compare=False, repr=False)

    @property
    def day_seconds(self) -> float:
        """Office time in one working day: what "one working day" adds."""
        return sum(_seconds(end) - _seconds(start) for start, end in self.office_hours)

    def holiday(self, day: date) -> str | None:
        """Why ``day`` is off although a weekday (None when it is not)."""
        if day in self.days_off:
            return self.days_off[day]
        return _public_holidays(self.country, day.year)[0].get(day)

    def is_working_day(self, day: date) -> bool:
        if day in self.working_days:
            return True
        if day in self.days_off:
            return False
        named, swapped = _public_holidays(self.country, day.year)
        if day in named:
            return False
        return day.weekday() not in self.weekend or day in swapped

    def segments(self, day: date) -> tuple[tuple[float, float], ...]:
        """Office periods of ``day`` as epoch-second intervals; empty on a day off.

        Kept per day (the calendar is immutable): every accepted document's deadlines
        walk the same few days, and the zone arithmetic was most of their cost."""
        found = self._days.get(day)
        if found is None:
            if len(self._days) >= _DAYS_KEPT:
                self._days.clear()
            found = self._days[day] = () if not self.is_working_day(day) else tuple(
                (datetime.combine(day, start, self.zone).timestamp(),
                 datetime.combine(day, end, self.zone).timestamp())
                for start, end in self.office_hours)
        return found

    def add_working_seconds(self, instant: float, seconds: float) -> float:
        """The instant when ``seconds`` of office time have passed since ``instant``.

        Time outside office hours does not count, so a document arriving on Friday at
        16:00 with four working hours is due on Monday at 10:30 (07:30 start). For
        ``seconds`` > 0 the answer always lies within office hours of a working day.
        """
        if seconds < 0:
            raise ValueError("cannot add a negative working time")
        if seconds == 0:
            return instant
        left = seconds
        day = datetime.fromtimestamp(instant, self.zone).date()
        for start, end in self.segments(day):
            if end <= instant:
                continue
            begin = max(start, instant)
            if end - begin >= left:
                return begin + left
            left -= end - begin
        run = self._run_after(day, left)
        found = bisect_left(run.reach, left)
        return run.starts[found] + (left - run.before[found])

    def _run_after(self, day: date, need: float) -> _Run:
        """The office periods of the days after ``day``, with their running totals, far
        enough to hold ``need`` seconds; kept per day.

        Every document accepted on one day walks the same working days for each of its
        deadlines (ten working days are two weeks of days); a search of the totals does
        the same in a few steps. Office seconds are whole numbers, so the totals are exact
        and the answer is the one a day-by-day walk gives, to the last bit."""
        run = self._runs.get(day)
        if run is not None and run.reach and run.reach[-1] >= need:
            return run
        want = max(need, 2 * run.reach[-1] if run is not None and run.reach else 0.0)
        starts: list[float] = []
        before: list[float] = []
        reach: list[float] = []
        total = 0.0
        current = day
        for _ in range(_MAX_DAYS - 1):
            current += timedelta(days=1)
            for start, end in self.segments(current):
                starts.append(start)
                before.append(total)
                total += end - start
                reach.append(total)
            if total >= want:
                break
        if total < need:
            raise ValueError(f"no working time within {_MAX_DAYS} days: check "
                             f"{self.country} calendar overrides and office hours")
        if len(self._runs) >= _DAYS_KEPT:
            self._runs.clear()
        found = self._runs[day] = _Run(tuple(starts), tuple(before), tuple(reach))
        return found

    def add_working_days(self, instant: float, days: float) -> float:
        return self.add_working_seconds(instant, days * self.day_seconds)

    def add_working_hours(self, instant: float, hours: float) -> float:
        return self.add_working_seconds(instant, hours * 3600.0)

    def working_seconds(self, start: float, end: float) -> float:
        """Office time between two instants (negative when ``end`` is before ``start``).

        Whole days in between count by month from a cache, so how late a deadline of
        years ago is costs about as little as one of yesterday.
        """
        if end < start:
            return -self.working_seconds(end, start)
        first = datetime.fromtimestamp(start, self.zone).date()
        last = datetime.fromtimestamp(end, self.zone).date()
        total = sum(max(0.0, min(high, end) - max(low, start))
                    for low, high in self.segments(first))
        if last == first:
            return total
        total += sum(max(0.0, min(high, end) - max(low, start))
                     for low, high in self.segments(last))
        middle = self._working_days(first + timedelta(days=1), last - timedelta(days=1))
        return total + middle * self.day_seconds

    def _working_days(self, first: date, last: date) -> int:
        """Working days in [first, last]."""
        count, day = 0, first
        while day <= last:
            month_end = _month_end(day)
            if day.day == 1 and month_end <= last:
                key = (day.year, day.month)
                if key not in self._months:
                    self._months[key] = sum(self.is_working_day(day.replace(day=n))
                                            for n in range(1, month_end.day + 1))
                count += self._months[key]
                day = month_end + timedelta(days=1)
                continue
            count += self.is_working_day(day)
            day += timedelta(days=1)
        return count

    def working_days_between(self, start: float, end: float) -> float:
        return self.working_seconds(start, end) / self.day_seconds

    def end_of_day(self, day: date) -> float:
        """Close of office on ``day``, or on the last working day before it: a due date
        that falls on a holiday means the work is handed in before the holiday."""
        for _ in range(_MAX_DAYS):
            spans = self.segments(day)
            if spans:
                return spans[-1][1]
            day -= timedelta(days=1)
        raise ValueError(f"no working day within {_MAX_DAYS} days before {day}")


@dataclass(frozen=True)
class _Run:
    """Office periods after a day: ``reach[i]`` is the office time up to the end of
    period ``i``, ``before[i]`` up to its start."""

    starts: tuple[float, ...]
    before: tuple[float, ...]
    reach: tuple[float, ...]


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def _seconds(moment: time) -> float:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def parse_calendar(doc: YamlDocument, zone: tzinfo) -> WorkCalendar:
    """A checked calendar from parsed YAML; ConfigInvalid with every problem and its line."""
    problems = schema_problems(doc, CALENDAR_SCHEMA)
    if problems:
        raise ConfigInvalid(sort_problems(problems), file=doc.file)
    data: dict[str, Any] = doc.data or {}
    hours: list[tuple[time, time]] = []
    for index, span in enumerate(data.get("office_hours") or []):
        start, end = (_clock(part) for part in span.split("-"))
        if end <= start:
            problems.append(doc.problem(("office_hours", index),
                                        f"{span!r}: the period ends before it starts"))
        elif hours and start < hours[-1][1]:
            problems.append(doc.problem(("office_hours", index),
                                        f"{span!r} overlaps or precedes the period before it; "
                                        "list periods in order, e.g. 07:30-11:30, 13:00-17:00"))
        hours.append((start, end))
    overrides: dict[str, dict[date, str]] = {"days_off": {}, "working_days": {}}
    seen: dict[date, str] = {}
    for key, table in overrides.items():
        for index, entry in enumerate(data.get(key) or []):
            where = (key, index, "date")
            try:
                day = date.fromisoformat(entry["date"])
            except ValueError:
                problems.append(doc.problem(where, f"{entry['date']!r} is not a date "
                                                   "(write YYYY-MM-DD)"))
                continue
            if day in seen:
                problems.append(doc.problem(where, f"{day} is listed twice (also in "
                                                   f"{seen[day]}); keep one entry"))
                continue
            seen[day] = key
            table[day] = entry.get("reason") or key.replace("_", " ")
    country = data.get("country", "VN")
    if country not in holidays.list_supported_countries():
        problems.append(doc.problem(("country",), f"{country!r} is not a country the holidays "
                                                  "library knows (VN for Vietnam)"))
    weekend = frozenset(_WEEKDAYS.index(name) for name in data.get("weekend", []))
    if "weekend" not in data:
        weekend = frozenset({5, 6})
    if problems:
        raise ConfigInvalid(sort_problems(problems), file=doc.file)
    return WorkCalendar(zone=zone, country=country,
                        office_hours=tuple(hours) or DEFAULT_OFFICE_HOURS, weekend=weekend,
                        days_off=overrides["days_off"], working_days=overrides["working_days"])


def load_calendar(path: str | Path, zone: tzinfo) -> WorkCalendar:
    doc, problems = read_yaml(path)
    if doc is None:
        raise ConfigInvalid(problems, file=str(path))
    return parse_calendar(doc, zone)

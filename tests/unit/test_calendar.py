"""The working-day calendar: Vietnam's holidays, office hours, overrides, arithmetic."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import ConfigInvalid
from bus.lifecycle.calendar import WorkCalendar, load_calendar
from bus.settings import REPO_ROOT

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkCalendar(zone=VN)


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=VN).timestamp()


def local(instant: float) -> datetime:
    return datetime.fromtimestamp(instant, VN).replace(tzinfo=None)


def test_tet_2026_is_off_and_work_resumes_after_it() -> None:
    for day in range(16, 21):  # Mon 16 to Fri 20 February 2026
        assert not CAL.is_working_day(date(2026, 2, day)), day
    assert CAL.is_working_day(date(2026, 2, 13))
    assert CAL.is_working_day(date(2026, 2, 23))
    # Friday 13 Feb 15:00 + 4 office hours: 2 h that Friday, 2 h on Monday 23 Feb.
    assert local(CAL.add_working_hours(at(2026, 2, 13, 15), 4)) == datetime(2026, 2, 23, 9, 30)


def test_tet_2027_follows_the_lunar_calendar() -> None:
    # Tết 2027 is 6 February; the weekdays around it are off, the week after works.
    off = [date(2027, 2, d) for d in (4, 5, 8, 9, 10)]
    assert all(not CAL.is_working_day(d) for d in off)
    assert CAL.holiday(date(2027, 2, 8)) is not None
    assert CAL.is_working_day(date(2027, 2, 11))
    assert local(CAL.add_working_days(at(2027, 2, 3, 10), 1)) == datetime(2027, 2, 11, 10)


def test_hung_kings_day_on_a_sunday_is_observed_on_monday() -> None:
    assert not CAL.is_working_day(date(2026, 4, 27))
    assert CAL.is_working_day(date(2026, 4, 28))


def test_a_saturday_the_government_swapped_is_a_working_day() -> None:
    # Saturday 26 April 2025 was worked in exchange for Friday 2 May 2025 off.
    assert CAL.is_working_day(date(2025, 4, 26))
    assert not CAL.is_working_day(date(2025, 5, 2))
    assert not CAL.is_working_day(date(2025, 4, 19))  # an ordinary Saturday


def test_office_hours_skip_the_lunch_break_and_the_night() -> None:
    assert local(CAL.add_working_hours(at(2026, 3, 10, 11), 1)) == datetime(2026, 3, 10, 13, 30)
    assert local(CAL.add_working_hours(at(2026, 3, 10, 20), 1)) == datetime(2026, 3, 11, 8, 30)
    assert CAL.working_seconds(at(2026, 3, 10, 11), at(2026, 3, 10, 14)) == 5400
    assert CAL.day_seconds == 8 * 3600


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_make_up_saturday_and_extra_day_off_from_the_file(tmp_path: Path) -> None:
    cal = load_calendar(_write(tmp_path, """\
version: 1
days_off:
  - {date: 2027-04-29, reason: bridge day before 30/4}
working_days:
  - {date: 2027-05-08, reason: make-up for 29/4}
"""), VN)
    assert not cal.is_working_day(date(2027, 4, 29))
    assert cal.holiday(date(2027, 4, 29)) == "bridge day before 30/4"
    assert cal.is_working_day(date(2027, 5, 8))
    # Friday 7 May 16:00 + 2 h: 1 h on Friday, 1 h on the make-up Saturday.
    assert local(cal.add_working_hours(at(2027, 5, 7, 16), 2)) == datetime(2027, 5, 8, 8, 30)
    assert local(CAL.add_working_hours(at(2027, 5, 7, 16), 2)) == datetime(2027, 5, 10, 8, 30)


def test_office_hours_are_configurable(tmp_path: Path) -> None:
    cal = load_calendar(_write(tmp_path, 'version: 1\noffice_hours: ["08:00-12:00"]\n'), VN)
    assert cal.day_seconds == 4 * 3600
    assert local(cal.add_working_days(at(2026, 3, 10, 9), 1)) == datetime(2026, 3, 11, 9)


def test_mistakes_are_reported_with_their_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
version: 1
office_hours:
  - "13:00-17:00"
  - "07:30-11:30"
days_off:
  - {date: 2027-02-30}
  - {date: 2027-05-03}
working_days:
  - {date: 2027-05-03}
weekend: [saturday, sundy]
""")
    with pytest.raises(ConfigInvalid) as raised:
        load_calendar(path, VN)
    [problem] = raised.value.problems
    assert problem.line == 10 and "'sundy' is not one of" in problem.message
    with pytest.raises(ConfigInvalid) as raised:
        load_calendar(_write(tmp_path, """\
version: 1
office_hours:
  - "13:00-17:00"
  - "07:30-11:30"
days_off:
  - {date: 2027-02-30}
  - {date: 2027-05-03}
working_days:
  - {date: 2027-05-03}
"""), VN)
    found = {p.line: p.message for p in raised.value.problems}
    assert set(found) == {4, 6, 9}, found
    assert "overlaps or precedes" in found[4]
    assert "not a date" in found[6]
    assert "listed twice" in found[9]


def test_the_shipped_calendar_loads() -> None:
    cal = load_calendar(REPO_ROOT / "config" / "calendar.yaml", VN)
    assert cal.country == "VN" and cal.day_seconds == 8 * 3600


_instants = st.integers(min_value=int(at(2025, 1, 1)), max_value=int(at(2028, 12, 31))) \
    .map(float)
_hours = st.integers(min_value=0, max_value=400 * 60).map(lambda m: m * 60.0)


@settings(max_examples=150, deadline=None)
@given(start=_instants, seconds=_hours)
def test_adding_then_measuring_gives_back_the_working_time(start: float, seconds: float) -> None:
    end = CAL.add_working_seconds(start, seconds)
    assert CAL.working_seconds(start, end) == pytest.approx(seconds, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(start=_instants, a=_hours, b=_hours)
def test_adding_is_monotonic(start: float, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert CAL.add_working_seconds(start, low) <= CAL.add_working_seconds(start, high)


@settings(max_examples=150, deadline=None)
@given(start=_instants, seconds=_hours.filter(lambda s: s > 0))
def test_a_deadline_never_lands_on_a_day_off(start: float, seconds: float) -> None:
    end = local(CAL.add_working_seconds(start, seconds))
    assert CAL.is_working_day(end.date())
    assert CAL.holiday(end.date()) is None
    office = [(datetime.combine(end.date(), s), datetime.combine(end.date(), e))
              for s, e in CAL.office_hours]
    assert any(s < end <= e for s, e in office)


@settings(max_examples=60, deadline=None)
@given(day=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)))
def test_end_of_day_is_the_close_of_the_last_working_day(day: date) -> None:
    closing = local(CAL.end_of_day(day))
    assert closing.date() <= day and CAL.is_working_day(closing.date())
    assert closing.time() == CAL.office_hours[-1][1]
    gap = closing.date() + timedelta(days=1)
    while gap <= day:
        assert not CAL.is_working_day(gap)
        gap += timedelta(days=1)


@settings(max_examples=40, deadline=None)
@given(start=_instants, days=st.integers(min_value=1, max_value=800))
def test_measuring_years_counts_every_working_day(start: float, days: int) -> None:
    end = CAL.add_working_days(start, days)
    assert CAL.working_days_between(start, end) == pytest.approx(days, abs=1e-9)


def test_a_days_office_periods_are_computed_once_and_stay_right() -> None:
    """Every accepted document's deadlines walk the same days: their zone arithmetic is
    kept per day, and the kept answer is the one the day's hours give."""
    cal = WorkCalendar(zone=VN)
    monday, sunday = date(2026, 3, 2), date(2026, 3, 1)
    first = cal.segments(monday)
    assert cal.segments(monday) is first
    assert first == ((at(2026, 3, 2, 7, 30), at(2026, 3, 2, 11, 30)),
                     (at(2026, 3, 2, 13), at(2026, 3, 2, 17)))
    assert cal.segments(sunday) == ()
    assert local(cal.add_working_hours(at(2026, 2, 27, 16), 4)) == datetime(2026, 3, 2, 10, 30)


def _walked(cal: WorkCalendar, instant: float, seconds: float) -> float:
    """The day-by-day walk the calendar's arithmetic must agree with, to the last bit."""
    left = seconds
    day = datetime.fromtimestamp(instant, cal.zone).date()
    while True:
        for start, end in cal.segments(day):
            if end <= instant:
                continue
            begin = max(start, instant)
            if end - begin >= left:
                return begin + left
            left -= end - begin
        day += timedelta(days=1)


_fractional = st.floats(min_value=at(2025, 1, 1), max_value=at(2028, 12, 31),
                        allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(start=_fractional, seconds=st.integers(min_value=1, max_value=900 * 60).map(
    lambda m: m * 60.0))
def test_adding_gives_exactly_what_walking_day_by_day_gives(start: float,
                                                            seconds: float) -> None:
    cal = WorkCalendar(zone=VN, days_off={date(2026, 3, 4): "flood"},
                       working_days={date(2026, 3, 7): "make-up Saturday"})
    assert cal.add_working_seconds(start, seconds) == _walked(cal, start, seconds)
    # and again from the kept periods, for a shorter and a longer time
    for again in (seconds / 3, seconds * 2):
        assert cal.add_working_seconds(start, again) == _walked(cal, start, again)


def test_the_days_after_acceptance_are_walked_once_per_day() -> None:
    """A document's three deadlines (and every other document's that day) reuse one walk
    of the days ahead: 10 working days once took 14 days' look-ups per deadline."""
    cal = WorkCalendar(zone=VN)
    looked: list[date] = []
    real = WorkCalendar.segments

    def counting(self: WorkCalendar, day: date) -> tuple[tuple[float, float], ...]:
        looked.append(day)
        return real(self, day)

    start = at(2026, 3, 2, 9, 15)
    expected = [_walked(cal, start + n, s) for n in (0, 60) for s in (4 * 3600.0, 8 * 3600.0,
                                                                      80 * 3600.0)]
    setattr(WorkCalendar, "segments", counting)  # noqa: B010 - a counting stand-in
    try:
        got = [cal.add_working_seconds(start + n, s) for n in (0, 60)
               for s in (4 * 3600.0, 8 * 3600.0, 80 * 3600.0)]
    finally:
        setattr(WorkCalendar, "segments", real)  # noqa: B010
    assert got == expected
    # the day itself for each of the six, and the fortnight ahead once
    assert len(looked) <= 6 + 20, looked
    assert local(got[2]) == datetime(2026, 3, 16, 9, 15)

"""Dates and timestamps that exist: the XSD checks their form, not the calendar.

``date(y, m, d)`` refusing the value is the existence check; only then is the value
taken apart again to tell the sender what exactly is wrong (February 2019 has 28 days).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Final

from lxml import etree

from bus.edxml.findings import Findings, schema_error, show
from bus.edxml.tolerance import DAY_FIRST_DATES, tolerated

_DATE_RE: Final = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})")
_DAY_FIRST_RE: Final = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")
_TIMESTAMP_RE: Final = re.compile(
    r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
)
_date_from_iso: Final = date.fromisoformat
_datetime_from_iso: Final = datetime.fromisoformat
_DATE: Final = "yyyy/MM/dd"
_TIMESTAMP: Final = "yyyy/MM/dd HH:mm:ss"
_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_NAMES: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def _calendar_problem(label: str, value: str, ymd: tuple[int, int, int], expected: str) -> str:
    year, month, day = ymd
    if year == 0 or not 1 <= month <= 12:
        return (
            f"{label} {show(value)} is not a real date; expected {expected} with a year "
            "from 0001 and a month from 01 to 12."
        )
    days = _days_in_month(year, month)
    if not 1 <= day <= days:
        return (
            f"{label} {show(value)} is not a real date: {_MONTH_NAMES[month - 1]} {year} "
            f"has {days} days. Expected an existing date as {expected}."
        )
    return (
        f"{label} {show(value)} is not a real time of day; expected {expected} "
        "with HH from 00 to 23, mm and ss from 00 to 59."
    )


def to_date(el: etree._Element, label: str, text: str, *, required: bool,
            findings: Findings | None = None) -> date | None:
    """The date ``text`` (the value of ``el``) names, None if empty and optional.

    With ``/`` at 4 and 7 and nothing else allowed around them, ``fromisoformat`` (in C)
    accepts exactly the ASCII-digit dates the expression below describes, three times
    faster; the expression only runs to explain a refusal. Where ``findings`` is given,
    a dd/MM/yyyy date is read too, with a notice saying what receivers get instead.
    """
    if len(text) == 10 and text[4] == "/" and text[7] == "/":
        # A date fromisoformat accepts starts and ends with a digit: stripping the text
        # could not have changed it.
        try:
            return _date_from_iso(text.replace("/", "-"))
        except ValueError:
            pass
    value = text.strip()
    if len(value) == 10 and value[4] == "/" and value[7] == "/":
        try:
            return _date_from_iso(value.replace("/", "-"))
        except ValueError:
            pass
    match = _DATE_RE.fullmatch(value)
    if match is not None:
        ymd = (int(match[1]), int(match[2]), int(match[3]))
        raise schema_error(el, _calendar_problem(label, value, ymd, _DATE))
    if findings is not None:
        day_first = _DAY_FIRST_RE.fullmatch(value)
        if day_first is not None:
            return _day_first(el, label, value, day_first, findings)
    if not value:
        if required:
            raise schema_error(
                el, f"{label} is empty; expected a date as yyyy/MM/dd, e.g. 2019/01/17."
            )
        return None
    raise schema_error(
        el, f"{label} is {show(value)}; expected a date as yyyy/MM/dd, e.g. 2019/01/17."
    )


def _day_first(el: etree._Element, label: str, value: str, match: re.Match[str],
               findings: Findings) -> date:
    """Tolerance rule day-first-dates: read dd/MM/yyyy, tell what receivers get."""
    ymd = (int(match[3]), int(match[2]), int(match[1]))
    try:
        found = date(*ymd)
    except ValueError:
        raise schema_error(el, _calendar_problem(
            label, value, ymd, "dd/MM/yyyy (better: yyyy/MM/dd)")) from None
    normal = f"{match[3]}/{match[2]}/{match[1]}"
    tolerated(findings, DAY_FIRST_DATES, el,
              f"{label} {value!r} is written dd/MM/yyyy; receivers get {normal!r} "
              "(yyyy/MM/dd, as QCVN 102:2016 writes dates). The sender's bytes are kept.",
              field=label, original=value, normalised=normal)
    return found


def day_first_text(value: str) -> str | None:
    """``value`` as yyyy/MM/dd when it is a dd/MM/yyyy date, else None."""
    match = _DAY_FIRST_RE.fullmatch(value.strip())
    return f"{match[3]}/{match[2]}/{match[1]}" if match is not None else None


def _timestamp_shaped(value: str) -> bool:
    return (
        len(value) == 19 and value[4] == "/" and value[7] == "/" and value[10] == " "
        and value[13] == ":" and value[16] == ":"
    )


def to_datetime(el: etree._Element, label: str, text: str) -> datetime:
    """The moment ``text`` (the value of ``el``) names, or ``SchemaInvalid``; see to_date."""
    if _timestamp_shaped(text):  # unstripped first, as in to_date
        try:
            return _datetime_from_iso(text.replace("/", "-"))
        except ValueError:
            pass
    value = text.strip()
    if _timestamp_shaped(value):
        try:
            return _datetime_from_iso(value.replace("/", "-"))
        except ValueError:
            pass
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise schema_error(
            el, f"{label} is {show(value)}; expected {_TIMESTAMP}, e.g. 2018/09/28 17:25:11."
        )
    ymd = (int(match[1]), int(match[2]), int(match[3]))
    raise schema_error(el, _calendar_problem(label, value, ymd, _TIMESTAMP))

"""SLA rules: which rule a document gets, how DueDate bears on it, and checked files."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bus.errors import ConfigInvalid
from bus.lifecycle.deadlines import DocumentFacts, load_policy
from bus.settings import REPO_ROOT

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = "version: 1\n"
RULES = """\
version: 1
rules:
  - name: decision-hoa-toc
    match: {document_type: 1, urgency: hỏa tốc}
    arrival: 30m
    completion: 1d
  - name: urgent
    match: {urgency: [khan, thuong_khan]}
    arrival: 2h
    acceptance: 1d
    completion: 5d
  - name: axis
    match: {destination: national_axis}
    arrival: 1d
    due_date: set
    completion: 20d
  - name: normal
    arrival: 4h
    acceptance: 1d
    completion: 10d
"""


def _policy(tmp_path: Path, rules: str = RULES, calendar: str = CALENDAR):  # type: ignore[no-untyped-def]
    (tmp_path / "calendar.yaml").write_text(calendar, encoding="utf-8")
    (tmp_path / "deadlines.yaml").write_text(rules, encoding="utf-8")
    return load_policy(tmp_path / "calendar.yaml", tmp_path / "deadlines.yaml", VN)


def local(instant: float | None) -> datetime:
    assert instant is not None
    return datetime.fromtimestamp(instant, VN).replace(tzinfo=None)


MONDAY_9 = datetime(2026, 3, 9, 9, tzinfo=VN).timestamp()


def test_first_matching_rule_by_type_urgency_and_destination(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    name = lambda **facts: (policy.rule_for(DocumentFacts(**facts)) or None).name  # type: ignore[union-attr]  # noqa: E731
    assert name(document_type=1, priority=3) == "decision-hoa-toc"
    assert name(document_type=2, priority=3) == "normal"
    assert name(priority=1) == "urgent" and name(priority=2) == "urgent"
    assert name(priority=0, destination="national_axis") == "axis"
    assert name(priority=1, destination="national_axis") == "urgent"
    assert name() == "normal"


def test_stage_without_a_limit_has_no_deadline(tmp_path: Path) -> None:
    found = _policy(tmp_path).deadlines(MONDAY_9, DocumentFacts(document_type=1, priority=3))
    assert found.rule == "decision-hoa-toc"
    assert local(found.due["arrival"]) == datetime(2026, 3, 9, 9, 30)
    assert found.due["acceptance"] is None
    assert local(found.due["completion"]) == datetime(2026, 3, 10, 9)


def test_due_date_caps_the_completion_deadline(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    earlier = policy.deadlines(MONDAY_9, DocumentFacts(due_date=date(2026, 3, 13)))
    assert local(earlier.due["completion"]) == datetime(2026, 3, 13, 17)
    later = policy.deadlines(MONDAY_9, DocumentFacts(due_date=date(2026, 6, 1)))
    assert local(later.due["completion"]) == datetime(2026, 3, 23, 9)  # rule's 10 days
    # A due date on a Sunday means close of office on the Friday before.
    sunday = policy.deadlines(MONDAY_9, DocumentFacts(due_date=date(2026, 3, 15)))
    assert local(sunday.due["completion"]) == datetime(2026, 3, 13, 17)


def test_due_date_set_replaces_the_rule(tmp_path: Path) -> None:
    found = _policy(tmp_path).deadlines(
        MONDAY_9, DocumentFacts(destination="national_axis", due_date=date(2026, 6, 1)))
    assert found.rule == "axis"
    assert local(found.due["completion"]) == datetime(2026, 6, 1, 17)


def test_due_date_alone_when_no_rule_matches(tmp_path: Path) -> None:
    policy = _policy(tmp_path, rules="version: 1\nrules:\n  - name: only-decisions\n"
                                     "    match: {document_type: 1}\n    arrival: 1h\n")
    found = policy.deadlines(MONDAY_9, DocumentFacts(document_type=2, due_date=date(2026, 3, 20)))
    assert found.rule is None
    assert found.due["arrival"] is None
    assert local(found.due["completion"]) == datetime(2026, 3, 20, 17)


def test_mistakes_in_both_files_are_listed_with_lines(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as raised:
        _policy(tmp_path, calendar="version: 1\nweekend: [funday]\n", rules="""\
version: 1
rules:
  - name: everything
    arrival: 4h
  - name: urgent
    match: {urgency: khan}
    arrival: 2 hours
  - name: urgent
    match: {urgency: very}
""")
    found = [(Path(p.file or "").name, p.line) for p in raised.value.problems]
    assert ("calendar.yaml", 2) in found
    assert ("deadlines.yaml", 7) in found  # "2 hours"
    assert ("deadlines.yaml", 9) in found  # unknown urgency


def test_semantic_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as raised:
        _policy(tmp_path, rules="""\
version: 1
rules:
  - name: everything
    arrival: 4h
  - name: slow
    match: {priority: 0}
    arrival: 2d
    acceptance: 1d
  - name: slow
    match: {priority: 1}
    arrival: 0m
""")
    by_line = {p.line: p.message for p in raised.value.problems}
    assert "matches every document" in by_line[3]
    assert "must not decrease" in by_line[5]
    assert "used twice" in by_line[9]
    assert "not a working time" in by_line[11]


def test_the_shipped_rules_load() -> None:
    policy = load_policy(REPO_ROOT / "config" / "calendar.yaml",
                         REPO_ROOT / "config" / "deadlines.yaml", VN)
    assert [r.name for r in policy.rules][-1] == "normal"
    assert (policy.rule_for(DocumentFacts(priority=3)) or None).name == "hoa-toc"  # type: ignore[union-attr]

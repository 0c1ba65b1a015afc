"""The agency directory: queries, successor resolution, and every load problem on its line."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.directory import (
    Agency,
    Directory,
    Successor,
    System,
    load_directory,
    parse_yaml,
)
from bus.errors import ConfigInvalid, Problem

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "directory.yaml"


def line_of(text: str, marker: str) -> int:
    """Line number of the only line containing ``marker`` (markers are YAML comments)."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if marker in line]
    assert len(found) == 1, f"marker {marker!r} found {len(found)} times"
    return found[0]


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    path = tmp_path / "directory.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigInvalid) as caught:
        load_directory(path)
    assert all(p.file == str(path) for p in caught.value.problems)
    return caught.value.problems


def one_problem(tmp_path: Path, text: str, marker: str, *words: str) -> Problem:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, [str(p) for p in problems]
    [problem] = problems
    assert problem.line == line_of(text, marker), str(problem)
    for word in words:
        assert word in problem.message, str(problem)
    return problem


VALID = """\
version: 1
systems:
  eoffice: {destination: eoffice}
  hcm_egov: {destination: hcm_egov, description: communes}
agencies:
  "000.00.12.H37": {name: Sở TT&TT, system: eoffice}
  "000.00.31.H37": {name: Xã 31, system: hcm_egov, parent: "000.00.00.H37"}
  "000.00.33.H37": {name: Xã 33 cũ, system: hcm_egov}
successors:
  "000.00.33.H37": {replaced_by: "000.00.31.H37", effective: 2025-07-01, note: merger}
"""


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    path = tmp_path / "directory.yaml"
    path.write_text(VALID, encoding="utf-8")
    return load_directory(path)


# ----------------------------------------------------------------------------- queries


def test_host_and_destination(directory: Directory) -> None:
    assert directory.host_of("000.00.12.H37") == "eoffice"
    assert directory.host_of("000.00.00.G22") is None
    assert directory.destination_of("hcm_egov") == "hcm_egov"
    assert directory.destination_of("nowhere") is None


def test_hosted_by_and_hosts(directory: Directory) -> None:
    assert directory.hosted_by("hcm_egov") == frozenset({"000.00.31.H37", "000.00.33.H37"})
    assert directory.hosted_by("nowhere") == frozenset()
    assert directory.hosts("eoffice", "000.00.12.H37")
    assert not directory.hosts("hcm_egov", "000.00.12.H37")
    assert not directory.hosts("nowhere", "000.00.12.H37")


def test_entries_keep_their_lines(directory: Directory) -> None:
    assert directory.systems["hcm_egov"].line == line_of(VALID, "communes")
    assert directory.agencies["000.00.31.H37"].parent == "000.00.00.H37"
    assert directory.agencies["000.00.31.H37"].line == line_of(VALID, "Xã 31")
    assert len(directory) == 3


def test_resolve_before_the_effective_date_keeps_the_old_code(directory: Directory) -> None:
    assert directory.resolve("000.00.33.H37", date(2025, 6, 30)) == ("000.00.33.H37", ())


def test_resolve_from_the_effective_date_gives_the_successor(directory: Directory) -> None:
    code, trail = directory.resolve("000.00.33.H37", date(2025, 7, 1))
    assert code == "000.00.31.H37"
    assert trail == ("000.00.33.H37 merged into 000.00.31.H37 on 2025-07-01: merger",)


def test_resolve_leaves_other_codes_alone(directory: Directory) -> None:
    assert directory.resolve("000.00.00.G22", date(2030, 1, 1)) == ("000.00.00.G22", ())


def test_chains_resolve_each_step_on_its_own_date() -> None:
    directory = Directory(
        [System("s", "s")],
        [Agency("C", "c", "s")],
        [Successor("A", "B", date(2025, 1, 1)), Successor("B", "C", date(2026, 1, 1))],
    )
    assert directory.resolve("A", date(2024, 12, 31))[0] == "A"
    assert directory.resolve("A", date(2025, 6, 1)) == ("B", ("A merged into B on 2025-01-01",))
    code, trail = directory.resolve("A", date(2026, 1, 1))
    assert code == "C" and len(trail) == 2


def test_a_later_first_step_holds_back_the_whole_chain() -> None:
    directory = Directory(
        [System("s", "s")],
        [],
        [Successor("A", "B", date(2026, 1, 1)), Successor("B", "C", date(2025, 1, 1))],
    )
    assert directory.resolve("A", date(2025, 6, 1))[0] == "A"
    assert directory.resolve("B", date(2025, 6, 1))[0] == "C"


@pytest.mark.parametrize(
    "pairs",
    [
        [("A", "A")],
        [("A", "B"), ("B", "A")],
        [("X", "A"), ("A", "B"), ("B", "C"), ("C", "A")],
    ],
    ids=["self", "two", "three-with-tail"],
)
def test_successor_cycles_are_refused(pairs: list[tuple[str, str]]) -> None:
    successors = [Successor(old, new, date(2025, 1, 1)) for old, new in pairs]
    with pytest.raises(ConfigInvalid) as caught:
        Directory([System("s", "s")], [], successors)
    [problem] = caught.value.problems
    assert "cycle" in problem.message
    assert "X" not in problem.message


def test_unknown_system_is_refused_at_construction() -> None:
    with pytest.raises(ConfigInvalid, match="did you mean 'eoffice'"):
        Directory([System("eoffice", "eoffice")], [Agency("000.00.12.H37", "x", "eofice")])


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(0, 800), min_size=1, max_size=6),
    day=st.integers(-10, 900),
)
def test_resolution_follows_exactly_the_steps_in_effect(steps: list[int], day: int) -> None:
    start = date(2024, 1, 1)
    codes = [f"000.00.{n:02d}.H37" for n in range(len(steps) + 1)]
    directory = Directory(
        [System("s", "s")],
        [Agency(codes[-1], "last", "s")],
        [
            Successor(codes[i], codes[i + 1], start + timedelta(days=offset))
            for i, offset in enumerate(steps)
        ],
    )
    on = start + timedelta(days=day)
    expected = 0
    while expected < len(steps) and start + timedelta(days=steps[expected]) <= on:
        expected += 1
    code, trail = directory.resolve(codes[0], on)
    assert code == codes[expected]
    assert len(trail) == expected
    assert directory.resolve(codes[0], on) == (code, trail)


# ----------------------------------------------------------------------------- loading


def test_shipped_directory_loads() -> None:
    directory = load_directory(SHIPPED)
    assert directory.host_of("000.00.12.H37") == "eoffice"
    assert directory.host_of("000.00.00.H37") == "vnpt_ioffice"
    assert directory.host_of("000.00.31.H37") == directory.host_of("000.00.32.H37") == "hcm_egov"
    old = next(iter(directory.successors.values()))
    assert old.effective.year == 2025
    [new] = old.new
    assert directory.resolve(old.old, old.effective)[0] == new
    assert directory.host_of(new) is not None


def test_unknown_key_is_reported_with_a_suggestion(tmp_path: Path) -> None:
    text = VALID.replace(
        '"000.00.12.H37": {name: Sở TT&TT, system: eoffice}',
        '"000.00.12.H37":\n'
        "    name: Sở TT&TT\n"
        "    system: eoffice\n"
        '    parnet: "000.00.00.H37"  # <here>',
    )
    one_problem(tmp_path, text, "<here>", "unknown key 'parnet'", "did you mean 'parent'")


def test_missing_required_field(tmp_path: Path) -> None:
    text = VALID.replace(
        '"000.00.12.H37": {name: Sở TT&TT, system: eoffice}',
        '"000.00.12.H37": {name: Sở TT&TT}  # <here>',
    )
    one_problem(tmp_path, text, "<here>", "'system' is a required property")


def test_unknown_system_is_reported_on_the_agency_line(tmp_path: Path) -> None:
    text = VALID.replace(
        '"000.00.12.H37": {name: Sở TT&TT, system: eoffice}',
        '"000.00.12.H37": {name: Sở TT&TT, system: e_office}  # <here>',
    )
    problem = one_problem(tmp_path, text, "<here>", "unknown system 'e_office'", "'eoffice'")
    assert problem.path == "agencies/000.00.12.H37/system"


def test_bad_identifier_key_is_reported_on_its_line(tmp_path: Path) -> None:
    text = VALID.replace('"000.00.31.H37": {name: Xã 31', '"000.00 31.H37": {name: Xã 31')
    text = text.replace('parent: "000.00.00.H37"}', 'parent: "000.00.00.H37"}  # <here>')
    problem = one_problem(tmp_path, text, "<here>", "bad key")
    assert problem.path == "agencies/000.00 31.H37"


def test_impossible_date_is_reported(tmp_path: Path) -> None:
    text = VALID.replace("effective: 2025-07-01", "effective: 2025-02-30")
    text = text.replace("note: merger}", "note: merger}  # <here>")
    one_problem(tmp_path, text, "<here>", "2025-02-30 is not a real date")


def test_malformed_date_is_reported(tmp_path: Path) -> None:
    text = VALID.replace("effective: 2025-07-01", "effective: 1 July 2025")
    text = text.replace("note: merger}", "note: merger}  # <here>")
    one_problem(tmp_path, text, "<here>", "YYYY-MM-DD")


def test_cycle_is_reported_on_the_first_successor_line(tmp_path: Path) -> None:
    text = (
        VALID
        + '  "000.00.31.H37": {replaced_by: "000.00.33.H37", effective: 2026-01-01}  # <loop>\n'
    )
    problem = one_problem(tmp_path, text, "effective: 2025-07-01", "cycle")
    assert "000.00.33.H37 -> 000.00.31.H37 -> 000.00.33.H37" in problem.message


def test_duplicate_key_is_reported(tmp_path: Path) -> None:
    text = VALID.replace(
        "  hcm_egov: {destination: hcm_egov, description: communes}\n",
        "  hcm_egov: {destination: hcm_egov, description: communes}\n"
        "  hcm_egov: {destination: other}  # <here>\n",
    )
    problem = one_problem(tmp_path, text, "<here>", "duplicate key 'hcm_egov'")
    assert f"line {line_of(text, 'communes')}" in problem.message


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    text = VALID.replace(
        "  eoffice: {destination: eoffice}", "  eoffice: {destination: eoffice  # <here>"
    )
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1 and "YAML syntax error" in problems[0].message
    assert problems[0].line is not None and problems[0].line >= line_of(text, "<here>")


def test_wrong_version_and_missing_section(tmp_path: Path) -> None:
    text = "version: 2  # <version>\nsystems: {}\n"
    problems = problems_of(tmp_path, text)
    messages = [p.message for p in problems]
    assert any("'agencies' is a required property" in m for m in messages)
    assert any(p.line == 1 and "1 was expected" in p.message for p in problems)


def test_every_problem_is_collected_in_one_pass(tmp_path: Path) -> None:
    text = """\
version: 1
systems:
  eoffice: {destination: eoffice, colour: blue}  # <p1>
agencies:
  "000.00.12.H37": {name: Sở, system: nowhere}  # <p2>
  "000.00.13.H37": {system: eoffice}  # <p3>
successors:
  "A.1": {replaced_by: "A.1", effective: 2025-01-01}  # <p4>
  "B.1": {replaced_by: "C.1", effective: 2025-13-01}  # <p5>
"""
    problems = problems_of(tmp_path, text)
    assert [p.line for p in problems] == [line_of(text, f"<p{n}>") for n in range(1, 6)]


def test_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="file not found"):
        load_directory(tmp_path / "absent.yaml")


def test_empty_file_is_reported(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "# nothing yet\n")
    assert "None is not of type 'object'" in problems[0].message


def test_yaml_reader_keeps_codes_and_dates_as_text() -> None:
    doc, problems = parse_yaml("a:\n  01.10: 2025-07-01\n  list:\n    - x\n    - y\n", "t.yaml")
    assert doc is not None and not problems
    assert doc.data == {"a": {"01.10": "2025-07-01", "list": ["x", "y"]}}
    assert doc.line_of(("a", "list", 1)) == 5
    assert doc.line_of(("a", "list", 7)) == 3


def test_yaml_merge_keys_are_honoured() -> None:
    doc, problems = parse_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n", "t.yaml")
    assert doc is not None and not problems
    assert doc.data["other"] == {"x": 1, "y": 2}

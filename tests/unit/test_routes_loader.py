"""routes.yaml loading: the shipped files, every problem on its line, warnings, explain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bus.directory import Directory, load_directory
from bus.errors import ConfigInvalid, Problem
from bus.registry import available
from bus.routing import (
    DEFAULT_HOSTED,
    DEFAULT_RECALL,
    CodeMatch,
    Match,
    RetryPolicy,
    RouteTable,
    RoutingFacts,
    route,
)
from bus.routing.routes import ConfigWarning, check_routes, explain, load_routes, parse_routes

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ROUTES = REPO / "routes.yaml"
SHIPPED_DIRECTORY = REPO / "config" / "directory.yaml"
SCHEMAS = REPO / "schemas"
ADAPTERS = ["eoffice", "vnpt_ioffice", "hcm_egov", "national_axis", "http"]


def line_of(text: str, marker: str) -> int:
    """Line number of the only line containing ``marker`` (markers are YAML comments)."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if marker in line]
    assert len(found) == 1, f"marker {marker!r} found {len(found)} times"
    return found[0]


BASE = """\
version: 1
destinations:
  eoffice: {adapter: eoffice, options: {url: "http://127.0.0.1:1/x", timeout_s: 5}}
  hcm_egov: {adapter: hcm_egov}
  national_axis: {adapter: national_axis}
  archive: {adapter: http}
defaults:
  outside: national_axis
  retry: {attempts: 8, first_delay_s: 30, max_delay_s: 3600}
rules:
  - name: revocations-to-archive
    match: {kind: edoc, business: revoke}
    copy_to: [archive]
"""


def problems(text: str, **kwargs: Any) -> list[Problem]:
    with pytest.raises(ConfigInvalid) as caught:
        parse_routes(text, **kwargs)
    return caught.value.problems


def one_problem(text: str, marker: str, *words: str, **kwargs: Any) -> Problem:
    found = problems(text, **kwargs)
    assert len(found) == 1, [str(p) for p in found]
    [problem] = found
    assert problem.line == line_of(text, marker), str(problem)
    assert problem.file == "routes.yaml"
    for word in words:
        assert word in problem.message, str(problem)
    return problem


def with_rules(*lines: str) -> str:
    return BASE + "".join(line + "\n" for line in lines)


@pytest.fixture(scope="module")
def shipped_directory() -> Directory:
    return load_directory(SHIPPED_DIRECTORY)


@pytest.fixture(scope="module")
def shipped_table(shipped_directory: Directory) -> RouteTable:
    return load_routes(SHIPPED_ROUTES, directory=shipped_directory, known_adapters=ADAPTERS)


# ----------------------------------------------------------------------------- shipped files


def test_shipped_files_load_cleanly(shipped_table: RouteTable) -> None:
    assert shipped_table.warnings == ()
    assert set(shipped_table.destinations) == {
        "eoffice",
        "vnpt_ioffice",
        "hcm_egov",
        "national_axis",
        "archive",
    }
    installed = set(available())
    for destination in shipped_table.destinations.values():
        assert destination.adapter in installed, destination.name
    assert shipped_table.defaults.outside == "national_axis"
    assert shipped_table.defaults.retry == RetryPolicy(8, 30, 3600)
    assert shipped_table.source == str(SHIPPED_ROUTES)


def test_shipped_options_point_at_loopback_and_hold_no_secret(shipped_table: RouteTable) -> None:
    for destination in shipped_table.destinations.values():
        for key, value in destination.options.items():
            if isinstance(value, str) and value.startswith("http"):
                assert value.startswith("http://127.0.0.1:"), (destination.name, key)
            if "secret" in key or "key" in key:
                assert key.endswith("_env"), (destination.name, key)


def test_check_routes_on_shipped_files_finds_nothing() -> None:
    assert check_routes(SHIPPED_ROUTES, SHIPPED_DIRECTORY, known_adapters=ADAPTERS) == []


def test_shipped_revocation_is_copied_to_the_archive(
    shipped_table: RouteTable, shipped_directory: Directory
) -> None:
    facts = RoutingFacts("edoc", "000.00.12.H37", ("000.00.31.H37", "000.00.00.G22"), "revoke")
    decision = route(facts, shipped_table, shipped_directory, on=date(2025, 8, 1))
    assert [(d.destination, d.copy) for d in decision.deliveries] == [
        ("hcm_egov", False),
        ("archive", True),
        ("national_axis", False),
        ("archive", True),
    ]
    assert [d.rule for d in decision.deliveries][::2] == [DEFAULT_HOSTED, "outside-province"]


def test_shipped_merged_commune_reaches_its_successor(
    shipped_table: RouteTable, shipped_directory: Directory
) -> None:
    facts = RoutingFacts("status", "000.00.00.G22", status_code="13", response_for="000.00.33.H37")
    [delivery] = route(facts, shipped_table, shipped_directory, on=date(2025, 7, 1)).deliveries
    assert (delivery.effective_recipient, delivery.destination) == ("000.00.31.H37", "hcm_egov")
    assert delivery.rule == DEFAULT_RECALL


def test_table_is_typed(shipped_table: RouteTable) -> None:
    rule = shipped_table.rules[0]
    assert rule.name == "revocations-to-archive"
    assert rule.match == Match(kind="edoc", business=frozenset({"revoke"}))
    assert rule.copy_to == ("archive",) and rule.deliver_to is None
    assert rule.line == line_of(SHIPPED_ROUTES.read_text(encoding="utf-8"), "- name: revocations")
    axis = shipped_table.destinations["national_axis"]
    assert axis.retry == RetryPolicy(attempts=12, first_delay_s=30, max_delay_s=7200)
    assert shipped_table.retry_for("eoffice") == shipped_table.defaults.retry


# ----------------------------------------------------------------------------- schemas


def _schema_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, child in node.get("properties", {}).items():
            yield f"{path}/{name}", child
        for key, child in node.items():
            yield from _schema_nodes(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _schema_nodes(child, f"{path}/{index}")


@pytest.mark.parametrize("name", ["routes.schema.json", "directory.schema.json"])
def test_schemas_are_valid_and_describe_every_property(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    undocumented = [path for path, prop in _schema_nodes(schema) if "description" not in prop]
    assert undocumented == []
    assert all("description" in d for d in schema["$defs"].values())


# ----------------------------------------------------------------------------- valid forms


def test_every_match_form_loads() -> None:
    text = with_rules(
        "  - name: forms",
        "    match:",
        "      kind: status",
        '      sender: "000.00.12.H37"',
        '      recipient: ["000.00.31.H37", "000.00.32.H37"]',
        "      business: [update, replace]",
        "      document_type: 1",
        "      priority: [3, 4]",
        '      status_code: [13, "01"]',
        "      recipient_hosted: true",
        "      recipient_system: hcm_egov",
        "    deliver_to: archive",
        "  - name: prefix",
        '    match: {sender: {prefix: "000.00.3"}, recipient: {pattern: ".*\\\\.H37"}}',
        "    refuse: {code: RouteNotAllowed, message: not between communes}",
        "  - name: exact",
        '    match: {sender: {exact: ["000.00.00.G22"]}, recipient: {exact: "000.00.00.H37"}}',
        "    deliver_to: eoffice",
        "    copy_to: [archive, archive]",
    )
    table = parse_routes(text, known_adapters=ADAPTERS)
    forms, prefix, exact = table.rules[1:]
    assert forms.match.sender == CodeMatch(exact=frozenset({"000.00.12.H37"}))
    assert forms.match.status_code == frozenset({"13", "01"})
    assert forms.match.recipient_system == frozenset({"hcm_egov"})
    assert forms.match.document_type == frozenset({1})
    assert prefix.match.sender == CodeMatch(prefixes=("000.00.3",))
    assert prefix.match.recipient is not None and prefix.match.recipient("000.00.31.H37")
    assert prefix.refuse is not None and prefix.refuse.code == "RouteNotAllowed"
    assert exact.copy_to == ("archive",)
    assert [str(w) for w in table.warnings] == [
        f"warning: routes.yaml, line {line_of(text, 'copy_to: [archive, archive]')},"
        " rules/3/copy_to/1: rule 'exact' copies to archive twice"
    ]


def test_missing_rules_and_defaults_are_allowed() -> None:
    table = parse_routes("version: 1\ndestinations:\n  a: {adapter: http}\n")
    assert table.rules == () and table.defaults.outside is None


# ----------------------------------------------------------------------------- one problem each


def test_unknown_deliver_to() -> None:
    text = with_rules("  - name: x", "    deliver_to: archve  # <here>")
    problem = one_problem(text, "<here>", "unknown destination 'archve'", "did you mean 'archive'")
    assert problem.path == "rules/1/deliver_to"


def test_unknown_copy_to_item_is_on_the_items_line() -> None:
    text = with_rules(
        "  - name: x",
        "    copy_to:",
        "      - archive",
        "      - national-axis  # <here>",
    )
    problem = one_problem(text, "<here>", "'national-axis'", "did you mean 'national_axis'")
    assert problem.path == "rules/1/copy_to/1"


def test_unknown_outside_destination() -> None:
    text = BASE.replace("  outside: national_axis", "  outside: axis  # <here>")
    one_problem(text, "<here>", "defaults.outside names unknown destination 'axis'")


def test_regex_that_does_not_compile() -> None:
    text = with_rules(
        "  - name: x",
        "    match:",
        "      recipient:",
        "        pattern: '000.(00'  # <here>",
        "    deliver_to: archive",
    )
    one_problem(text, "<here>", "not a valid regular expression", "missing )")


def test_duplicate_rule_name() -> None:
    text = with_rules(
        "  - name: revocations-to-archive  # <here>",
        "    deliver_to: archive",
    )
    problem = one_problem(text, "<here>", "already used on line 11")
    assert problem.path == "rules/1/name"


def test_unknown_refusal_code() -> None:
    text = with_rules(
        "  - name: x",
        "    refuse:",
        "      code: RouteNotAlowed  # <here>",
        "      message: denied",
    )
    one_problem(text, "<here>", "unknown error code 'RouteNotAlowed'", "'RouteNotAllowed'")


def test_refusal_code_must_be_known_even_without_a_close_match() -> None:
    text = with_rules("  - name: x", "    refuse: {code: Nope, message: denied}  # <here>")
    one_problem(text, "<here>", "one of AmbiguousSuccessor, AttachmentInvalid")


def test_unknown_adapter_with_a_suggestion() -> None:
    text = BASE.replace(
        "  hcm_egov: {adapter: hcm_egov}", "  hcm_egov: {adapter: hcm_egv}  # <here>"
    )
    one_problem(
        text, "<here>", "adapter 'hcm_egv'", "did you mean 'hcm_egov'", known_adapters=ADAPTERS
    )


def test_unknown_adapter_without_a_close_name_lists_the_installed_ones() -> None:
    text = BASE.replace("  archive: {adapter: http}", "  archive: {adapter: ftp2}  # <here>")
    one_problem(text, "<here>", "installed: eoffice, hcm_egov", known_adapters=ADAPTERS)


def test_adapters_are_not_checked_without_a_list() -> None:
    parse_routes(BASE.replace("{adapter: http}", "{adapter: whatever}"))


def test_unknown_key_suggests_the_right_one() -> None:
    text = with_rules(
        "  - name: x",
        "    match:",
        "      recipient_not_hosted: true  # <here>",
        "    deliver_to: national_axis",
    )
    problem = one_problem(
        text, "<here>", "unknown key 'recipient_not_hosted'", "'recipient_hosted'"
    )
    assert problem.path == "rules/1/match/recipient_not_hosted"


def test_wrong_type_is_explained_with_the_fields_description() -> None:
    text = with_rules(
        "  - name: x", "    match: {priority: urgent}  # <here>", "    deliver_to: archive"
    )
    one_problem(text, "<here>", "'urgent' is not valid here", "Priority")


def test_bad_identifier_inside_a_list_is_pinpointed() -> None:
    text = with_rules(
        "  - name: x",
        "    match:",
        "      recipient:",
        '        - "000.00.31.H37"',
        '        - "000.00.31 .H37"  # <here>',
        "    deliver_to: archive",
    )
    problem = one_problem(text, "<here>", "organisation identifier")
    assert problem.path == "rules/1/match/recipient/1"


def test_code_condition_with_two_forms() -> None:
    text = with_rules(
        "  - name: x",
        '    match: {sender: {exact: "000.00.12.H37", prefix: "000"}}  # <here>',
        "    deliver_to: archive",
    )
    one_problem(text, "<here>", "exactly one of exact, prefix, pattern")


def test_rule_without_action() -> None:
    text = with_rules("  - name: x  # <here>", "    match: {kind: edoc}")
    one_problem(text, "<here>", "a rule needs an action")


def test_rule_that_delivers_and_refuses() -> None:
    text = with_rules(
        "  - name: x  # <here>",
        "    deliver_to: archive",
        "    refuse: {code: RouteNotAllowed, message: denied}",
    )
    one_problem(text, "<here>", "exclude each other")


def test_retry_max_below_first() -> None:
    text = BASE.replace(
        "  archive: {adapter: http}",
        "  archive: {adapter: http, retry: {first_delay_s: 60, max_delay_s: 10}}  # <here>",
    )
    problem = one_problem(text, "<here>", "max_delay_s (10) is less than first_delay_s (60)")
    assert problem.path == "destinations/archive/retry"


def test_retry_override_is_merged_with_defaults() -> None:
    table = parse_routes(BASE.replace("{adapter: http}", "{adapter: http, retry: {attempts: 3}}"))
    assert table.retry_for("archive") == RetryPolicy(3, 30, 3600)


def test_duplicate_yaml_key() -> None:
    text = BASE.replace(
        "  archive: {adapter: http}",
        "  archive: {adapter: http}\n  archive: {adapter: eoffice}  # <here>",
    )
    one_problem(text, "<here>", "duplicate key 'archive'")


def test_yaml_syntax_error() -> None:
    text = BASE.replace("    copy_to: [archive]", "    copy_to: [archive  # <here>")
    [problem] = problems(text)
    assert "YAML syntax error" in problem.message
    assert problem.line is not None and problem.line >= line_of(text, "<here>")


def test_unquoted_yes_no_gets_a_hint() -> None:
    text = with_rules("  - name: x", "    refuse: {code: RouteNotAllowed, message: no}  # <here>")
    problem = one_problem(text, "<here>", "not of type 'string'", 'write "no" in quotes')
    assert problem.path == "rules/1/refuse/message"


def test_wrong_version() -> None:
    one_problem(BASE.replace("version: 1", "version: 2  # <here>"), "<here>", "1 was expected")


def test_bad_rule_name() -> None:
    text = with_rules("  - name: default:hosted  # <here>", "    deliver_to: archive")
    one_problem(text, "<here>", "Unique name: letters, digits")


def test_every_problem_is_collected_in_one_pass() -> None:
    text = """\
version: 1
destinations:
  eoffice: {adapter: eofice}  # <p1>
  archive: {adapter: http, colour: red}  # <p2>
defaults:
  outside: nowhere  # <p3>
rules:
  - name: a
    deliver_to: eoffice
  - name: a  # <p4>
    match: {sender: {pattern: "["}}  # <p5>
    copy_to: [archiv]  # <p6>
  - name: b
    match: {priority: 9}  # <p7>
    refuse: {code: NoSuchCode, message: x}  # <p8>
"""
    found = problems(text, known_adapters=ADAPTERS)
    assert [p.line for p in found] == [line_of(text, f"<p{n}>") for n in range(1, 9)]


def test_load_routes_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(with_rules("  - name: x", "    deliver_to: nowhere"), encoding="utf-8")
    with pytest.raises(ConfigInvalid) as caught:
        load_routes(path)
    assert caught.value.problems[0].file == str(path)
    assert str(path) in str(caught.value)


def test_missing_routes_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="file not found"):
        load_routes(tmp_path / "routes.yaml")


# ----------------------------------------------------------------------------- with a directory


def _directory(tmp_path: Path, text: str) -> Directory:
    path = tmp_path / "directory.yaml"
    path.write_text(text, encoding="utf-8")
    return load_directory(path)


DIRECTORY_TEXT = """\
version: 1
systems:
  eoffice: {destination: eoffice}
  hcm_egov: {destination: hcm_egov}
  legacy: {destination: legacy_box}  # <legacy>
agencies:
  "000.00.12.H37": {name: Sở, system: eoffice}
"""


def test_directory_system_without_destination_is_reported_in_the_directory(tmp_path: Path) -> None:
    directory = _directory(tmp_path, DIRECTORY_TEXT)
    with pytest.raises(ConfigInvalid) as caught:
        parse_routes(BASE, directory=directory)
    [problem] = caught.value.problems
    assert problem.file == str(tmp_path / "directory.yaml")
    assert problem.line == line_of(DIRECTORY_TEXT, "<legacy>")
    assert problem.path == "systems/legacy/destination"
    assert "'legacy_box'" in problem.message


def test_recipient_system_must_exist_in_the_directory(tmp_path: Path) -> None:
    directory = _directory(tmp_path, DIRECTORY_TEXT.replace("legacy_box", "archive"))
    text = with_rules(
        "  - name: x",
        "    match:",
        "      recipient_system: [eoffice, hcm_egob]  # <here>",
        "    deliver_to: archive",
    )
    one_problem(
        text, "<here>", "no system 'hcm_egob'", "did you mean 'hcm_egov'", directory=directory
    )


def test_unused_destination_is_a_warning_with_a_directory(tmp_path: Path) -> None:
    directory = _directory(
        tmp_path, DIRECTORY_TEXT.replace("  legacy: {destination: legacy_box}  # <legacy>\n", "")
    )
    text = BASE.replace(
        "  archive: {adapter: http}",
        "  archive: {adapter: http}\n  spare: {adapter: http}  # <here>",
    )
    table = parse_routes(text, directory=directory)
    [warning] = table.warnings
    assert isinstance(warning, ConfigWarning) and warning.line == line_of(text, "<here>")
    assert "'spare' is used by no rule" in warning.message


def test_check_routes_reports_both_files(tmp_path: Path) -> None:
    directory_path = tmp_path / "directory.yaml"
    directory_path.write_text(DIRECTORY_TEXT.replace("system: eoffice", "system: eofice"), "utf-8")
    routes_path = tmp_path / "routes.yaml"
    routes_path.write_text(with_rules("  - name: x", "    deliver_to: nowhere"), "utf-8")
    found = check_routes(routes_path, directory_path)
    assert [(Path(p.file or "").name, "did you mean" in p.message) for p in found] == [
        ("directory.yaml", True),
        ("routes.yaml", False),
    ]


# ----------------------------------------------------------------------------- warnings


def test_rule_after_a_catch_all_is_unreachable() -> None:
    text = with_rules(
        "  - name: everything",
        "    deliver_to: archive",
        "  - name: never  # <here>",
        "    match: {kind: edoc}",
        "    deliver_to: eoffice",
        "  - name: copies-still-work",
        "    match: {kind: edoc}",
        "    copy_to: [eoffice]",
    )
    table = parse_routes(text)
    [warning] = table.warnings
    assert isinstance(warning, ConfigWarning)
    assert warning.line == line_of(text, "<here>")
    assert "rule 'never' is unreachable" in warning.message
    assert "matches every packet" in warning.message
    assert str(warning).startswith("warning: ")


def test_rule_shadowed_by_a_wider_rule_is_unreachable() -> None:
    text = with_rules(
        "  - name: wide",
        "    match: {kind: edoc, business: [revoke, update]}",
        "    deliver_to: archive",
        "  - name: narrow  # <here>",
        "    match: {kind: edoc, business: revoke, priority: 1}",
        "    deliver_to: eoffice",
        "    copy_to: [hcm_egov]",
        "  - name: other",
        "    match: {kind: edoc, business: new}",
        "    deliver_to: eoffice",
    )
    [warning] = parse_routes(text).warnings
    assert warning.line == line_of(text, "<here>")
    assert "only its copy_to still applies" in warning.message


def test_secret_in_options_is_a_warning() -> None:
    text = BASE.replace(
        "  hcm_egov: {adapter: hcm_egov}",
        "  hcm_egov: {adapter: hcm_egov, options: {secret_key: abc123}}  # <here>",
    )
    [warning] = parse_routes(text).warnings
    assert warning.line == line_of(text, "<here>") and "secret_key_env" in warning.message


def test_check_routes_returns_warnings_too(tmp_path: Path) -> None:
    directory_path = tmp_path / "directory.yaml"
    directory_path.write_text(DIRECTORY_TEXT.replace("legacy_box", "archive"), "utf-8")
    routes_path = tmp_path / "routes.yaml"
    routes_path.write_text(
        with_rules(
            "  - name: all", "    deliver_to: archive", "  - name: dead", "    deliver_to: eoffice"
        ),
        "utf-8",
    )
    [warning] = check_routes(routes_path, directory_path)
    assert isinstance(warning, ConfigWarning) and "'dead'" in warning.message


# ----------------------------------------------------------------------------- explain


def test_explain_tells_the_whole_story(
    shipped_table: RouteTable, shipped_directory: Directory
) -> None:
    facts = RoutingFacts("edoc", "000.00.12.H37", ("000.00.33.H37", "000.00.00.G22"), "revoke")
    lines = explain(facts, shipped_table, shipped_directory, on=date(2025, 7, 2))
    text = "\n".join(lines)
    assert lines[0].startswith("packet: edoc from 000.00.12.H37")
    assert "000.00.33.H37 merged into 000.00.31.H37 on 2025-07-01" in text
    assert "rule 2 outside-province: no match (recipient 000.00.31.H37 is hosted here)" in text
    assert "rule 2 outside-province: decides: deliver_to national_axis" in text
    assert lines[-5] == "result: 4 deliveries"
    assert "delivery for 000.00.33.H37 (now 000.00.31.H37) -> hcm_egov [default:hosted]" in text


def test_explain_ends_with_the_refusal(shipped_directory: Directory) -> None:
    table = parse_routes(
        with_rules(
            "  - name: no-g22",
            '    match: {recipient: "000.00.00.G22"}',
            "    refuse: {code: RouteNotAllowed, message: ask the Government Office}",
        )
    )
    facts = RoutingFacts("edoc", "000.00.12.H37", ("000.00.31.H37", "000.00.00.G22"))
    lines = explain(facts, table, shipped_directory, on=date(2025, 1, 1))
    assert lines[-1] == "result: refused with RouteNotAllowed: ask the Government Office"
    assert any("no-g22: decides: refuse RouteNotAllowed" in line for line in lines)

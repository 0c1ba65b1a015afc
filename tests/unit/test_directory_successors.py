"""One-to-many successor rules: mergers, splits with and without split_route, chains, cycles."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bus.directory import Agency, Directory, Successor, System, load_directory
from bus.errors import AmbiguousSuccessor, ConfigInvalid, UnknownRecipient
from bus.routing import Defaults, Destination, RouteTable, RoutingFacts, route

DAY = date(2025, 7, 1)
BEFORE, AFTER = date(2025, 6, 30), DAY
A, B, C, D, E = (f"000.00.{n}.H37" for n in (41, 42, 43, 44, 45))
SYSTEMS = [System("eoffice", "eoffice"), System("hcm_egov", "hcm_egov")]
HOSTED = [Agency(A, "Xã A cũ", "hcm_egov"), Agency(B, "Xã B", "hcm_egov"),
          Agency(C, "Phường C", "eoffice"), Agency(D, "Xã D", "hcm_egov")]
TABLE = RouteTable(destinations={n: Destination(n, "http") for n in
                                 ("eoffice", "hcm_egov", "national_axis")},
                   rules=(), defaults=Defaults(outside="national_axis"))


def directory(*steps: Successor) -> Directory:
    return Directory(SYSTEMS, HOSTED, steps)


def test_a_merger_routes_several_old_codes_to_one_new() -> None:
    merged = directory(Successor(A, D, DAY), Successor(B, D, DAY))
    assert merged.resolve(A, AFTER)[0] == merged.resolve(B, AFTER)[0] == D
    assert merged.resolve(A, BEFORE) == (A, ())


def test_a_split_without_split_route_is_refused_naming_the_candidates() -> None:
    split = directory(Successor(A, [B, C], DAY))
    assert split.resolve(A, BEFORE) == (A, ())
    with pytest.raises(AmbiguousSuccessor) as caught:
        split.resolve(A, AFTER)
    assert B in caught.value.message and C in caught.value.message
    assert caught.value.details["candidates"] == [B, C]
    assert caught.value.http_status == 422
    assert isinstance(caught.value, UnknownRecipient)
    assert split.canonical(A, AFTER) == A


def test_a_split_with_split_route_goes_there_and_says_why() -> None:
    split = directory(Successor(A, [B, C], DAY, split_route=C))
    code, trail = split.resolve(A, AFTER)
    assert code == C
    assert trail == (f"{A} split into {B}, {C} on 2025-07-01; documents to {A} go to {C}"
                     " (split_route)",)


def test_routing_refuses_a_document_to_an_ambiguous_split_and_delivers_the_others() -> None:
    split = directory(Successor(A, [B, C], DAY))
    facts = RoutingFacts("edoc", D, (A,))
    assert [d.destination for d in route(facts, TABLE, split, on=BEFORE).deliveries] == \
        ["hcm_egov"]
    with pytest.raises(AmbiguousSuccessor, match=f"{B}, {C}"):
        route(facts, TABLE, split, on=AFTER)
    routed = route(RoutingFacts("edoc", D, (A,)), TABLE,
                   directory(Successor(A, [B, C], DAY, split_route=C)), on=AFTER)
    [delivery] = routed.deliveries
    assert (delivery.recipient, delivery.effective_recipient, delivery.destination) == \
        (A, C, "eoffice")
    assert any("split_route" in note for note in delivery.notes)


def test_chains_through_a_split_resolve_each_step_on_its_own_date() -> None:
    chain = directory(Successor(E, A, date(2024, 1, 1)),
                      Successor(A, [B, C], DAY, split_route=B),
                      Successor(B, D, date(2026, 1, 1)))
    assert chain.resolve(E, BEFORE)[0] == A
    assert chain.resolve(E, AFTER)[0] == B
    code, trail = chain.resolve(E, date(2026, 1, 1))
    assert code == D and len(trail) == 3
    ambiguous = directory(Successor(E, A, date(2024, 1, 1)), Successor(A, [B, C], DAY))
    with pytest.raises(AmbiguousSuccessor, match=f"reached from {E}"):
        ambiguous.resolve(E, AFTER)


@pytest.mark.parametrize("steps", [
    [Successor(A, [B, C], DAY), Successor(C, A, DAY)],
    [Successor(A, [B, C], DAY, split_route=B), Successor(C, D, DAY), Successor(D, A, DAY)],
], ids=["through-a-branch", "through-the-branch-not-routed"])
def test_cycles_through_any_branch_are_refused(steps: list[Successor]) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        directory(*steps)
    [problem] = caught.value.problems
    assert "cycle" in problem.message and A in problem.message


def test_split_route_must_be_one_of_the_new_codes() -> None:
    with pytest.raises(ConfigInvalid, match="not one of the codes"):
        directory(Successor(A, [B, C], DAY, split_route=D))
    with pytest.raises(ConfigInvalid, match="split_route is for a code replaced by several"):
        directory(Successor(A, B, DAY, split_route=B))


YAML = """\
version: 1
systems:
  eoffice: {destination: eoffice}
agencies:
  "000.00.42.H37": {name: Xã B, system: eoffice}
  "000.00.43.H37": {name: Xã C, system: eoffice}
successors:
  "000.00.41.H37":
    replaced_by: ["000.00.42.H37", "000.00.43.H37"]
    effective: 2025-07-01
    split_route: "000.00.43.H37"
    note: Nghị quyết sắp xếp đơn vị hành chính cấp xã
"""


def test_the_file_writes_a_split_as_a_list(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML, encoding="utf-8")
    loaded = load_directory(path)
    step = loaded.successors[A]
    assert step.new == (B, C) and step.split_route == C and step.line == 8
    assert loaded.resolve(A, AFTER)[0] == C


@pytest.mark.parametrize(("before", "after", "words"), [
    ('split_route: "000.00.43.H37"', 'split_route: "000.00.99.H37"', "not one of the codes"),
    ('replaced_by: ["000.00.42.H37", "000.00.43.H37"]', 'replaced_by: ["000.00.42.H37"]',
     "at least two different identifiers"),
    ('replaced_by: ["000.00.42.H37", "000.00.43.H37"]',
     'replaced_by: ["000.00.43.H37", "000.00.41.H37"]', "cycle"),
], ids=["split-route-elsewhere", "list-of-one", "cycle"])
def test_file_problems_are_on_their_lines(tmp_path: Path, before: str, after: str,
                                          words: str) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML.replace(before, after), encoding="utf-8")
    with pytest.raises(ConfigInvalid) as caught:
        load_directory(path)
    [problem] = caught.value.problems
    assert words in problem.message, str(problem)
    assert problem.file == str(path) and problem.line in (8, 9, 11), str(problem)


def test_a_status_to_a_split_code_goes_to_its_own_system_while_it_is_listed() -> None:
    split = directory(Successor(A, [B, C], DAY))
    facts = RoutingFacts("status", D, status_code="06", response_for=A)
    [delivery] = route(facts, TABLE, split, on=AFTER).deliveries
    assert (delivery.effective_recipient, delivery.destination) == (A, "hcm_egov")
    assert any("a status answers a document" in note for note in delivery.notes)
    unlisted = Directory(SYSTEMS, HOSTED[1:], [Successor(A, [B, C], DAY)])
    with pytest.raises(AmbiguousSuccessor):
        route(facts, TABLE, unlisted, on=AFTER)

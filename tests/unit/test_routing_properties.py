"""The routing core's facts and helpers, its properties (determinism, invariants) and speed."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.errors import (
    LgspError,
    RouteNotAllowed,
    UnknownRecipient,
)
from bus.routing import (
    CodeMatch,
    Match,
    Refusal,
    RouteTable,
    RoutingDecision,
    RoutingFacts,
    Rule,
    business_from_doctype,
    route,
)
from tests.unit.routing_kit import (
    AFTER,
    DESTINATIONS,
    DIRECTORY,
    HOSTED,
    OUTSIDE,
    REPO,
    SO_TTTT,
    UBND,
    VPCP,
    XA_31,
    XA_32,
    XA_33_OLD,
    XA_34_OLDER,
    edoc,
    make_table,
    pairs,
)

# ----------------------------------------------------------------------------- facts and helpers


def test_facts_reject_unknown_kind_and_business() -> None:
    with pytest.raises(ValueError, match="kind"):
        RoutingFacts("fax", SO_TTTT)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="business"):
        RoutingFacts("edoc", SO_TTTT, (XA_31,), business="cancel")  # type: ignore[arg-type]


def test_business_from_doctype() -> None:
    assert [business_from_doctype(n) for n in (0, 1, 2, 3, 9, None)] == [
        "new",
        "revoke",
        "update",
        "replace",
        None,
        None,
    ]


def test_covers_proves_shadowing_conservatively() -> None:
    catch_all, edocs = Match(), Match(kind="edoc")
    assert catch_all.covers(edocs) and catch_all.covers(catch_all)
    assert edocs.covers(Match(kind="edoc", priority=frozenset({1})))
    assert not edocs.covers(catch_all)
    wide = Match(recipient=CodeMatch(prefixes=("000.00.3",)))
    assert wide.covers(Match(recipient=CodeMatch(exact=frozenset({XA_31, XA_32}))))
    assert not wide.covers(Match(recipient=CodeMatch(exact=frozenset({XA_31, UBND}))))
    assert Match(priority=frozenset({1, 2})).covers(Match(priority=frozenset({2})))
    assert not Match(priority=frozenset({1})).covers(Match(priority=frozenset({1, 2})))
    assert Match(recipient_hosted=True).covers(Match(recipient_system=frozenset({"eoffice"})))


def test_today_is_used_when_no_day_is_given() -> None:
    assert route(edoc(XA_31), make_table(), DIRECTORY).on == date.today()


def test_explain_list_records_every_rule() -> None:
    lines: list[str] = []
    table = make_table(
        Rule("statuses", Match(kind="status"), deliver_to="archive"),
        Rule("copy", copy_to=("archive",)),
    )
    route(edoc(XA_33_OLD), table, DIRECTORY, on=AFTER, explain=lines)
    text = "\n".join(lines)
    assert "rule 1 statuses: no match (packet is edoc, rule wants status)" in text
    assert "rule 2 copy: matches" in text
    assert "merged into" in text


def test_routing_imports_nothing_that_does_io() -> None:
    code = (
        "import sys, bus.routing; "
        "bad = [m for m in ('yaml', 'sqlalchemy', 'kombu', 'pika', 'jsonschema', 'bus.directory')"
        " if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- properties

ALL_CODES = (*HOSTED, XA_34_OLDER, *OUTSIDE)
codes = st.sampled_from(ALL_CODES)
days = st.dates(min_value=date(2023, 6, 1), max_value=date(2026, 6, 1))

facts_strategy = st.one_of(
    st.builds(
        RoutingFacts,
        kind=st.just("edoc"),
        sender=codes,
        recipients=st.lists(codes, min_size=1, max_size=4).map(tuple),
        business=st.none() | st.sampled_from(["new", "revoke", "update", "replace"]),
        document_type=st.none() | st.integers(0, 5),
        priority=st.none() | st.integers(0, 4),
    ),
    st.builds(
        RoutingFacts,
        kind=st.just("status"),
        sender=codes,
        status_code=st.sampled_from(["01", "02", "03", "06", "13", "15", "16", "1"]),
        response_for=codes,
    ),
)


def _sets(values: st.SearchStrategy[object]) -> st.SearchStrategy[frozenset[object] | None]:
    return st.none() | st.frozensets(values, min_size=1, max_size=3)


code_matches = st.builds(
    CodeMatch,
    exact=st.frozensets(codes, max_size=3),
    prefixes=st.lists(st.sampled_from(["000.00.3", "000.00.0", "vxp"]), max_size=2).map(tuple),
    pattern=st.none() | st.sampled_from([re.compile(r".*\.H37"), re.compile(r".*\.G22")]),
)

matches = st.builds(
    Match,
    kind=st.none() | st.sampled_from(["edoc", "status"]),
    sender=st.none() | code_matches,
    recipient=st.none() | code_matches,
    business=_sets(st.sampled_from(["new", "revoke", "update", "replace"])),
    document_type=_sets(st.integers(0, 5)),
    priority=_sets(st.integers(0, 4)),
    status_code=_sets(st.sampled_from(["01", "03", "13", "16"])),
    recipient_hosted=st.none() | st.booleans(),
    recipient_system=_sets(st.sampled_from(["eoffice", "vnpt_ioffice", "hcm_egov", "gone"])),
)

destination_names = st.sampled_from(DESTINATIONS)


@st.composite
def rules_strategy(draw: st.DrawFn) -> tuple[Rule, ...]:
    count = draw(st.integers(0, 6))
    rules = []
    for number in range(count):
        action = draw(st.sampled_from(["deliver", "copy", "both", "refuse"]))
        copy_to = tuple(draw(st.lists(destination_names, min_size=1, max_size=3)))
        rules.append(
            Rule(
                name=f"rule-{number}",
                match=draw(matches),
                deliver_to=draw(destination_names) if action in ("deliver", "both") else None,
                copy_to=copy_to if action in ("copy", "both") else (),
                refuse=(
                    Refusal(draw(st.sampled_from(["RouteNotAllowed", "UnknownRecipient"])), "no")
                    if action == "refuse"
                    else None
                ),
            )
        )
    return tuple(rules)


tables = st.builds(
    lambda rules, outside: make_table(*rules, outside=outside),
    rules_strategy(),
    st.none() | st.just("national_axis"),
)


def _outcome(facts: RoutingFacts, table: RouteTable, on: date) -> object:
    try:
        return route(facts, table, DIRECTORY, on=on)
    except LgspError as exc:
        return (type(exc), exc.message, exc.details)


@settings(max_examples=300, deadline=None)
@given(facts=facts_strategy, table=tables, on=days)
def test_routing_is_deterministic(facts: RoutingFacts, table: RouteTable, on: date) -> None:
    first = _outcome(facts, table, on)
    rebuilt = make_table(*table.rules, outside=table.defaults.outside)
    assert _outcome(facts, rebuilt, on) == first
    assert _outcome(facts, table, on) == first
    assert _outcome(rebuilt_facts(facts), table, on) == first


def rebuilt_facts(facts: RoutingFacts) -> RoutingFacts:
    return RoutingFacts(
        facts.kind,
        facts.sender,
        tuple(facts.recipients),
        facts.business,
        facts.document_type,
        facts.priority,
        facts.status_code,
        facts.response_for,
    )


@settings(max_examples=300, deadline=None)
@given(facts=facts_strategy, table=tables, on=days)
def test_decisions_keep_their_invariants(facts: RoutingFacts, table: RouteTable, on: date) -> None:
    try:
        decision = route(facts, table, DIRECTORY, on=on)
    except (UnknownRecipient, RouteNotAllowed):
        return
    keys = [(d.effective_recipient, d.destination) for d in decision.deliveries]
    assert len(keys) == len(set(keys)), "one delivery per (recipient, destination)"
    mains = Counter(d.effective_recipient for d in decision.deliveries if not d.copy)
    addressees = facts.recipients if facts.kind == "edoc" else (facts.response_for,)
    effective = {DIRECTORY.resolve(code or "", on)[0] for code in addressees}
    assert set(mains) == effective and set(mains.values()) == {1}
    assert all(d.destination in table.destinations for d in decision.deliveries)
    assert decision.on == on


@settings(max_examples=200, deadline=None)
@given(facts=facts_strategy, table=tables, on=days)
def test_copy_rules_act_wherever_they_sit(facts: RoutingFacts, table: RouteTable, on: date) -> None:
    deciders = [r for r in table.rules if r.decides]
    copiers = [r for r in table.rules if not r.decides]
    moved = make_table(*deciders, *copiers, outside=table.defaults.outside)
    first, second = _outcome(facts, table, on), _outcome(facts, moved, on)
    if isinstance(first, RoutingDecision) and isinstance(second, RoutingDecision):
        assert sorted(pairs(first)) == sorted(pairs(second))
    else:
        assert type(first) is type(second)


def test_routes_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table(
        Rule(
            "revocations", Match(kind="edoc", business=frozenset({"revoke"})), copy_to=("archive",)
        ),
        Rule(
            "tests",
            Match(recipient=CodeMatch(pattern=re.compile(r"vxp\..*"))),
            refuse=Refusal("RouteNotAllowed", "x"),
        ),
        Rule("outside", Match(recipient_hosted=False), deliver_to="national_axis"),
    )
    facts = edoc(XA_33_OLD, XA_32, VPCP, business="revoke", priority=2)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.3:
        for _ in range(200):
            route(facts, table, DIRECTORY, on=AFTER)
        count += 200
    rate = count / (time.perf_counter() - started)
    with capsys.disabled():
        print(
            f"\nroute(): {rate:,.0f} calls/s, 3 recipients and 3 rules ({1e6 / rate:.1f} µs each)"
        )

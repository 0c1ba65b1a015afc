"""The routing core: defaults, every condition and action, statuses, successors, determinism."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.directory import Agency, Directory, Successor, System
from bus.errors import (
    ConfigInvalid,
    LgspError,
    RouteNotAllowed,
    SenderMismatch,
    UnknownRecipient,
)
from bus.routing import (
    DEFAULT_HOSTED,
    DEFAULT_OUTSIDE,
    DEFAULT_RECALL,
    DEFAULT_STATUS,
    REFUSAL_CODES,
    CodeMatch,
    Defaults,
    Destination,
    Match,
    Refusal,
    RouteTable,
    RoutingDecision,
    RoutingFacts,
    Rule,
    business_from_doctype,
    route,
)

REPO = Path(__file__).resolve().parents[2]

SO_TTTT = "000.00.12.H37"
UBND = "000.00.00.H37"
XA_31 = "000.00.31.H37"
XA_32 = "000.00.32.H37"
XA_33_OLD = "000.00.33.H37"
XA_34_OLDER = "000.00.34.H37"
VPCP = "000.00.00.G22"
NGHE_AN = "000.00.00.H41"
TEST_CODE = "vxp.saas.03"

MERGER = date(2025, 7, 1)
BEFORE = date(2025, 6, 30)
AFTER = date(2025, 7, 1)

HOSTED = (SO_TTTT, UBND, XA_31, XA_32, XA_33_OLD)
OUTSIDE = (VPCP, NGHE_AN, TEST_CODE)
DESTINATIONS = ("eoffice", "vnpt_ioffice", "hcm_egov", "national_axis", "archive")


def make_directory() -> Directory:
    return Directory(
        systems=[
            System("eoffice", "eoffice"),
            System("vnpt_ioffice", "vnpt_ioffice"),
            System("hcm_egov", "hcm_egov"),
        ],
        agencies=[
            Agency(UBND, "Văn phòng UBND tỉnh", "vnpt_ioffice"),
            Agency(SO_TTTT, "Sở TT&TT", "eoffice", UBND),
            Agency(XA_31, "Xã 31", "hcm_egov", UBND),
            Agency(XA_32, "Xã 32", "hcm_egov", UBND),
            Agency(XA_33_OLD, "Xã 33 (cũ)", "hcm_egov", UBND),
        ],
        successors=[
            Successor(XA_33_OLD, XA_31, MERGER),
            Successor(XA_34_OLDER, XA_33_OLD, date(2024, 1, 1)),
        ],
    )


DIRECTORY = make_directory()


def make_table(*rules: Rule, outside: str | None = "national_axis") -> RouteTable:
    return RouteTable(
        destinations={name: Destination(name, "http") for name in DESTINATIONS},
        rules=rules,
        defaults=Defaults(outside=outside),
    )


def edoc(*recipients: str, sender: str = SO_TTTT, **extra: object) -> RoutingFacts:
    return RoutingFacts("edoc", sender, tuple(recipients), **extra)  # type: ignore[arg-type]


def status(code: str, sender: str, response_for: str | None) -> RoutingFacts:
    return RoutingFacts("status", sender, status_code=code, response_for=response_for)


def pairs(decision: RoutingDecision) -> list[tuple[str, str, bool]]:
    return [(d.recipient, d.destination, d.copy) for d in decision.deliveries]


# ----------------------------------------------------------------------------- defaults


def test_hosted_recipient_goes_to_its_systems_destination() -> None:
    decision = route(edoc(XA_32), make_table(), DIRECTORY, on=AFTER)
    [delivery] = decision.deliveries
    assert (delivery.destination, delivery.rule, delivery.copy) == (
        "hcm_egov",
        DEFAULT_HOSTED,
        False,
    )
    assert delivery.effective_recipient == XA_32
    assert any("hosted by system hcm_egov" in n for n in delivery.notes)


def test_recipient_outside_goes_to_the_outside_destination() -> None:
    decision = route(edoc(VPCP), make_table(), DIRECTORY, on=AFTER)
    [delivery] = decision.deliveries
    assert (delivery.destination, delivery.rule) == ("national_axis", DEFAULT_OUTSIDE)


def test_outside_destination_name_is_configurable() -> None:
    table = RouteTable(
        destinations={"vdxp": Destination("vdxp", "national_axis"), **make_table().destinations},
        defaults=Defaults(outside="vdxp"),
    )
    assert route(edoc(VPCP), table, DIRECTORY, on=AFTER).destinations == ("vdxp",)


def test_unknown_recipient_without_outside_destination_is_refused() -> None:
    with pytest.raises(UnknownRecipient) as caught:
        route(edoc(XA_31, VPCP), make_table(outside=None), DIRECTORY, on=AFTER)
    assert VPCP in caught.value.message
    assert caught.value.details["recipient"] == VPCP
    assert caught.value.http_status == 422


def test_each_recipient_is_one_delivery_in_packet_order() -> None:
    decision = route(edoc(VPCP, UBND, SO_TTTT), make_table(), DIRECTORY, on=AFTER)
    assert pairs(decision) == [
        (VPCP, "national_axis", False),
        (UBND, "vnpt_ioffice", False),
        (SO_TTTT, "eoffice", False),
    ]


def test_two_recipients_on_one_system_are_two_deliveries() -> None:
    decision = route(edoc(XA_31, XA_32), make_table(), DIRECTORY, on=AFTER)
    assert pairs(decision) == [(XA_31, "hcm_egov", False), (XA_32, "hcm_egov", False)]


def test_edoc_without_recipients_is_refused() -> None:
    with pytest.raises(UnknownRecipient):
        route(edoc(), make_table(), DIRECTORY, on=AFTER)


def test_same_recipient_listed_twice_is_delivered_once() -> None:
    decision = route(edoc(XA_31, XA_31), make_table(), DIRECTORY, on=AFTER)
    assert pairs(decision) == [(XA_31, "hcm_egov", False)]


def test_system_without_destination_in_table_is_a_config_error() -> None:
    table = RouteTable(destinations={"national_axis": Destination("national_axis", "x")})
    with pytest.raises(ConfigInvalid):
        route(edoc(XA_31), table, DIRECTORY, on=AFTER)


# ----------------------------------------------------------------------------- conditions

# (match, facts that match, facts that do not) — one row per condition and form.
CONDITIONS: list[tuple[str, Match, RoutingFacts, RoutingFacts]] = [
    ("kind", Match(kind="edoc"), edoc(XA_31), status("01", XA_31, SO_TTTT)),
    ("kind status", Match(kind="status"), status("01", XA_31, SO_TTTT), edoc(XA_31)),
    (
        "sender exact",
        Match(sender=CodeMatch(exact=frozenset({UBND}))),
        edoc(XA_31, sender=UBND),
        edoc(XA_31, sender=SO_TTTT),
    ),
    (
        "sender list",
        Match(sender=CodeMatch(exact=frozenset({UBND, XA_32}))),
        edoc(XA_31, sender=XA_32),
        edoc(XA_31, sender=SO_TTTT),
    ),
    (
        "sender prefix",
        Match(sender=CodeMatch(prefixes=("000.00.3",))),
        edoc(XA_31, sender=XA_32),
        edoc(XA_31, sender=SO_TTTT),
    ),
    (
        "sender pattern",
        Match(sender=CodeMatch(pattern=re.compile(r".*\.G22"))),
        edoc(XA_31, sender=VPCP),
        edoc(XA_31, sender=SO_TTTT),
    ),
    (
        "recipient exact",
        Match(recipient=CodeMatch(exact=frozenset({XA_32}))),
        edoc(XA_32),
        edoc(XA_31),
    ),
    (
        "recipient prefix",
        Match(recipient=CodeMatch(prefixes=("000.00.0", "000.00.1"))),
        edoc(SO_TTTT),
        edoc(XA_31),
    ),
    (
        "recipient pattern is a full match",
        Match(recipient=CodeMatch(pattern=re.compile(r"000\.00\.3\d"))),
        edoc("000.00.31"),
        edoc(XA_31),
    ),
    (
        "business",
        Match(business=frozenset({"revoke"})),
        edoc(XA_31, business="revoke"),
        edoc(XA_31, business="new"),
    ),
    (
        "business list",
        Match(business=frozenset({"update", "replace"})),
        edoc(XA_31, business="replace"),
        edoc(XA_31),
    ),
    (
        "document_type",
        Match(document_type=frozenset({1})),
        edoc(XA_31, document_type=1),
        edoc(XA_31, document_type=2),
    ),
    (
        "priority",
        Match(priority=frozenset({3, 4})),
        edoc(XA_31, priority=4),
        edoc(XA_31, priority=0),
    ),
    (
        "status_code",
        Match(status_code=frozenset({"03"})),
        status("03", XA_31, SO_TTTT),
        status("04", XA_31, SO_TTTT),
    ),
    (
        "status_code without its leading zero",
        Match(status_code=frozenset({"01"})),
        status("1", XA_31, SO_TTTT),
        status("10", XA_31, SO_TTTT),
    ),
    ("recipient_hosted true", Match(recipient_hosted=True), edoc(XA_31), edoc(VPCP)),
    ("recipient_hosted false", Match(recipient_hosted=False), edoc(VPCP), edoc(XA_31)),
    (
        "recipient_system",
        Match(recipient_system=frozenset({"eoffice", "vnpt_ioffice"})),
        edoc(UBND),
        edoc(XA_31),
    ),
    (
        "recipient_system never matches an unhosted recipient",
        Match(recipient_system=frozenset({"hcm_egov"})),
        edoc(XA_32),
        edoc(VPCP),
    ),
    (
        "conditions are ANDed",
        Match(kind="edoc", recipient_system=frozenset({"hcm_egov"}), priority=frozenset({2})),
        edoc(XA_31, priority=2),
        edoc(XA_31, priority=1),
    ),
]


@pytest.mark.parametrize(
    ("match", "matching", "other"),
    [pytest.param(m, yes, no, id=name) for name, m, yes, no in CONDITIONS],
)
def test_condition_decides_only_when_it_holds(
    match: Match, matching: RoutingFacts, other: RoutingFacts
) -> None:
    table = make_table(Rule("special", match, deliver_to="archive"))
    chosen = route(matching, table, DIRECTORY, on=AFTER).deliveries[0]
    assert (chosen.destination, chosen.rule) == ("archive", "special")
    assert any("special" in n for n in chosen.notes)
    for delivery in route(other, table, DIRECTORY, on=AFTER).deliveries:
        assert delivery.rule != "special"


def test_empty_match_is_a_catch_all() -> None:
    table = make_table(Rule("everything", deliver_to="archive"))
    decision = route(edoc(XA_31, VPCP), table, DIRECTORY, on=AFTER)
    assert decision.destinations == ("archive",)
    assert Match().is_catch_all and not Match(kind="edoc").is_catch_all


def test_recipient_conditions_see_the_effective_code() -> None:
    table = make_table(
        Rule("xa31", Match(recipient=CodeMatch(exact=frozenset({XA_31}))), deliver_to="archive")
    )
    assert route(edoc(XA_33_OLD), table, DIRECTORY, on=AFTER).destinations == ("archive",)
    assert route(edoc(XA_33_OLD), table, DIRECTORY, on=BEFORE).destinations == ("hcm_egov",)


def test_sender_is_matched_as_written_not_resolved() -> None:
    table = make_table(
        Rule("from31", Match(sender=CodeMatch(exact=frozenset({XA_31}))), deliver_to="archive")
    )
    assert route(edoc(UBND, sender=XA_33_OLD), table, DIRECTORY, on=AFTER).destinations == (
        "vnpt_ioffice",
    )


# ----------------------------------------------------------------------------- actions


def test_first_matching_deciding_rule_wins() -> None:
    table = make_table(
        Rule("first", Match(kind="edoc"), deliver_to="archive"),
        Rule("second", Match(recipient_hosted=True), deliver_to="eoffice"),
    )
    [delivery] = route(edoc(XA_31), table, DIRECTORY, on=AFTER).deliveries
    assert (delivery.destination, delivery.rule) == ("archive", "first")


def test_later_rule_decides_when_earlier_does_not_match() -> None:
    table = make_table(
        Rule("first", Match(kind="status"), deliver_to="archive"),
        Rule("second", Match(recipient_hosted=True), deliver_to="eoffice"),
    )
    [delivery] = route(edoc(XA_31), table, DIRECTORY, on=AFTER).deliveries
    assert (delivery.destination, delivery.rule) == ("eoffice", "second")


def test_refusal_after_a_deciding_rule_does_not_apply() -> None:
    table = make_table(
        Rule("allow", Match(kind="edoc"), deliver_to="hcm_egov"),
        Rule("deny", refuse=Refusal("RouteNotAllowed", "no")),
    )
    assert route(edoc(XA_31), table, DIRECTORY, on=AFTER).destinations == ("hcm_egov",)


def test_copy_only_rule_does_not_decide() -> None:
    table = make_table(
        Rule("copy", Match(kind="edoc"), copy_to=("archive",)),
        Rule("decide", Match(kind="edoc"), deliver_to="eoffice"),
    )
    decision = route(edoc(XA_31), table, DIRECTORY, on=AFTER)
    assert pairs(decision) == [(XA_31, "eoffice", False), (XA_31, "archive", True)]
    assert decision.deliveries[0].rule == "decide"
    assert decision.deliveries[1].rule == "copy"


def test_copies_accumulate_from_rules_before_and_after_the_deciding_one() -> None:
    table = make_table(
        Rule("copy-before", Match(kind="edoc"), copy_to=("archive",)),
        Rule("decide", Match(kind="edoc"), deliver_to="hcm_egov", copy_to=("eoffice",)),
        Rule("copy-after", Match(business=frozenset({"revoke"})), copy_to=("vnpt_ioffice",)),
        Rule("not-matching", Match(kind="status"), copy_to=("national_axis",)),
    )
    decision = route(edoc(XA_31, business="revoke"), table, DIRECTORY, on=AFTER)
    assert [(d.destination, d.copy, d.rule) for d in decision.deliveries] == [
        ("hcm_egov", False, "decide"),
        ("archive", True, "copy-before"),
        ("eoffice", True, "decide"),
        ("vnpt_ioffice", True, "copy-after"),
    ]


def test_copies_apply_under_the_defaults_too() -> None:
    table = make_table(
        Rule("archive-revocations", Match(business=frozenset({"revoke"})), copy_to=("archive",))
    )
    decision = route(edoc(XA_31, VPCP, business="revoke"), table, DIRECTORY, on=AFTER)
    assert pairs(decision) == [
        (XA_31, "hcm_egov", False),
        (XA_31, "archive", True),
        (VPCP, "national_axis", False),
        (VPCP, "archive", True),
    ]
    assert [d.rule for d in decision.deliveries] == [
        DEFAULT_HOSTED,
        "archive-revocations",
        DEFAULT_OUTSIDE,
        "archive-revocations",
    ]


def test_copy_destinations_are_deduplicated_per_recipient() -> None:
    table = make_table(
        Rule("a", copy_to=("archive", "archive")),
        Rule("b", Match(kind="edoc"), copy_to=("archive", "hcm_egov")),
    )
    decision = route(edoc(XA_31), table, DIRECTORY, on=AFTER)
    assert pairs(decision) == [(XA_31, "hcm_egov", False), (XA_31, "archive", True)]
    assert decision.deliveries[1].rule == "a"


def test_refuse_raises_route_not_allowed_with_rule_and_recipient() -> None:
    table = make_table(
        Rule(
            "no-test-codes-outside",
            Match(
                recipient=CodeMatch(pattern=re.compile(r"vxp\.saas\..*")), recipient_hosted=False
            ),
            refuse=Refusal("RouteNotAllowed", "test codes stay home"),
        )
    )
    with pytest.raises(RouteNotAllowed) as caught:
        route(edoc(XA_31, TEST_CODE), table, DIRECTORY, on=AFTER)
    assert caught.value.message == "test codes stay home"
    assert caught.value.details == {"rule": "no-test-codes-outside", "recipient": TEST_CODE}
    assert caught.value.http_status == 403


def test_refuse_may_name_another_existing_code() -> None:
    table = make_table(
        Rule(
            "senders",
            Match(sender=CodeMatch(exact=frozenset({VPCP}))),
            refuse=Refusal("SenderMismatch", "no"),
        )
    )
    with pytest.raises(SenderMismatch):
        route(edoc(XA_31, sender=VPCP), table, DIRECTORY, on=AFTER)


def test_refusal_codes_are_the_error_trees_codes() -> None:
    assert "RouteNotAllowed" in REFUSAL_CODES and "UnknownRecipient" in REFUSAL_CODES
    assert "ConfigInvalid" not in REFUSAL_CODES
    with pytest.raises(ValueError, match="Nonsense"):
        Refusal("Nonsense", "x")


def test_rule_needs_exactly_one_kind_of_decision() -> None:
    with pytest.raises(ValueError, match="exclude"):
        Rule("both", deliver_to="a", refuse=Refusal("RouteNotAllowed", "x"))
    with pytest.raises(ValueError, match="no action"):
        Rule("none")


# ----------------------------------------------------------------------------- successors


def test_successor_not_yet_in_effect_routes_the_old_code() -> None:
    [delivery] = route(edoc(XA_33_OLD), make_table(), DIRECTORY, on=BEFORE).deliveries
    assert delivery.effective_recipient == XA_33_OLD
    assert not any("merged" in n for n in delivery.notes)


def test_successor_in_effect_routes_the_new_code_with_a_trail() -> None:
    [delivery] = route(edoc(XA_33_OLD), make_table(), DIRECTORY, on=AFTER).deliveries
    assert (delivery.recipient, delivery.effective_recipient) == (XA_33_OLD, XA_31)
    assert f"{XA_33_OLD} merged into {XA_31} on 2025-07-01" in delivery.notes


def test_successor_chain_resolves_step_by_step() -> None:
    before = route(edoc(XA_34_OLDER), make_table(), DIRECTORY, on=BEFORE).deliveries[0]
    after = route(edoc(XA_34_OLDER), make_table(), DIRECTORY, on=AFTER).deliveries[0]
    assert before.effective_recipient == XA_33_OLD
    assert after.effective_recipient == XA_31
    assert sum("merged into" in n for n in after.notes) == 2


def test_old_and_new_code_in_one_packet_make_one_delivery() -> None:
    decision = route(edoc(XA_33_OLD, XA_31), make_table(), DIRECTORY, on=AFTER)
    [delivery] = decision.deliveries
    assert delivery.recipient == XA_33_OLD
    assert f"also addressed as {XA_31}" in delivery.notes
    assert decision.for_recipient(XA_31) == decision.for_recipient(XA_33_OLD) == (delivery,)


def test_copies_carry_the_successor_trail() -> None:
    table = make_table(Rule("copy", copy_to=("archive",)))
    copy = route(edoc(XA_33_OLD), table, DIRECTORY, on=AFTER).deliveries[1]
    assert copy.copy and copy.effective_recipient == XA_31
    assert any("merged into" in n for n in copy.notes)


# ----------------------------------------------------------------------------- statuses


def test_status_goes_to_the_system_of_the_original_sender() -> None:
    # The commune received the Department's document and reports "03 accepted" back.
    facts = status("03", XA_31, SO_TTTT)
    [delivery] = route(facts, make_table(), DIRECTORY, on=AFTER).deliveries
    assert (delivery.recipient, delivery.destination, delivery.rule) == (
        SO_TTTT,
        "eoffice",
        DEFAULT_STATUS,
    )


def test_status_for_an_original_sender_outside_goes_to_the_national_axis() -> None:
    [delivery] = route(status("01", UBND, VPCP), make_table(), DIRECTORY, on=AFTER).deliveries
    assert (delivery.destination, delivery.rule) == ("national_axis", DEFAULT_STATUS)


def test_status_outside_without_outside_destination_is_refused() -> None:
    with pytest.raises(UnknownRecipient):
        route(status("01", UBND, VPCP), make_table(outside=None), DIRECTORY, on=AFTER)


def test_recall_request_travels_to_the_original_recipient() -> None:
    # The SDK sample 13: From = the original sender, ResponseFor/OrganId = its recipient.
    facts = status("13", VPCP, XA_32)
    [delivery] = route(facts, make_table(), DIRECTORY, on=AFTER).deliveries
    assert (delivery.recipient, delivery.destination, delivery.rule) == (
        XA_32,
        "hcm_egov",
        DEFAULT_RECALL,
    )


def test_recall_answers_15_and_16_travel_back_like_other_statuses() -> None:
    for code in ("15", "16"):
        [delivery] = route(status(code, XA_32, VPCP), make_table(), DIRECTORY, on=AFTER).deliveries
        assert (delivery.destination, delivery.rule) == ("national_axis", DEFAULT_STATUS)


def test_status_addressee_is_resolved_through_successors() -> None:
    [delivery] = route(
        status("13", SO_TTTT, XA_33_OLD), make_table(), DIRECTORY, on=AFTER
    ).deliveries
    assert delivery.effective_recipient == XA_31


def test_recall_addressed_to_its_own_sender_is_refused_with_a_hint() -> None:
    with pytest.raises(UnknownRecipient, match="recipient of the original document"):
        route(status("13", SO_TTTT, SO_TTTT), make_table(), DIRECTORY, on=AFTER)


def test_status_without_response_for_is_refused() -> None:
    with pytest.raises(UnknownRecipient, match="ResponseFor"):
        route(status("01", XA_31, None), make_table(), DIRECTORY, on=AFTER)


def test_rules_apply_to_statuses() -> None:
    table = make_table(
        Rule("recalls", Match(kind="status", status_code=frozenset({"13"})), copy_to=("archive",))
    )
    decision = route(status("13", VPCP, XA_32), table, DIRECTORY, on=AFTER)
    assert pairs(decision) == [(XA_32, "hcm_egov", False), (XA_32, "archive", True)]


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

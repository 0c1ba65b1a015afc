"""The routing core's rules: every condition and action."""

from __future__ import annotations

import re

import pytest

from bus.errors import (
    RouteNotAllowed,
    SenderMismatch,
)
from bus.routing import (
    DEFAULT_HOSTED,
    DEFAULT_OUTSIDE,
    REFUSAL_CODES,
    CodeMatch,
    Match,
    Refusal,
    RoutingFacts,
    Rule,
    route,
)
from tests.unit.routing_kit import (
    AFTER,
    BEFORE,
    DIRECTORY,
    SO_TTTT,
    TEST_CODE,
    UBND,
    VPCP,
    XA_31,
    XA_32,
    XA_33_OLD,
    edoc,
    make_table,
    pairs,
    status,
)

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

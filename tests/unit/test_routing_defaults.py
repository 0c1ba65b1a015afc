"""The routing core without deciding rules: defaults, successors and statuses."""

from __future__ import annotations

import pytest

from bus.errors import (
    ConfigInvalid,
    UnknownRecipient,
)
from bus.routing import (
    DEFAULT_HOSTED,
    DEFAULT_OUTSIDE,
    DEFAULT_RECALL,
    DEFAULT_STATUS,
    Defaults,
    Destination,
    Match,
    RouteTable,
    Rule,
    route,
)
from tests.unit.routing_kit import (
    AFTER,
    BEFORE,
    DIRECTORY,
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
    status,
)

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

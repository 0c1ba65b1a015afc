"""The routing core: defaults, every condition and action, statuses, successors, determinism.

The shared part of the test_routing_*.py files: the codes, the directory, and the
builders of tables and facts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from bus.directory import Agency, Directory, Successor, System
from bus.routing import (
    Defaults,
    Destination,
    RouteTable,
    RoutingDecision,
    RoutingFacts,
    Rule,
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

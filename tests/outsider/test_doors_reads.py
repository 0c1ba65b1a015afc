"""The read endpoints attacked from outside: evidence, deadlines, overdue documents,
reconciliations and the feedback report. Fixture and helpers: :mod:`tests.outsider.doors_kit`."""

from __future__ import annotations

import time

import httpx

from tests.outsider.doors_kit import (
    AXIS_KEY,
    BOUND_S,
    EOFFICE_KEY,
    OPERATOR_KEY,
    Bus,
    assert_coded,
    timed,
)

# --------------------------------------------------- evidence, deadlines, overdue, reconciliations


def _get(bus: Bus, path: str, key: str | None, **kw) -> tuple[httpx.Response, float]:
    headers = {"X-API-Key": key} if key else {}
    return timed(httpx.get, bus.base + path, headers=headers, timeout=10, **kw)


def test_evidence_and_deadlines_hidden_from_unrelated_systems(bus: Bus) -> None:
    for suffix in ("evidence", "deadlines"):
        r, dt = _get(bus, f"/api/v1/edocs/{bus.doc}/{suffix}", AXIS_KEY)
        assert_coded(r, 404, dt)
        assert "XSSSUBJ" not in r.text
        r, dt = _get(bus, f"/api/v1/edocs/{bus.doc}/{suffix}", None)
        assert_coded(r, 401, dt)
        r, dt = _get(bus, f"/api/v1/edocs/{bus.doc}/{suffix}", EOFFICE_KEY)
        assert r.status_code == 200 and dt < BOUND_S


def test_overdue_shows_unrelated_system_nothing_of_others(bus: Bus) -> None:
    later = {"at": "2030-01-02T09:00:00+07:00"}  # every stage of the document is late by then
    r, dt = _get(bus, "/api/v1/overdue", OPERATOR_KEY, params=later)
    assert r.status_code == 200 and dt < BOUND_S
    assert bus.doc in r.text  # so the check below is not vacuous
    for params in ({}, later, {**later, "destination": "hcm_egov"}):
        r, dt = _get(bus, "/api/v1/overdue", AXIS_KEY, params=params)
        assert r.status_code == 200 and dt < BOUND_S
        assert bus.doc not in r.text and r.json()["count"] == 0
        for d in bus.deliveries:
            assert d not in r.text


def test_reconciliations_only_for_operator_systems(bus: Bus) -> None:
    for key in (EOFFICE_KEY, AXIS_KEY):
        r, dt = _get(bus, "/api/v1/reconciliations", key)
        assert_coded(r, (403, 404), dt)
        r, dt = _get(bus, "/api/v1/reconciliations/anything", key)
        assert_coded(r, (403, 404), dt)
    r, dt = _get(bus, "/api/v1/reconciliations", OPERATOR_KEY)
    assert r.status_code == 200 and dt < BOUND_S


def test_feedback_report_needs_a_key_and_refuses_bad_periods_with_a_code(bus: Bus) -> None:
    r, dt = _get(bus, "/api/v1/reports/feedback", None)
    assert_coded(r, 401, dt)
    for key in (OPERATOR_KEY, EOFFICE_KEY):
        r, dt = _get(bus, "/api/v1/reports/feedback", key)
        assert r.status_code == 200 and dt < BOUND_S, r.text
    for bad in ({"from": "2026-02-30"}, {"from": "x' or 1=1--"}, {"to": "9" * 40},
                {"format": "../../etc/passwd"}, {"limit": "-1"}):
        r, dt = _get(bus, "/api/v1/reports/feedback", OPERATOR_KEY, params=bad)
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)
        assert_coded(r, r.status_code, dt)


def test_read_endpoints_malformed_parameters_are_coded_4xx(bus: Bus) -> None:
    weird = ({"at": "2026-13-45"}, {"at": "x' or 1=1--"}, {"at": "9" * 400}, {"at": "1e400"},
             {"at": "inf"}, {"at": "nan"}, {"at": "2026-06-01T00:00:00+99:00"},
             {"date": "garbage"}, {"date": "9" * 300}, {"date": "2026-01-01'--"},
             {"stage": "x"}, {"destination": "' or 1=1--"},
             {"limit": "-1"}, {"limit": "99999999999999999999"}, {"limit": "abc"},
             {"cursor": "%%%"}, {"format": "../../etc/passwd"}, {"since": "2026-02-30"})
    paths = ("/api/v1/overdue", "/api/v1/reconciliations", f"/api/v1/edocs/{bus.doc}/deadlines",
             f"/api/v1/edocs/{bus.doc}/evidence")
    t0 = time.monotonic()
    for params in weird:
        for path in paths:
            r, dt = _get(bus, path, OPERATOR_KEY, params=params)
            assert r.status_code < 500, (path, params, r.status_code, r.text[:300])
            assert dt < BOUND_S and "Traceback" not in r.text
            if r.status_code >= 400:
                assert r.json().get("code"), r.text
    assert time.monotonic() - t0 < 20
    for path in ("/api/v1/reconciliations/" + "a" * 3000, "/api/v1/reconciliations/1%00",
                 "/api/v1/edocs/%00/evidence", "/api/v1/edocs/" + "a" * 4000 + "/deadlines",
                 "/api/v1/reconciliations/..%2f..%2fetc%2fpasswd"):
        r, dt = _get(bus, path, OPERATOR_KEY)
        assert_coded(r, (400, 404), dt)
        assert "root:" not in r.text


def test_overdue_at_out_of_range_is_a_coded_400(bus: Bus) -> None:
    for key in (OPERATOR_KEY, AXIS_KEY):
        for at in ("1e12", "-1e12", "253402300800", "99999999999999999999",
                   "9999-12-31T23:59:59+14:00", "9999-12-31T23:59:59-12:00"):
            r, dt = _get(bus, "/api/v1/overdue", key, params={"at": at})
            assert_coded(r, 400, dt)


def test_reconciliations_impossible_date_is_a_coded_400(bus: Bus) -> None:
    for date in ("2026-02-30", "2026-13-01", "0000-01-01"):
        r, dt = _get(bus, "/api/v1/reconciliations", OPERATOR_KEY, params={"date": date})
        assert_coded(r, 400, dt)

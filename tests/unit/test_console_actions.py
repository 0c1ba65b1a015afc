"""Operators' actions on deliveries: the state rules, the reason, the history, bulk runs.

The library is what the REST API, the CLI and the console call, so its rules are tested
here once on a real SQLite store; the CLI is driven through ``lgsp`` itself.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus import errors
from bus.cli import main
from bus.console import actions
from bus.edxml import EdocBuilder, packet_bytes
from bus.store import NewDelivery, Store
from bus.store.queries import Viewer, document_detail
from bus.store.tables import deliveries, events
from tests.fixtures_services import postgres  # noqa: F401 - fixture

SENDER = "000.00.12.H37"
RECIPIENT = "000.00.31.H37"




def _delivery(store: Store, state: str = "parked") -> str:
    edoc = EdocBuilder(SENDER).to(RECIPIENT).subject("Công văn").signer("Nguyễn Văn A").build()
    data = packet_bytes(edoc)
    doc_id = edoc.document_id or str(uuid.uuid4())
    accepted = store.accept(kind="edoc", sender=SENDER, document_id=doc_id,
                            dedup_key=f"edoc|{SENDER}|{doc_id}",
                            content_sha256=hashlib.sha256(data).hexdigest(), payload=data,
                            system="eoffice",
                            targets=[NewDelivery(RECIPIENT, RECIPIENT, "hcm_egov", "test")],
                            summary={"subject": "Công văn"})
    delivery = accepted.deliveries[0][0]
    with store.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.id == delivery)
                     .values(state=state, attempts=3, last_error="HTTP 503"))
    return delivery


def _row(store: Store, delivery: str) -> sa.Row[tuple[str, int, float, str | None]]:
    d = deliveries.c
    with store.engine.connect() as conn:
        return conn.execute(sa.select(d.state, d.attempts, d.next_attempt_at, d.last_error)
                            .where(d.id == delivery)).one()


def _last_event(store: Store, delivery: str) -> tuple[str, str, dict[str, str]]:
    e = events.c
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(e.actor, e.action, e.detail).where(e.delivery == delivery)
                           .order_by(e.id.desc()).limit(1)).one()
    return row.actor, row.action, json.loads(row.detail)


@pytest.mark.parametrize(("action", "before", "after"), [
    ("resend", "parked", "pending"), ("resend", "refused", "pending"),
    ("resend", "pending", "pending"),
    ("park", "pending", "parked"), ("park", "queued", "parked"),
    ("cancel", "pending", "cancelled"), ("cancel", "queued", "cancelled"),
    ("cancel", "parked", "cancelled"), ("cancel", "refused", "cancelled"),
])
def test_an_allowed_action_moves_the_state_and_is_in_the_history(
        store: Store, action: str, before: str, after: str) -> None:
    delivery = _delivery(store, before)
    outcome = actions.act(store, action, delivery, actor="console:lan",
                          reason="hệ thống nhận đã hoạt động lại", via="console")
    assert (outcome.before, outcome.after) == (before, after)
    row = _row(store, delivery)
    assert row.state == after
    if action == "resend":
        assert row.attempts == 0 and row.last_error is None
        assert row.next_attempt_at <= time.time()
    actor, name, detail = _last_event(store, delivery)
    assert (actor, name) == ("console:lan", action)
    assert detail == {"reason": "hệ thống nhận đã hoạt động lại", "from": before, "to": after,
                      "via": "console"}
    # The REST API's document view accepts the new state (cancelled is a known state).
    view = document_detail(store.engine, outcome.document, Viewer("x", operator=True))
    assert view.deliveries[0].state == after
    assert view.deliveries[0].history[-1].action == action


@pytest.mark.parametrize(("action", "state"), [
    ("resend", "delivered"), ("resend", "delivering"), ("resend", "awaiting"),
    ("resend", "cancelled"), ("park", "parked"), ("park", "delivering"),
    ("park", "awaiting"), ("park", "delivered"), ("cancel", "delivered"),
    ("cancel", "delivering"), ("cancel", "awaiting"), ("cancel", "cancelled"),
])
def test_a_state_that_does_not_allow_the_action_is_a_conflict_and_changes_nothing(
        store: Store, action: str, state: str) -> None:
    delivery = _delivery(store, state)
    with pytest.raises(errors.StateConflict) as refused:
        actions.act(store, action, delivery, actor="api:operator", reason="thử")
    assert refused.value.http_status == 409
    assert refused.value.details["state"] == state
    assert state in refused.value.message
    assert _row(store, delivery).state == state
    assert _last_event(store, delivery)[1] == "routed"


@pytest.mark.parametrize("reason", [None, "", "   \n"])
def test_the_reason_is_mandatory(store: Store, reason: str | None) -> None:
    delivery = _delivery(store)
    with pytest.raises(errors.InvalidRequest, match="reason"):
        actions.act(store, "resend", delivery, actor="cli:root", reason=reason)
    assert _row(store, delivery).state == "parked"


def test_unknown_action_and_unknown_delivery(store: Store) -> None:
    delivery = _delivery(store)
    with pytest.raises(errors.InvalidRequest, match="action"):
        actions.act(store, "delete", delivery, actor="cli:root", reason="x")
    with pytest.raises(errors.NotFound):
        actions.act(store, "resend", "0" * 32, actor="cli:root", reason="x")


def test_a_scoped_viewer_cannot_act_on_a_delivery_it_cannot_see(store: Store) -> None:
    delivery = _delivery(store)
    stranger = Viewer("vnpt_ioffice", hosted=frozenset({"000.00.00.H37"}))
    with pytest.raises(errors.NotFound):
        actions.act(store, "cancel", delivery, actor="x", reason="x", viewer=stranger)
    hosting = Viewer("hcm_egov", hosted=frozenset({RECIPIENT}))
    assert actions.act(store, "cancel", delivery, actor="x", reason="x",
                       viewer=hosting).after == "cancelled"


def test_bulk_goes_at_the_configured_rate_and_reports_each_item(store: Store) -> None:
    ids = [_delivery(store) for _ in range(4)] + [_delivery(store, "delivered")]
    pauses: list[float] = []
    result = actions.act_many(store, "resend", ids, actor="api:operator", reason="bulk",
                              per_second=4.0, sleep=pauses.append)
    assert pauses == [0.25] * 4
    assert [o.delivery for o in result.done] == ids[:4]
    assert [(d, e.code) for d, e in result.refused] == [(ids[4], "StateConflict")]
    assert not result.stopped


def test_bulk_really_waits_between_items(store: Store) -> None:
    ids = [_delivery(store) for _ in range(3)]
    started = time.monotonic()
    actions.act_many(store, "cancel", ids, actor="api:operator", reason="bulk",
                     per_second=10.0)
    assert time.monotonic() - started >= 0.2


def test_the_stop_switch_stops_a_running_bulk_action_between_items(store: Store) -> None:
    ids = [_delivery(store) for _ in range(5)]
    calls = 0

    def another_operator_stops(_: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            actions.set_stop_switch(store, True, actor="console:binh")

    result = actions.act_many(store, "resend", ids, actor="console:lan", reason="bulk",
                              sleep=another_operator_stops)
    assert result.stopped
    assert [o.delivery for o in result.done] == ids[:2]
    assert result.untouched == ids[2:]
    assert {_row(store, d).state for d in ids[2:]} == {"parked"}
    # While the switch is on, a new bulk action is refused before touching anything.
    with pytest.raises(errors.StateConflict, match="stop switch"):
        actions.act_many(store, "resend", ids[2:], actor="console:lan", reason="again")
    assert {_row(store, d).state for d in ids[2:]} == {"parked"}
    actions.set_stop_switch(store, False, actor="console:binh")
    assert not actions.stop_switch(store)
    assert len(actions.act_many(store, "resend", ids[2:], actor="console:lan",
                                reason="again", sleep=lambda _: None).done) == 3
    with store.engine.connect() as conn:
        switched = conn.execute(sa.select(events.c.actor, events.c.action).where(
            events.c.action.in_(("bulk_stop", "bulk_resume"))).order_by(events.c.id)).all()
    assert [tuple(r) for r in switched] == [("console:binh", "bulk_stop"),
                                            ("console:binh", "bulk_resume")]


def test_each_action_is_counted_by_outcome_once_per_registry(store: Store) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    tally = actions.tally_on(registry)
    assert actions.tally_on(registry) is not tally  # a second mount shares the counter
    parked, queued = _delivery(store), _delivery(store, "delivered")
    actions.act(store, "resend", parked, actor="t", reason="back", via="console", tally=tally)
    with pytest.raises(errors.StateConflict):
        actions.act(store, "park", queued, actor="t", reason="x", via="api", tally=tally)
    with pytest.raises(errors.InvalidRequest):
        actions.act(store, "explode", parked, actor="t", reason="x", via="api", tally=tally)
    result = actions.act_many(store, "cancel", [parked, "nope"], actor="t", reason="done",
                              via="api", per_second=1000, tally=tally)
    assert len(result.done) == 1 and len(result.refused) == 1

    def value(*labels: str) -> float | None:
        return registry.get_sample_value("lgsp_operator_actions_total", dict(
            action=labels[0], via=labels[1], outcome=labels[2]))
    assert value("resend", "console", "done") == 1
    assert value("park", "api", "StateConflict") == 1
    assert value("other", "api", "InvalidRequest") == 1
    assert value("cancel", "api", "done") == 1
    assert value("cancel", "api", "NotFound") == 1


def test_bulk_refuses_an_empty_or_oversized_selection(store: Store) -> None:
    with pytest.raises(errors.InvalidRequest):
        actions.act_many(store, "resend", [" "], actor="x", reason="x")
    with pytest.raises(errors.InvalidRequest):
        actions.act_many(store, "resend", [str(i) for i in range(actions.MAX_SELECTION + 1)],
                         actor="x", reason="x")


def test_cli_resend_park_cancel_and_the_requeue_alias(
        sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = _delivery(sqlite_store), _delivery(sqlite_store, "pending")
    data = ["--data-dir", str(tmp_path)]
    assert main(["deliveries", "requeue", first, "--reason", "đích đã chạy lại", *data]) == 0
    assert _row(sqlite_store, first).state == "pending"
    assert f"{first}: parked -> pending" in capsys.readouterr().out
    actor, action, detail = _last_event(sqlite_store, first)
    assert actor.startswith("cli:") and action == "resend" and detail["via"] == "cli"
    assert main(["deliveries", "park", first, second, "--reason", "bảo trì", "--rate",
                 "100", *data]) == 0
    assert {_row(sqlite_store, first).state, _row(sqlite_store, second).state} == {"parked"}
    assert main(["deliveries", "cancel", first, "--reason", "gửi nhầm", *data]) == 0
    assert main(["deliveries", "cancel", first, "--reason", "gửi nhầm", *data]) == 1
    err = capsys.readouterr().err
    assert err.strip().startswith("lgsp: StateConflict: ") and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:
        main(["deliveries", "resend", second, *data])
    assert usage.value.code == 2


def test_cli_bulk_stop_switch(sqlite_store: Store, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["deliveries", "bulk-stop", "on", *data]) == 0
    assert actions.stop_switch(sqlite_store)
    assert "STOPPED" in capsys.readouterr().out
    ids = [_delivery(sqlite_store), _delivery(sqlite_store)]
    assert main(["deliveries", "resend", *ids, "--reason", "x", *data]) == 1
    assert "stop switch" in capsys.readouterr().err
    assert main(["deliveries", "bulk-stop", "off", *data]) == 0
    assert main(["deliveries", "resend", *ids, "--reason", "x", "--rate", "50", *data]) == 0


def test_cli_names_a_missing_database_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = tmp_path / "typo"
    assert main(["deliveries", "resend", "x", "--reason", "x", "--data-dir", str(nowhere)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lgsp: ") and "data directory" in err and err.count("\n") == 1
    assert not nowhere.exists()
    assert main(["deliveries", "bulk-stop", "--data-dir", str(nowhere)]) == 1
    assert not nowhere.exists()

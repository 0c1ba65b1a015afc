"""The national axis' books as reconciliation reads them, against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.national_axis.ledger import NationalAxisLedger
from adapters.national_axis.simulator import AxisSimulator
from bus import errors, vxp
from bus.app import Bus
from bus.delivery.pollers import BusInbox
from bus.edxml import packet_bytes
from bus.settings import load_settings
from bus.store.tables import inbound_sources
from tests.adapters.test_national_axis import (
    LOCAL,
    OUTSIDE,
    SYSTEM,
    delivery,
    edoc,
    make_adapter,
)


@pytest.fixture
def axis() -> Iterator[AxisSimulator]:
    with AxisSimulator({SYSTEM: "s3cr3t/with+base64=looking", "OTHER": "x"}) as sim:
        sim.host(OUTSIDE, "OTHER")
        yield sim


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGSP_TEST_AXIS_SECRET", "s3cr3t/with+base64=looking")


@pytest.fixture
def ledger(axis: AxisSimulator) -> Iterator[NationalAxisLedger]:
    adapter = make_adapter(axis.endpoint)
    yield adapter.ledger()
    adapter.close()


def today() -> date:
    from datetime import datetime

    return datetime.now(vxp.AXIS_TZ).date()


def test_confirmations_per_recipient_and_a_lost_one(axis: AxisSimulator,
                                                    ledger: NationalAxisLedger) -> None:
    sent = ledger.adapter.deliver(delivery(packet_bytes(edoc())))
    assert sent.reference is not None
    rows = ledger.confirmations(sent.reference)
    assert rows is not None and [(r.to, r.send_status) for r in rows] == [(OUTSIDE, "done")]
    axis.lose_confirmation(sent.reference, OUTSIDE)
    assert ledger.confirmations(sent.reference) == []
    axis.lose_confirmation(sent.reference)
    assert ledger.confirmations(sent.reference) is None
    assert ledger.confirmations("no-such-doc") is None


def test_a_days_sends_are_listed_with_their_doc_ids(axis: AxisSimulator,
                                                    ledger: NationalAxisLedger) -> None:
    mine = ledger.adapter.deliver(delivery(packet_bytes(edoc()))).reference
    foreign = axis.record_send(SYSTEM, packet_bytes(edoc(number="2")), sender=LOCAL,
                               to=[OUTSIDE])
    axis.record_send("OTHER", packet_bytes(edoc(number="3")), sender=OUTSIDE, to=[LOCAL])
    listed = ledger.sent_on(today())
    assert listed is not None
    assert sorted(r.doc_id for r in listed) == sorted([mine, foreign])
    assert ledger.sent_on(today() - timedelta(days=1)) == []


def test_an_axis_that_cannot_list_a_day_gives_none(axis: AxisSimulator,
                                                   ledger: NationalAxisLedger) -> None:
    axis.fail(vxp.ErrorCode.UNKNOWN_OPERATION, operation="getSentEdocList", times=1)
    assert ledger.sent_on(today()) is None


def test_received_by_day_includes_acknowledged_items(axis: AxisSimulator,
                                                     ledger: NationalAxisLedger) -> None:
    pending = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    done = axis.inject(SYSTEM, b"<status/>", sender=OUTSIDE, message_type="status",
                       status="done")
    listed = {(i.doc_id, i.message_type, i.status) for i in ledger.received_on(today())}
    assert listed == {(pending, "edoc", "initial"), (done, "status", "done")}
    assert all(i.created_at is not None for i in ledger.received_on(today()))
    assert ledger.received_on(today() + timedelta(days=1)) == []


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    built = Bus(load_settings(environ={}, data_dir=tmp_path / "var"))
    yield built
    built.close()


def test_fetch_records_once_and_acknowledges(axis: AxisSimulator, ledger: NationalAxisLedger,
                                             bus: Bus) -> None:
    doc_id = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    inbox = BusInbox(bus, "national_axis")
    first = ledger.fetch(inbox, doc_id)
    assert ledger.fetch(inbox, doc_id) == first
    assert axis.item(SYSTEM, doc_id).status == "done"  # type: ignore[union-attr]
    with bus.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_sources)
                            ).scalar_one() == 1


def test_fetch_of_a_packet_the_bus_refuses_acknowledges_fail(
        axis: AxisSimulator, ledger: NationalAxisLedger, bus: Bus) -> None:
    doc_id = axis.inject(SYSTEM, b"<not-edxml", sender=OUTSIDE)
    with pytest.raises(errors.LgspError):
        ledger.fetch(BusInbox(bus, "national_axis"), doc_id)
    assert axis.item(SYSTEM, doc_id).status == "fail"  # type: ignore[union-attr]

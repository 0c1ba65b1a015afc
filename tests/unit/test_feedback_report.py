"""The status-feedback report: counts, shares and medians computed by the database.

Documents enter through :meth:`Bus.submit` and statuses too; deliveries are completed
through the store's own claim/finish, as a worker would. Only the clocks are then set by
SQL (acceptance at a fixed time, each status a known number of seconds later), so the
medians have exact expected values: odd counts (the middle value) and even counts (the
mean of the two middle values) both. :func:`scenario` is shared with the PostgreSQL run in
``tests/integration/test_lifecycle_e2e.py``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bus import errors
from bus.app import Bus
from bus.cli import main
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.lifecycle.feedback import Period, as_table, feedback, period, render
from bus.settings import load_settings
from bus.store.queries import Viewer
from bus.store.tables import business_statuses, deliveries, documents

SO_TTTT, VP_UBND, XA_31 = "000.00.12.H37", "000.00.00.H37", "000.00.31.H37"
BASE = 1_780_000_000.0
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
# per document, per code: seconds after acceptance that VP_UBND's status arrived
ANSWERS = [{"01": 60, "03": 600, "06": 3600}, {"01": 120, "03": 1200}, {"01": 300}]


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    running = Bus(load_settings(environ={}, data_dir=tmp_path / "bus"))
    try:
        yield running
    finally:
        running.close()


def _deliver_all(bus: Bus, doc: str) -> None:
    dl = deliveries.c
    with bus.store.engine.connect() as conn:
        ids = conn.execute(sa.select(dl.id).where(dl.document == doc)).scalars().all()
    for delivery in ids:
        claim = bus.store.claim(delivery, lease_s=60, worker="test")
        assert claim is not None
        assert bus.store.finish(claim, "delivered", worker="test", reference="r")


def scenario(bus: Bus) -> list[Edoc]:
    """Three documents to VP_UBND and XA_31; VP_UBND answers as ANSWERS says, XA_31
    never; a fourth is sent but never delivered and must not count."""
    sent: list[Edoc] = []
    for number, answers in enumerate(ANSWERS):
        edoc = (EdocBuilder(SO_TTTT).to(VP_UBND, XA_31).subject(f"Văn bản {number}")
                .signer("A").document_id(f"{SO_TTTT},2026/06/0{number + 1},{number}/STTTT")
                .build())
        doc = bus.submit(packet_bytes(edoc), system="eoffice", channel="rest").document
        _deliver_all(bus, doc)
        for code in answers:
            bus.submit(packet_bytes(status_for(edoc, code)), system="vnpt_ioffice",
                       channel="rest")
        bs, d = business_statuses.c, documents.c
        with bus.store.engine.begin() as conn:
            conn.execute(documents.update().where(d.id == doc).values(received_at=BASE))
            for code, after in answers.items():
                conn.execute(business_statuses.update().where(
                    bs.document == doc, bs.code == code).values(received_at=BASE + after))
        sent.append(edoc)
    pending = EdocBuilder(SO_TTTT).to(VP_UBND).subject("Chưa giao").signer("A").build()
    doc = bus.submit(packet_bytes(pending), system="eoffice", channel="rest").document
    with bus.store.engine.begin() as conn:
        conn.execute(documents.update().where(documents.c.id == doc).values(received_at=BASE))
    return sent


SPAN = Period(BASE - 1, BASE + 1)


def check_report(bus: Bus) -> None:
    report = feedback(bus.store.engine, SPAN, Viewer("op", operator=True))
    by = {a["agency"]: a for a in report["agencies"]}
    vp, xa = by[VP_UBND], by[XA_31]
    assert (vp["received"], vp["answered"], vp["never_answered"]) == (3, 3, 0)
    assert (vp["answered_01"], vp["answered_03"], vp["answered_06"]) == (3, 2, 1)
    assert (vp["share_01"], vp["share_03"], vp["share_06"]) == (1.0, 0.6667, 0.3333)
    assert (vp["median_01_s"], vp["median_03_s"], vp["median_06_s"]) == (120.0, 900.0, 3600.0)
    assert (xa["received"], xa["answered"], xa["never_answered"]) == (3, 0, 3)
    assert xa["median_01_s"] is None and xa["share_01"] == 0
    assert sorted(d["document_id"] for d in xa["unanswered_documents"]) == \
        [f"{SO_TTTT},2026/06/0{n + 1},{n}/STTTT" for n in range(3)]
    assert report["summary"] == {"agencies": 2, "reporting": 1, "not_reporting": 1,
                                 "fully_answered": 1, "documents": 6, "never_answered": 3}
    egov = feedback(bus.store.engine, SPAN,
                    Viewer("hcm_egov", frozenset({XA_31, "000.00.32.H37"})))
    assert [a["agency"] for a in egov["agencies"]] == [XA_31]
    assert feedback(bus.store.engine, SPAN, Viewer("nobody"))["agencies"] == []
    one = feedback(bus.store.engine, SPAN, Viewer("op", operator=True), agency=VP_UBND)
    assert [a["agency"] for a in one["agencies"]] == [VP_UBND]
    outside = feedback(bus.store.engine, Period(BASE + 1, BASE + 2),
                       Viewer("op", operator=True))
    assert outside["agencies"] == []


def test_counts_shares_and_medians(bus: Bus) -> None:
    scenario(bus)
    check_report(bus)


def test_formats(bus: Bus) -> None:
    scenario(bus)
    report = feedback(bus.store.engine, SPAN, Viewer("op", operator=True))
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [(r["agency"], r["received"], r["share_03"], r["median_03_s"]) for r in rows] == \
        [(VP_UBND, "3", "0.6667", "900.0"), (XA_31, "3", "0.0", "")]
    assert len(rows[1]["unanswered_document_ids"].split()) == 3
    table = as_table(report)
    assert "1 of 2 agencies reported processing status, 1 did not" in table
    assert "never answered by 000.00.31.H37" in table


def test_periods_are_days_in_the_province() -> None:
    span = period("2026-06-01", "2026-06-30", ZONE)
    assert span.start == pytest.approx(1780246800.0)   # 2026-06-01T00:00+07:00
    assert span.end - span.start == 30 * 86400
    default = period(None, None, ZONE, today=date(2026, 6, 30))
    assert default.end == span.end and default.end - default.start == 30 * 86400
    with pytest.raises(errors.InvalidRequest):
        period("2026-06-30", "2026-06-01", ZONE)


def test_the_cli(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    scenario(bus)
    data_dir = str(bus.settings.data_dir)
    day = "2026-05-29"   # BASE is 2026-05-29 03:26 in Hanoi
    assert main(["report", "feedback", "--data-dir", data_dir, "--from", day, "--to", day,
                 "--format", "csv", "--agency", XA_31]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["agency"], r["never_answered"]) for r in rows] == [(XA_31, "3")]
    assert main(["report", "feedback", "--data-dir", data_dir, "--from", day,
                 "--to", day]) == 0
    assert "1 of 2 agencies reported" in capsys.readouterr().out
    assert main(["report", "feedback", "--data-dir", data_dir, "--from", "x"]) == 1

"""Working-day deadlines end to end through the REST door, on SQLite and PostgreSQL.

Time is injected into the bus's deadline book (``bus.deadlines.clock``): a document
"sent" on the Friday before Tết, or a recipient silent for a month, without sleeping.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
import yaml

from bus import cli
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.settings import REPO_ROOT
from bus.store.tables import deliveries, delivery_deadlines, documents
from tests.api_server import ApiServer, api_key, running_bus

VN = ZoneInfo("Asia/Ho_Chi_Minh")
EOFFICE = api_key("eoffice")
IOFFICE = api_key("vnpt_ioffice")
EGOV = api_key("hcm_egov")
OPERATOR = api_key("operator")
OFFICE, COMMUNE = "000.00.00.H37", "000.00.31.H37"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    settings: dict[str, Any] = {"overdue_gauge_max_age_s": 0}  # the gauge follows each step
    if request.param == "postgresql":
        from tests.cluster import fresh_database

        settings["database_url"] = fresh_database(request.getfixturevalue("postgres"))
    with running_bus(tmp_path / "bus", **settings) as running:
        yield running


def edoc(*, priority: int | None = None, due: date | None = None) -> Edoc:
    builder = (EdocBuilder("000.00.12.H37").to(OFFICE, COMMUNE).subject("Báo cáo tháng")
               .signer("Nguyễn Văn A", "Giám đốc").code("7", "BC-STTTT"))
    if priority is not None:
        builder.priority(priority)
    if due is not None:
        builder.due(due)
    return builder.build()


def send(server: ApiServer, packet: Edoc) -> str:
    response = httpx.post(f"{server.url}/api/v1/edocs", content=packet_bytes(packet),
                          headers=EOFFICE, timeout=30)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def deadlines(server: ApiServer, doc: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/v1/edocs/{doc}/deadlines", headers=headers,
                         timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(VN).replace(tzinfo=None)


def due_of(view: dict[str, Any], recipient: str) -> dict[str, datetime]:
    (delivery,) = [d for d in view["deliveries"] if d["effective_recipient"] == recipient]
    return {s["stage"]: local(s["due"]) for s in delivery["stages"]}


def test_friday_afternoon_before_tet(server: ApiServer) -> None:
    friday = datetime(2026, 2, 13, 15, 0, tzinfo=VN).timestamp()  # Tết: 16–20 Feb off
    server.bus.deadlines.clock = lambda: friday
    normal = send(server, edoc())
    urgent = send(server, edoc(priority=1, due=date(2026, 2, 24)))

    view = deadlines(server, normal, EOFFICE)
    assert due_of(view, OFFICE) == due_of(view, COMMUNE) == {
        "arrival": datetime(2026, 2, 23, 9, 30),     # 2 h on Friday, 2 h after Tết
        "acceptance": datetime(2026, 2, 23, 15, 0),  # one working day
        "completion": datetime(2026, 3, 6, 15, 0),   # ten working days
    }
    assert {d["rule"] for d in view["deliveries"]} == {"normal"}
    assert not view["overdue"]

    view = deadlines(server, urgent, EOFFICE)  # "khẩn": 2h / 1d / 5d, DueDate 24 Feb caps
    assert due_of(view, OFFICE) == {
        "arrival": datetime(2026, 2, 13, 17, 0),
        "acceptance": datetime(2026, 2, 23, 15, 0),
        "completion": datetime(2026, 2, 24, 17, 0),
    }
    assert {d["rule"] for d in view["deliveries"]} == {"khan"}
    assert {d["due_date"] for d in view["deliveries"]} == {"2026-02-24"}


def test_a_silent_recipient_becomes_overdue(server: ApiServer, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.time()
    server.bus.deadlines.clock = lambda: start
    packet = edoc()
    doc = send(server, packet)
    for code in ("01", "03"):
        response = httpx.post(f"{server.url}/api/v1/statuses", headers=IOFFICE, timeout=30,
                              content=packet_bytes(status_for(packet, code, sender=OFFICE)))
        assert response.status_code == 202, response.text
    assert not deadlines(server, doc, EOFFICE)["overdue"]
    assert httpx.get(f"{server.url}/api/v1/overdue", headers=OPERATOR).json()["count"] == 0

    server.bus.deadlines.clock = lambda: start + 30 * 86400  # a month later, no 01 from COMMUNE
    view = deadlines(server, doc, EOFFICE)
    assert view["overdue"]
    states = {d["effective_recipient"]: {s["stage"]: s["state"] for s in d["stages"]}
              for d in view["deliveries"]}
    assert states[OFFICE] == {"arrival": "met", "acceptance": "met", "completion": "overdue"}
    assert states[COMMUNE] == {"arrival": "overdue", "acceptance": "overdue",
                               "completion": "overdue"}

    listed = httpx.get(f"{server.url}/api/v1/overdue", headers=OPERATOR,
                       params={"stage": "arrival"}).json()
    assert [(i["document"], i["effective_recipient"]) for i in listed["items"]] == \
        [(doc, COMMUNE)]
    # A recipient's system sees the document's deliveries, as GET /api/v1/edocs/{id}
    # shows them; a system the document has nothing to do with sees nothing.
    mine = httpx.get(f"{server.url}/api/v1/overdue", headers=EGOV).json()["items"]
    assert {i["effective_recipient"] for i in mine} == {COMMUNE, OFFICE}  # same document
    other = httpx.get(f"{server.url}/api/v1/overdue", headers=api_key("national_axis")).json()
    assert other["items"] == []
    nobody = httpx.get(f"{server.url}/api/v1/edocs/{doc}/deadlines",
                       headers=api_key("national_axis"))
    assert nobody.status_code == 404 and nobody.json()["code"] == "NotFound"

    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'lgsp_deliveries_overdue{destination="hcm_egov",stage="arrival"} 1.0' in metrics
    assert 'lgsp_deliveries_overdue{destination="vnpt_ioffice",stage="arrival"} 0.0' in metrics
    assert 'lgsp_deliveries_overdue{destination="vnpt_ioffice",stage="completion"} 1.0' \
        in metrics

    when = datetime.fromtimestamp(start + 30 * 86400, VN).isoformat()
    argv = ["deadlines", "overdue", "--format", "csv", "--at", when]
    if server.bus.settings.database_url:
        monkeypatch.setenv("LGSP_DATABASE_URL", server.bus.settings.database_url)
    argv += ["--data-dir", str(server.bus.settings.data_dir)]
    assert cli.main(argv) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted((r["recipient"], r["stage"]) for r in rows) == [
        (OFFICE, "completion"), (COMMUNE, "acceptance"), (COMMUNE, "arrival"),
        (COMMUNE, "completion")]
    assert all(r["document"] == doc and float(r["late_working_hours"]) > 0 for r in rows)

    # The office completes (06): its delivery is settled and leaves the gauge. (The store
    # stamps the status with the real time, within the deadline: "met", not "late".)
    response = httpx.post(f"{server.url}/api/v1/statuses", headers=IOFFICE, timeout=30,
                          content=packet_bytes(status_for(packet, "06", sender=OFFICE)))
    assert response.status_code == 202, response.text
    states = {d["effective_recipient"]: {s["stage"]: s["state"] for s in d["stages"]}
              for d in deadlines(server, doc, EOFFICE)["deliveries"]}
    assert states[OFFICE] == {"arrival": "met", "acceptance": "met", "completion": "met"}
    with server.bus.store.engine.connect() as conn:
        settled = dict(conn.execute(
            sa.select(deliveries.c.effective_recipient, delivery_deadlines.c.settled_at)
            .join(deliveries, deliveries.c.id == delivery_deadlines.c.delivery)
            .where(delivery_deadlines.c.document == doc)).all())
    assert settled[OFFICE] is not None and settled[COMMUNE] is None
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'lgsp_deliveries_overdue{destination="hcm_egov",stage="completion"} 1.0' in metrics
    overdue = [line for line in metrics.splitlines()
               if line.startswith("lgsp_deliveries_overdue{")]
    assert not any('destination="vnpt_ioffice"' in line and not line.endswith(" 0.0")
                   for line in overdue), overdue


def _copy_config(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    routes = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text(encoding="utf-8"))
    routes["rules"].insert(0, {"name": "everything-to-archive", "match": {"kind": "edoc"},
                               "copy_to": ["archive"]})
    paths = {"routes": folder / "routes.yaml", "calendar": folder / "calendar.yaml",
             "deadlines": folder / "deadlines.yaml"}
    paths["routes"].write_text(yaml.safe_dump(routes, allow_unicode=True), encoding="utf-8")
    for name in ("calendar", "deadlines"):
        shutil.copy(REPO_ROOT / "config" / f"{name}.yaml", paths[name])
    return paths


def test_reload_applies_to_new_documents_only_and_copies_have_none(tmp_path: Path) -> None:
    paths = _copy_config(tmp_path / "config")
    monday = datetime(2026, 3, 9, 9, 0, tzinfo=VN).timestamp()
    with running_bus(tmp_path / "bus", **paths) as server:
        server.bus.deadlines.clock = lambda: monday
        before = send(server, edoc())
        view = deadlines(server, before, EOFFICE)
        assert sorted(d["effective_recipient"] for d in view["deliveries"]) == [OFFICE, COMMUNE]
        detail = httpx.get(f"{server.url}/api/v1/edocs/{before}", headers=EOFFICE).json()
        assert "archive" in {d["destination"] for d in detail["deliveries"]}  # a copy, no SLA

        text = paths["deadlines"].read_text(encoding="utf-8")
        paths["deadlines"].write_text(text.replace("    arrival: 4h", "    arrival: 1h"),
                                      encoding="utf-8")
        paths["calendar"].write_text(
            paths["calendar"].read_text(encoding="utf-8").replace(
                "days_off: []", "days_off:\n  - {date: 2026-03-09, reason: test}"),
            encoding="utf-8")
        assert server.bus.reload()
        after = send(server, edoc())
        assert due_of(deadlines(server, before, EOFFICE), OFFICE)["arrival"] == \
            datetime(2026, 3, 9, 14, 30)  # fixed at acceptance: 4 h, Monday a working day
        assert due_of(deadlines(server, after, EOFFICE), OFFICE)["arrival"] == \
            datetime(2026, 3, 10, 8, 30)  # 1 h, Monday now off

        paths["deadlines"].write_text(text.replace("arrival: 4h", "arrival: 4 hours"),
                                      encoding="utf-8")
        assert not server.bus.reload()  # refused with its line; the rules in force stay
        policy = server.bus.reloader.current().deadlines
        assert policy is not None and policy.rules[-1].limits["arrival"] == 3600


def test_a_recall_gets_no_deadlines(server: ApiServer) -> None:
    original = edoc()
    send(server, original)
    recall = (EdocBuilder("000.00.12.H37").to(OFFICE).subject("Thu hồi báo cáo")
              .signer("Nguyễn Văn A", "Giám đốc").code("8", "TB-STTTT")
              .business("revoke", "gửi nhầm").build())
    doc = send(server, recall)
    assert deadlines(server, doc, EOFFICE)["deliveries"] == []


def test_a_failure_to_compute_deadlines_never_refuses_the_document(server: ApiServer) -> None:
    def broken() -> None:
        raise RuntimeError("calendar exploded")

    server.bus.deadlines.policy = broken  # type: ignore[assignment]
    doc = send(server, edoc())
    assert deadlines(server, doc, EOFFICE)["deliveries"] == []
    assert "deadlines.not_recorded" in server.log_text()


def test_backfill_gives_deadlines_to_documents_accepted_without(
        server: ApiServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    policy = server.bus.deadlines.policy
    server.bus.deadlines.policy = lambda: None  # as before an upgrade
    doc = send(server, edoc(priority=1))
    server.bus.deadlines.policy = policy
    assert deadlines(server, doc, EOFFICE)["deliveries"] == []

    if server.bus.settings.database_url:
        monkeypatch.setenv("LGSP_DATABASE_URL", server.bus.settings.database_url)
    argv = ["deadlines", "backfill", "--data-dir", str(server.bus.settings.data_dir)]
    assert cli.main(argv) == 0
    assert "for 2 recipient deliveries" in capsys.readouterr().out
    view = deadlines(server, doc, EOFFICE)
    assert {d["rule"] for d in view["deliveries"]} == {"khan"}
    with server.bus.store.engine.connect() as conn:
        received, started = conn.execute(
            sa.select(documents.c.received_at, delivery_deadlines.c.started_at)
            .join(delivery_deadlines, delivery_deadlines.c.document == documents.c.id)
            .where(documents.c.id == doc)).first() or (None, None)
    assert started == received  # the clock started when the bus accepted it
    assert cli.main(argv) == 0
    assert "for 0 recipient deliveries" in capsys.readouterr().out

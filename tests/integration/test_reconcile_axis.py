"""Reconciliation with the national axis, end to end.

A real bus (REST door, delivery loops, the axis poller) talks to the national-axis
simulator. Documents go through the REST door to an agency outside the province, so the
axis carries them; then the simulator is made to disagree with the bus in each of the
four ways (a lost confirmation, a send the bus never made, a status acknowledged but
never recorded, a document never fetched). ``lgsp reconcile axis`` must list exactly
those, fetch the status and the document through the inbound path (recorded once), keep
the run (``lgsp reconcile show``, GET /api/v1/reconciliations), and come back clean once
the axis agrees again. On the embedded default and on RabbitMQ + PostgreSQL.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from adapters.national_axis.simulator import AxisSimulator
from bus import vxp
from bus.cli import main as lgsp
from bus.delivery.pollers import Pollers
from bus.edxml import Edoc, packet_bytes, status_for
from bus.runtime import running
from bus.settings import REPO_ROOT
from bus.store.tables import business_statuses, documents, events, inbound_sources
from tests.api_server import ApiServer, api_key, running_bus
from tests.cluster import fresh_database
from tests.edxml_factory import builder

SYSTEM, SECRET, ENV = "00.37.W00", "reconcile-axis-secret", "LGSP_NATIONAL_AXIS_SECRET"
OUTSIDE, OUTSIDE_SYSTEM = "000.00.00.G22", "OUTSIDE-PROVINCE"
LOCAL = "000.00.12.H37"  # hosted by eoffice


def routes(folder: Path, endpoint: str) -> Path:
    """routes.yaml with the axis at the simulator, polled once at start (the test decides
    what the poller never saw), no archive copies, quick retries."""
    raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text("utf-8"))
    axis = raw["destinations"]["national_axis"]
    axis["options"] = {**axis["options"], "endpoint": endpoint, "poll_interval_s": 3600}
    axis.pop("retry", None)
    raw["destinations"].pop("archive", None)
    raw["rules"] = [r for r in raw.get("rules", []) if "archive" not in (r.get("copy_to") or [])
                    and r.get("deliver_to") != "archive"]
    raw["defaults"]["retry"] = {"attempts": 20, "first_delay_s": 0.5, "max_delay_s": 2}
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def edoc(sender: str, recipient: str, number: int) -> Edoc:
    return builder(sender, recipient).document_id(
        f"{sender},2026/12/01,{number}/UBND-VP").subject(f"Công văn số {number}").build()


@pytest.fixture(params=["embedded", "rabbitmq+postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "embedded":
        return {}
    postgres = request.getfixturevalue("postgres")
    rabbitmq = request.getfixturevalue("rabbitmq")
    return {"database_url": fresh_database(postgres, "reconcile_axis"),
            "broker_url": rabbitmq.url}


@pytest.fixture
def axis() -> Iterator[AxisSimulator]:
    with AxisSimulator({SYSTEM: SECRET, OUTSIDE_SYSTEM: "outside-secret"}) as sim:
        sim.host(OUTSIDE, OUTSIDE_SYSTEM)
        yield sim


@pytest.fixture
def province(tmp_path: Path, axis: AxisSimulator, backend: dict[str, str],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    monkeypatch.setenv(ENV, SECRET)
    settings = {"routes": routes(tmp_path, axis.endpoint), "reconcile_at": "",
                "poll_interval_s": 0.1, **backend}
    # What `lgsp reconcile` (a separate process's settings) reads: the same bus.
    for key, value in settings.items():
        monkeypatch.setenv(f"LGSP_{key.upper()}", str(value))
    monkeypatch.setenv("LGSP_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LGSP_LOG_JSON", "true")
    with running_bus(tmp_path / "var", **settings) as server, \
            running(server.bus, deliver=True) as loops:
        pollers = [p for p in next(loop for loop in loops if isinstance(loop, Pollers)).pollers
                   if p.destination.name == "national_axis"]
        deadline = time.monotonic() + 15
        while not all(p.polls for p in pollers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pollers and all(p.polls for p in pollers), "the axis poller never polled"
        yield server


def send(server: ApiServer, packet: Edoc) -> str:
    reply = httpx.post(server.url + "/api/v1/edocs", content=packet_bytes(packet),
                       headers={**api_key("eoffice"), "Content-Type": "application/xml"})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def axis_reference(server: ApiServer, document: str, timeout_s: float = 30.0) -> str:
    """The axis DocId once the delivery to the outside agency is made."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        detail = httpx.get(f"{server.url}/api/v1/edocs/{document}",
                           headers=api_key("operator")).json()
        delivered = [d for d in detail["deliveries"] if d["state"] == "delivered"]
        if delivered:
            return str(delivered[0]["receipt_reference"])
        time.sleep(0.1)
    raise AssertionError(f"document {document} was not delivered through the axis")


def reconcile(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = lgsp(["reconcile", "axis", "--grace", "0", "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def count(server: ApiServer, table: sa.Table, *where: Any) -> int:
    with server.bus.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(*where)).scalar_one())


def test_reconcile_finds_exactly_what_the_axis_and_the_bus_disagree_on(
        province: ApiServer, axis: AxisSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    server = province
    originals = [edoc(LOCAL, OUTSIDE, n) for n in (1, 2, 3)]
    sent = [send(server, packet) for packet in originals]
    refs = [axis_reference(server, document) for document in sent]

    code, clean = reconcile(capsys)
    assert (code, clean["items"]) == (0, []), clean
    assert clean["counts"]["sent"] == 3 and clean["counts"]["confirmed"] == 3

    # The four disagreements.
    axis.lose_confirmation(refs[0])
    foreign = axis.record_send(SYSTEM, packet_bytes(edoc(LOCAL, OUTSIDE, 9)), sender=LOCAL,
                               to=[OUTSIDE])
    answer = status_for(originals[1], "03", sender=OUTSIDE)
    held_status = axis.inject(SYSTEM, packet_bytes(answer), sender=OUTSIDE,
                              message_type="status", status="done")
    held_edoc = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL, 7)), sender=OUTSIDE,
                            to=[LOCAL])
    documents_before = count(server, documents)

    code, first = reconcile(capsys)
    assert code == 1 and first["state"] == "finished"
    found = {(i["kind"], i["axis_doc_id"]) for i in first["items"]}
    assert found == {("sent_unconfirmed", refs[0]), ("confirmed_unknown", foreign),
                     ("status_missing", held_status), ("received_not_fetched", held_edoc)}
    assert len(first["items"]) == 4
    unconfirmed = next(i for i in first["items"] if i["kind"] == "sent_unconfirmed")
    assert (unconfirmed["document"], unconfirmed["organ_id"]) == (sent[0], OUTSIDE)
    counts = first["counts"]
    assert (counts["sent"], counts["confirmed"], counts["refetched"]) == (3, 2, 2)
    # Re-queried through the inbound path: recorded once, under the axis docId.
    assert count(server, business_statuses, business_statuses.c.document == sent[1],
                 business_statuses.c.code == "03") == 1
    assert count(server, inbound_sources, inbound_sources.c.source_id.in_(
        [held_status, held_edoc])) == 2
    assert count(server, documents) == documents_before + 2
    assert count(server, events, events.c.action == "reconciled") == 2
    assert axis.pending(SYSTEM) == []

    scraped = httpx.get(server.url + "/metrics").text
    for kind in ("sent_unconfirmed", "confirmed_unknown", "status_missing",
                 "received_not_fetched"):
        assert f'lgsp_reconcile_mismatches{{kind="{kind}"}} 1.0' in scraped
    assert "lgsp_reconcile_last_run_failed 0.0" in scraped

    # The bus repaired its side; the axis' side stays until the axis agrees.
    code, second = reconcile(capsys)
    assert code == 1
    assert sorted(i["kind"] for i in second["items"]) == ["confirmed_unknown",
                                                          "sent_unconfirmed"]
    assert second["counts"]["refetched"] == 0 and second["counts"]["recorded"] == 2
    assert count(server, documents) == documents_before + 2
    assert count(server, business_statuses, business_statuses.c.document == sent[1]) == 1

    axis.restore_confirmation(refs[0])
    axis.forget_sent(foreign)
    code, third = reconcile(capsys)
    assert (code, third["items"]) == (0, [])
    assert 'lgsp_reconcile_mismatches{kind="sent_unconfirmed"} 0.0' in httpx.get(
        server.url + "/metrics").text

    # Kept, and shown to operators only.
    listed = httpx.get(server.url + "/api/v1/reconciliations", headers=api_key("operator"))
    assert listed.status_code == 200, listed.text
    runs = listed.json()["items"]
    assert [r["id"] for r in runs] == [third["id"], second["id"], first["id"], clean["id"]]
    assert [r["mismatches"] for r in runs] == [0, 2, 4, 0]
    shown = httpx.get(f"{server.url}/api/v1/reconciliations/{first['id']}",
                      headers=api_key("operator")).json()
    assert collections.Counter(i["kind"] for i in shown["items"]) == collections.Counter(
        i["kind"] for i in first["items"])
    for path in ("/api/v1/reconciliations", f"/api/v1/reconciliations/{first['id']}"):
        refused = httpx.get(server.url + path, headers=api_key("eoffice"))
        assert refused.status_code == 404 and refused.json()["code"] == "NotFound"
    assert lgsp(["reconcile", "show", first["id"]]) == 0
    table = capsys.readouterr().out
    assert "4 mismatch(es)" in table and f"docId={held_status}" in table


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_without_a_day_listing_the_bus_own_sends_are_still_checked(
        province: ApiServer, axis: AxisSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    documents_sent = [send(province, edoc(LOCAL, OUTSIDE, n)) for n in (1, 2)]
    refs = [axis_reference(province, document) for document in documents_sent]
    axis.lose_confirmation(refs[1], OUTSIDE)
    axis.record_send(SYSTEM, packet_bytes(edoc(LOCAL, OUTSIDE, 9)), sender=LOCAL, to=[OUTSIDE])
    axis.fail("UnknownOperation", operation="getSentEdocList", times=1)
    code, run = reconcile(capsys)
    assert code == 1
    assert [(i["kind"], i["axis_doc_id"]) for i in run["items"]] == [
        ("sent_unconfirmed", refs[1])]
    assert "without recipient" in run["items"][0]["detail"]
    assert any("does not list a day's sends" in note for note in run["notes"])


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_an_unreachable_axis_is_a_failed_run_kept_with_its_reason(
        province: ApiServer, axis: AxisSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    axis.down()
    code = lgsp(["reconcile", "axis", "--date", "yesterday"])
    out = capsys.readouterr().out
    assert code == 3 and "FAILED: the axis could not be read" in out
    assert "lgsp_reconcile_last_run_failed 1.0" in httpx.get(province.url + "/metrics").text
    assert lgsp(["reconcile", "show"]) == 0
    listing = capsys.readouterr().out
    assert "failed: the axis could not be read" in listing and "1 run(s)" in listing


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_packet_the_axis_holds_under_two_doc_ids_is_one_document_linked_to_both(
        province: ApiServer, axis: AxisSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    packet = packet_bytes(edoc(OUTSIDE, LOCAL, 5))
    first = axis.inject(SYSTEM, packet, sender=OUTSIDE, to=[LOCAL])
    second = axis.inject(SYSTEM, packet, sender=OUTSIDE, to=[LOCAL])
    code, run = reconcile(capsys)
    items = {i["axis_doc_id"]: i for i in run["items"]}
    assert code == 1 and set(items) == {first, second}
    assert all(items[i]["action"].startswith("fetched: recorded as document")
               for i in (first, second))
    assert items[first]["document"] == items[second]["document"]
    assert count(province, documents, documents.c.kind == "edoc") == 1
    code, run = reconcile(capsys)  # both axis ids are now linked to the one document
    assert code == 0 and run["items"] == []


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_the_command_prints_only_its_report_on_stdout(province: ApiServer,
                                                      axis: AxisSimulator) -> None:
    axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL, 4)), sender=OUTSIDE, to=[LOCAL])
    done = subprocess.run([sys.executable, "-m", "bus.cli", "reconcile", "axis", "--grace",
                           "0", "--format", "json"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LGSP_LOG_LEVEL": "DEBUG"})
    assert done.returncode == 1, done.stderr
    run = json.loads(done.stdout)
    assert [i["kind"] for i in run["items"]] == ["received_not_fetched"]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_document_the_recipients_system_refused_at_the_axis_is_listed(
        province: ApiServer, axis: AxisSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    document = send(province, edoc(LOCAL, OUTSIDE, 1))
    ref = axis_reference(province, document)
    # The other province's system fetches it and acknowledges "fail", over the wire.
    refusal = vxp.update_status(vxp.Credentials(OUTSIDE_SYSTEM, "outside-secret"), ref,
                                vxp.AckStatus.FAIL)
    answer = httpx.post(refusal.url(axis.endpoint), headers=refusal.headers,
                        content=refusal.body).json()
    assert answer["ErrorCode"] == "0"
    code, run = reconcile(capsys)
    assert code == 1
    assert [(i["kind"], i["document"], i["organ_id"]) for i in run["items"]] == [
        ("recipient_refused", document, OUTSIDE)]
    assert run["counts"]["confirmed"] == 1 and run["counts"]["recipient_refused"] == 1

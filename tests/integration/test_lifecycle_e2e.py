"""Recall and withdrawal end to end, through the real doors, with real delivery running:
on the embedded default (SQLite, the database as queue) and on PostgreSQL + RabbitMQ.

Destinations are loopback HTTP sinks that count effects by Idempotency-Key, so "never
delivered after the recall" is checked where it matters: at the destination. The race
test submits a revoke while the original's delivery is being attempted, many times, and
checks that every round ends consistent: a delivery is either delivered, with its attempt
recorded before the recall was accepted, or withdrawn and never seen by the destination.
"""

from __future__ import annotations

import base64
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import sqlalchemy as sa

from adapters.vnpt_ioffice.simulator import IofficeSimulator
from bus.app import Bus
from bus.delivery.pollers import Pollers
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.runtime import delivery_loops
from bus.settings import REPO_ROOT, load_settings
from bus.store.tables import deliveries, documents, events
from tests.api_server import ApiServer, api_key, running_bus
from tests.cluster import fresh_database
from tests.http_sink import HttpSink
from tests.servers import PostgresServer
from tests.unit.test_feedback_report import SPAN, check_report, scenario

pytestmark = [pytest.mark.slow]

SO_TTTT: Final = "000.00.12.H37"    # eoffice
VP_UBND: Final = "000.00.00.H37"    # vnpt_ioffice (also its /vxp systemId)
XA_31: Final = "000.00.31.H37"      # hcm_egov
VXP_SECRET: Final = "dev-vnpt_ioffice-vxp-secret"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_NS: Final = "urn:lgsp-bus:soap:v1"
VXP_SYSTEMS: Final = f"""
version: 1
development_secrets: true
systems:
  "{VP_UBND}":
    system: vnpt_ioffice
    secret_env: LGSP_TEST_VXP_SECRET_UNSET
"""


@dataclass
class Env:
    server: ApiServer
    good: HttpSink
    bad: HttpSink

    @property
    def engine(self) -> sa.Engine:
        return self.server.bus.store.engine

    def rest(self, path: str, packet: bytes, system: str = "eoffice") -> dict[str, Any]:
        answer = httpx.post(self.server.url + path, content=packet, timeout=30,
                            headers={**api_key(system), "Content-Type": "application/xml"})
        assert answer.status_code == 202, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def get(self, doc: str, system: str = "eoffice") -> dict[str, Any]:
        answer = httpx.get(f"{self.server.url}/api/v1/edocs/{doc}", headers=api_key(system),
                           timeout=30)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def states(self, doc: str) -> dict[str, str]:
        dl = deliveries.c
        with self.engine.connect() as conn:
            return {r.effective_recipient: r.state for r in conn.execute(
                sa.select(dl.effective_recipient, dl.state).where(dl.document == doc))}


def _routes(good: HttpSink, bad: HttpSink) -> str:
    return "\n".join([
        "version: 1", "destinations:",
        f'  eoffice: {{adapter: http, options: {{url: "{good.url("/eoffice")}", timeout_s: 5}}}}',
        f'  vnpt_ioffice: {{adapter: http, options: {{url: "{good.url("/ioffice")}", '
        "timeout_s: 5}}",
        f'  hcm_egov: {{adapter: http, options: {{url: "{bad.url("/egov")}", timeout_s: 5}}}}',
        "defaults:", "  retry: {attempts: 50, first_delay_s: 0.1, max_delay_s: 0.3}", ""])


@pytest.fixture(params=["embedded", pytest.param("rabbit", marks=pytest.mark.services)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(REPO_ROOT / "config" / "directory.yaml", config / "directory.yaml")
    (config / "vxp_systems.yaml").write_text(VXP_SYSTEMS, encoding="utf-8")
    backend: dict[str, Any] = {}
    if request.param == "rabbit":
        backend = {"database_url": fresh_database(request.getfixturevalue("postgres")),
                   "broker_url": request.getfixturevalue("rabbitmq").url}
    with HttpSink() as good, HttpSink() as bad:
        routes = tmp_path / "routes.yaml"
        routes.write_text(_routes(good, bad), encoding="utf-8")
        with running_bus(tmp_path / "bus", routes=routes, directory=config / "directory.yaml",
                         poll_interval_s=0.05, sweep_interval_s=1.0, delivery_threads=2,
                         **backend) as server:
            loops = [loop for loop in delivery_loops(server.bus, deliver=True)
                     if not isinstance(loop, Pollers)]
            for loop in loops:
                loop.start()
            try:
                yield Env(server, good, bad)
            finally:
                for loop in reversed(loops):
                    loop.stop(15.0)
                close = getattr(server.bus.dispatcher, "close", None)
                if close is not None:
                    close()


def wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def original(*to: str, number: int = 1) -> Edoc:
    return (EdocBuilder(SO_TTTT).to(*to).subject(f"Kế hoạch số {number}")
            .signer("Nguyễn Văn A", "Giám đốc").code(str(number), "KH-STTTT").build())


def revoke(of: Edoc) -> Edoc:
    return (EdocBuilder(SO_TTTT).to(*of.recipients).subject(f"Thu hồi: {of.subject}")
            .signer("Nguyễn Văn A", "Giám đốc").code(f"{of.code.code_number}-TH", "KH-STTTT")
            .responding_to(SO_TTTT, str(of.code), of.document_id or "")
            .business("revoke", "Ban hành nhầm đối tượng").build())


def soap_send_edoc(env: Env, packet: bytes, key: str = "dev-eoffice-key") -> None:
    body = (f'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="{SOAP_ENV}" '
            f'xmlns:lgsp="{SOAP_NS}"><soap:Header><lgsp:ApiKey>{key}</lgsp:ApiKey>'
            f'</soap:Header><soap:Body><lgsp:SendEdoc><lgsp:packet>'
            f'{base64.b64encode(packet).decode()}</lgsp:packet></lgsp:SendEdoc>'
            '</soap:Body></soap:Envelope>')
    answer = httpx.post(env.server.url + "/soap", content=body.encode(), timeout=30,
                        headers={"Content-Type": "text/xml; charset=utf-8"})
    assert answer.status_code == 200, answer.text


def doc_of(env: Env, document_id: str | None) -> str:
    with env.engine.connect() as conn:
        return str(conn.execute(sa.select(documents.c.id).where(
            documents.c.document_id == document_id)).scalar_one())


def test_a_revoke_withdraws_what_was_not_delivered_and_it_never_goes_out(env: Env) -> None:
    env.bad.fail(503)
    first = original(VP_UBND, XA_31)
    doc = env.rest("/api/v1/edocs", packet_bytes(first))["id"]
    assert wait(lambda: env.states(doc)[VP_UBND] == "delivered")
    assert wait(lambda: env.bad.requests_by_key()[f"{doc}:{XA_31}:hcm_egov"] >= 1)

    recall_edoc = revoke(first)
    soap_send_edoc(env, packet_bytes(recall_edoc))
    recall = doc_of(env, recall_edoc.document_id)
    assert wait(lambda: env.states(doc)[XA_31] == "withdrawn")
    env.bad.ok()
    assert wait(lambda: f"{recall}:{XA_31}:hcm_egov" in env.bad.effect_keys())
    time.sleep(1.0)   # several retry periods: a withdrawn delivery must stay so
    assert env.states(doc) == {VP_UBND: "delivered", XA_31: "withdrawn"}
    assert f"{doc}:{XA_31}:hcm_egov" not in env.bad.effect_keys()

    seen = env.get(doc)
    [link] = seen["superseded_by"]
    assert (link["kind"], link["document"]) == ("revoke", recall)
    # withdrawn by the accepting transaction, or (when the recall landed during one of
    # its failing attempts) in flight then, and withdrawn when that attempt failed
    [superseded] = [h["detail"] for h in env.get(doc)["history"] if h["action"] == "superseded"]
    assert link["withdrawn"] + len(superseded["in_flight"]) == 1
    assert env.get(recall)["supersedes"][0]["document"] == doc
    assert {r["effective_recipient"]: r["delivery_state"] for r in seen["recipients"]} == \
        {VP_UBND: "delivered", XA_31: "withdrawn"}
    assert [h["action"] for h in seen["history"]].count("superseded") == 1
    commune = env.get(doc, "hcm_egov")
    assert commune["superseded_by"][0]["document"] == recall

    # the recipient that had it acknowledges through the axis facade, against the recall
    ioffice = IofficeSimulator(env.server.url + "/vxp", VP_UBND, VXP_SECRET)
    try:
        reply = ioffice.send_status(packet_bytes(status_for(recall_edoc, "15")))
        assert reply.ok, reply.body
    finally:
        ioffice.close()
    recipients = {r["effective_recipient"]: r for r in env.get(doc)["recipients"]}
    assert recipients[VP_UBND]["recall"] == "accepted"
    assert [s["code"] for s in recipients[VP_UBND]["timeline"]] == ["15"]
    scrape = httpx.get(env.server.url + "/metrics", timeout=10).text
    assert 'lgsp_recalls_total{kind="revoke"} 1.0' in scrape
    assert "lgsp_deliveries_withdrawn_total 1.0" in scrape


def test_a_recall_request_reaches_every_recipient(env: Env) -> None:
    first = original(VP_UBND, XA_31, number=2)
    doc = env.rest("/api/v1/edocs", packet_bytes(first))["id"]
    assert wait(lambda: env.states(doc)[VP_UBND] == "delivered")
    receipt = env.rest("/api/v1/statuses", packet_bytes(status_for(first, "13")))
    assert sorted(r["delivered_to"] for r in receipt["recipients"]) == [VP_UBND, XA_31]
    assert wait(lambda: f"{receipt['id']}:{VP_UBND}:vnpt_ioffice" in env.good.effect_keys())
    answer = env.rest("/api/v1/statuses", packet_bytes(status_for(first, "16")),
                      system="vnpt_ioffice")
    assert answer["recipients"][0]["delivered_to"] == SO_TTTT
    recipients = {r["effective_recipient"]: r["recall"] for r in env.get(doc)["recipients"]}
    assert recipients == {VP_UBND: "refused", XA_31: "requested"}


def _attempts_before(env: Env, doc: str, recall: str) -> bool:
    """Every attempt on the original was recorded before the recall was accepted (event
    ids follow commit order where it matters: a claim that wins the row commits first)."""
    ev = events.c
    with env.engine.connect() as conn:
        accepted = conn.execute(sa.select(ev.id).where(
            ev.document == recall, ev.action == "accepted")).scalar_one()
        attempts = conn.execute(sa.select(ev.id).where(
            ev.document == doc, ev.action == "attempt")).scalars().all()
    return all(a < accepted for a in attempts)


def test_a_recall_racing_the_delivery_ends_consistent(env: Env) -> None:
    rng = random.Random(13)
    outcomes: list[str] = []
    rounds = 16
    for number in range(rounds):
        # the first attempt fails and the retry waits 0-0.3 s, or the destination is
        # slow: a recall after a random pause lands before, during or after an attempt
        if number % 2:
            env.good.fail(503, times=rng.choice((1, 3, 6)))
        else:
            env.good.slow(rng.choice((0.0, 0.1, 0.3)))
        first = original(VP_UBND, number=100 + number)
        doc = env.rest("/api/v1/edocs", packet_bytes(first))["id"]
        time.sleep(rng.uniform(0.0, 0.3))
        recall = env.rest("/api/v1/edocs", packet_bytes(revoke(first)))["id"]
        key = f"{doc}:{VP_UBND}:vnpt_ioffice"
        assert wait(lambda d=doc: env.states(d)[VP_UBND] in ("delivered", "withdrawn"))
        assert wait(lambda r=recall: env.states(r)[VP_UBND] == "delivered")
        state = env.states(doc)[VP_UBND]
        outcomes.append(state)
        assert _attempts_before(env, doc, recall), f"round {number}: attempt after recall"
        env.good.ok()
        if state == "withdrawn":
            assert key not in env.good.effect_keys(), f"round {number}"
        else:
            assert key in env.good.effect_keys(), f"round {number}"
    env.good.ok()
    # a deterministic in-flight round: the recall lands while the destination is busy
    env.good.slow(1.0)
    first = original(VP_UBND, number=999)
    doc = env.rest("/api/v1/edocs", packet_bytes(first))["id"]
    assert wait(lambda: env.states(doc)[VP_UBND] == "delivering")
    recall = env.rest("/api/v1/edocs", packet_bytes(revoke(first)))["id"]
    assert wait(lambda: env.states(doc)[VP_UBND] == "delivered")
    assert _attempts_before(env, doc, recall)
    superseded = [h for h in env.get(doc)["history"] if h["action"] == "superseded"]
    assert superseded[0]["detail"]["in_flight"] == [VP_UBND]
    env.good.ok()
    print(f"race outcomes: {outcomes.count('delivered')} delivered before the recall, "
          f"{outcomes.count('withdrawn')} withdrawn")
    assert "withdrawn" in outcomes and "delivered" in outcomes


# ------------------------------------------------------------------ the feedback report


def test_the_feedback_report_through_rest(tmp_path: Path) -> None:
    with running_bus(tmp_path / "bus") as server:
        scenario(server.bus)
        url = (f"{server.url}/api/v1/reports/feedback?from={SPAN.start}&to={SPAN.end}")
        whole = httpx.get(url, headers=api_key("operator"), timeout=30)
        assert whole.status_code == 200, whole.text
        assert whole.json()["summary"]["not_reporting"] == 1
        commune = httpx.get(url + "&format=csv", headers=api_key("hcm_egov"), timeout=30)
        assert commune.headers["content-type"].startswith("text/csv")
        rows = commune.text.splitlines()
        assert len(rows) == 2 and rows[1].startswith(XA_31 + ",")
        table = httpx.get(url + "&format=table", headers=api_key("eoffice"), timeout=30)
        assert "0 of 0 agencies" in table.text   # eOffice received nothing: sees nothing
        bad = httpx.get(f"{server.url}/api/v1/reports/feedback?from=yesterday",
                        headers=api_key("operator"), timeout=30)
        assert bad.status_code == 400 and bad.json()["code"] == "InvalidRequest"
        assert httpx.get(url, timeout=30).status_code == 401


@pytest.mark.services
def test_the_feedback_report_on_postgresql(tmp_path: Path, postgres: PostgresServer) -> None:
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "bus",
                            database_url=fresh_database(postgres)))
    try:
        scenario(bus)
        check_report(bus)
    finally:
        bus.close()

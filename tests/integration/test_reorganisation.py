"""The sample province's 2025 reorganisation, end to end through the REST door.

config/directory.yaml merges communes 34, 35 and 36 into the new commune 61 and splits
commune 37 between 61 and the new ward 62, all from 1 July 2025. Documents addressed to
the old codes the day before go to the old communes; from that day the merged ones reach
the new commune (once, however many of its old codes the document names) and the split
one is refused with AmbiguousSuccessor naming both candidates. The bus's clock is set
through ``Ingress.today``, so the test does not depend on when it runs. On the embedded
default and on PostgreSQL with RabbitMQ.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any

import httpx
import pytest

import bus.ingress
from bus.edxml import EdocBuilder, packet_bytes
from tests.api_server import ApiServer, api_key, running_bus
from tests.cluster import fresh_database

OLD_34, OLD_35, OLD_36, OLD_37 = (f"000.00.{n}.H37" for n in (34, 35, 36, 37))
NEW_61, NEW_62 = "000.00.61.H37", "000.00.62.H37"
SO_TTTT = "000.00.12.H37"
EVE, DAY = date(2025, 6, 30), date(2025, 7, 1)


@pytest.fixture(params=["embedded", "postgresql+rabbitmq"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    settings: dict[str, Any] = {}
    if request.param != "embedded":
        postgres = request.getfixturevalue("postgres")
        rabbitmq = request.getfixturevalue("rabbitmq")
        settings = {"database_url": fresh_database(postgres, "reorganisation"),
                    "broker_url": rabbitmq.url}
    with running_bus(tmp_path / "bus", **settings) as running:
        yield running


def send(server: ApiServer, day: date | None, *to: str, number: str) -> httpx.Response:
    if day is not None:
        server.bus.ingress.today = lambda: day
    packet = (EdocBuilder(SO_TTTT).to(*to).subject("Kế hoạch bàn giao hồ sơ sau sắp xếp")
              .code(number, "KH-STTTT").build())
    return httpx.post(server.url + "/api/v1/edocs", content=packet_bytes(packet),
                      headers={**api_key("eoffice"), "Content-Type": "application/xml"},
                      timeout=30)


def deliveries(server: ApiServer, receipt: httpx.Response) -> list[tuple[str, str, str]]:
    assert receipt.status_code == 202, receipt.text
    detail = httpx.get(server.url + f"/api/v1/edocs/{receipt.json()['id']}",
                       headers=api_key("eoffice"), timeout=30).json()
    return sorted((d["recipient"], d["effective_recipient"], d["destination"])
                  for d in detail["deliveries"])


def test_the_day_before_old_codes_still_reach_the_old_communes(server: ApiServer) -> None:
    routed = deliveries(server, send(server, EVE, OLD_34, OLD_35, OLD_36, OLD_37, number="1"))
    assert routed == [(code, code, "hcm_egov") for code in (OLD_34, OLD_35, OLD_36, OLD_37)]


def test_from_the_day_merged_codes_reach_the_new_commune_once(server: ApiServer) -> None:
    routed = deliveries(server, send(server, DAY, OLD_34, OLD_35, OLD_36, number="2"))
    assert routed == [(OLD_34, NEW_61, "hcm_egov")]
    assert deliveries(server, send(server, DAY, OLD_36, number="3")) == \
        [(OLD_36, NEW_61, "hcm_egov")]


def test_from_the_day_the_split_code_is_refused_naming_both_successors(
        server: ApiServer) -> None:
    response = send(server, DAY, OLD_37, number="4")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "AmbiguousSuccessor"
    assert NEW_61 in body["message"] and NEW_62 in body["message"]
    assert "2025-07-01" in body["message"]
    assert deliveries(server, send(server, DAY, NEW_62, number="5")) == \
        [(NEW_62, NEW_62, "eoffice")]


class _EveningInHanoi(datetime):
    """18:00 UTC on 30 June 2025: already 1 July in Vietnam."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _EveningInHanoi:
        moment = datetime(2025, 6, 30, 18, 0, tzinfo=UTC).astimezone(tz)
        return cls.fromtimestamp(moment.timestamp(), tz)


class _HostOnUtc(date):
    """The host's calendar at that moment (a container on UTC): still 30 June."""

    @classmethod
    def today(cls) -> _HostOnUtc:
        return cls(2025, 6, 30)


def test_the_day_is_the_day_in_vietnam_not_on_the_host(
        server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus.ingress, "datetime", _EveningInHanoi)
    monkeypatch.setattr(bus.ingress, "date", _HostOnUtc)
    assert server.bus.ingress.today() == DAY
    assert deliveries(server, send(server, None, OLD_35, number="6")) == \
        [(OLD_35, NEW_61, "hcm_egov")]

"""Operators' actions on the scaled-out bus: PostgreSQL holds the truth, RabbitMQ carries
the work, the worker pool ``lgsp serve`` runs delivers. A delivery parked there is resent
from the console and through the API and reaches its destination; the history shows who
did it and why."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.api_server import api_key
from tests.cluster import fresh_database
from tests.console_support import PASSWORD, province
from tests.servers import PostgresServer, RabbitMQServer

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_resend_from_console_and_api_on_postgresql_and_rabbitmq(
        tmp_path: Path, postgres: PostgresServer, rabbitmq: RabbitMQServer) -> None:
    with province(tmp_path, database_url=fresh_database(postgres),
                  broker_url=rabbitmq.url) as bus:
        assert not bus.server.bus.settings.embedded
        bus.user("op", "operator")
        first = bus.parked("Công văn qua RabbitMQ")
        second = bus.parked("Công văn thứ hai")

        client = httpx.Client(base_url=bus.url, timeout=15)
        form = client.get("/console/login")
        client.post("/console/login", data={"user": "op", "password": PASSWORD,
                                            "csrf": _csrf(form.text)})
        page = client.get(f"/console/documents/{first['document']}")
        assert 'class="state s-parked"' in page.text
        answer = client.post("/console/actions", data={
            "csrf": _csrf(page.text), "ids": first["delivery"], "action": "resend",
            "reason": "đích đã hoạt động lại"})
        assert answer.status_code == 200
        bus.wait_state(first["delivery"], "delivered", timeout_s=30)

        done = httpx.post(f"{bus.url}/api/v1/deliveries/{second['delivery']}/resend",
                          json={"reason": "qua API"}, headers=api_key("operator"))
        assert done.status_code == 200, done.text
        bus.wait_state(second["delivery"], "delivered", timeout_s=30)

        page = client.get(f"/console/documents/{first['document']}").text
        assert "console:op" in page and "đích đã hoạt động lại" in page
        assert "Công văn qua RabbitMQ" in client.get(
            "/console/documents", params={"words": "rabbitmq"}).text

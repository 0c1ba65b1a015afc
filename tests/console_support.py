"""A small province for the console's tests: a real bus server, a real destination.

Every document goes to one http destination, a loopback :class:`HttpSink` the test turns
up or down, with one attempt before parking, so a test gets a parked delivery in about a
second and sees it delivered once the sink is back and an operator resends it. Delivery
runs on the embedded dispatcher, as in ``lgsp serve``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from bus.console import users
from bus.delivery.embedded import EmbeddedDispatcher
from bus.edxml import EdocBuilder, packet_bytes
from bus.runtime import delivery_loops
from bus.store.tables import deliveries
from tests.api_server import ApiServer, api_key, running_bus
from tests.http_sink import HttpSink

SENDER = "000.00.12.H37"          # hosted by eoffice
COMMUNE = "000.00.31.H37"         # hosted by hcm_egov
COMMITTEE = "000.00.00.H37"       # hosted by vnpt_ioffice
PASSWORD = "mật-khẩu-đủ-dài-1"


@dataclass
class Province:
    server: ApiServer
    sink: HttpSink

    @property
    def url(self) -> str:
        return self.server.url

    def send(self, subject: str, to: str = COMMUNE, code: str = "12/UBND-VP") -> dict[str, str]:
        """Submits a document as eoffice through the REST door; returns its receipt's ids."""
        number, _, notation = code.partition("/")
        edoc = (EdocBuilder(SENDER).to(to).subject(subject).signer("Nguyễn Văn A")
                .code(number, notation).build())
        answer = httpx.post(self.url + "/api/v1/edocs", content=packet_bytes(edoc),
                            headers={**api_key("eoffice"), "Content-Type": "application/xml"},
                            timeout=10)
        assert answer.status_code == 202, answer.text
        receipt = answer.json()
        return {"document": receipt["id"], "delivery": receipt["recipients"][0]["delivery"]}

    def state(self, delivery: str) -> str:
        with self.server.bus.store.engine.connect() as conn:
            return str(conn.execute(deliveries.select().with_only_columns(
                deliveries.c.state).where(deliveries.c.id == delivery)).scalar())

    def wait_state(self, delivery: str, state: str, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.state(delivery) != state:
            assert time.monotonic() < deadline, \
                f"delivery {delivery} is {self.state(delivery)}, never became {state}"
            time.sleep(0.05)

    def parked(self, subject: str, **kwargs: str) -> dict[str, str]:
        """A document whose one delivery is parked (the sink refused its only attempt)."""
        self.sink.fail(503)
        ids = self.send(subject, **kwargs)
        self.wait_state(ids["delivery"], "parked")
        self.sink.ok()
        return ids

    def user(self, name: str, role: str, system: str | None = None) -> None:
        users.add_user(self.server.bus.store, name, PASSWORD, role, system=system,
                       actor="test")


def _routes(folder: Path, sink: HttpSink) -> Path:
    def to_sink(name: str) -> dict[str, object]:
        return {"adapter": "http", "description": f"{name}, played by the test sink",
                "options": {"url": sink.url(f"/{name}"), "timeout_s": 5},
                "retry": {"attempts": 1}}

    raw = {"version": 1,
           "destinations": {name: to_sink(name)
                            for name in ("eoffice", "vnpt_ioffice", "hcm_egov", "outside")},
           "defaults": {"outside": "outside"}}
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def province(tmp_path: Path, **settings: object) -> Iterator[Province]:
    """Embedded by default; with ``database_url`` and ``broker_url`` in ``settings`` the
    bus runs on PostgreSQL and RabbitMQ with the worker pool ``lgsp serve`` would run."""
    with HttpSink() as sink:
        routes = _routes(tmp_path, sink)
        with running_bus(tmp_path / "bus", routes=routes, poll_interval_s=0.1,
                         sweep_interval_s=1.0, **settings) as server:
            loops: list[Any]
            if server.bus.settings.embedded:
                dispatcher = EmbeddedDispatcher.from_bus(server.bus)
                server.bus.dispatcher = dispatcher
                loops = [dispatcher]
            else:
                loops = delivery_loops(server.bus, deliver=True)[:1]
            for loop in loops:
                loop.start()
            try:
                yield Province(server, sink)
            finally:
                for loop in loops:
                    loop.stop(timeout=10)

"""``lgsp serve --with-simulators``: the bus as configured, with a simulator standing in
for every connected system, on the addresses routes.yaml names.

A newcomer following the README must see a document they posted reach a system; a bare
``lgsp serve`` can deliver nowhere, because the sample province's systems do not exist
on their machine. This starts, before the bus, one simulator per destination on the host
and port of that destination's options (the sample routes.yaml puts them on 127.0.0.1:
8081 eOffice, 8083 HCM Egov, 8084 the national axis, 8085 the archive), supplies the
secrets the simulators expect when the environment has none, and, for VNPT-iOffice, runs
the axis-SDK client that collects its mailbox from the bus's /vxp facade. Unlike
``lgsp demo`` it sends nothing by itself: the documents are the ones the newcomer posts.

It is a development aid: it refuses destinations that are not on the loopback interface,
so it can never impersonate a real system on a network.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import structlog

from adapters.eoffice.simulator import EofficeSimulator
from adapters.hcm_egov.simulator import HcmEgovSimulator
from adapters.national_axis.simulator import AxisSimulator
from adapters.simulation import LoopbackServer, OwnedHTTPServer
from adapters.vnpt_ioffice.simulator import IofficeSimulator
from bus import errors
from bus.api.vxp_systems import dev_secret
from bus.routing import Destination
from bus.settings import Settings

log = structlog.get_logger("lgsp.sandbox")

AXIS_SECRET = "sandbox-national-axis-secret"  # noqa: S105 - a simulator's, public
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class _ArchiveHandler(BaseHTTPRequestHandler):
    server: OwnedHTTPServer[ArchiveSimulator]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reference = self.server.owner.keep(self.headers.get("Idempotency-Key") or "", body)
        data = json.dumps({"id": reference}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


class ArchiveSimulator(LoopbackServer):
    """A system taking packets by HTTP POST (the ``http`` adapter): it keeps each once per
    idempotency key and answers its reference."""

    def __init__(self, *, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(_ArchiveHandler, self, port=port, host=host, name="archive-sim")
        self._lock = threading.Lock()
        self.kept: dict[str, tuple[str, bytes]] = {}

    def keep(self, key: str, body: bytes) -> str:
        with self._lock:
            if key not in self.kept:
                self.kept[key] = (uuid.uuid4().hex, body)
            return self.kept[key][0]


def _address(destination: Destination, option: str) -> tuple[str, int]:
    url = str(destination.options.get(option, ""))
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK or parts.port is None:
        raise errors.ConfigInvalid([errors.Problem(
            f"--with-simulators only stands in for systems on 127.0.0.1 with an explicit "
            f"port; destination {destination.name!r} has {option} {url!r}",
            line=destination.line, path=f"destinations.{destination.name}.options.{option}")])
    return parts.hostname, parts.port


def _default_env(name: Any, value: str) -> None:
    if isinstance(name, str) and name and not os.environ.get(name):
        os.environ[name] = value


class Simulators:
    """The simulators of every destination of ``settings.routes``, started together."""

    def __init__(self, settings: Settings) -> None:
        from bus.routing.routes import load_routes

        self.settings = settings
        self.table = load_routes(settings.routes)
        self.servers: list[tuple[str, str, Any]] = []
        self.ioffice: list[IofficeSimulator] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _plan(self) -> None:
        bus_url = f"http://127.0.0.1:{self.settings.port}/vxp"
        for name, destination in self.table.destinations.items():
            options = destination.options
            if destination.adapter == "eoffice":
                _, port = _address(destination, "endpoint")
                eoffice = EofficeSimulator(port=port)
                self.servers.append((name, f"eOffice SOAP service, {eoffice.url}", eoffice))
            elif destination.adapter == "hcm_egov":
                _, port = _address(destination, "base_url")
                egov = HcmEgovSimulator(
                    port=port, app_name=str(options.get("app_name", "lgsp-bus")),
                    partner_code=str(options.get("partner_code", "LGSP-H37")),
                    partner_code_cus=str(options.get("partner_code_cus", "H37")))
                _default_env(options.get("access_key_env"), egov.credentials.access_key)
                _default_env(options.get("secret_key_env"), egov.credentials.secret_key)
                self.servers.append((name, f"HCM Egov platform, http://127.0.0.1:{port}", egov))
            elif destination.adapter == "national_axis":
                _, port = _address(destination, "endpoint")
                _default_env(options.get("secret_env"), AXIS_SECRET)
                secret_env = str(options.get("secret_env", ""))
                axis = AxisSimulator({str(options.get("system_id")):
                                      os.environ.get(secret_env, AXIS_SECRET)}, port=port)
                self.servers.append((name, f"national document axis, {axis.endpoint}", axis))
            elif destination.adapter == "http":
                host, port = _address(destination, "url")
                archive = ArchiveSimulator(port=port, host=host)
                self.servers.append((name, f"HTTP receiver, {options.get('url')}", archive))
            elif destination.adapter == "vnpt_ioffice":
                system_id = str(options.get("system_id"))
                self.ioffice.append(IofficeSimulator(bus_url, system_id,
                                                     dev_secret("vnpt_ioffice")))
                self.servers.append((name, f"VNPT-iOffice client collecting {bus_url} as "
                                     f"{system_id}", None))
            else:
                log.warning("sandbox.no_simulator", destination=name,
                            adapter=destination.adapter)

    def start(self) -> None:
        self._plan()
        for name, _, server in self.servers:
            if server is None:
                continue
            try:
                server.start()
            except OSError as exc:
                self.stop()
                port = getattr(server, "port", "?")
                raise errors.ConfigInvalid([errors.Problem(
                    f"cannot start the simulator of destination {name!r} on port {port}: "
                    f"{exc.strerror or exc} (is another `lgsp serve --with-simulators` "
                    "running?)")]) from None
        for client in self.ioffice:
            thread = threading.Thread(target=self._collect, args=(client,),
                                      name="ioffice-sim", daemon=True)
            thread.start()
            self._threads.append(thread)
        for name, what, _ in self.servers:
            log.info("sandbox.simulator", destination=name, simulator=what)

    def _collect(self, client: IofficeSimulator) -> None:
        waiting = ""
        while not self._stop.wait(1.0):
            try:
                outcome = client.poll_once()
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if reason != waiting:
                    log.info("sandbox.ioffice_waiting", reason=reason)
                waiting = reason
                continue
            waiting = ""
            if outcome.listed:
                log.info("sandbox.ioffice_collected", listed=outcome.listed,
                         acknowledged=outcome.acknowledged)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        for client in self.ioffice:
            client.close()
        for _, _, server in self.servers:
            if server is None:
                continue
            with contextlib.suppress(Exception):
                if isinstance(server, HcmEgovSimulator):
                    server.close()
                else:
                    server.stop()


@contextlib.contextmanager
def simulators(settings: Settings) -> Iterator[Simulators]:
    running = Simulators(settings)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def serve(settings: Settings, *, deliver: bool = True) -> None:
    """``lgsp serve --with-simulators``: the simulators, then the bus, until SIGINT/SIGTERM."""
    from bus.runtime import serve as serve_bus

    with simulators(settings):
        serve_bus(settings, deliver=deliver)

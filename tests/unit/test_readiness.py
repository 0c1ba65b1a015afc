"""Destinations that cannot work are named — by /readyz, the lgsp_destination_up gauge
and ``lgsp routes check`` — from the real adapters' secrets and ``check()``, bounded in
time and cached; and a poller that cannot run says so once, not every round."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from bus.cli import main
from bus.delivery.pollers import Poller
from bus.readiness import DestinationChecks
from bus.registry import build_adapter
from bus.routing import RouteTable
from bus.routing.routes import load_routes
from bus.settings import REPO_ROOT
from tests.api_server import running_bus
from tests.http_sink import HttpSink

SECRETS = ("LGSP_HCM_EGOV_ACCESS_KEY", "LGSP_HCM_EGOV_SECRET_KEY", "LGSP_NATIONAL_AXIS_SECRET")


class SilentSystem:
    """Accepts connections and never answers: a host behind a dead application."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentSystem]:
    system = SilentSystem()
    yield system
    system.close()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as running:
        yield running


def _routes(folder: Path, *, archive_url: str, extra: str = "") -> Path:
    path = folder / "routes.yaml"
    path.write_text(f"""version: 1
destinations:
  vnpt_ioffice:
    adapter: vnpt_ioffice
    options: {{system_id: "000.00.00.H37"}}
  eoffice:
    adapter: http
    options: {{url: "{archive_url}", timeout_s: 30}}
  hcm_egov:
    adapter: hcm_egov
    options:
      base_url: http://127.0.0.1:9
      app_name: lgsp-bus
      partner_code: LGSP-H37
      partner_code_cus: H37
      access_key_env: LGSP_HCM_EGOV_ACCESS_KEY
      secret_key_env: LGSP_HCM_EGOV_SECRET_KEY
      poll_interval_s: 0.02
  national_axis:
    adapter: national_axis
    options:
      endpoint: http://127.0.0.1:9/vdxp
      system_id: 00.37.W00
      secret_env: LGSP_NATIONAL_AXIS_SECRET
{extra}defaults:
  outside: national_axis
""", encoding="utf-8")
    return path


def _table(path: Path) -> RouteTable:
    return load_routes(path)


def test_secrets_unreachable_and_silent_systems_each_named(
        tmp_path: Path, silent: SilentSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LGSP_NATIONAL_AXIS_SECRET", "s")
    table = _table(_routes(tmp_path, archive_url=f"http://127.0.0.1:{silent.port}/in"))
    checks = DestinationChecks(lambda: table, timeout_s=0.5, ttl_s=60)
    started = time.monotonic()
    results = checks.results(wait_s=5)
    took = time.monotonic() - started
    assert took < 3, f"the silent system held the check for {took:.1f}s (its timeout is 30 s)"
    assert results["vnpt_ioffice"] == "ok"
    assert results["hcm_egov"].startswith("secret missing: environment variable "
                                          "LGSP_HCM_EGOV_ACCESS_KEY")
    assert "unreachable" in results["national_axis"]
    assert results["eoffice"] == "unreachable: no answer within 0.5 s"
    # within the TTL, readers get the cached verdicts: the systems are not asked again
    for _ in range(20):
        assert checks.results(wait_s=5) == results
    assert silent.accepted == 1


def test_a_stale_round_asks_again_but_never_piles_up_on_a_silent_system(
        tmp_path: Path, silent: SilentSystem) -> None:
    table = _table(_routes(tmp_path, archive_url=f"http://127.0.0.1:{silent.port}/in"))
    checks = DestinationChecks(lambda: table, timeout_s=1.0, ttl_s=0.0)
    assert "no answer within 1 s" in checks.results(wait_s=5)["eoffice"]
    for _ in range(5):
        started = time.monotonic()
        assert "no answer within 1 s" in checks.results(wait_s=5)["eoffice"]
        assert time.monotonic() - started < 0.5, "a stale verdict made the reader wait"
    time.sleep(2.5)
    assert silent.accepted == 1, "a check still waiting was started again"


def test_readyz_names_each_destination_and_stays_ready(
        tmp_path: Path, sink: HttpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    routes = _routes(tmp_path, archive_url=sink.url("/in"))
    with running_bus(tmp_path / "bus", routes=routes) as server:
        ready = httpx.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert body["destinations"]["eoffice"] == "ok"
        assert body["destinations"]["vnpt_ioffice"] == "ok"
        assert "LGSP_HCM_EGOV_ACCESS_KEY" in body["destinations"]["hcm_egov"]
        assert "LGSP_NATIONAL_AXIS_SECRET" in body["destinations"]["national_axis"]
        assert body["degraded"] == ["hcm_egov", "national_axis"]
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        assert 'lgsp_destination_up{destination="eoffice"} 1.0' in metrics
        assert 'lgsp_destination_up{destination="hcm_egov"} 0.0' in metrics


def test_routes_check_fails_on_unset_secrets_and_passes_once_set(
        tmp_path: Path, sink: HttpSink, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    routes = str(_routes(tmp_path, archive_url=sink.url("/in")))
    directory = str(REPO_ROOT / "config" / "directory.yaml")
    assert main(["routes", "check", "--routes", routes, "--directory", directory]) == 1
    out = capsys.readouterr().out
    assert "destinations.hcm_egov: environment variable LGSP_HCM_EGOV_ACCESS_KEY" in out
    assert "destinations.national_axis: environment variable LGSP_NATIONAL_AXIS_SECRET" in out
    assert "2 destination(s) cannot work" in out
    assert main(["routes", "check", "--routes", routes, "--directory", directory,
                 "--files-only"]) == 0
    capsys.readouterr()
    for name in SECRETS:
        monkeypatch.setenv(name, "set")
    assert main(["routes", "check", "--routes", routes, "--directory", directory]) == 0
    out = capsys.readouterr().out
    # the two systems on port 9 do not answer: warnings, not errors
    assert "warning:" in out and "destinations.hcm_egov" in out and "OK:" in out


def test_a_poller_without_its_key_warns_once_then_again_when_the_reason_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    table = _table(_routes(tmp_path, archive_url="http://127.0.0.1:9/in"))
    destination = table.destinations["hcm_egov"]
    adapter = build_adapter(destination, source=table.source)
    with running_bus(tmp_path / "bus") as server, capture_logs() as logs:
        poller = Poller(server.bus, destination, adapter)
        poller.start()
        time.sleep(0.5)
        monkeypatch.setenv("LGSP_HCM_EGOV_ACCESS_KEY", "a")
        time.sleep(0.5)
        poller.stop(5)
    mine = [e for e in logs if e.get("destination") == "hcm_egov"]
    assert [e["event"] for e in mine] == ["poll.cannot_run", "poll.cannot_run"], mine
    assert "LGSP_HCM_EGOV_ACCESS_KEY" in mine[0]["reason"]
    assert "LGSP_HCM_EGOV_SECRET_KEY" in mine[1]["reason"]
    assert all(e["log_level"] == "warning" and "exc_info" not in e for e in mine)

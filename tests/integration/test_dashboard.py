"""The Grafana dashboard (ops/grafana/lgsp-bus.json) against a real Prometheus scraping a
real ``lgsp serve`` under load: every panel's query, with the dashboard's variables
substituted as Grafana would, returns series; the alert rules load and evaluate in the
same Prometheus, and name only metrics the bus exports.

The load covers what the panels show: documents delivered (latency), documents refused
(two codes), statuses sent back (feedback), a delivery parked after its one allowed
attempt, one waiting for a retry (queue depth, oldest age), a destination that does not
answer (lgsp_destination_up 0) and a configuration reload.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bus.edxml import EdocBuilder, packet_bytes, status_for
from bus.settings import REPO_ROOT
from tests.http_sink import HttpSink
from tests.prometheus_server import PrometheusServer
from tests.servers import free_port

DASHBOARD = REPO_ROOT / "ops" / "grafana" / "lgsp-bus.json"
ALERTS = REPO_ROOT / "ops" / "prometheus" / "alerts.yml"

PENDING_METRICS: dict[str, str] = {}
"""Metrics a panel or rule may name before the bus exports them; nothing else may be missing."""

VARIABLES = {"$__rate_interval": "20s", "$__interval": "5s", "$__range": "5m",
             "${destination}": ".*", "$destination": ".*"}
"""Grafana's built-ins at a 1 s scrape, and the "All" value of the destination variable."""

SENDER, SINK, WAITING, PARKING = "000.00.12.H37", "000.00.31.H37", "000.00.00.G22", "000.00.00.H37"


def _routes(path: Path, sink_url: str) -> None:
    """The sample directory's destinations, each an HTTP receiver: the sink for the
    communes and eOffice, nothing listening for iOffice (one attempt, then parked) and the
    national axis (a retry ten minutes later: it stays in the queue)."""
    closed = f"http://127.0.0.1:{free_port()}/in"
    path.write_text(yaml.safe_dump({
        "version": 1,
        "destinations": {
            "eoffice": {"adapter": "http", "options": {"url": sink_url, "timeout_s": 5}},
            "hcm_egov": {"adapter": "http", "options": {"url": sink_url, "timeout_s": 5}},
            "vnpt_ioffice": {"adapter": "http", "options": {"url": closed, "timeout_s": 2},
                             "retry": {"attempts": 1, "first_delay_s": 1, "max_delay_s": 1}},
            "national_axis": {"adapter": "http", "options": {"url": closed, "timeout_s": 2},
                              "retry": {"attempts": 5, "first_delay_s": 600,
                                        "max_delay_s": 600}},
        },
        "defaults": {"outside": "national_axis"},
    }), encoding="utf-8")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with HttpSink() as sink:
        routes = tmp_path / "routes.yaml"
        _routes(routes, sink.url("/in"))
        port = free_port()
        config = tmp_path / "bus.yaml"
        config.write_text(yaml.safe_dump({
            "routes": str(routes), "data_dir": str(tmp_path / "var"), "port": port,
            "poll_interval_s": 0.1, "sweep_interval_s": 0.5, "reload_check_s": 0.5,
            "delivery_threads": 2}), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        log = (tmp_path / "serve.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "bus.cli", "serve", "--config",
                                    str(config)], env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the bus did not start in 60 s"
                time.sleep(0.3)
            yield url, routes
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            log.close()


def _load(url: str, seconds: float) -> None:
    """Documents, refusals and statuses, spread over several scrapes."""
    key = {"X-API-Key": "dev-eoffice-key"}
    commune = {"X-API-Key": "dev-hcm_egov-key"}
    with httpx.Client(base_url=url, timeout=10) as http:
        for to in (WAITING, PARKING):
            edoc = EdocBuilder(SENDER).to(to).subject("Hàng đợi").signer("Lê Văn C").build()
            assert http.post("/api/v1/edocs", content=packet_bytes(edoc),
                             headers=key).status_code == 202
        end = time.monotonic() + seconds
        sent = 0
        while time.monotonic() < end:
            edoc = (EdocBuilder(SENDER).to(SINK).subject(f"Công văn số {sent}")
                    .signer("Nguyễn Văn An").build())
            answer = http.post("/api/v1/edocs", content=packet_bytes(edoc), headers=key)
            assert answer.status_code == 202, answer.text
            status = status_for(edoc, "01", sender=SINK)
            answer = http.post("/api/v1/statuses", content=packet_bytes(status), headers=commune)
            assert answer.status_code == 202, answer.text
            assert http.post("/api/v1/edocs", content=b"<broken", headers=key).status_code == 400
            assert http.post("/api/v1/edocs", content=b"<x/>",
                             headers={"X-API-Key": "wrong"}).status_code == 401
            sent += 1
            time.sleep(0.25)


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield from panel.get("panels", [])
        if panel.get("type") != "row":
            yield panel


def _substituted(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"unknown variable left in {expr}"
    return expr


def _exported(url: str) -> set[str]:
    names = set()
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def _finite(series: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(s["value"][1])) for s in series)


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = list(_panels(dashboard))
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for subject in ("accepted", "refusals", "latency", "queue depth", "oldest", "parked",
                    "overdue", "status"):
        assert subject in titles, f"no panel for {subject}"


def test_every_panel_returns_series_from_a_bus_under_load(bus: tuple[str, Path]) -> None:
    bus_url, routes = bus
    started = time.monotonic()
    target = bus_url.removeprefix("http://")
    with PrometheusServer([target], rule_files=[ALERTS]) as prometheus:
        prometheus.wait_for_target()
        with routes.open("a", encoding="utf-8") as edit:
            edit.write("# edited while running: a configuration reload\n")
        _load(bus_url, seconds=6)
        time.sleep(3)
        exported = _exported(bus_url)
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))

        variable = next(v for v in dashboard["templating"]["list"]
                        if v["name"] == "destination")
        metric = re.search(r"label_values\((\w+), destination\)", variable["definition"])
        assert metric is not None
        values = prometheus.api("label/destination/values", **{"match[]": metric.group(1)})
        assert set(values) >= {"hcm_egov", "vnpt_ioffice", "national_axis"}, values

        empty: list[str] = []
        pending: list[str] = []
        deadline = time.monotonic() + 20
        for panel in _panels(dashboard):
            for target_ in panel["targets"]:
                expr = _substituted(target_["expr"])
                names = set(re.findall(r"\blgsp_\w+", expr))
                missing = {n for n in names if n not in exported}
                if missing:
                    assert missing <= set(PENDING_METRICS), \
                        f"panel {panel['title']!r} names metrics the bus does not export: {missing}"
                    pending.append(panel["title"])
                    continue
                series = prometheus.query(expr)
                while not _finite(series) and time.monotonic() < deadline:
                    time.sleep(1)
                    series = prometheus.query(expr)
                if not _finite(series):
                    empty.append(f"{panel['title']}: {expr}")
        assert empty == [], "panels without series:\n" + "\n".join(empty)
        print(f"\n[dashboard] {len(list(_panels(dashboard)))} panels checked in "
              f"{time.monotonic() - started:.0f} s; waiting for their metric: {pending}")

        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert rules and all(rule["health"] == "ok" for rule in rules), rules
        for rule in rules:
            names = set(re.findall(r"\blgsp_\w+", rule["query"]))
            unknown = names - exported - set(PENDING_METRICS)
            assert not unknown, f"alert {rule['name']} names unexported metrics {unknown}"
    assert time.monotonic() - started < 90

"""A private Prometheus (Debian's ``prometheus`` package) on a free loopback port, scraping
the targets a test gives it every second, with its own throw-away storage.

Like :mod:`tests.servers`, it never touches a system-wide instance: the process is ours
(started here, stopped by its pid), its data lives in a temporary folder, and every wait
is bounded with the server's log in the failure.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

from tests.servers import ServerError, ServerNotInstalledError, free_port

__all__ = ["PrometheusServer"]


class PrometheusServer:
    def __init__(self, targets: list[str], *, rule_files: Sequence[Path] = (),
                 scrape_interval_s: int = 1, startup_timeout_s: float = 30.0) -> None:
        self.targets = targets
        self.rule_files = list(rule_files)
        self.scrape_interval_s = scrape_interval_s
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "prometheus.log"

    def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise ServerNotInstalledError("prometheus is missing; run ops/install-services.sh "
                                          "(Debian package prometheus)")
        self.folder = Path(tempfile.mkdtemp(prefix="lgsp-prometheus-"))
        interval = f"{self.scrape_interval_s}s"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [{"job_name": "lgsp", "scrape_timeout": interval,
                                "static_configs": [{"targets": self.targets}]}],
        }
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={self.folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        log.close()
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"prometheus exited: {self._tail()}")
            try:
                if httpx.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"prometheus not ready in {self.startup_timeout_s}s: "
                                  f"{self._tail()}")
            time.sleep(0.2)

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def api(self, path: str, **params: Any) -> Any:
        """``/api/v1/<path>``'s data; raises with Prometheus' own error otherwise."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] in ("vector", "scalar"), data
        return data["result"] if data["resultType"] == "vector" else [{"metric": {},
                                                                        "value": data["result"]}]

    def wait_for_target(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            targets = self.api("targets")["activeTargets"]
            if targets and all(t["health"] == "up" for t in targets):
                return
            time.sleep(0.3)
        raise ServerError(f"targets not up in {timeout_s}s: {self.api('targets')}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

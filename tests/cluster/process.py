"""One ``lgsp`` process of a cluster, started, signalled and read like an operator's."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import httpx

from tests.cluster.basics import REPO_ROOT, wait_until
from tests.servers import free_port, pid_alive

Role = Literal["ingress", "worker", "embedded"]
_ARGV: Final[Mapping[Role, tuple[str, ...]]] = {
    "ingress": ("serve", "--no-workers"),
    "worker": ("worker",),
    "embedded": ("serve",),
}


class BusProcess:
    """One ``lgsp`` process, restartable under the same name, port and log file.

    The command is ``python -m bus.cli`` with this interpreter and the working tree on
    PYTHONPATH: that is the ``lgsp`` console script's own entry point, and it guarantees
    the code under test is this checkout whatever PATH holds. LGSP_* variables of the
    test's environment are dropped so that only the settings file configures the process.
    """

    def __init__(self, name: str, role: Role, config: Path, log_dir: Path, *,
                 delivery_threads: int = 1, extra_env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.role = role
        self.config = config
        self.log_path = log_dir / f"{name}.log"
        self.delivery_threads = delivery_threads
        self.port = free_port() if role != "worker" else 0
        self.extra_env = dict(extra_env or {})
        self.starts = 0
        self.kills = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        if not self.port:
            raise AttributeError(f"{self.name} is a worker; it has no HTTP endpoint")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and pid_alive(self._proc.pid)

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "bus.cli", *_ARGV[self.role], "--config", str(self.config)]
        if self.port:
            args += ["--port", str(self.port)]
        return args

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== {self.name}: start #{self.starts} at {time.time():.3f} ===\n"
                      .encode())
            log.flush()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(self.argv(), cwd=REPO_ROOT, env=self._env(),
                                          stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """HTTP processes: /healthz answers. Workers: every consumer reported ready.

        /healthz answers only after the delivery loops were started (runtime.serve), and
        ``consumer.ready`` is logged after the consumer declared and subscribed to every
        destination's queue, which is what a broker kill must not precede.
        """
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.returncode()} while "
                                   f"starting\n{self.log_tail()}")
            if self.role == "worker":
                return self.log_since_start().count('"consumer.ready"') >= self.delivery_threads
            try:
                return httpx.get(self.url + "/healthz", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, step=0.05, what=f"{self.name} ready",
                   explain=lambda: self.log_tail(20))

    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def kill9(self) -> None:
        """SIGKILL by pid, as the OOM killer or a power cut would; reaps the child."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running")
        os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(10)
        self.kills += 1
        with self.log_path.open("ab") as log:
            log.write(f"=== {self.name}: SIGKILL at {time.time():.3f} ===\n".encode())

    def send(self, signum: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running")
        os.kill(self._proc.pid, signum)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if the process has not ended within ``timeout``."""
        if self._proc is None or self._proc.poll() is not None:
            return self.returncode()
        os.kill(self._proc.pid, signal.SIGTERM)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self._proc.pid, signal.SIGKILL)
            return self._proc.wait(10)

    def restart(self, timeout: float = 30.0) -> None:
        self.start()
        self.wait_ready(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log records named ``event``, across every start of this process."""
        found = []
        for line in self.log_text().splitlines():
            if f'"{event}"' not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
        return found

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- last {len(text)} lines of {self.log_path} ---\n" + "\n".join(text)

    def __repr__(self) -> str:
        return f"<BusProcess {self.name} {self.role} pid={self.pid} alive={self.alive()}>"

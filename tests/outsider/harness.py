"""Start ``lgsp serve`` as a user would, and the few REST calls the outsider tests need.

Only what README.md documents is used: the command and its flags, /healthz, POST
/api/v1/edocs with X-API-Key, the development keys and VXP secrets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]

IOFFICE_SYSTEM_ID = "000.00.00.H37"  # config/vxp_systems.yaml: the key, as set in the SDK
IOFFICE_SECRET = "dev-vnpt_ioffice-vxp-secret"  # README: dev-<system>-vxp-secret
EOFFICE_KEY = "dev-eoffice-key"
SENDER = "000.00.12.H37"  # hosted by eoffice
RECIPIENT = "000.00.00.H37"  # hosted by vnpt_ioffice
START_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    log_file: IO[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def vxp(self) -> str:
        return self.base + "/vxp"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to this server's pid, SIGKILL after a bound."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def start_server(tmp: Path, *, settings_yaml: str | None = None,
                 extra_env: dict[str, str] | None = None) -> Server:
    """``lgsp serve --data-dir <tmp> --port <free>``, this checkout's code, until /healthz."""
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    for key in list(env):  # a developer's own secrets must not change what the tests see
        if key.startswith("LGSP_VXP_SECRET_") or key.startswith("LGSP_KEY_"):
            del env[key]
    env.update(extra_env or {})
    cmd = [_lgsp(), "serve"]
    if settings_yaml is not None:
        cfg = tmp / "settings.yaml"
        cfg.write_text(settings_yaml, encoding="utf-8")
        cmd += ["--config", str(cfg)]
    cmd += ["--data-dir", str(data_dir), "--port", str(port)]
    log_path = tmp / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it until it exits
    proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    server = Server(proc, port, data_dir, log_path, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lgsp serve exited with {proc.returncode}:\n"
                               + server.log_tail())
        try:
            if httpx.get(server.base + "/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("lgsp serve did not answer /healthz in time:\n" + server.log_tail())


def _lgsp() -> str:
    """The ``lgsp`` console script installed beside this interpreter."""
    candidate = Path(sys.executable).with_name("lgsp")
    return str(candidate) if candidate.exists() else "lgsp"


def post_edoc(server: Server, packet: bytes, key: str = EOFFICE_KEY) -> httpx.Response:
    return httpx.post(server.base + "/api/v1/edocs", content=packet,
                      headers={"X-API-Key": key}, timeout=30.0)


def lgsp_validate(path: Path, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([_lgsp(), "validate", str(path)], cwd=str(REPO_ROOT), env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)

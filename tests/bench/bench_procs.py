"""The benchmarks' child processes: each in its own session, stopped in order (SIGTERM, a
bounded wait, then SIGKILL), and the CPU time they spent read from /proc, so that a
benchmark can say which process a document's cost is in."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 15.0


def log_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- child processes


class Child:
    """A process this script started, in its own session so a terminal's Ctrl-C reaches
    only the script, which then stops its children in order rather than all at once."""

    def __init__(self, name: str, argv: list[str], log_dir: Path,
                 env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL to the process group it leads."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            log_line(f"{self.name} (pid {self.pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; "
                 "killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def child_env() -> dict[str, str]:
    """The caller's environment without LGSP_* settings or keys, which would make the bus
    and the bare pipeline read different configurations than the files given here."""
    keep = {"LGSP_SCHEMAS_DIR", "LGSP_PG_BINDIR"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_") or k in keep}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, children: Sequence[Child], timeout: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n"
                                   f"{child.tail()}")
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not healthy within {timeout:.0f}s; "
                               f"log of {children[0].name}:\n{children[0].tail()}")
        time.sleep(0.1)


CpuGroups = dict[str, Callable[[], list[int]]]
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system time of each live pid (its reaped children included), from /proc."""
    out = {}
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2:].split()
        out[pid] = sum(int(x) for x in fields[11:15]) / _TICK
    return out


def cpu_snapshot(groups: CpuGroups) -> dict[str, dict[int, float]]:
    return {name: cpu_seconds(pids()) for name, pids in groups.items()}


def cpu_spent(before: dict[str, dict[int, float]],
              after: dict[str, dict[int, float]]) -> dict[str, float]:
    """Seconds per group; a process that appeared meanwhile counts from zero."""
    return {name: sum(t - before[name].get(pid, 0.0) for pid, t in times.items())
            for name, times in after.items()}

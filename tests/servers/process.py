"""What every private server shares: loopback ports, the process helpers that find and
kill a server only through its own pid, the environment it runs in, the registry that
stops leftovers at exit, and the ``with`` lifecycle."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, Self

LOOPBACK: Final = "127.0.0.1"
INSTALL_HINT: Final = "run `sudo ops/install-services.sh` (Debian/Ubuntu) to install them"

# Ports that a system broker/database (or their tooling) may be using even when idle.
_RESERVED_PORTS: Final = frozenset(
    {4369, 5432, 5433, 5671, 5672, 15672, 25672, *range(35672, 35683)}
)
_handed_out_ports: set[int] = set()


class ServerError(RuntimeError):
    """A private test server failed to start, stop or die as asked."""


class ServerNotInstalledError(ServerError):
    """The server binaries are not on this machine; the message says how to install them."""


# --------------------------------------------------------------------------------------
# Process helpers. Everything goes through /proc so that zombies read as dead (see module
# docstring) and so that a pid can be checked for being ours before it is signalled.
# --------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, which may itself hold spaces."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].decode(errors="replace").split()


def pid_alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie: a zombie serves nobody any more."""
    if pid is None or pid <= 0:
        return False
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X", "x")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _descendants(root: int) -> list[int]:
    """All live descendants of root, found by walking parent pids across /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None or len(fields) < 2 or fields[0] in ("Z", "X", "x"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(root: int) -> list[int]:
    """SIGKILL root and its descendants as one crash would, and return the pids signalled.

    root is stopped first so that it cannot fork a child between the moment its children
    are listed and the moment it dies; orphans would otherwise be re-parented to PID 1 and
    slip through (a PostgreSQL backend surviving its postmaster keeps the shared memory
    attached and blocks the restart).
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(root, signal.SIGSTOP)
    pids = [root, *_descendants(root)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of pids is alive; return the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    remaining = [pid for pid in pids if pid_alive(pid)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = [pid for pid in remaining if pid_alive(pid)]
    return remaining


def _tail(path: Path | None, lines: int = 80) -> str:
    if path is None:
        return "(no log file)"
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 32768))
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _failure(message: str, *logs: Path | None) -> ServerError:
    parts = [message]
    for log in logs:
        parts.append(f"--- last lines of {log} ---\n{_tail(log)}")
    return ServerError("\n".join(parts))


def _port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A currently unused loopback port, chosen below the kernel's ephemeral range.

    Ports from bind(0) come out of the ephemeral range, where an unrelated outgoing
    connection can grab them between allocation and a later restart() of the server;
    below that range only listeners compete. The choice is random so that parallel test
    processes rarely try the same port.
    """
    low_ephemeral = 32768
    with contextlib.suppress(OSError, ValueError, IndexError):
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low_ephemeral = int(text.split()[0])
    top = low_ephemeral - 1 if low_ephemeral > 21000 else 65000
    for _ in range(500):
        port = random.randint(20000, top)
        if port in _RESERVED_PORTS or port in _handed_out_ports:
            continue
        if _port_bindable(port):
            _handed_out_ports.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port = int(sock.getsockname()[1])
    _handed_out_ports.add(port)
    return port


def _clean_env(drop_prefixes: tuple[str, ...]) -> dict[str, str]:
    """The caller's environment without variables that would redirect the servers.

    A developer shell with RABBITMQ_NODENAME or PGPORT exported must not make a private
    server collide with (or talk to) a real one.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return env


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_live_servers: dict[int, _Stoppable] = {}


def _register(server: _Stoppable) -> None:
    _live_servers[id(server)] = server


def _unregister(server: _Stoppable) -> None:
    _live_servers.pop(id(server), None)


@atexit.register
def _stop_leftovers() -> None:
    """Last line of defence: a crashed test run must not leave detached daemons behind."""
    for server in list(_live_servers.values()):
        with contextlib.suppress(Exception):
            server.stop()

class _Managed:
    """``with server:`` starts it and always stops it, whatever the test did."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

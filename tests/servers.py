"""Private, throw-away RabbitMQ and PostgreSQL servers for the test suite.

The suite never talks to a system-wide broker or database: a CI machine may or may not run
one, their state would leak from run to run, and the reliability tests SIGKILL the servers,
which must never hit a service somebody else depends on. So every server here lives in its
own temporary directory, listens on its own loopback ports, and is found (and killed) only
through the pid it wrote itself, double-checked against the command line of that pid.

This module deliberately does not import pytest, so it can also be used from a REPL or a
script to get a broker and a database for manual experiments::

    with RabbitMQServer() as mq, PostgresServer() as pg:
        print(mq.url, pg.url)

Two things about the machines this runs on shape the code:

* Containers often run a PID 1 that never reaps orphans. A daemonised server that dies is
  then left as a zombie forever, and ``kill(pid, 0)`` still succeeds on it. Liveness is
  therefore read from ``/proc/<pid>/stat`` and a zombie counts as dead.
* Every wait is bounded, and every failure carries the tail of the server's log, because a
  hang or a bare "did not start" in CI is undiagnosable after the fact.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, Self
from urllib.parse import quote

__all__ = [
    "PostgresServer",
    "RabbitMQCluster",
    "RabbitMQServer",
    "ServerError",
    "ServerNotInstalledError",
    "free_port",
    "pid_alive",
]

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


def _sbin_which(name: str) -> str | None:
    """which(), also looking in the sbin directories a non-login root PATH may lack."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
    return shutil.which(name, path=search)


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


# --------------------------------------------------------------------------------------
# RabbitMQ
# --------------------------------------------------------------------------------------


def _rabbitmq_sbin() -> Path | None:
    """Directory of the RabbitMQ scripts that run the VM as the calling user.

    Debian's /usr/sbin/rabbitmq-server is a wrapper that, when called as root, re-runs the
    command through ``su rabbitmq``: that user cannot enter our private 0700 directory, su
    resets HOME (so the Erlang cookie is not found) and the wrapper cds to /var/lib/rabbitmq
    and writes to /var/log/rabbitmq. The real scripts in /usr/lib/rabbitmq/bin have no
    such logic and RabbitMQ itself has no root check, so those are used directly.
    """
    override = os.environ.get("LGSP_RABBITMQ_SBIN")
    candidates = [Path(override)] if override else [Path("/usr/lib/rabbitmq/bin")]
    found = _sbin_which("rabbitmq-server")
    if found and not override:
        real = Path(found).resolve()
        if real.name != "rabbitmq-script-wrapper":
            candidates.append(real.parent)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("rabbitmq-server", "rabbitmqctl")):
            return directory
    return None


def _epmd_binary() -> str | None:
    found = shutil.which("epmd")
    if found:
        return found
    bundled = sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))
    return bundled[-1] if bundled else None


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


class RabbitMQServer(_Managed):
    """A single-node RabbitMQ broker in a temporary directory, on loopback-only ports.

    Running as root: the scripts under /usr/lib/rabbitmq/bin are called directly (see
    ``_rabbitmq_sbin``) and the VM simply runs as root; HOME is the private directory,
    which holds the Erlang cookie, so rabbitmqctl is always called with the same HOME.

    Why a private epmd: the node name registry on 4369 is shared with any system node. If
    our node had to start it, it would be a root daemon outliving the tests; if the system
    service restarted it, our node would silently drop out of it. Each server instead owns
    an epmd on its own port, run in the foreground as our child so its pid is known, and
    both the node and rabbitmqctl get ``-start_epmd false`` so that nothing spawns a
    stray, daemonised epmd on that port behind our back.

    Why an explicit config, enabled-plugins and env file: they stop /etc/rabbitmq from
    leaking in, and the empty plugin list keeps management from binding 15672, which would
    clash between two test brokers and with a system broker.

    kill9() leaves epmd running on purpose: in a real crash only the VM dies.
    """

    host: Final = LOOPBACK

    def __init__(self, *, startup_timeout: float = 60.0, stop_timeout: float = 30.0,
                 cookie: str | None = None, epmd_port: int | None = None,
                 extra_conf: str = "") -> None:
        """``cookie``, ``epmd_port`` and ``extra_conf`` are for cluster members
        (:class:`RabbitMQCluster`): a shared cookie, an epmd someone else runs, and
        peer-discovery lines for rabbitmq.conf."""
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.nodename = f"lgsptest-{secrets.token_hex(4)}@localhost"
        self.port = 0
        self.dist_port = 0
        self.epmd_port = epmd_port or 0
        self._cookie = cookie
        self._own_epmd = epmd_port is None
        self._extra_conf = extra_conf
        self.dir: Path | None = None
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None
        self._pid: int | None = None
        self._epmd: subprocess.Popen[bytes] | None = None

    # ---- public API ------------------------------------------------------------------

    @staticmethod
    def missing_binaries() -> list[str]:
        """What is not installed, so fixtures can fail with an actionable message."""
        missing = []
        if _rabbitmq_sbin() is None:
            missing.append("rabbitmq-server/rabbitmqctl (package rabbitmq-server)")
        if _epmd_binary() is None:
            missing.append("epmd (package erlang-base)")
        return missing

    @property
    def url(self) -> str:
        """AMQP URL for pika/kombu; guest may log in because we connect over loopback."""
        return f"amqp://guest:guest@{LOOPBACK}:{self.port}/%2F"

    @property
    def log_file(self) -> Path | None:
        return None if self.dir is None else self.dir / "log" / "rabbit.log"

    @property
    def pid_file(self) -> Path | None:
        return None if self.dir is None else self.dir / "rabbitmq.pid"

    @property
    def pid(self) -> int | None:
        """Pid of this node's beam.smp, or None when it is not running."""
        pid = self._pid or self._read_pid_file()
        return pid if pid is not None and pid_alive(pid) and self._is_ours(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def pids(self) -> list[int]:
        """Every live process this server owns: the VM, its helpers and our epmd."""
        result: list[int] = []
        pid = self.pid
        if pid is not None:
            result += [pid, *_descendants(pid)]
        if self._epmd is not None and pid_alive(self._epmd.pid):
            result.append(self._epmd.pid)
        return result

    def start(self) -> None:
        """Boot the node and return once it accepts AMQP connections.

        Calling start() after stop() gives a brand-new broker (new directory and ports).
        """
        if self.is_running():
            raise ServerError(f"RabbitMQ node {self.nodename} is already running")
        sbin = self._require_sbin()
        began = time.monotonic()
        deadline = began + self.startup_timeout
        if self.dir is None:
            self._prepare()
        _register(self)
        self._ensure_epmd(deadline)
        self._launch(sbin, deadline)
        self.last_start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Shut the node down, kill whatever is left, and delete all of its state."""
        began = time.monotonic()
        try:
            if self.is_running():
                self._shutdown_node()
        finally:
            self._stop_epmd()
            _unregister(self)
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._pid = None
            for port in (self.port, self.dist_port,
                         *([self.epmd_port] if self._own_epmd else [])):
                _handed_out_ports.discard(port)
        self.last_stop_seconds = time.monotonic() - began

    def kill9(self) -> None:
        """SIGKILL this node's VM (and its helper processes) the way an OOM kill would.

        Beware of one window in RabbitMQ 3.10 (Ra 2.2): the registry of quorum queue
        replicas (names.dets) is written to disk only every 500 ms. A quorum queue
        declared less than that before the kill comes back after restart() as a new,
        empty replica that never elects a leader (basic.get times out after ~65 s).
        Confirmed messages on queues older than that survive, which is what tests should
        assert; wait a second between declaring and killing.
        """
        pid = self.pid
        if pid is None:
            raise ServerError(f"RabbitMQ node {self.nodename} is not running")
        left = _wait_gone(_kill_tree(pid), 10.0)
        if left:
            raise ServerError(f"processes {left} of {self.nodename} survived SIGKILL")
        self._pid = None

    def restart(self) -> None:
        """Start again on the same ports and data, as after a crash or a reboot."""
        if self.dir is None:
            raise ServerError("restart() needs a server that was started and not stopped")
        if self.is_running():
            self._shutdown_node()
        self.start()

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run rabbitmqctl against this node (same HOME, hence the same cookie)."""
        sbin = self._require_sbin()
        if self.dir is None:
            raise ServerError("rabbitmqctl() needs a started server")
        return subprocess.run(
            [str(sbin / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self._env(),
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def __repr__(self) -> str:
        return f"<RabbitMQServer {self.nodename} port={self.port} running={self.is_running()}>"

    # ---- internals -------------------------------------------------------------------

    def _require_sbin(self) -> Path:
        sbin = _rabbitmq_sbin()
        if sbin is None or _epmd_binary() is None:
            missing = ", ".join(self.missing_binaries())
            raise ServerNotInstalledError(f"RabbitMQ is not installed ({missing}); {INSTALL_HINT}")
        return sbin

    def _prepare(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="lgsp-rabbitmq-"))
        self.dir = directory
        (directory / "mnesia").mkdir()
        (directory / "log").mkdir()
        cookie = directory / ".erlang.cookie"
        cookie.write_text(self._cookie or secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "rabbitmq-env.conf").write_text("")
        (directory / "rabbitmq.conf").write_text(
            "loopback_users.guest = true\n"
            "log.console = false\n"
            "log.file.level = info\n"
            "disk_free_limit.absolute = 50MB\n" + self._extra_conf
        )
        self.port = free_port()
        self.dist_port = free_port()
        if self._own_epmd:
            self.epmd_port = free_port()

    def _env(self) -> dict[str, str]:
        assert self.dir is not None
        directory = self.dir
        env = _clean_env(("RABBITMQ_", "ERL_"))
        erl_args = "-start_epmd false"
        env.update(
            HOME=str(directory),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS=LOOPBACK,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(directory / "log"),
            RABBITMQ_LOGS=str(directory / "log" / "rabbit.log"),
            RABBITMQ_PID_FILE=str(directory / "rabbitmq.pid"),
            RABBITMQ_CONFIG_FILE=str(directory / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(directory / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(directory / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(directory / "enabled_plugins"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                f"{erl_args} -kernel inet_dist_use_interface {{127,0,0,1}}"
            ),
            RABBITMQ_CTL_ERL_ARGS=erl_args,
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS=LOOPBACK,
            # A crashing VM or CLI must not drop erl_crash.dump into the caller's cwd.
            ERL_CRASH_DUMP=str(directory / "log" / "erl_crash.dump"),
        )
        return env

    def _read_pid_file(self) -> int | None:
        pid_file = self.pid_file
        if pid_file is None:
            return None
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """The beam's command line carries ``-home <our dir>``; a recycled pid will not."""
        return self.dir is not None and str(self.dir) in _cmdline(pid)

    def _find_beam(self) -> int | None:
        """Our VM before it has written its pid file, to tell "slow" from "already dead"."""
        for entry in os.listdir("/proc"):
            if entry.isdigit() and pid_alive(int(entry)) and self._is_ours(int(entry)):
                cmd = _cmdline(int(entry))
                if cmd and cmd[0].endswith("beam.smp"):
                    return int(entry)
        return None

    def _ensure_epmd(self, deadline: float) -> None:
        if not self._own_epmd or (self._epmd is not None and self._epmd.poll() is None):
            return
        epmd = _epmd_binary()
        assert epmd is not None and self.dir is not None
        log = self.dir / "log" / "epmd.log"
        with log.open("ab") as out:
            # Own session: a Ctrl-C in the terminal must not take epmd down under the node.
            self._epmd = subprocess.Popen(
                [epmd, "-port", str(self.epmd_port), "-address", LOOPBACK],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while not _port_accepts(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise _failure(f"epmd did not start on port {self.epmd_port}", log)
            time.sleep(0.02)

    def _stop_epmd(self) -> None:
        if not self._own_epmd:
            return
        if self._epmd is not None:
            self._epmd.terminate()
            try:
                self._epmd.wait(5)
            except subprocess.TimeoutExpired:
                self._epmd.kill()
                self._epmd.wait(5)
            self._epmd = None
        epmd = _epmd_binary()
        if epmd is not None and self.epmd_port and _port_accepts(self.epmd_port):
            # Something (an old CLI without -start_epmd false?) started a daemon on our port.
            subprocess.run(
                [epmd, "-port", str(self.epmd_port), "-kill"],
                capture_output=True,
                timeout=10,
                check=False,
            )

    def _launch(self, sbin: Path, deadline: float) -> None:
        assert self.dir is not None
        startup_log = self.dir / "log" / "startup.log"
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        self._pid = None
        with startup_log.open("ab") as out:
            try:
                launched = subprocess.run(
                    [str(sbin / "rabbitmq-server"), "-detached"],
                    env=self._env(),
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise _failure("rabbitmq-server -detached did not return", startup_log) from exc
        if launched.returncode != 0:
            raise _failure(
                f"rabbitmq-server -detached exited with {launched.returncode}",
                startup_log,
                self.log_file,
            )
        self._pid = self._wait_for_pid(deadline, startup_log)
        self._await_startup(deadline, startup_log)

    def _wait_for_pid(self, deadline: float, startup_log: Path) -> int:
        launched_at = time.monotonic()
        seen_beam = False
        while True:
            pid = self._read_pid_file()
            if pid is not None and pid_alive(pid) and self._is_ours(pid):
                return pid
            beam = self._find_beam()
            seen_beam = seen_beam or beam is not None
            if beam is None and (seen_beam or time.monotonic() - launched_at > 15.0):
                raise _failure(
                    f"RabbitMQ node {self.nodename} exited during boot", startup_log, self.log_file
                )
            if time.monotonic() > deadline:
                raise _failure(
                    f"RabbitMQ node {self.nodename} wrote no pid file within "
                    f"{self.startup_timeout:.0f}s",
                    startup_log,
                    self.log_file,
                )
            time.sleep(0.1)

    def _await_startup(self, deadline: float, startup_log: Path) -> None:
        last = ""
        while True:
            remaining = deadline - time.monotonic()
            if not self.is_running():
                raise _failure(
                    f"RabbitMQ node {self.nodename} died during boot", startup_log, self.log_file
                )
            if remaining <= 0:
                raise _failure(
                    f"RabbitMQ node {self.nodename} not ready within {self.startup_timeout:.0f}s;"
                    f" last rabbitmqctl output:\n{last}",
                    self.log_file,
                )
            try:
                result = self.rabbitmqctl(
                    "await_startup",
                    "--timeout",
                    str(max(1, int(remaining))),
                    timeout=remaining + 10,
                )
            except subprocess.TimeoutExpired:
                continue
            last = (result.stdout + result.stderr).strip()
            if result.returncode == 0 and _port_accepts(self.port):
                return
            # Before distribution is up, await_startup fails at once; poll gently.
            time.sleep(0.3)

    def _shutdown_node(self) -> None:
        pid = self.pid
        if pid is None:
            return
        pids = [pid, *_descendants(pid)]
        # Not `rabbitmqctl stop <pid_file>`: it waits with kill(pid, 0), which never fails
        # on the zombie that a non-reaping PID 1 leaves behind; we watch /proc instead.
        try:
            accepted = self.rabbitmqctl("stop", timeout=self.stop_timeout).returncode == 0
        except subprocess.TimeoutExpired:
            accepted = False
        # If the node never got the request (unreachable, say), waiting long is pointless.
        left = _wait_gone(pids, self.stop_timeout if accepted else 2.0)
        if left:
            left = _wait_gone(_kill_tree(pid) + left, 10.0)
        if left:
            raise _failure(f"processes {left} of {self.nodename} would not die", self.log_file)
        self._pid = None


class RabbitMQCluster(_Managed):
    """``size`` RabbitMQ nodes on loopback forming one cluster, each started, killed and
    restarted by its own pid like a single :class:`RabbitMQServer`.

    Every node has its own node name, AMQP and distribution ports, data directory and a
    copy of one shared cookie. They share one epmd (run by the first node, on a private
    port via ERL_EPMD_PORT): distribution finds a peer by asking epmd for its name, so
    nodes on separate epmds could not see each other. The others join the first through
    classic-config peer discovery at their first boot, and rejoin by themselves after a
    restart, their membership being on disk.

    Killing the first node leaves its epmd up (kill9 spares epmd, as a VM crash would),
    so the survivors keep finding each other.
    """

    def __init__(self, size: int = 3, *, startup_timeout: float = 120.0) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.size = size
        self.startup_timeout = startup_timeout
        self.cookie = secrets.token_hex(16).upper()
        self.nodes: list[RabbitMQServer] = []

    @staticmethod
    def missing_binaries() -> list[str]:
        return RabbitMQServer.missing_binaries()

    def start(self) -> None:
        if self.nodes:
            raise ServerError("the cluster was already started")
        first = RabbitMQServer(startup_timeout=self.startup_timeout, cookie=self.cookie)
        self.nodes.append(first)
        first.start()
        discovery = ("cluster_formation.peer_discovery_backend = "
                     "rabbit_peer_discovery_classic_config\n"
                     f"cluster_formation.classic_config.nodes.1 = {first.nodename}\n")
        for _ in range(1, self.size):
            node = RabbitMQServer(startup_timeout=self.startup_timeout, cookie=self.cookie,
                                  epmd_port=first.epmd_port, extra_conf=discovery)
            self.nodes.append(node)
            node.start()
        self.wait_members(self.size, self.startup_timeout)

    def running_members(self, via: RabbitMQServer | None = None) -> set[str]:
        """Node names the cluster reports running, asked of ``via`` or any live node."""
        for node in [via] if via is not None else self.nodes:
            if node is None or not node.is_running():
                continue
            result = node.rabbitmqctl("cluster_status", "--formatter", "json", timeout=30)
            if result.returncode == 0:
                with contextlib.suppress(ValueError):
                    return set(json.loads(result.stdout).get("running_nodes", []))
        return set()

    def wait_members(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.running_members()) < count:
            if time.monotonic() > deadline:
                raise _failure(f"the cluster has {self.running_members()} running, wanted "
                               f"{count}", *(node.log_file for node in self.nodes))
            time.sleep(0.5)

    def url(self, vhost: str = "/") -> str:
        """One AMQP URL listing every node, comma-separated (``broker_url`` syntax)."""
        hosts = ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes)
        return f"amqp://guest:guest@{hosts}/{quote(vhost, safe='')}"

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """rabbitmqctl on the first running node (cluster-wide commands)."""
        for node in self.nodes:
            if node.is_running():
                return node.rabbitmqctl(*args, timeout=timeout)
        raise ServerError("no node of the cluster is running")

    def stop(self) -> None:
        """Stops every node, the first (which runs epmd) last."""
        failures = []
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception as exc:
                failures.append(repr(exc))
        self.nodes = []
        if failures:
            raise ServerError("; ".join(failures))

    def __repr__(self) -> str:
        return f"<RabbitMQCluster {[n.nodename for n in self.nodes]}>"


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    """Directory holding initdb, pg_ctl and postgres, newest Debian version first.

    Debian keeps the real binaries in /usr/lib/postgresql/<ver>/bin and puts nothing (or
    only wrappers, or symlinks in /usr/local/bin) on PATH, so the Debian location wins and
    PATH is only a fallback; symlinks are resolved because pg_ctl finds `postgres` next to
    its own real path.
    """

    def usable(directory: Path) -> bool:
        return all(os.access(directory / n, os.X_OK) for n in ("initdb", "pg_ctl", "postgres"))

    override = os.environ.get("LGSP_PG_BINDIR")
    if override:
        return Path(override) if usable(Path(override)) else None

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if usable(Path(candidate)):
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        real = Path(found).resolve().parent
        if usable(real):
            return real
    return None


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """The unprivileged account PostgreSQL runs as when the tests run as root.

    postgres refuses to start as root, by design. The account is created on first use so
    that a fresh CI box needs nothing beyond the packages. Creation is retried because
    parallel test processes may race on /etc/passwd's lock.
    """
    for attempt in range(10):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
        useradd = _sbin_which("useradd")
        if useradd is None:
            raise ServerError(f"cannot create OS user {name}: useradd not found")
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: created meanwhile by a parallel run
            if attempt == 9:
                raise ServerError(f"useradd {name} failed: {result.stderr.strip()}")
            time.sleep(0.2)
    return pwd.getpwnam(name)


def _traversable_tmp() -> str:
    """A temp root every user can traverse: the server user must reach its own directory."""
    base = Path(tempfile.gettempdir()).resolve()
    for part in (base, *base.parents):
        if not part.stat().st_mode & stat.S_IXOTH:
            return "/tmp"
    return str(base)


class PostgresServer(_Managed):
    """A PostgreSQL cluster in a temporary directory, on a loopback-only port.

    Running as root: initdb/pg_ctl run through ``runuser -u <os_user> --`` as a system
    account created on demand, and the temporary directory is handed to that account.
    The unix socket lives in that (0700) directory too, so it never clashes with the
    system cluster's /var/run/postgresql; tests connect over TCP.

    Durability stays as in production (fsync, synchronous_commit, full_page_writes on):
    the reliability tests SIGKILL the server and must prove committed rows survive.
    Only initdb uses --no-sync, which saves seconds and can only matter if the machine
    itself crashes while the cluster is being created.

    Authentication is trust, for loopback and the private socket only, and the connecting
    role is the bootstrap superuser, so tests can create whatever they need.
    """

    host: Final = LOOPBACK

    def __init__(
        self,
        *,
        user: str = "lgsp",
        dbname: str = "lgsp",
        os_user: str = "lgsptest",
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.user = user
        self.dbname = dbname
        self.os_user = os_user
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.dir: Path | None = None
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None
        self._pid: int | None = None
        self._database_created = False

    # ---- public API ------------------------------------------------------------------

    @staticmethod
    def missing_binaries() -> list[str]:
        """What is not installed, so fixtures can fail with an actionable message."""
        missing = []
        if _pg_bindir() is None:
            missing.append("initdb/pg_ctl/postgres (package postgresql)")
        if os.geteuid() == 0 and _sbin_which("runuser") is None:
            missing.append("runuser (package util-linux)")
        return missing

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{LOOPBACK}:{self.port}/{self.dbname}"

    @property
    def libpq_url(self) -> str:
        """Plain libpq URI, for psycopg.connect(), psql or any libpq-based tool."""
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{self.dbname}"

    @property
    def dsn(self) -> str:
        """libpq key=value connection string."""
        return f"host={LOOPBACK} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def data_dir(self) -> Path | None:
        return None if self.dir is None else self.dir / "data"

    @property
    def socket_dir(self) -> Path | None:
        return self.dir

    @property
    def log_file(self) -> Path | None:
        return None if self.dir is None else self.dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        """Pid of the postmaster, or None when it is not running."""
        pid = self._pid or self._read_postmaster_pid()
        return pid if pid is not None and pid_alive(pid) and self._is_ours(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def pids(self) -> list[int]:
        """Every live process this server owns: the postmaster and all its children."""
        pid = self.pid
        return [] if pid is None else [pid, *_descendants(pid)]

    def start(self) -> None:
        """Start the cluster (creating it on first use) and return once it takes queries.

        Calling start() after stop() gives a brand-new cluster (new directory and port).
        """
        if self.is_running():
            raise ServerError(f"PostgreSQL on port {self.port} is already running")
        bindir = self._require_bindir()
        began = time.monotonic()
        deadline = began + self.startup_timeout
        if self.dir is None:
            self._prepare(bindir)
        _register(self)
        self._remove_stale_locks()
        self._pg_ctl(
            bindir,
            "start",
            "-w",
            "-t",
            str(max(1, int(deadline - time.monotonic()))),
            "-l",
            str(self.log_file),
            timeout=max(1.0, deadline - time.monotonic()) + 10,
        )
        self._pid = self._read_postmaster_pid()
        self._wait_ready(deadline)
        self.last_start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Shut the cluster down, kill whatever is left, and delete all of its data."""
        began = time.monotonic()
        try:
            if self.is_running():
                self._shutdown()
        finally:
            _unregister(self)
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._pid = None
            self._database_created = False
            _handed_out_ports.discard(self.port)
        self.last_stop_seconds = time.monotonic() - began

    def kill9(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a machine-level kill would."""
        pid = self.pid
        if pid is None:
            raise ServerError(f"PostgreSQL on port {self.port} is not running")
        left = _wait_gone(_kill_tree(pid), 10.0)
        if left:
            raise ServerError(f"PostgreSQL processes {left} survived SIGKILL")
        self._pid = None

    def restart(self) -> None:
        """Start again on the same port and data directory (crash recovery runs if needed)."""
        if self.dir is None:
            raise ServerError("restart() needs a server that was started and not stopped")
        if self.is_running():
            self._shutdown()
        self.start()

    def __repr__(self) -> str:
        return f"<PostgresServer port={self.port} running={self.is_running()}>"

    # ---- internals -------------------------------------------------------------------

    def _require_bindir(self) -> Path:
        bindir = _pg_bindir()
        missing = self.missing_binaries()
        if bindir is None or missing:
            raise ServerNotInstalledError(
                f"PostgreSQL is not installed ({', '.join(missing)}); {INSTALL_HINT}"
            )
        return bindir

    def _as_server_user(self, cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        return [_sbin_which("runuser") or "runuser", "-u", self.os_user, "--", *cmd]

    def _run(
        self, cmd: list[str], *, timeout: float, what: str, log: Path | None
    ) -> subprocess.CompletedProcess[str]:
        assert self.dir is not None
        try:
            result = subprocess.run(
                self._as_server_user(cmd),
                env=_clean_env(("PG",)),
                cwd=self.dir,  # runuser keeps the cwd, which must be readable by os_user
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise _failure(f"{what} timed out after {timeout:.0f}s", log) from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise _failure(f"{what} exited with {result.returncode}:\n{output}", log)
        return result

    def _pg_ctl(self, bindir: Path, *args: str, timeout: float) -> None:
        assert self.data_dir is not None
        self._run(
            [str(bindir / "pg_ctl"), "-D", str(self.data_dir), *args],
            timeout=timeout,
            what=f"pg_ctl {args[0]}",
            log=self.log_file,
        )

    def _prepare(self, bindir: Path) -> None:
        owner = _ensure_os_user(self.os_user) if os.geteuid() == 0 else None
        directory = Path(tempfile.mkdtemp(prefix="lgsp-postgres-", dir=_traversable_tmp()))
        self.dir = directory
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        assert self.data_dir is not None
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=self.startup_timeout,
            what="initdb",
            log=None,
        )
        settings = {
            "listen_addresses": f"'{LOOPBACK}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{directory}'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_wal_size": "256MB",
            "jit": "off",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# lgsp test server\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )

    def _read_postmaster_pid(self) -> int | None:
        if self.data_dir is None:
            return None
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        return self.data_dir is not None and str(self.data_dir) in _cmdline(pid)

    def _remove_stale_locks(self) -> None:
        """Delete lock files left by a killed postmaster that is now dead or a zombie.

        postgres tests its lock files with kill(pid, 0), which succeeds on a zombie, so on a
        box whose PID 1 does not reap it would refuse to start after kill9() forever.
        """
        assert self.data_dir is not None and self.dir is not None
        pid = self._read_postmaster_pid()
        if pid is not None and pid_alive(pid):
            return
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        (self.dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)

    def _wait_ready(self, deadline: float) -> None:
        import psycopg  # deferred: keeps this module importable without psycopg
        from psycopg import sql

        while True:
            try:
                with psycopg.connect(
                    host=LOOPBACK,
                    port=self.port,
                    user=self.user,
                    dbname="postgres",
                    autocommit=True,
                    connect_timeout=5,
                ) as conn:
                    if not self._database_created and self.dbname != "postgres":
                        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname))
                        conn.execute(create)
                        self._database_created = True
                    return
            except psycopg.OperationalError as exc:
                if not self.is_running() or time.monotonic() > deadline:
                    raise _failure(
                        f"PostgreSQL on port {self.port} does not accept connections: {exc}",
                        self.log_file,
                    ) from exc
                time.sleep(0.1)

    def _shutdown(self) -> None:
        pid = self.pid
        if pid is None:
            return
        pids = [pid, *_descendants(pid)]
        bindir = _pg_bindir()
        if bindir is not None:
            with contextlib.suppress(ServerError):
                self._pg_ctl(
                    bindir,
                    "stop",
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(self.stop_timeout)),
                    timeout=self.stop_timeout + 10,
                )
        left = _wait_gone(pids, 5.0)
        if left:
            left = _wait_gone(_kill_tree(pid) + left, 10.0)
        if left:
            raise _failure(f"PostgreSQL processes {left} would not die", self.log_file)
        self._pid = None

"""A single-node private RabbitMQ broker."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from tests.servers.host import (
    _epmd_binary,
    _rabbitmq_sbin,
)
from tests.servers.process import (
    INSTALL_HINT,
    LOOPBACK,
    ServerError,
    ServerNotInstalledError,
    _clean_env,
    _cmdline,
    _descendants,
    _failure,
    _handed_out_ports,
    _kill_tree,
    _Managed,
    _port_accepts,
    _register,
    _unregister,
    _wait_gone,
    free_port,
    pid_alive,
)


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

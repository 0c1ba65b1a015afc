"""A private PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from tests.servers.host import (
    _ensure_os_user,
    _pg_bindir,
    _sbin_which,
    _traversable_tmp,
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
    _register,
    _unregister,
    _wait_gone,
    free_port,
    pid_alive,
)


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

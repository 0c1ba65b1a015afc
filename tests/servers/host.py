"""Where the installed servers' binaries are, and the OS user and temp root PostgreSQL
needs when the suite runs as root."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers.process import (
    ServerError,
)


def _sbin_which(name: str) -> str | None:
    """which(), also looking in the sbin directories a non-login root PATH may lack."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
    return shutil.which(name, path=search)


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

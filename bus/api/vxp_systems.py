"""Which systems may call the provincial-axis facade, and with which secret.

A system embedding the axis SDK is configured with three things: an endpoint, a
``systemId`` and a shared secret it signs every request with (edxml.md §7). HMAC needs
the secret itself, so unlike API keys (stored as digests in credentials.yaml) it cannot
be kept hashed: it comes from the environment variable each entry names. The sample
province sets ``development_secrets: true`` so that it works out of the box with the
published secret ``dev-<system>-vxp-secret``; with that flag off, an entry whose variable
is unset is disabled (its calls fail with UnknownSystem and /readyz says why).

The file is re-read when it changes; an invalid edit is logged and the previous
registrations stay in force, as with routes.yaml.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus import errors
from bus.directory import Directory

__all__ = ["Registry", "RegistryFile", "VxpSystem", "dev_secret", "load_registry"]

log = structlog.get_logger("lgsp.api.vxp")

DEFAULT_SKEW_S: Final = 300.0
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def dev_secret(system: str) -> str:
    """The published development secret of a directory system: never for production."""
    return f"dev-{system}-vxp-secret"


def default_env(system: str) -> str:
    return "LGSP_VXP_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", system).upper()


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str = Field(min_length=1, max_length=64)
    secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    max_clock_skew_s: float = Field(default=DEFAULT_SKEW_S, ge=0, le=7 * 86_400)
    max_age_s: float | None = Field(default=None, ge=0, le=7 * 86_400)
    timezone: str | None = Field(default=None, max_length=64)
    description: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (UTC, Asia/Ho_Chi_Minh, "
                             "…)") from None
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(default=1, ge=1, le=1)
    development_secrets: bool = False
    systems: dict[str, _Entry] = Field(default_factory=dict)


@dataclass(frozen=True)
class VxpSystem:
    """One registered caller. ``max_age_s`` bounds how old a timestamp may be and
    ``max_clock_skew_s`` how far ahead: the SDK stamps its header map once, when the
    service object is built, so a long-lived client sends ever older timestamps."""

    system_id: str
    system: str
    secret_env: str
    secret: str | None = field(repr=False)
    development_secret: bool
    max_clock_skew_s: float
    max_age_s: float
    zone: tzinfo | None = None
    """The zone its SDK stamps timestamps in when that is not the bus's (a JVM on UTC)."""

    @property
    def actor(self) -> str:
        return f"vxp:{self.system_id}"[:64]


@dataclass(frozen=True)
class Registry:
    systems: Mapping[str, VxpSystem]
    source: str
    exists: bool = True

    def problems(self, directory: Directory) -> list[str]:
        """What stops a registered system from working; empty when all is well."""
        out = []
        for entry in self.systems.values():
            if entry.secret is None:
                out.append(f"systemId {entry.system_id}: {entry.secret_env} is not set")
            if directory.destination_of(entry.system) is None:
                out.append(f"systemId {entry.system_id}: system {entry.system!r} is not in "
                           "the directory")
        return out


def load_registry(path: Path, environ: Mapping[str, str] | None = None) -> Registry:
    """Reads the file; a missing file registers nobody (the facade answers UnknownSystem)."""
    environ = os.environ if environ is None else environ
    source = str(path)
    if not path.exists():
        return Registry({}, source, exists=False)
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _File.model_validate(raw)
    except yaml.YAMLError as exc:
        raise errors.ConfigInvalid([errors.Problem(f"YAML error: {exc}", file=source)]) from None
    except ValidationError as exc:
        raise errors.ConfigInvalid([
            errors.Problem(e["msg"], file=source, path="/".join(str(p) for p in e["loc"]))
            for e in exc.errors()], file=source) from None
    problems: list[errors.Problem] = []
    owners: dict[str, str] = {}
    systems: dict[str, VxpSystem] = {}
    for system_id, entry in parsed.systems.items():
        if entry.system in owners:
            problems.append(errors.Problem(
                f"system {entry.system!r} is already registered as systemId "
                f"{owners[entry.system]}: two callers would empty one mailbox",
                file=source, path=f"systems/{system_id}/system"))
        owners[entry.system] = system_id
        env = entry.secret_env or default_env(entry.system)
        secret = environ.get(env) or None
        development = secret is None and parsed.development_secrets
        if development:
            secret = dev_secret(entry.system)
        systems[system_id] = VxpSystem(
            system_id=system_id, system=entry.system, secret_env=env, secret=secret,
            development_secret=development, max_clock_skew_s=entry.max_clock_skew_s,
            max_age_s=entry.max_clock_skew_s if entry.max_age_s is None else entry.max_age_s,
            zone=ZoneInfo(entry.timezone) if entry.timezone else None)
    if problems:
        raise errors.ConfigInvalid(problems, file=source)
    for entry_ in systems.values():
        if entry_.development_secret:
            log.warning("vxp.development_secret", system_id=entry_.system_id,
                        hint=f"set {entry_.secret_env}; development_secrets is for the "
                             "sample province only")
    return Registry(systems, source)


class RegistryFile:
    """The registrations in force, re-read when the file's mtime or size changes."""

    def __init__(self, path: Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.environ = environ
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stamp = self._fingerprint()
        try:
            self._current = load_registry(path, environ)
        except errors.ConfigInvalid as exc:
            self.error = str(exc)
            log.error("vxp.registry_invalid", file=str(path), problems=[
                str(p) for p in exc.problems])
            self._current = Registry({}, str(path))

    def _fingerprint(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Registry:
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return self._current
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._current = load_registry(self.path, self.environ)
                    self.error = None
                    log.info("vxp.registry_reloaded", systems=sorted(self._current.systems))
                except errors.ConfigInvalid as exc:
                    self.error = str(exc)
                    log.error("vxp.registry_refused", file=str(self.path),
                              problems=[str(p) for p in exc.problems])
        return self._current

    def readiness(self, directory: Directory) -> str | None:
        registry = self.current()
        found = ([f"invalid, previous kept: {self.error}"] if self.error else []) + \
            registry.problems(directory)
        return "; ".join(found) if found else None

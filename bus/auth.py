"""Who is calling: API keys (kept only as SHA-256 digests) and client certificates.

config/credentials.yaml's header comment is the operator's reference for the format;
in short, each connected system (eOffice, iOffice, …) may have:

* any number of active keys (``key_sha256``, ``keys_sha256``, and plaintext keys from
  the environment variable ``LGSP_KEY_<SYSTEM>``, comma-separated), so a key is rotated
  by adding the new one, moving the system over, and retiring the old one with a reload;
* a published development key ``dev-<system>-key`` (``development_key_sha256``), honoured
  only while the file says ``development: true``. Any configured digest equal to a
  published development key counts as one, whichever field holds it, so a production
  file cannot keep one by accident;
* client certificates (SHA-256 of the DER), for callers identified by mutual TLS, and
  ``require_client_certificate`` to refuse its key alone;
* its own request rate (token bucket, :mod:`bus.ratelimit`);
* ``role: operator``: may read every document's status; hosts no agency, so sends nothing.

The file is re-read on SIGHUP and when it changes (:class:`CredentialsFile`); the new
credentials replace the old in one assignment, and an invalid edit keeps the old ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import structlog
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from bus import errors
from bus.ratelimit import Rate

log = structlog.get_logger("lgsp.auth")

DEFAULT_RATE: Final = Rate(per_second=500.0, burst=1000)
"""When credentials.yaml names no default ``rate``; sized above what one bus process serves."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def env_name(system: str) -> str:
    return "LGSP_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", system).upper()


def development_key(system: str) -> str:
    """The published key of the sample province: never valid with ``development: false``."""
    return f"dev-{system}-key"


def fingerprint_hex(value: str) -> str:
    """``AB:CD:…`` (as openssl prints it) or plain hex, as 64 lowercase hex digits."""
    text = value.strip().replace(":", "").lower()
    if not _HEX64.fullmatch(text):
        raise ValueError("must be the 64 hex digits of a SHA-256 (colons allowed)")
    return text


_Hex = Annotated[str, AfterValidator(fingerprint_hex)]


class _RateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_second: float = Field(gt=0, le=1_000_000)
    burst: int = Field(ge=1, le=10_000_000)

    def rate(self) -> Rate:
        return Rate(self.per_second, self.burst)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_sha256: _Hex | None = None
    keys_sha256: list[_Hex] = Field(default_factory=list)
    development_key_sha256: _Hex | None = None
    client_certificates: list[_Hex] = Field(default_factory=list)
    require_client_certificate: StrictBool = False
    rate: _RateSpec | None = None
    role: Literal["operator"] | None = None
    description: str = ""


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    development: StrictBool = False
    rate: _RateSpec | None = _RateSpec(per_second=DEFAULT_RATE.per_second,
                                       burst=DEFAULT_RATE.burst)
    systems: dict[str, _Entry | None] = Field(default_factory=dict)


@dataclass(frozen=True)
class SystemCredentials:
    name: str
    digests: frozenset[str] = field(repr=False)
    development_key: bool
    certificates: frozenset[str]
    require_client_certificate: bool
    rate: Rate | None
    operator: bool


class Credentials:
    """One loaded credentials.yaml: immutable, replaced whole on reload."""

    def __init__(self, systems: Mapping[str, SystemCredentials], *, development: bool = False,
                 default_rate: Rate | None = DEFAULT_RATE, source: str = "",
                 warnings: Iterable[str] = ()) -> None:
        self._systems = dict(systems)
        self.default_rate = default_rate
        self._by_digest = [(d, s.name) for s in self._systems.values() for d in s.digests]
        self._by_certificate = {c: s.name for s in self._systems.values()
                                for c in s.certificates}
        self.development = development
        self.source = source
        self.warnings = tuple(warnings)
        self.loaded_at = time.time()
        self.operators = frozenset(n for n, s in self._systems.items() if s.operator)

    @classmethod
    def load(cls, path: str | Path, environ: Mapping[str, str] | None = None) -> Credentials:
        return load_credentials(path, environ)

    @property
    def systems(self) -> frozenset[str]:
        return frozenset(self._systems)

    @property
    def development_systems(self) -> list[str]:
        """Systems whose published development key is accepted now."""
        return sorted(n for n, s in self._systems.items() if s.development_key)

    def entry(self, system: str) -> SystemCredentials | None:
        return self._systems.get(system)

    def rate_for(self, system: str) -> Rate | None:
        entry = self._systems.get(system)
        return entry.rate if entry is not None else self.default_rate

    def _owner(self, key: str) -> str:
        presented = digest(key)
        owner = None
        for known, system in self._by_digest:
            if hmac.compare_digest(known, presented):
                owner = system
        if owner is None:
            raise errors.Unauthenticated(
                "the API key is not valid for any connected system; check the key "
                "configured in your document system")
        return owner

    def authenticate(self, key: str | None) -> str:
        """The system owning ``key`` when no certificate was presented."""
        return self.identify(key, certificate=None)

    def identify(self, key: str | None, *, certificate: str | None) -> str:
        """The calling system, from a verified client certificate or the API key.

        A certificate bound to a system names the caller; a key sent with it must be the
        same system's. Otherwise the key decides, unless its system requires a
        certificate. Missing and wrong credentials get the same refusal.
        """
        bound = self._by_certificate.get(certificate) if certificate else None
        if bound is not None:
            if key and self._owner(key) != bound:
                raise errors.Unauthenticated(
                    "the API key and the client certificate belong to different systems; "
                    "send the key of the certificate's system, or none")
            return bound
        if not key:
            raise errors.Unauthenticated(
                "no credential: send the system's API key in the X-API-Key header (or "
                "call with the system's client certificate)")
        system = self._owner(key)
        if self._systems[system].require_client_certificate:
            raise errors.Unauthenticated(
                "this system must call with its client certificate (mutual TLS); an API "
                "key alone is not accepted for it")
        return system


def _read(path: Path) -> _File:
    source = str(path)
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return _File.model_validate(raw)
    except OSError as exc:
        raise errors.ConfigInvalid([errors.Problem(
            f"cannot read the credentials file: {exc.strerror or exc}", file=source)],
            file=source) from None
    except yaml.YAMLError as exc:
        raise errors.ConfigInvalid([errors.Problem(f"YAML error: {exc}", file=source)],
                                   file=source) from None
    except ValidationError as exc:
        raise errors.ConfigInvalid([
            errors.Problem(e["msg"], file=source, path=".".join(str(p) for p in e["loc"]))
            for e in exc.errors()], file=source) from None


def env_keys(system: str, environ: Mapping[str, str]) -> list[str]:
    """``LGSP_KEY_<SYSTEM>=new,old``: every non-empty comma-separated key, trimmed."""
    return [k.strip() for k in environ.get(env_name(system), "").split(",") if k.strip()]


def load_credentials(path: str | Path, environ: Mapping[str, str] | None = None) -> Credentials:
    """Reads and checks the whole file; raises ConfigInvalid listing every problem."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    source = str(path)
    parsed = _read(path)
    entries = {name: entry or _Entry() for name, entry in parsed.systems.items()}
    published = {digest(development_key(name)) for name in entries}
    problems: list[errors.Problem] = []
    warnings: list[str] = []
    owners: dict[str, str] = {}
    cert_owners: dict[str, str] = {}
    systems: dict[str, SystemCredentials] = {}
    for name, entry in entries.items():
        where = f"systems.{name}"
        configured = [d for d in (entry.key_sha256, *entry.keys_sha256) if d]
        configured += [digest(k) for k in env_keys(name, environ)]
        active = {d for d in configured if d not in published}
        if len(active) < len(set(configured)):
            warnings.append(f"{name}: a published development key is configured as a real "
                            "key; it is treated as a development key")
        dev_digests = {d for d in (entry.development_key_sha256, *configured)
                       if d and d in published}
        if entry.development_key_sha256 and entry.development_key_sha256 not in published:
            problems.append(errors.Problem(
                f"development_key_sha256 is not the digest of {development_key(name)!r}: "
                "only the published development key belongs here; a real key goes in "
                "keys_sha256", file=source, path=f"{where}.development_key_sha256"))
        if parsed.development:
            active |= dev_digests
        for d in active:
            if owners.setdefault(d, name) != name:
                problems.append(errors.Problem(
                    f"the same key is configured for {owners[d]} and {name}: a key must "
                    "name one system", file=source, path=where))
        for cert in entry.client_certificates:
            if cert_owners.setdefault(cert, name) != name:
                problems.append(errors.Problem(
                    f"client certificate {cert[:16]}… is bound to {cert_owners[cert]} and "
                    f"{name}: a certificate must name one system",
                    file=source, path=f"{where}.client_certificates"))
        if entry.require_client_certificate and not entry.client_certificates:
            problems.append(errors.Problem(
                "require_client_certificate is true but client_certificates is empty: the "
                "system could not call at all", file=source,
                path=f"{where}.require_client_certificate"))
        if not active and not entry.client_certificates:
            warnings.append(f"{name}: no active key and no client certificate; set "
                            f"{env_name(name)} or add keys_sha256")
        rate = entry.rate.rate() if entry.rate is not None else None
        if "rate" not in entry.model_fields_set:
            rate = parsed.rate.rate() if parsed.rate is not None else None
        systems[name] = SystemCredentials(
            name=name, digests=frozenset(active),
            development_key=parsed.development and bool(dev_digests),
            certificates=frozenset(entry.client_certificates),
            require_client_certificate=entry.require_client_certificate,
            rate=rate, operator=entry.role == "operator")
    if problems:
        raise errors.ConfigInvalid(problems, file=source)
    return Credentials(systems, development=parsed.development,
                       default_rate=parsed.rate.rate() if parsed.rate is not None else None,
                       source=source, warnings=warnings)


class CredentialsFile:
    """The credentials in force; ``reload()`` swaps them whole, safe from any thread."""

    def __init__(self, path: str | Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.environ = environ
        self._lock = threading.Lock()
        self._stamp = self.fingerprint()
        self._current = load_credentials(self.path, environ)
        self.failures = 0
        self._announce(self._current, "credentials.loaded")

    def fingerprint(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Credentials:
        return self._current

    def reload(self) -> bool:
        """Reads the file again; True when the new credentials are in force."""
        with self._lock:
            self._stamp = self.fingerprint()
            try:
                fresh = load_credentials(self.path, self.environ)
            except errors.ConfigInvalid as exc:
                self.failures += 1
                log.error("credentials.reload_refused", file=str(self.path),
                          problems=[str(p) for p in exc.problems] or [str(exc)],
                          kept_loaded_at=self._current.loaded_at)
                return False
            self._current = fresh
        self._announce(fresh, "credentials.reloaded")
        return True

    def reload_if_changed(self) -> bool | None:
        """None when the file is as last seen, else whether the reload took effect."""
        if self.fingerprint() == self._stamp:
            return None
        return self.reload()

    @staticmethod
    def _announce(credentials: Credentials, event: str) -> None:
        log.info(event, file=credentials.source, systems=sorted(credentials.systems),
                 development=credentials.development)
        for warning in credentials.warnings:
            log.warning("credentials.warning", file=credentials.source, problem=warning)
        if credentials.development:
            log.warning("credentials.development_keys", systems=credentials.development_systems,
                        hint="development: true accepts the published keys dev-<system>-key; "
                             "set it to false and give each system its own key before real use")

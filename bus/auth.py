"""Who is calling: API keys of connected systems, kept only as SHA-256 digests.

Each connected document system (eOffice, iOffice, …) has its own key. The repository
holds digests of the development keys (``dev-<system>-key``, never for production); a
deployment sets real keys through the environment as ``LGSP_KEY_<SYSTEM>`` (the system
name upper-cased, non-alphanumerics as ``_``), which replaces the file's digest.
An entry with ``role: operator`` is a key for the province's operators: it may read every
document's status, but the directory hosts no agency for it, so it can send nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from bus import errors


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def env_name(system: str) -> str:
    return "LGSP_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", system).upper()


class Credentials:
    """Maps a presented key to the system it belongs to."""

    def __init__(self, digests: Mapping[str, str],
                 operators: frozenset[str] = frozenset()) -> None:
        self._by_system = dict(digests)
        self._by_digest = {d: s for s, d in digests.items()}
        self.operators = operators

    @classmethod
    def load(cls, path: str | Path, environ: Mapping[str, str] | None = None) -> Credentials:
        environ = os.environ if environ is None else environ
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        systems = raw.get("systems") or {}
        problems = []
        digests: dict[str, str] = {}
        operators = frozenset(str(name) for name, entry in systems.items()
                              if (entry or {}).get("role") == "operator")
        for name, entry in systems.items():
            value = (entry or {}).get("key_sha256")
            if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
                problems.append(errors.Problem(
                    "key_sha256 must be the 64 hex digits of SHA-256 of the system's key",
                    file=str(path), path=f"systems.{name}.key_sha256"))
                continue
            digests[str(name)] = value
        for name in list(systems):
            if (secret := environ.get(env_name(str(name)))):
                digests[str(name)] = digest(secret)
        if problems:
            raise errors.ConfigInvalid(problems, file=str(path))
        return cls(digests, operators)

    @property
    def systems(self) -> frozenset[str]:
        return frozenset(self._by_system)

    def authenticate(self, key: str | None) -> str:
        """The system owning ``key``; the same refusal for a missing and a wrong key."""
        if not key:
            raise errors.Unauthenticated(
                "no credential: send the system's API key in the X-API-Key header")
        presented = digest(key)
        for known, system in self._by_digest.items():
            if hmac.compare_digest(known, presented):
                return system
        raise errors.Unauthenticated(
            "the API key is not valid for any connected system; check the key configured "
            "in your document system")

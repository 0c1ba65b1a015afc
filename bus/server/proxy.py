"""The client certificate nginx verified, believed only when nginx itself is the peer.

nginx has no SHA-256 fingerprint variable (``$ssl_client_fingerprint`` is SHA-1), so it
passes the verified certificate itself (``$ssl_client_escaped_cert``, URL-encoded PEM) with
its verdict and subject; the fingerprint is computed here from the DER, the same bytes
:mod:`bus.server.tls` hashes when the bus terminates TLS, so credentials.yaml holds one
fingerprint whichever way the system connects (ops/nginx/lgsp.conf sets the headers).

The three headers are removed from every request, whoever sent it: a client talking to
the bus directly must not be able to claim a certificate by writing a header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from bus import errors
from bus.server.tls import CLIENT_CERT_KEY

VERIFY_HEADER: Final = b"x-ssl-client-verify"
CERT_HEADER: Final = b"x-ssl-client-cert"
SUBJECT_HEADER: Final = b"x-ssl-client-subject"
_OURS: Final = frozenset({VERIFY_HEADER, CERT_HEADER, SUBJECT_HEADER})
_PEM_BEGIN: Final = b"-----BEGIN CERTIFICATE-----"
_PEM_END: Final = b"-----END CERTIFICATE-----"

_HEX_RUN: Final = re.compile(r"(?:\\[0-9A-Fa-f]{2})+")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def readable_dn(dn: str) -> str:
    """nginx's ``$ssl_client_s_dn`` with OpenSSL's ``\\XX`` escapes of UTF-8 bytes turned
    back into text, so it equals the RFC 4514 subject the bus's own TLS reports. Escapes
    of ASCII (``\\2C``) stay: they are structure, not text."""
    def decode(match: re.Match[str]) -> str:
        raw = bytes.fromhex(match.group(0).replace("\\", ""))
        if min(raw) < 0x80:
            return match.group(0)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return match.group(0)
    return _HEX_RUN.sub(decode, dn)


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """``trusted_proxies`` entries as networks; a bare address is a one-host network."""
    networks: list[Network] = []
    problems: list[errors.Problem] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            problems.append(errors.Problem(f"trusted_proxies: {exc}"))
    if problems:
        raise errors.ConfigInvalid(problems)
    return networks


def pem_der(pem: bytes) -> bytes | None:
    """The DER of the first certificate in a PEM text, or None when it is not one."""
    start = pem.find(_PEM_BEGIN)
    end = pem.find(_PEM_END, start + 1)
    if start < 0 or end < 0:
        return None
    body = b"".join(pem[start + len(_PEM_BEGIN):end].split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return der or None


class ProxiedClientCert:
    """ASGI middleware: trusted proxy's certificate headers → ``lgsp.client_cert``."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.networks = parse_networks(trusted_proxies)

    def _trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self.networks:
            return False
        try:
            peer = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(peer in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found: dict[bytes, bytes] = {}
        kept = []
        for name, value in scope["headers"]:
            if name in _OURS:
                found.setdefault(name, value)
            else:
                kept.append((name, value))
        if found:
            scope = {**scope, "headers": kept}
            extensions = scope.get("extensions") or {}
            if (CLIENT_CERT_KEY not in extensions and self._trusted(scope)
                    and found.get(VERIFY_HEADER) == b"SUCCESS"):
                der = pem_der(unquote_to_bytes(found.get(CERT_HEADER, b"")))
                if der is not None:
                    subject = readable_dn(found.get(SUBJECT_HEADER, b"").decode("latin-1"))
                    scope["extensions"] = {**extensions, CLIENT_CERT_KEY: {
                        "sha256": hashlib.sha256(der).hexdigest(), "subject": subject}}
        await self.app(scope, receive, send)

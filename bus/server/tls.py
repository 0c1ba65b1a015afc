"""TLS termination in the bus itself, and the verified client certificate as the app sees it.

Whoever terminates TLS (this process, or nginx in front, see :mod:`bus.server.proxy`)
hands the application the same thing: ``scope["extensions"]["lgsp.client_cert"] =
{"sha256": <hex of the DER>, "subject": <RFC 4514>}``, present only when a certificate
was verified against the configured client CA. Authentication keys on the fingerprint,
so a certificate that merely was presented must never appear there.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from typing import Any, Final

from bus import errors
from bus.settings import Settings

CLIENT_CERT_KEY: Final = "lgsp.client_cert"

_CERT_REQS: Final = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                     "required": ssl.CERT_REQUIRED}

# Python's ssl names attributes by their OpenSSL long names; RFC 4514 wants these short ones.
_SHORT: Final = {
    "commonName": "CN", "countryName": "C", "localityName": "L",
    "stateOrProvinceName": "ST", "organizationName": "O", "organizationalUnitName": "OU",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}


def uvicorn_tls(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for the configured TLS, empty for plain HTTP."""
    if settings.tls_certfile is None:
        if settings.tls_keyfile is not None or settings.tls_client_cert != "none":
            raise errors.ConfigInvalid([errors.Problem(
                "tls_keyfile and tls_client_cert need tls_certfile (the server certificate)")])
        return {}
    if settings.tls_client_cert != "none" and settings.tls_client_ca is None:
        raise errors.ConfigInvalid([errors.Problem(
            "tls_client_cert is optional/required but tls_client_ca names no CA bundle")])
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_certfile),
        "ssl_keyfile": str(settings.tls_keyfile) if settings.tls_keyfile else None,
        "ssl_cert_reqs": int(_CERT_REQS[settings.tls_client_cert]),
    }
    if settings.tls_client_ca is not None:
        options["ssl_ca_certs"] = str(settings.tls_client_ca)
    return options


def rfc4514(name: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    """``getpeercert()``'s subject as RFC 4514 text: last RDN first, values escaped."""
    rdns = []
    for rdn in reversed(name):
        rdns.append("+".join(f"{_SHORT.get(key, key)}={_escape(value)}" for key, value in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;' or (char == "#" and index == 0) \
                or (char == " " and index in (0, len(value) - 1)):
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def verified_client_cert(transport: asyncio.BaseTransport) -> dict[str, str] | None:
    """The client certificate of a TLS connection, if the handshake verified one.

    ``getpeercert()`` without ``binary_form`` is empty unless the chain was validated,
    which is exactly the condition under which the fingerprint may be believed."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    info = ssl_object.getpeercert()
    der = ssl_object.getpeercert(binary_form=True)
    if not info or not der:
        return None
    return {"sha256": hashlib.sha256(der).hexdigest(),
            "subject": rfc4514(info.get("subject", ()))}

"""A large sendEdoc body, spooled to disk as it arrived, checked like one held in memory.

The axis SDK signs ``hash-file``, the SHA-256 of the file it sends, in its own hex
(:func:`bus.vxp.hash_file`); the body is that file, possibly followed by one CRLF. For a
body in memory :func:`bus.vxp.check_body` tries both readings; here the spool's running
digest answers the first, and the second is hashed again only when the body ends with
CRLF and the first did not match, after cutting it (as ``strip_crlf`` would). As for
bytes, a body whose own digest matches is the packet, CRLF and all.
"""

from __future__ import annotations

import hmac
from dataclasses import replace

from bus import vxp
from bus.store.blobs import Spool


def _sdk_hex(sha256_hex: str) -> str:
    return "".join(format(byte, "x") for byte in bytes.fromhex(sha256_hex))


def check_spooled(verified: vxp.VerifiedRequest, spool: Spool) -> vxp.VerifiedRequest:
    """The request with its spooled body as the packet; HashMismatch as for bytes."""
    declared = verified.param("hash-file")
    if declared is None:
        raise vxp.MalformedRequest(f"header {vxp.HEADER_PREFIX}hash-file is missing")
    if "hash-file" not in {k.lower() for k in verified.signed_keys}:
        raise vxp.MalformedRequest(f"header {vxp.HEADER_PREFIX}hash-file is not among the "
                                   "signed headers (sign-header-key)")
    declared = declared.strip().lower()
    if not hmac.compare_digest(declared, _sdk_hex(spool.sha256)):
        if spool.tail(2) != vxp.CRLF:
            raise vxp.HashMismatch(f"{vxp.HEADER_PREFIX}hash-file does not match the body")
        spool.drop_tail(2)
        if not hmac.compare_digest(declared, _sdk_hex(spool.sha256)):
            raise vxp.HashMismatch(f"{vxp.HEADER_PREFIX}hash-file does not match the body")
    return replace(verified, body=b"", packet=b"", spooled=spool)

"""SOAP envelopes too large to hold: spooled as they arrive, the packet decoded to disk.

``SendEdoc`` carries the packet as base64 text in the envelope, so a 500 MB scan is a
667 MB envelope. From :data:`bus.api.bodies.SPOOL_FROM` the envelope goes to a spool
file; it is read through :class:`bus.edxml.mapped.Mapped` with the same
:func:`bus.api.soap.parse_call` (the packet's text lifted out, the rest parsed), and the
packet's text is decoded chunk by chunk, strictly, into a second spool that
:meth:`bus.app.Bus.submit` takes. An envelope whose packet text cannot be lifted (a
CDATA section) is read into memory as before.
"""

from __future__ import annotations

import binascii
import contextlib
from typing import Final

from bus import errors
from bus.edxml.mapped import Mapped
from bus.store.blobs import PayloadFiles, Spool

_WHITESPACE: Final = b" \t\r\n"
_CHUNK: Final = 4 << 20


async def whole_or_spool(body: object, files: PayloadFiles | None, spool_from: int
                         ) -> bytes | Spool:
    """The rest of a :class:`bus.api.soap._Body`: bytes while under ``spool_from``, else
    everything held so far and the rest written to a spool (the cap still enforced)."""
    from bus.api.soap import _Body

    assert isinstance(body, _Body)
    while body._total < spool_from and await body._more():
        pass
    if body._ended or files is None:
        return await body.whole()
    spool = files.spool(body._cap)
    try:
        for held in body._held:
            spool.write(held)
        body._held = []
        while await body._more():
            spool.write(body._held.pop())
    except BaseException:
        spool.discard()
        raise
    return spool


def spooled_call(spool: Spool, files: PayloadFiles | None, cap: int
                 ) -> tuple[object, Spool | None]:
    """(the SoapCall, the decoded packet's spool or None). The caller discards both
    spools."""
    from bus.api.soap_wire import parse_call

    assert files is not None  # whole_or_spool spools only with payload files
    spool.flush()
    mapped = Mapped.of(spool.path)
    try:
        call = parse_call(mapped.as_bytes(), keep_span=True)
        if call.span is None:
            return call, None
        packet = files.spool(cap)
        try:
            _decode_into(mapped, call.span[0], call.span[1], packet, cap)
        except BaseException:
            packet.discard()
            raise
        return call, packet
    finally:
        with contextlib.suppress(BufferError):
            mapped.close()


def _decode_into(source: Mapped, start: int, end: int, packet: Spool, cap: int) -> None:
    """Strict base64 of ``source[start:end]`` (line breaks allowed), decoded into
    ``packet``; the refusals of :func:`bus.api.soap.decode_packet`."""
    carry = b""
    try:
        for at in range(start, end, _CHUNK):
            piece = carry + source[at:min(end, at + _CHUNK)].translate(None, _WHITESPACE)
            usable = len(piece) - len(piece) % 4
            carry = piece[usable:]
            if usable:
                decoded = binascii.a2b_base64(piece[:usable], strict_mode=True)
                if packet.size + len(decoded) > cap:
                    raise errors.PayloadTooLarge(
                        f"the packet is more than {cap} bytes; this bus accepts at most "
                        f"{cap}", details={"limit": cap})
                packet.write(decoded)
        if carry:
            raise binascii.Error("length is not a multiple of 4 characters")
    except binascii.Error as exc:
        raise errors.MalformedXml(
            f"the packet element is not valid base64 ({exc}); send the edXML file encoded "
            "with the standard alphabet and '=' padding", path="/Envelope/Body/packet",
        ) from None

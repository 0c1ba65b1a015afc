"""Attachment content: found in the raw bytes, checked as strict base64, kept as a Blob.

Scanned attachments make packets of 10 to 100 MB. Rather than lift libxml2's text-node
limit for everyone (``huge_tree`` turns off several guards at once), the reader lifts the
base64 out of each ``ContentTransferEncoded`` before parsing (:func:`find_regions`,
:func:`lift`), leaving a marker and the same number of line breaks so that line numbers
stay true.

Content up to the spool threshold is kept as its checked base64 and decoded when first
read (``Blob.from_base64``): ``binascii`` decodes at about 0.5 GB/s, several times slower
than libxml2 parses, and a packet that is only routed and forwarded never needs the
bytes. The strict check itself is one ``bytes.translate`` pass. Larger content is
checked the same way chunk by chunk and kept as a reference to its text in the packet
(``Blob.from_region``), decoded only when read; invalid content is decoded here, in
chunks, to say exactly what is wrong with it.
"""

from __future__ import annotations

import binascii
from typing import Final

from lxml import etree

from bus import errors
from bus.edxml.blob import Blob
from bus.edxml.findings import element_path, line_of

_CTE: Final = b"ContentTransferEncoded"
_WHITESPACE: Final = b" \t\r\n"
_WHITESPACE_AND_PAD: Final = b" \t\r\n="
_BASE64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DECODE_CHUNK: Final = 1 << 22
_PADDING: Final = {b"": 0, b"=": 1, b"==": 2}

Region = tuple[int, int]
"""Base64 text lifted out of the packet: start and end in the original bytes."""


# ---------------------------------------------------------------- lifting


class TooManyHits(ValueError):  # noqa: N818 - reads as the condition
    """``ContentTransferEncoded`` occurs more often than ``max_hits``: the packet is a bomb
    or uses the name as text, and finding its regions would cost a step per mention."""


def find_regions(data: bytes, max_hits: int | None = None) -> list[Region]:
    """Spans of base64 text inside ``ContentTransferEncoded`` elements, found by bytes.

    A span holds no ``<`` and no ``&``, so it cannot hold markup, a declaration or a
    reference either: what a byte scan sees outside the spans is the whole packet.
    """
    regions: list[Region] = []
    pos = 0
    hits = 0
    while True:
        hit = data.find(_CTE, pos)
        if hit < 0:
            return regions
        hits += 1
        if max_hits is not None and hits > max_hits:
            raise TooManyHits(f"more than {max_hits} mentions of ContentTransferEncoded")
        lt = data.rfind(b"<", max(0, hit - 64), hit)
        pos = hit + len(_CTE)
        if lt < 0 or data[lt + 1] == 0x2F:  # '/': an end tag
            continue
        gt = _tag_end(data, hit)
        if gt < 0 or data[gt - 1] == 0x2F:  # an empty-element tag
            continue
        qname = data[lt + 1 : pos]
        if not _is_qname(qname):
            continue
        start = gt + 1
        # The next '<' (memchr) is almost always the closing tag; a multi-byte search
        # through megabytes of base64 is only needed when it is not.
        end = data.find(b"<", start)
        if end < 0:
            return regions
        if not data.startswith(b"</" + qname, end):
            end = data.find(b"</" + qname, end)
            if end < 0:
                return regions
            pos = end
            continue
        if data.find(b"&", start, end) >= 0:
            pos = end
            continue
        regions.append((start, end))
        pos = end


def _tag_end(data: bytes, pos: int) -> int:
    """The ``>`` closing the start tag at ``pos``, skipping any inside quoted attributes.

    Jumps from quote to quote with ``find`` (memchr): the tag of a
    ``ContentTransferEncoded`` often declares a namespace, and a byte-by-byte loop over
    it cost more than the rest of finding the region.
    """
    gt = data.find(b">", pos)
    if gt < 0 or (data.find(b'"', pos, gt) < 0 and data.find(b"'", pos, gt) < 0):
        return gt
    end = min(len(data), pos + 65536)
    while True:
        gt = data.find(b">", pos, end)
        if gt < 0:
            return -1
        double, single = data.find(b'"', pos, gt), data.find(b"'", pos, gt)
        quote = double if single < 0 or 0 <= double < single else single
        if quote < 0:
            return gt
        close = data.find(data[quote : quote + 1], quote + 1, end)
        if close < 0:
            return -1
        pos = close + 1


def _is_qname(qname: bytes) -> bool:
    prefix, _, local = qname.rpartition(b":")
    return local == _CTE and (not prefix or prefix.replace(b"_", b"").replace(b"-", b"").isalnum())


def _newlines(data: bytes, start: int, end: int) -> int:
    # Canonical base64 is one line; memchr answers that much faster than counting.
    return data.count(b"\n", start, end) if data.find(b"\n", start, end) >= 0 else 0


def lift(data: bytes, regions: list[Region], token: bytes) -> bytes:
    """``data`` with region ``i`` replaced by ``token`` + ``i`` and its line breaks."""
    parts: list[bytes] = []
    last = 0
    for i, (start, end) in enumerate(regions):
        parts.append(data[last:start])
        parts.append(b"%s%d" % (token, i))
        newlines = _newlines(data, start, end)
        if newlines:
            parts.append(b"\n" * newlines)
        last = end
    parts.append(data[last:])
    return b"".join(parts)


# ---------------------------------------------------------------- checking and keeping


def _strict_size(text: bytes) -> tuple[bytes, int] | None:
    """The text without line breaks and its decoded size, if ``binascii``'s strict mode
    accepts it once they are gone (``_decode`` strips the same four whitespace bytes).

    Strict means: only the standard alphabet, length a multiple of 4, and padding (at
    most two ``=``) only at the very end. Deleting the alphabet leaves exactly the
    padding then, and ``bytes.translate`` does that at memory speed: one pass over the
    text answers for the usual single-line base64.
    """
    rest = text.translate(None, _BASE64_ALPHABET)
    pads = _PADDING.get(rest)
    if pads is not None:  # the usual single line: nothing but the padding is left
        if len(text) % 4 or (pads and not text.endswith(rest)):
            return None
        return text, len(text) // 4 * 3 - pads
    if rest and rest.strip(b"=") and not rest.translate(None, _WHITESPACE_AND_PAD):
        # Only line breaks (MIME style) or spaces besides the padding: drop them, look again.
        text = text.translate(None, _WHITESPACE)
        rest = rest.translate(None, _WHITESPACE)
    pads = len(rest)
    if (
        pads > 2
        or len(text) % 4
        or (pads and (rest != b"=" * pads or not text.endswith(rest)))
    ):
        return None
    return text, len(text) // 4 * 3 - pads


def blob_of(
    source: bytes,
    start: int,
    end: int,
    line: int | None,
    element: etree._Element,
    *,
    max_bytes: int,
    spool_threshold: int,
    keep_base64_up_to: int,
) -> Blob:
    """The content of ``source[start:end]``, or ``AttachmentInvalid`` naming ``element``.

    ``line`` is where the text starts; None means count it in ``source``, which only a
    refusal needs. Content up to ``keep_base64_up_to`` decoded bytes stays as its checked
    base64 (forwarding never decodes it); larger content is decoded into a spooled file.
    """
    if (end - start) // 4 * 3 <= keep_base64_up_to:
        checked = _strict_size(source if start == 0 and end == len(source) else source[start:end])
        if checked is not None:
            text, size = checked
            if size > max_bytes:
                raise _too_large(max_bytes, _line(source, start, line), element)
            return Blob.from_base64(text, size)
    else:
        region = _region_size(source, start, end)
        if region is not None:
            size, single_line = region
            if size > max_bytes:
                raise _too_large(max_bytes, _line(source, start, line), element)
            return Blob.from_region(source, start, end, size, single_line)
    # Not valid: the chunked decoder says exactly what is wrong with it.
    return _decode(source, start, end, _line(source, start, line), element,
                   max_bytes=max_bytes, spool_threshold=spool_threshold)


def _region_size(source: bytes, start: int, end: int) -> tuple[int, bool] | None:
    """:func:`_strict_size` for text too large to copy: the decoded size of
    ``source[start:end]`` and whether it has no whitespace, if strict base64 once the
    whitespace is dropped; None otherwise (then :func:`_decode` says why).

    One ``translate`` per chunk and no decoding: decoding a 15 MB scan cost four times
    what parsing its packet does, and only a reader of the content needs it.
    """
    alphabet = pads = spaces = 0
    for at in range(start, end, _DECODE_CHUNK):
        chunk = source[at:min(end, at + _DECODE_CHUNK)]
        rest = chunk.translate(None, _BASE64_ALPHABET)
        if pads and len(rest) != len(chunk):
            return None  # base64 after the padding
        if rest:
            if rest.translate(None, _WHITESPACE_AND_PAD):
                return None
            found = rest.count(b"=")
            if found:
                first = chunk.find(b"=")
                if chunk[first:].translate(None, _WHITESPACE_AND_PAD):
                    return None
                pads += found
            spaces += len(rest) - found
        alphabet += len(chunk) - len(rest)
    if pads > 2 or (alphabet + pads) % 4:
        return None
    return (alphabet + pads) // 4 * 3 - pads, spaces == 0


def text_blob(
    text: str, element: etree._Element, max_bytes: int, spool_threshold: int,
    keep_base64_up_to: int,
) -> Blob:
    """:func:`blob_of` for content libxml2 has parsed (a packet too small to lift).

    Every packet under the lifting threshold comes here, so the element's line is only
    looked up for a refusal or a spooled file.
    """
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) // 4 * 3 <= keep_base64_up_to:
        checked = _strict_size(raw)
        if checked is not None:
            size = checked[1]
            if size > max_bytes:
                raise _too_large(max_bytes, line_of(element) or 0, element)
            return Blob.from_base64(checked[0], size)
    return _decode(raw, 0, len(raw), line_of(element) or 0, element,
                   max_bytes=max_bytes, spool_threshold=spool_threshold)


def _line(source: bytes, start: int, line: int | None) -> int:
    return line if line is not None else source.count(b"\n", 0, start) + 1


def _too_large(max_bytes: int, line: int, element: etree._Element) -> errors.AttachmentInvalid:
    return errors.AttachmentInvalid(
        f"attachment is larger than the per-file cap of {max_bytes} bytes",
        line=line,
        path=element_path(element),
    )


def _decode(
    data: bytes,
    start: int,
    end: int,
    line: int,
    element: etree._Element,
    *,
    max_bytes: int,
    spool_threshold: int,
) -> Blob:
    """Strict base64 (libxml2's own check lets junk through), in bounded chunks."""
    blob = Blob(spool_threshold)
    carry = b""
    try:
        for pos in range(start, end, _DECODE_CHUNK):
            piece = carry + data[pos : min(pos + _DECODE_CHUNK, end)].translate(
                None, _WHITESPACE
            )
            usable = len(piece) - len(piece) % 4
            carry = piece[usable:]
            if usable:
                blob.write(binascii.a2b_base64(piece[:usable], strict_mode=True))
            if blob.size > max_bytes:
                raise _too_large(max_bytes, line, element)
        if carry:
            raise binascii.Error("length is not a multiple of 4 characters")
    except binascii.Error as exc:
        blob.close()
        raise errors.AttachmentInvalid(
            f"attachment content is not valid base64 ({exc}); send the file encoded with the "
            "standard base64 alphabet, padded with '=', line breaks allowed",
            line=line,
            path=element_path(element),
        ) from None
    blob.seal()
    return blob

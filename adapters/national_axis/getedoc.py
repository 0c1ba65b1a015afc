"""getEdoc's answer read as a stream, so a 500 MB document is never held in memory.

getEdoc answers one JSON object whose ``data`` is the packet in base64 (edxml.md §7):
for a 500 MB scan, a 667 MB string. Reading the answer whole, parsing it and decoding
it cost three copies of the packet. Streaming JSON libraries (ijson and its kin) do not
help: they hand a string value over whole. So the object is scanned here: every member
but ``data`` is kept (a few hundred bytes, capped) and read by
:func:`bus.vxp.parse_answer` at the end, while ``data``'s characters are base64-decoded
as they arrive, in whole quartets, and handed on in pieces.

Whether the answer is OK is only known at its end (``status`` may follow ``data``), so
the pieces must go to something that commits nothing before the last one and drops
everything if the iteration raises: the bus's :class:`~bus.adapter.Inbox` spools them.
A malformed answer (not JSON, cut short, bad base64, no ``data``) raises
:class:`~bus.adapter.Retry`: the item stays pending on the axis and the next poll fetches
it again. A FAIL answer raises what the adapter makes of its ErrorCode.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import httpx

from bus import vxp
from bus.adapter import Retry

if TYPE_CHECKING:
    from adapters.national_axis.adapter import NationalAxisAdapter

DATA: Final = b"data"
SKELETON_CAP: Final = 1 << 20
"""The members other than ``data`` (status, ErrorCode, ErrorDesc): never near this."""
ERROR_CAP: Final = 1 << 20
"""How much of a non-2xx answer is read to say why (a proxy's error page)."""
_SKIPPED_ESCAPES: Final = frozenset(b"nr")  # MIME base64's line breaks, written as \n
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


class Base64Pieces:
    """Decodes base64 text given in arbitrary pieces; strict, as ``validate=True`` is."""

    def __init__(self) -> None:
        self._carry = b""
        self._padded = False
        self.characters = 0
        self.decoded = 0

    def feed(self, text: bytes) -> bytes:
        position = self.characters
        self.characters += len(text)
        if self._carry:
            text = self._carry + text
        whole = len(text) - len(text) % 4
        self._carry = text[whole:]
        if not whole:
            return b""
        if self._padded:
            raise vxp.MalformedAnswer(
                f"data is not valid base64: it goes on after its '=' padding (near "
                f"character {position})")
        try:
            out = binascii.a2b_base64(memoryview(text)[:whole], strict_mode=True)
        except binascii.Error as exc:
            raise vxp.MalformedAnswer(
                f"data is not valid base64 near character {position}: {exc}") from None
        self._padded = text[whole - 1] == 0x3D
        self.decoded += len(out)
        return out

    def finish(self) -> None:
        if self._carry:
            raise vxp.MalformedAnswer(
                f"data is not valid base64: {self.characters} characters is not a whole "
                "number of quartets (the answer was cut short, or padding is missing)")


class AnswerScanner:
    """One getEdoc answer fed in pieces: :meth:`feed` returns the decoded packet's pieces,
    :meth:`finish` the answer (its ``data`` replaced by ``""`` when it was a string)."""

    def __init__(self) -> None:
        self.decoder = Base64Pieces()
        self.streamed = False
        """``data`` was a string, decoded into the pieces returned."""
        self._skeleton = bytearray()
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._key_next = False
        self._value_next = False
        self._key: bytearray | None = None
        self._last_key = b""
        self._in_data = False
        self._data_escape: bytearray | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        position, end = 0, len(chunk)
        while position < end:
            if self._data_escape is not None:
                position = self._escaped(chunk, position, out)
            elif self._in_data:
                position = self._data(chunk, position, out)
            else:
                position = self._structure(chunk, position)
        return out

    def finish(self) -> vxp.Answer:
        if self._in_data or self._in_string or self._depth or not self._skeleton.strip():
            raise vxp.MalformedAnswer(
                "the answer ends before its JSON does (cut short after "
                f"{self.decoder.characters} characters of data)")
        if self.streamed:
            self.decoder.finish()
        return vxp.parse_answer(bytes(self._skeleton))

    def _data(self, chunk: bytes, position: int, out: list[bytes]) -> int:
        quote = chunk.find(b'"', position)
        limit = quote if quote >= 0 else len(chunk)
        backslash = chunk.find(b"\\", position, limit)
        stop = backslash if backslash >= 0 else limit
        if stop > position:
            piece = self.decoder.feed(chunk[position:stop] if position or stop < len(chunk)
                                      else chunk)
            if piece:
                out.append(piece)
        if stop == len(chunk):
            return stop
        if stop == quote:
            self._in_data = False
            self._skeleton += b'"'
        else:
            self._data_escape = bytearray()
        return stop + 1

    def _escaped(self, chunk: bytes, position: int, out: list[bytes]) -> int:
        """A JSON escape inside ``data``: ``\\/`` is ``/`` (Java's JSON writers escape
        it), ``\\uXXXX`` an ASCII character, ``\\n``/``\\r`` line breaks to skip."""
        escape = self._data_escape
        assert escape is not None
        while position < len(chunk):
            escape.append(chunk[position])
            position += 1
            first = escape[0]
            if first == 0x75 and len(escape) < 5:  # \uXXXX
                continue
            self._data_escape = None
            if first == 0x75:
                if not _HEX.issuperset(escape[1:]) or int(escape[1:], 16) > 0x7F:
                    shown = escape.decode("latin-1")
                    raise vxp.MalformedAnswer(
                        f"data is not valid base64: it holds the escape \\{shown}")
                character = bytes([int(escape[1:], 16)])
            elif first in _SKIPPED_ESCAPES:
                return position
            elif first == 0x2F:
                character = b"/"
            else:
                raise vxp.MalformedAnswer(
                    f"data is not valid base64: it holds the escape \\{chr(first)}")
            piece = self.decoder.feed(character)
            if piece:
                out.append(piece)
            return position
        return position

    def _structure(self, chunk: bytes, position: int) -> int:
        """Everything outside ``data``, byte by byte (it is a few hundred bytes)."""
        end = len(chunk)
        skeleton = self._skeleton
        while position < end:
            byte = chunk[position]
            position += 1
            if self._in_string:
                skeleton.append(byte)
                if self._escape:
                    self._escape = False
                elif byte == 0x5C:
                    self._escape = True
                elif byte == 0x22:
                    self._in_string = False
                    if self._key is not None:
                        self._last_key, self._key = bytes(self._key), None
                    continue
                if self._key is not None:
                    self._key.append(byte)
                continue
            if byte == 0x22 and self._depth == 1 and self._value_next:
                self._value_next = False
                if self._last_key == DATA:
                    if self.streamed:
                        raise vxp.MalformedAnswer("the answer has two data members")
                    self.streamed = self._in_data = True
                    skeleton.append(byte)
                    return position
            if byte == 0x22:
                self._in_string = True
                if self._depth == 1 and self._key_next:
                    self._key_next, self._key = False, bytearray()
            elif byte in b"{[":
                self._depth += 1
                self._value_next = False
                self._key_next = self._depth == 1 and byte == 0x7B
            elif byte in b"}]":
                self._depth -= 1
            elif self._depth == 1 and byte == 0x2C:
                self._key_next, self._value_next = True, False
            elif self._depth == 1 and byte == 0x3A:
                self._value_next = True
            skeleton.append(byte)
            if len(skeleton) > SKELETON_CAP:
                raise vxp.MalformedAnswer(
                    f"more than {SKELETON_CAP} bytes outside a data string: not a getEdoc "
                    f"answer ({bytes(skeleton[:120])!r})")
        return position


class EdocFetch:
    """getEdoc's packet, decoded as it arrives: an iterable for ``Inbox.submit``.

    Iterating it sends the request; it raises :class:`Retry` (or the adapter's
    :class:`~bus.adapter.Refuse` for a FAIL whose code says so) at the point where the
    answer proves unusable, which may be its very end.
    """

    def __init__(self, adapter: NationalAxisAdapter, doc_id: str) -> None:
        self.adapter = adapter
        self.doc_id = doc_id
        self.size = 0
        """Bytes of packet decoded so far."""

    def __iter__(self) -> Iterator[bytes]:
        adapter = self.adapter
        request = vxp.get_edoc(adapter._credentials(), self.doc_id, tz=adapter._zone)
        op = f"getEdoc {self.doc_id}"
        adapter.open()
        assert adapter._client is not None
        scanner = AnswerScanner()
        answering = False
        try:
            with adapter._client.stream("POST", request.url(adapter.config.endpoint),
                                        headers=request.headers,
                                        content=request.body) as response:
                answering = True
                if not 200 <= response.status_code < 300:
                    raise _refused_by_http(adapter, op, response)
                try:
                    for raw in response.iter_bytes():
                        for piece in scanner.feed(raw):
                            self.size += len(piece)
                            yield piece
                    answer = scanner.finish()
                except vxp.MalformedAnswer as exc:
                    raise Retry(f"{op}: the axis' answer is unusable, left pending for the "
                                f"next poll: {exc}") from None
        except httpx.TimeoutException as exc:
            raise Retry(f"{op}: the axis stopped answering within "
                        f"{adapter.config.timeout_s}s after {scanner.decoder.characters} "
                        f"characters of data ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:  # a broken connection, a bad gzip stream
            if not answering:
                raise Retry(f"{op}: axis unreachable: {type(exc).__name__}: {exc}") from exc
            raise Retry(f"{op}: the answer broke off after {scanner.decoder.characters} "
                        f"characters of data: {type(exc).__name__}: {exc}") from exc
        if not answer.ok:
            raise adapter._fail_outcome("getEdoc", answer, response)
        if not scanner.streamed:
            raise Retry(f"{op}: the axis answered OK without the packet (data is "
                        f"{'missing' if 'data' not in answer.fields else 'not a string'})")


def _refused_by_http(adapter: NationalAxisAdapter, op: str,
                     response: httpx.Response) -> Exception:
    """A non-2xx answer: read its first megabyte and judge it as any other call."""
    head = bytearray()
    for raw in response.iter_bytes():
        head += raw
        if len(head) >= ERROR_CAP:
            break
    try:
        answer = vxp.parse_answer(bytes(head[:ERROR_CAP]))
    except vxp.MalformedAnswer as exc:
        return adapter._http_outcome(op, response, str(exc))
    if answer.ok:
        return Retry(f"{op}: HTTP {response.status_code} with an OK body")
    return adapter._fail_outcome(op, answer, response)

"""Hypothesis strategies that damage valid XML the way an attacker or a broken system
would, for the door fuzz (test_fuzz_doors.py).

Each strategy starts from bytes the bus accepts and applies one to three mutations:
byte flips, truncation, a range deleted or repeated, a hostile fragment inserted at a
structural anchor or anywhere (DOCTYPE and entities naming the bait, /dev/zero and
/etc/passwd, XInclude, schema locations, CDATA, character references, deep nesting,
many elements, huge attributes and text, NUL bytes, invalid UTF-8), a field's text
replaced, the encoding declaration changed, or the whole re-encoded as UTF-16/UTF-32
with and without BOM. Random bytes alone would stop at the first parser check; mutated
valid input reaches the schema, identifier, routing and storage code behind it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from hypothesis import strategies as st

from tests.security.fuzz_watch import Bait
from tests.security.xml_attacks import LOL, WIDE_ENCODINGS, encode

Mutation = Callable[[st.DrawFn, bytes, Bait], bytes]

_FIELD: Final = re.compile(rb"<((?:edXML:)?[A-Za-z]+)>([^<]{0,200})</\1>")
_DECLARED_ENCODING: Final = re.compile(rb'encoding="[^"]*"')
ODD_ENCODINGS: Final = ("UTF-16", "UTF-32", "ISO-8859-1", "windows-1258", "EBCDIC-US",
                        "UTF-7", "bogus-encoding", "US-ASCII", "UCS-4", "", "UTF-8\x00")


def _magnitude(low: int, high: int) -> st.SearchStrategy[int]:
    """Sizes spread over orders of magnitude: hypothesis alone mostly draws small ones."""
    steps = [n for n in (1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000)
             if low <= n <= high]
    return st.one_of(st.sampled_from(steps), st.integers(low, high))


def prolog_fragments(bait: Bait) -> st.SearchStrategy[bytes]:
    """What goes before the root: DOCTYPEs (internal and external subsets, entities naming
    the bait, /dev/zero, /etc/passwd, the bait URL), stylesheet PIs, comments."""
    path, folder, url = bait.file, bait.directory, bait.url
    return st.sampled_from([f.encode("utf-8") for f in (
        f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file://{path}">]>',
        f'<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file://{path}"> %p;]>',
        f'<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file://{folder}"> %p;]>',
        f'<!DOCTYPE edXML SYSTEM "file://{path}">',
        f'<!DOCTYPE edXML SYSTEM "{url}">',
        f'<!DOCTYPE edXML PUBLIC "-//X//DTD X//EN" "{url}">',
        f'<!DOCTYPE edXML [<!ENTITY % p SYSTEM "{url}"> %p;]>',
        '<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]>',
        '<!DOCTYPE edXML [<!ENTITY x SYSTEM "/dev/urandom">]>',
        LOL, "<!DOCTYPE edXML>", "<!DOCTYPE edXML [<!ELEMENT edXML ANY>]>",
        f'<?xml-stylesheet type="text/xsl" href="file://{path}"?>', "<!-- -- -->",
        "<?xml version=\"1.0\"?>", "\ufeff")])


def attribute_fragments(bait: Bait) -> st.SearchStrategy[bytes]:
    """What goes inside the root's start tag."""
    fixed = [f' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             f'xsi:schemaLocation="urn:x {bait.url}" '
             f'xsi:noNamespaceSchemaLocation="file://{bait.file}"',
             ' xmlns:xi="http://www.w3.org/2001/XInclude"', ' xml:base="file:///etc/"',
             ' a="&x;"', ' a="<"', " a='1' a='2'", ' xmlns=""', ' xmlns:edXML="urn:other"']
    return st.one_of(
        st.sampled_from([f.encode("utf-8") for f in fixed]),
        _magnitude(1, 2_000_000).map(lambda n: b' huge="' + b"x" * n + b'"'),
        _magnitude(1, 20_000).map(lambda n: b" " + b" ".join(b'a%d="1"' % i
                                                             for i in range(n))))


def fragments(bait: Bait) -> st.SearchStrategy[bytes]:
    """Hostile pieces of content; the paths and URL are the bait's, so any access shows."""
    path, url = bait.file, bait.url
    fixed = [
        "&x;", "&lol9;", "&p;", "&amp;", "&#0;", "&#x0;", "&#xD800;", "&#x110000;",
        "&#65;", "&#x1F600;", "&#99999999999;", "&#x;",
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{path}" '
        'parse="text"/>',
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}"/>',
        f'<x xmlns="{url}"/>', f'<![CDATA[<!DOCTYPE x SYSTEM "file://{path}">]]>',
        "<![CDATA[", "]]>", "<!--", "-->", "</edXML>", "<edXML>",
        "\ufeff", "\x00", "\x1b[31m", "\u202e", "<a b='1' b='2'/>", "<:/>", "<a:b:c/>",
        '<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    ]
    raw = [b"\x00" * 64, b"\xff\xfe", b"\xfe\xff\x00<", b"\xc3\x28", b"\xed\xa0\x80",
           b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80" * 16, b"\r" * 8, b"\xef\xbb\xbf"]
    sized = st.one_of(
        _magnitude(1, 3000).map(lambda n: b"<a>" * n + b"</a>" * n),
        _magnitude(1, 3000).map(lambda n: b"<a>" * n),
        _magnitude(1, 1_100_000).map(lambda n: b"<a/>" * n),
        _magnitude(1, 2_000_000).map(lambda n: b'<a b="' + b"x" * n + b'"/>'),
        _magnitude(1, 2_000_000).map(lambda n: b"y" * n),
        _magnitude(1, 200_000).map(lambda n: b"&#65;" * n),
        _magnitude(1, 200_000).map(lambda n: b"<![CDATA[" + b"z" * n + b"]]>"),
    )
    return st.one_of(st.sampled_from([f.encode("utf-8") for f in fixed] + raw), sized,
                     prolog_fragments(bait))


def anchors(data: bytes) -> list[int]:
    """Where a fragment does the most: after the declaration, inside the root start tag,
    inside a text node, before the last end tag, and both ends."""
    points = {0, len(data)}
    declaration = data.find(b"?>")
    if declaration >= 0:
        points.add(declaration + 2)
    root = data.find(b"<", declaration + 2 if declaration >= 0 else 0)
    if root >= 0 and data.find(b">", root) >= 0:
        points.add(data.find(b">", root))
        points.add(data.find(b">", root) + 1)
    for match in _FIELD.finditer(data[:100_000]):
        points.add(match.start(2))
        break
    last = data.rfind(b"</")
    if last >= 0:
        points.add(last)
    return sorted(points)


def _position(draw: st.DrawFn, data: bytes) -> int:
    return draw(st.one_of(st.sampled_from(anchors(data)), st.integers(0, len(data))))


def _flip(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        index = draw(st.integers(0, len(out) - 1))
        out[index] ^= draw(st.integers(1, 255))
    return bytes(out)


def _truncate(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    return data[:draw(st.integers(0, len(data)))]


def _delete(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    start = draw(st.integers(0, len(data)))
    return data[:start] + data[start + draw(st.integers(1, 400)):]


def _repeat(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    start = draw(st.integers(0, len(data)))
    piece = data[start:start + draw(st.integers(1, 400))]
    return data[:start] + piece * draw(st.integers(2, 50)) + data[start:]


def _insert(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    at = _position(draw, data)
    return data[:at] + draw(fragments(bait)) + data[at:]


def _prolog(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    end = data.find(b"?>")
    at = end + 2 if end >= 0 and data.startswith(b"<?xml") else 0
    return data[:at] + b"\n" + draw(prolog_fragments(bait)) + b"\n" + data[at:]


def _in_text(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    found = list(_FIELD.finditer(data[:200_000]))
    if not found:
        return _insert(draw, data, bait)
    at = draw(st.sampled_from(found)).start(2)
    return data[:at] + draw(fragments(bait)) + data[at:]


def _bomb(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    """Many elements, deep nesting, a huge attribute or text, inside a text node, where
    they are well-formed and only the limits stop them."""
    found = list(_FIELD.finditer(data[:200_000]))
    at = draw(st.sampled_from(found)).start(2) if found else _position(draw, data)
    bomb = draw(st.one_of(
        st.sampled_from([10, 33, 257, 300, 3000]).map(lambda n: b"<a>" * n + b"</a>" * n),
        st.sampled_from([49_999, 50_001, 200_000, 1_100_000]).map(lambda n: b"<a/>" * n),
        st.sampled_from([100_000, 1_000_000, 2_000_000]).map(
            lambda n: b'<a b="' + b"x" * n + b'"/>'),
        st.sampled_from([1_000_000, 2_000_000]).map(lambda n: b"y" * n)))
    return data[:at] + bomb + data[at:]


def _in_root_tag(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    end = data.find(b"?>")
    root = data.find(b"<", end + 2 if end >= 0 else 0)
    close = data.find(b">", root) if root >= 0 else -1
    if close < 0:
        return _insert(draw, data, bait)
    at = close - 1 if data[close - 1:close] == b"/" else close
    return data[:at] + draw(attribute_fragments(bait)) + data[at:]


HOSTILE_TEXT: Final = (
    "", " ", "000.00.00.H37 ", "000.00.00.H37\x00", "a" * 36, "a" * 5000, "../../etc/passwd",
    "file:///etc/passwd", "2019/02/30", "9999/99/99", "-1", "1e309", "NaN", "%00", "${jndi:x}",
    "'; DROP TABLE documents; --", "\u202e\u0000", "🙂" * 100, "Ⅷ", "0" * 100, "\t\n",
    "000.00.12.H37,000.00.00.H37", "=?utf-8?b?QQ==?=",
)


def _field(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    found = list(_FIELD.finditer(data[:200_000]))
    if not found:
        return data
    match = draw(st.sampled_from(found))
    text = draw(st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40)))
    value = text.replace("&", "&amp;").replace("<", "&lt;").encode("utf-8", "surrogatepass")
    return data[:match.start(2)] + value + data[match.end(2):]


def _redeclare(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    if draw(st.booleans()):
        new = draw(st.sampled_from(ODD_ENCODINGS)).encode("latin-1")
        return _DECLARED_ENCODING.sub(b'encoding="' + new + b'"', data, count=1)
    end = data.find(b"?>")
    declaration = draw(st.sampled_from([b"", b'<?xml version="1.1"?>',
                                        b'<?xml version="1.0" standalone="yes"?>',
                                        b"<?xml?>", b"  \n"]))
    return declaration + (data[end + 2:] if end >= 0 else data)


def _reencode(draw: st.DrawFn, data: bytes, bait: Bait) -> bytes:
    text = data.decode("utf-8", "replace")
    encoding = draw(st.sampled_from(WIDE_ENCODINGS))
    if draw(st.booleans()):
        return encode(text, encoding)
    return text.encode(encoding)  # the declaration still says UTF-8


MUTATIONS: Final[tuple[Mutation, ...]] = (_flip, _truncate, _delete, _repeat, _insert, _insert,
                                          _prolog, _prolog, _in_text, _in_text, _in_root_tag,
                                          _bomb,
                                          _field, _field, _redeclare, _reencode, _reencode)


@st.composite
def mutated(draw: st.DrawFn, base: bytes, bait: Bait) -> bytes:
    """``base`` after one to three mutations; a re-encoding, when drawn, comes last so
    that the mutations before it are hidden from byte scans."""
    data = base
    chosen = draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3))
    for mutation in sorted(chosen, key=lambda m: m is _reencode):
        data = mutation(draw, data, bait)
    return data

"""One value near the start of an untrusted document, read with nothing kept afterwards.

libxml2 interns every element and attribute name it meets in a dictionary that lxml 6
keeps per thread for the thread's whole life: a caller that keeps sending names nobody
used before grows the process for good (+50 MB per 300 requests of 59 KB, measured by
the door fuzz). The SOAP door must read the caller's key from the envelope's first
64 KB before it knows who is calling, so that read uses expat, Python's own parser,
whose names belong to one parser object and are freed with it; only authenticated
callers ever reach lxml.

The screening stays the entry point's: the caller re-encodes to UTF-8 and refuses any
DOCTYPE or ENTITY first (:func:`bus.xmlsafe.as_utf8`, :func:`bus.xmlsafe.refuse_dtd`).
Expat here refuses any DTD, entity declaration or external reference it would still
meet, reads no file and no network, and is fed in small steps, so it never reads more
than ``max_elements`` start tags (and one step) into a document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from xml.parsers import expat

from bus import errors

STEP: Final = 2048


@dataclass(frozen=True)
class Wanted:
    """The text of ``path`` (Clark names below ``root``); the search ends when an element
    named ``stop`` starts as a child of the root, or when ``path[0]`` ends."""

    root: str
    path: tuple[str, ...]
    stop: str
    max_depth: int
    max_elements: int
    what: str


class _Done(Exception):  # noqa: N818 - control flow, never leaves this module
    def __init__(self, value: str | None) -> None:
        super().__init__()
        self.value = value


def _clark(name: str) -> str:
    uri, _, local = name.rpartition(" ")
    return f"{{{uri}}}{local}" if uri else local


def _refuse(what: str) -> Callable[..., int]:
    def handler(*_: object) -> int:
        raise errors.DtdForbidden(f"the {what} carries a DTD, an entity or an external "
                                  "reference; it must not")
    return handler


def text_at(data: bytes, wanted: Wanted, *, complete: bool,
            wrong_root: Callable[[str], errors.LgspError]) -> str | None:
    """The text of the wanted element, or None when the document (or the prefix, when
    not ``complete``) ends, ``stop`` starts, or ``max_elements`` pass first."""
    parser = expat.ParserCreate(encoding="utf-8", namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse(wanted.what)
    parser.EntityDeclHandler = _refuse(wanted.what)
    parser.ExternalEntityRefHandler = _refuse(wanted.what)
    parser.buffer_text = True
    stack: list[str] = []
    text: list[str] = []
    started = 0
    target = [wanted.root, *wanted.path]

    def start(name: str, _attributes: object) -> None:
        nonlocal started
        tag = _clark(name)
        started += 1
        if started > wanted.max_elements:
            raise _Done(None)
        stack.append(tag)
        if len(stack) == 1 and tag != wanted.root:
            raise wrong_root(tag)
        if len(stack) == 2 and tag == wanted.stop:
            raise _Done(None)
        if len(stack) > wanted.max_depth:
            raise errors.TooDeep(f"the {wanted.what} is nested more than "
                                 f"{wanted.max_depth} levels deep")

    def end(_name: str) -> None:
        if stack == target:
            raise _Done("".join(text))
        tag = stack.pop()
        if len(stack) == 1 and tag == wanted.path[0]:
            raise _Done(None)

    def characters(data: str) -> None:
        if stack == target:
            text.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        for offset in range(0, len(data), STEP):
            parser.Parse(data[offset:offset + STEP], False)
        if complete:
            parser.Parse(b"", True)
    except _Done as done:
        return done.value
    except expat.ExpatError as exc:
        raise errors.MalformedXml(
            f"the {wanted.what} is not well-formed XML: {expat.ErrorString(exc.code)}",
            line=exc.lineno or None) from None
    return None

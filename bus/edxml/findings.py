"""Where a second-pass finding sits, and the findings of one run.

Locating an element (its line and slash path) is slow next to reading it, and hard
problems are rare, so nothing here runs until a rule has already failed: the walk over
a packet passes elements around, and only a failing rule turns one into a location.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Final, NamedTuple

from lxml import etree

from bus.errors import AttachmentInvalid, InvalidIdentifier, Notice, SchemaInvalid
from bus.schemas import EDXML_NS

NOTICE_FIELD_TOO_LONG: Final = "FieldTooLong"
NOTICE_FIELD_EMPTY: Final = "FieldEmpty"

# Prefix of every edXML tag as lxml spells it ("{namespace}name"): tags are compared whole.
Q: Final = "{" + EDXML_NS + "}"
_DSIG: Final = "{http://www.w3.org/2000/09/xmldsig#}"


children: Final[Callable[[etree._Element], list[etree._Element]]] = operator.itemgetter(
    slice(None)
)
"""An element's children as a list built in C: cheaper than iterating the element, which
makes an iterator object first (lxml-stubs do not know that elements can be sliced)."""


class Findings:
    """State of one run: the notices so far and the recipients already seen."""

    __slots__ = ("notices", "recipients")

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.recipients: set[str] = set()

    def notice(self, code: str, el: etree._Element, message: str, **extra: object) -> None:
        self.notices.append(
            Notice(code=code, message=message, line=line_of(el), path=element_path(el),
                   extra=extra)
        )


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return "comment()" if tag is etree.Comment else "processing-instruction()"
    return tag.rpartition("}")[2]


def local_name(el: etree._Element) -> str:
    return _local(el.tag)


def element_path(el: etree._Element) -> str:
    """Slash path of local names, indexed (from 1) only where a tag repeats among siblings.

    Prefixes are left out on purpose: producers write the same packet prefixed,
    unprefixed or mixed, and the officer reading the error should see one form.

    lxml's ``getelementpath`` indexes the same way, in C (a notice costs a third as
    much); the walk below is for comments and processing instructions, which it refuses.
    """
    if isinstance(el.tag, str):
        tree = el.getroottree()
        top = tree.getroot()
        try:
            relative = None if top is None else tree.getelementpath(el)
        except ValueError:  # a detached element: its ancestors are not the tree's root
            relative = None
        if top is not None and relative is not None:
            path = "/" + _local(top.tag)
            if relative != ".":
                path += "/" + relative.replace(Q, "").replace(_DSIG, "")
            if "{" not in path and "}" not in path:  # other namespaces: the walk strips them
                return path
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        tag = node.tag
        name = _local(tag)
        parent = node.getparent()
        if parent is not None and isinstance(tag, str):
            index = count = 0
            for sibling in parent.iterchildren(tag):
                count += 1
                if sibling is node:
                    index = count
            if count > 1:
                name = f"{name}[{index}]"
        parts.append(name)
        node = parent
    parts.reverse()
    return "/" + "/".join(parts)


def line_of(el: etree._Element) -> int | None:
    line = el.sourceline
    return line if isinstance(line, int) else None


def show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def schema_error(el: etree._Element, message: str) -> SchemaInvalid:
    return SchemaInvalid(message, line=line_of(el), path=element_path(el))


def attachment_error(el: etree._Element, message: str) -> AttachmentInvalid:
    return AttachmentInvalid(message, line=line_of(el), path=element_path(el))


def identifier_error(el: etree._Element, message: str) -> InvalidIdentifier:
    return InvalidIdentifier(message, line=line_of(el), path=element_path(el))


# ---------------------------------------------------------------- field lengths


class Limit(NamedTuple):
    """Lengths used by two independent implementations (edxml.md §2).

    Past ``low``, some receiving system may truncate or refuse the field.
    """

    name: str
    low: int
    high: int


def _limit(name: str, low: int, high: int | None = None) -> Limit:
    return Limit(name, low, low if high is None else high)


ORGAN_NAME: Final = _limit("OrganName", 200)
ORGAN_ADD: Final = _limit("OrganAdd", 250)
EMAIL: Final = _limit("Email", 100)
CODE_NUMBER: Final = _limit("CodeNumber", 11, 50)
CODE_NOTATION: Final = _limit("CodeNotation", 30, 50)
PLACE: Final = _limit("Place", 50)
SUBJECT: Final = _limit("Subject", 500)
CONTENT: Final = _limit("Content", 500)
FULL_NAME: Final = _limit("FullName", 50)
TYPER_NOTATION: Final = _limit("TyperNotation", 10)
ATTACHMENT_NAME: Final = _limit("AttachmentName", 200, 500)
DOCUMENT_ID: Final = _limit("DocumentId", 200)


def check_length(el: etree._Element, text: str, limit: Limit, findings: Findings) -> None:
    """A notice when ``text`` (the element's whole value) is past the lower limit.

    Callers skip the call while ``len(text) <= limit.low``: surrounding whitespace can
    only make the stripped value shorter, so such a value can never be too long.
    """
    name, low, high = limit
    size = len(text.strip())
    if size > low:
        bound = f"at most {low}" if low == high else f"at most {low} (others up to {high})"
        findings.notice(
            NOTICE_FIELD_TOO_LONG,
            el,
            f"{name} is {size} characters long; some receiving systems accept {bound} "
            "and may truncate or refuse it.",
            field=name,
            length=size,
            limit=low,
        )

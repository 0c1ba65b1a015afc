"""Organisation identifiers (mã định danh, edxml.md §6), checked where the packet uses one.

The XSD types them as plain strings so that a bad one is reported as
``InvalidIdentifier``, which tells the sender exactly what is wrong with it, rather than
as a generic schema error.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from lxml import etree

from bus.edxml.findings import Findings, identifier_error, show

NOTICE_NON_STANDARD_IDENTIFIER: Final = "NonStandardIdentifier"

_MAX_ID_LEN: Final = 35
_ID_RE: Final = re.compile(r"[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*")
_ID_2016_RE: Final = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
_ID_HUB_RE: Final = re.compile(r"[0-9]{2}\.[0-9]{2}\.W[0-9]{2}")
_ID_EXPECTED: Final = (
    "dot-separated groups of ASCII letters and digits, at most 35 characters, e.g. 000.00.00.H37"
)
_is_2016: Final = _ID_2016_RE.fullmatch
standard_form: Final = _is_2016
"""Matches what :func:`check_identifier` accepts at once (the QCVN 102:2016 form): the
reader tests it before calling, since almost every identifier has that form."""


def _describe_bad_char(value: str) -> str:
    for ch in value:
        if ch.isascii() and (ch.isalnum() or ch == "."):
            continue
        if ch == " ":
            return "a space"
        if ch.isspace():
            return f"a whitespace character (U+{ord(ch):04X})"
        if unicodedata.category(ch) in ("Cc", "Cf"):
            return f"a control character (U+{ord(ch):04X})"
        return f"the character {ch!r}"
    return "an empty group (a dot at the start or end, or two dots in a row)"


def check_identifier(
    el: etree._Element, label: str, value: str, findings: Findings, *, required: bool = True
) -> str:
    """``value`` (the text of ``el``) if acceptable; raises ``InvalidIdentifier`` if not.

    The literal ``null`` is what some producers serialise for a missing value, so it
    counts as empty: accepted where the identifier is optional, refused where required.
    """
    if _is_2016(value) is not None:
        return value
    if not value:
        if required:
            raise identifier_error(
                el,
                f"{label} is empty; expected the organisation's identifier (mã định danh), "
                "e.g. 000.00.00.H37.",
            )
        return value
    if value == "null":
        if required:
            raise identifier_error(
                el,
                f"{label} is the literal 'null'; expected the organisation's identifier "
                "(mã định danh), e.g. 000.00.00.H37.",
            )
        return value
    if _ID_RE.fullmatch(value) is None:
        raise identifier_error(
            el,
            f"{label} {show(value)} contains {_describe_bad_char(value)}; "
            f"expected {_ID_EXPECTED}.",
        )
    if len(value) > _MAX_ID_LEN:
        raise identifier_error(
            el, f"{label} {show(value)} is {len(value)} characters long; expected {_ID_EXPECTED}."
        )
    if _ID_HUB_RE.fullmatch(value) is None:
        findings.notice(
            NOTICE_NON_STANDARD_IDENTIFIER,
            el,
            f"{label} {value!r} is not in the QCVN 102:2016 form NNN.NN.NN.Xnn (nor the hub "
            "form NN.NN.Wnn); accepted, but check it against the agency directory.",
            identifier=value,
        )
    return value

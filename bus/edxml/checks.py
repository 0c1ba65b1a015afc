"""Second pass over an XSD-valid edXML packet: the rules XSD 1.0 cannot express.

The schemas accept MessageHeader children in any order because producers disagree on
the order, which leaves cardinalities to this pass; XSD patterns cannot tell that
2019/02/30 does not exist; identifiers are checked here so that a bad one is reported as
``InvalidIdentifier`` rather than as a generic schema error; and tying manifest
References to Attachments needs a comparison across elements.

The rules live with the values they judge (``identifiers``, ``dates``, ``attachments``,
``blocks``) and run while ``build_model`` reads the packet, because the reader needs
those values anyway and visiting an lxml element costs more than checking its value.
These entry points run the same walk on any tree and keep only its findings.
"""

from __future__ import annotations

import copy

from lxml import etree

from bus.edxml.blob import Blob
from bus.edxml.blocks import NOTICE_DUPLICATE_RECIPIENT
from bus.edxml.build_model import (
    ACCEPTED_STATUS_CODES,
    NOTICE_RESERVED_STATUS_CODE,
    RESERVED_STATUS_CODES,
    read_tree,
)
from bus.edxml.findings import NOTICE_FIELD_EMPTY, NOTICE_FIELD_TOO_LONG, element_path
from bus.edxml.identifiers import NOTICE_NON_STANDARD_IDENTIFIER
from bus.edxml.model import PacketKind
from bus.errors import Notice

__all__ = [
    "ACCEPTED_STATUS_CODES",
    "NOTICE_DUPLICATE_RECIPIENT",
    "NOTICE_FIELD_EMPTY",
    "NOTICE_FIELD_TOO_LONG",
    "NOTICE_NON_STANDARD_IDENTIFIER",
    "NOTICE_RESERVED_STATUS_CODE",
    "RESERVED_STATUS_CODES",
    "check_edoc",
    "check_status",
    "element_path",
]

_NO_CONTENT = Blob.from_bytes(b"")


def _no_content(encoded: etree._Element | None) -> Blob:
    return _NO_CONTENT


def _without_comments(root: etree._Element) -> etree._Element:
    """``root``, or a copy without comments and processing instructions if it has any.

    The walk reads each value as ``.text``, which is the whole value only when nothing
    splits it; XSD sees the joined value, and so must the rules. Line numbers survive
    the copy, and paths do not count comments.
    """
    if next(root.iter(etree.Comment, etree.ProcessingInstruction), None) is None:
        return root
    plain = copy.deepcopy(root)
    etree.strip_elements(plain, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    return plain


def _check(root: etree._Element, kind: PacketKind) -> list[Notice]:
    return read_tree(_without_comments(root), kind, _no_content)[1]


def check_edoc(root: etree._Element) -> list[Notice]:
    """Second pass for a document packet that already passed ``edoc.xsd``.

    Returns the non-fatal findings and raises the first hard problem it meets, walking
    the MessageHeader, then the TraceHeaderList, then manifest and attachments.
    """
    return _check(root, "edoc")


def check_status(root: etree._Element) -> list[Notice]:
    """Second pass for a status packet that already passed ``status.xsd``.

    Returns the non-fatal findings and raises the first hard problem it meets.
    """
    return _check(root, "status")

"""The manifest and the attachments of an edoc, read and checked in one pass.

Every manifest Reference must have exactly one Attachment with the same ContentId and
vice versa, and every file name must be safe to use as one on the receiving side. The
XSD cannot compare elements with each other, and reports a bad name as a generic schema
error; this pass names the attachment and says what is wrong with it.

Attachment content (megabytes of base64) is never read here: the reader checks it once
every rule has passed, so a packet that breaks a rule costs no work on its attachments.
"""

from __future__ import annotations

import itertools
import re
from typing import Final

from lxml import etree

from bus.edxml.findings import (
    ATTACHMENT_NAME,
    Findings,
    Q,
    attachment_error,
    check_length,
    children,
    schema_error,
    show,
)
from bus.edxml.model import ManifestReference
from bus.edxml.tolerance import CONTENT_ID_FORMS, tolerated

_MANIFEST: Final = Q + "edXMLManifest"
_REFERENCE: Final = Q + "Reference"
_ATTACHMENT: Final = Q + "Attachment"
_CONTENT_ID: Final = Q + "ContentId"
_ATTACHMENT_NAME: Final = Q + "AttachmentName"
_CONTENT_TYPE: Final = Q + "ContentType"
_DESCRIPTION: Final = Q + "Description"
_CTE: Final = Q + "ContentTransferEncoded"

# Path separators, drive/stream colons, C0/C1 controls and the bidi overrides that can
# disguise an extension ("invoice\u202efdp.exe").
_UNSAFE_NAME_CHAR: Final = re.compile(r"[/\\:\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


PendingAttachment = tuple[str, str, "str | None", "str | None", "etree._Element | None"]
"""An Attachment whose rules have passed and whose content is still base64: ContentId,
AttachmentName, ContentType, Description and its ContentTransferEncoded element."""

_NOT_FILE_NAMES: Final = ("", ".", "..")

_Item = tuple[str, etree._Element, str, "str | None", "str | None", "etree._Element | None"]


def _unsafe_name_reason(name: str) -> str | None:
    stripped = name.strip()
    if not stripped:
        return "is empty"
    if stripped in (".", ".."):
        return "is a directory name, not a file name"
    # Controls and bidi overrides are never printable: most names need no regex.
    if name.isprintable() and "/" not in name and "\\" not in name and ":" not in name:
        return None
    bad = _UNSAFE_NAME_CHAR.search(name)
    if bad is None:
        return None
    ch = bad.group()
    if ch in "/\\":
        return "contains a path separator ('/' or '\\')"
    if ch == ":":
        return "contains ':' (a drive letter or an alternate data stream on Windows)"
    return f"contains a control character (U+{ord(ch):04X})"


def _read_item(item: etree._Element, kind: str, findings: Findings) -> _Item:
    """One Reference or Attachment: its fields, once its ContentId and name pass."""
    content_id_el = name_el = encoded = None
    content_id = name = ""
    content_type = description = None
    for child in children(item):
        tag = child.tag
        if tag == _CONTENT_ID:
            content_id_el = child
            content_id = child.text or ""
        elif tag == _ATTACHMENT_NAME:
            name_el = child
            name = child.text or ""
        elif tag == _CONTENT_TYPE:
            content_type = child.text or ""
        elif tag == _CTE:
            encoded = child
        elif tag == _DESCRIPTION:
            description = child.text or ""
    if content_id_el is None:
        raise attachment_error(
            item,
            f"{kind} has no ContentId; expected an identifier such as 'cid:209' shared by "
            "the manifest Reference and its Attachment.",
        )
    if name_el is None:
        raise attachment_error(item, f"{kind} has no AttachmentName; expected a file name.")
    if not content_id.strip():
        raise attachment_error(
            content_id_el,
            f"{kind}/ContentId is empty; expected an identifier such as 'cid:209' shared by "
            "the manifest Reference and its Attachment.",
        )
    # Most names are printable, without separators: what _unsafe_name_reason passes first.
    if not (
        name.isprintable() and "/" not in name and "\\" not in name and ":" not in name
        and name.strip() not in _NOT_FILE_NAMES
    ):
        reason = _unsafe_name_reason(name)
        if reason is not None:
            raise attachment_error(
                name_el,
                f"{kind}/AttachmentName {show(name)} {reason}; expected a plain file name "
                "such as 'Cong van 123.pdf', without folders.",
            )
    if len(name) > ATTACHMENT_NAME.low:
        check_length(name_el, name, ATTACHMENT_NAME, findings)
    return content_id, content_id_el, name, content_type, description, encoded


# ``cid:X`` and ``X`` name the same Content-ID (RFC 2392; tolerance rule content-id-forms).
# The prefix is looked up among its spellings: a slice and a set lookup call no method.
_CID: Final = frozenset(
    "".join(chars) for chars in itertools.product("cC", "iI", "dD", ":"))


def _bare(content_id: str) -> str:
    return content_id[4:] if content_id[:4] in _CID else content_id


def _other_form(written: str, references: dict[str, etree._Element]) -> str | None:
    """The manifest's spelling of ``written`` when it differs only by ``cid:``."""
    bare = _bare(written)
    for listed in references:
        if _bare(listed) == bare:
            return listed
    return None


def read_attachments(
    body: etree._Element | None, encoded: etree._Element | None, findings: Findings
) -> tuple[str, list[ManifestReference], list[PendingAttachment]]:
    """The manifest's version and References, and the Attachments, all in packet order.

    ContentIds are compared without surrounding whitespace, and with and without a
    ``cid:`` prefix (exact first: the usual case costs one lookup); the model keeps them
    as sent.
    """
    version = "1.0"
    manifest: list[ManifestReference] = []
    references: dict[str, etree._Element] = {}
    if body is not None:
        manifest_el = None
        for child in children(body):
            if child.tag == _MANIFEST:
                manifest_el = child
                break
        if manifest_el is None:
            raise schema_error(
                body,
                "edXMLBody has no edXMLManifest; expected the list of "
                "attachments (edXMLManifest with one Reference each).",
            )
        version = manifest_el.get("version", "1.0")
        for reference in children(manifest_el):
            if reference.tag != _REFERENCE:
                continue
            content_id, content_id_el, name, content_type, description, _ = _read_item(
                reference, "Reference", findings
            )
            key = content_id.strip()
            if key in references:
                raise attachment_error(
                    content_id_el,
                    f"edXMLManifest lists ContentId {show(key)} twice; each "
                    "Reference needs its own ContentId.",
                )
            references[key] = reference
            manifest.append(ManifestReference(content_id, name, content_type, description))
    pending: list[PendingAttachment] = []
    matched: set[str] = set()
    if encoded is not None:
        for attachment in children(encoded):
            if attachment.tag != _ATTACHMENT:
                continue
            content_id, content_id_el, name, content_type, description, content = _read_item(
                attachment, "Attachment", findings
            )
            key = written = content_id.strip()
            if key not in references:
                listed = _other_form(written, references)
                if listed is None:
                    raise attachment_error(
                        content_id_el,
                        f"Attachment ContentId {show(written)} is not listed in "
                        "edXMLManifest; expected a manifest Reference with the same ContentId "
                        "for every Attachment.",
                    )
                key = listed
                if key not in matched:
                    tolerated(findings, CONTENT_ID_FORMS, content_id_el,
                              f"Attachment ContentId {show(written)} is listed in the manifest "
                              f"as {show(listed)}; the same Content-ID with and without 'cid:' "
                              "(RFC 2392), matched.",
                              manifest=listed, attachment=written)
            if key in matched:
                raise attachment_error(
                    content_id_el,
                    f"AttachmentEncoded carries ContentId {show(written)} twice; "
                    "each Attachment needs its own ContentId.",
                )
            matched.add(key)
            pending.append((content_id, name, content_type, description, content))
    if len(matched) != len(references):
        for key, reference in references.items():
            if key not in matched:
                raise attachment_error(
                    reference,
                    f"edXMLManifest lists ContentId {show(key)} but AttachmentEncoded has "
                    "no Attachment with that ContentId; expected one Attachment per Reference.",
                )
    return version, manifest, pending

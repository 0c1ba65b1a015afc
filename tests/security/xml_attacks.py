"""Hostile XML for every door, and a watch that sees any open of a probed path.

The watch has two detectors: an audit hook (Python-level ``open`` of a watched path, in
any thread) and inotify (any process-level open or read of a watched file or directory,
including libxml2's own loader, which runs in C where audit hooks see nothing). A probed
path that does not exist cannot be watched; the tests check instead that the answer is
byte-for-byte the one given for an existing file and for a directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tests.edxml_factory import MINIMAL_EDOC, NS, replace_once

SECURITY_BOUND: Final = 1.0  # seconds; contract.md: "under 1 s, bombs included"
DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
SUBJECT_OPEN: Final = "<edXML:Subject>V/v"

_IN_ACCESS: Final = 0x1
_IN_OPEN: Final = 0x20
_EVENT: Final = struct.Struct("iIII")


# ---------------------------------------------------------------- inputs


_DECLARED: Final = {"utf-8": "UTF-8", "utf-16": "UTF-16", "utf-16-le": "UTF-16LE",
                    "utf-16-be": "UTF-16BE", "utf-32": "UTF-32", "utf-32-le": "UTF-32LE",
                    "utf-32-be": "UTF-32BE"}
WIDE_ENCODINGS: Final = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
"""With BOM (no suffix) and without; a byte scan for ``<!DOCTYPE`` sees none of them."""


def encode(text: str, encoding: str) -> bytes:
    """``text`` in ``encoding`` (``utf-16``/``utf-32`` with BOM, ``-le``/``-be`` without),
    its declaration saying so."""
    text = text.replace('encoding="UTF-8"', f'encoding="{_DECLARED[encoding]}"', 1)
    return text.encode(encoding)


def with_doctype(doctype: str, reference: str = "", template: str = MINIMAL_EDOC) -> str:
    text = replace_once(template, DECLARATION, DECLARATION + doctype + "\n")
    if reference:
        text = replace_once(text, SUBJECT_OPEN, f"<edXML:Subject>{reference}V/v")
    return text


LOL: Final = (
    '<!DOCTYPE edXML [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
              for i in range(1, 10))
    + "]>"
)


def billion_laughs() -> str:
    return with_doctype(LOL, "&lol9;")


def parameter_entity(path: str) -> str:
    return with_doctype(f'<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file://{path}"> %p;]>')


def external_entity(path: str) -> str:
    return with_doctype(f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file://{path}">]>', "&x;")


def external_dtd(path: str) -> str:
    return with_doctype(f'<!DOCTYPE edXML SYSTEM "file://{path}">')


def empty_elements(count: int) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="{NS}">'.encode() + (
        b"<a/>" * count) + b"</edXML>"


def nested(levels: int) -> bytes:
    return f'<edXML xmlns="{NS}">'.encode() + b"<a>" * levels + b"</a>" * levels + b"</edXML>"


# ---------------------------------------------------------------- watching


_watched: set[str] = set()
_audited: list[str] = []
_hooked = threading.Lock()
_installed: list[bool] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and args and _watched:
        path = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else ""
        if path in _watched or path.removeprefix("file://") in _watched:
            _audited.append(path)


def _install_hook() -> None:
    with _hooked:
        if not _installed:
            sys.addaudithook(_audit)  # cannot be removed; cheap when nothing is watched
            _installed.append(True)


@contextlib.contextmanager
def watch(paths: list[Path]) -> Iterator[list[str]]:
    """Yields a list that, on exit, holds every open of ``paths`` seen meanwhile."""
    _install_hook()
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, "inotify is not available"
    names: dict[int, str] = {}
    seen: list[str] = []
    try:
        for path in paths:
            wd = libc.inotify_add_watch(fd, os.fsencode(path), _IN_OPEN | _IN_ACCESS)
            assert wd >= 0, f"cannot watch {path}"
            names[wd] = str(path)
        _watched.update(str(p) for p in paths)
        _audited.clear()
        yield seen
        while True:
            try:
                raw = os.read(fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(raw):
                wd, _, _, size = _EVENT.unpack_from(raw, offset)
                offset += _EVENT.size + size
                seen.append(f"inotify {names.get(wd, wd)}")
        seen.extend(f"audit open {p}" for p in _audited)
    finally:
        _watched.difference_update(str(p) for p in paths)
        os.close(fd)


@contextlib.contextmanager
def probe_targets(folder: Path) -> Iterator[dict[str, Path]]:
    """An existing file, a directory and a missing path, for file-system probes."""
    existing = folder / "exists.dtd"
    existing.write_text('<!ENTITY leaked "secret">', encoding="utf-8")
    directory = folder / "a-directory"
    directory.mkdir(exist_ok=True)
    yield {"file": existing, "directory": directory, "missing": folder / "missing.dtd"}

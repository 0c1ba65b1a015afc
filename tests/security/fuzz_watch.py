"""What the door fuzz watches while it runs: every file opened and every connection made
by the test process (the bus serves from a thread of it), bait that C code would touch,
and the resident set.

Three detectors, because no single one sees everything:

* an audit hook records Python-level ``open`` of any path outside an allowlist (the
  bus's data directory, the interpreter's own files, the project's sources and config)
  and every ``socket.connect``/``getaddrinfo`` to anything but the bus under test;
* inotify on a bait file and a bait directory (:func:`tests.security.xml_attacks.watch`),
  whose paths the fuzz writes into SYSTEM identifiers, XInclude hrefs and schema
  locations: libxml2 opens files in C, where audit hooks see nothing;
* a listening bait socket whose URL the fuzz writes into the same places: any
  connection libxml2's own HTTP client made would be queued on it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bus.settings import REPO_ROOT
from tests.security.xml_attacks import watch

MB: Final = 1024 * 1024
_LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")
_O_TMPFILE: Final = getattr(os, "O_TMPFILE", 0)


@dataclass(frozen=True)
class Bait:
    """Paths and a URL that nothing may touch; ``url`` points at a listener nobody serves."""

    file: Path
    directory: Path
    url: str


@dataclass
class _Recorder:
    allowed_dirs: tuple[str, ...]
    server_port: int
    events: list[str] = field(default_factory=list)

    def record(self, event: str, args: tuple[object, ...]) -> None:
        if event == "open":
            path = args[0] if args else None
            if isinstance(path, (str, bytes)) and not os.fsdecode(path).startswith("<"):
                text = os.path.abspath(os.fsdecode(path))
                mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
                flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
                if not text.startswith(self.allowed_dirs) and not _new_temporary(text, mode,
                                                                                 flags):
                    self.events.append(f"open {text}")
        elif event == "socket.connect":
            address = args[1] if len(args) > 1 else None
            if not (isinstance(address, tuple) and len(address) >= 2
                    and address[0] in _LOOPBACK and address[1] == self.server_port):
                self.events.append(f"connect {address!r}")
        elif event == "socket.getaddrinfo":
            host = args[0] if args else None
            name = os.fsdecode(host) if isinstance(host, (str, bytes)) else repr(host)
            if name not in _LOOPBACK:
                self.events.append(f"getaddrinfo {name}")
        elif event == "sqlite3.connect":
            database = os.fsdecode(args[0]) if args and isinstance(args[0], (str, bytes)) else ""
            if database not in ("", ":memory:") and not os.path.abspath(database).startswith(
                    self.allowed_dirs):
                self.events.append(f"sqlite3.connect {database}")
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                       "urllib.Request"):
            self.events.append(f"{event} {args[:2]!r}")


def _new_temporary(path: str, mode: str, flags: int) -> bool:
    """A file the process creates for itself in the temporary directory, which reads
    nothing that was there: an anonymous one (the directory opened for writing with
    O_TMPFILE, how bus.edxml.blob's attachment spool starts on Linux) or a new name
    (O_CREAT|O_EXCL: tempfile's probe and fallback)."""
    temporary = tempfile.gettempdir()
    if path == temporary:
        return "w" in mode or (_O_TMPFILE != 0 and flags & _O_TMPFILE == _O_TMPFILE)
    exclusive = os.O_CREAT | os.O_EXCL
    return os.path.dirname(path) == temporary and flags & exclusive == exclusive


_current: list[_Recorder] = []
_lock = threading.Lock()
_hooked: list[bool] = []


def _hook(event: str, args: tuple[object, ...]) -> None:
    if _current:
        _current[0].record(event, args)


@contextlib.contextmanager
def sentinel(folder: Path, data_dir: Path, server_port: int, *,
             also_allowed: tuple[str, ...] = ()) -> Iterator[tuple[Bait, list[str]]]:
    """Yields the bait and a list that, on exit, holds every forbidden access seen."""
    folder.mkdir(parents=True, exist_ok=True)
    bait_file = folder / "bait.dtd"
    bait_file.write_text('<!ENTITY leaked "BAIT-FILE-CONTENT">', encoding="utf-8")
    bait_dir = folder / "bait-dir"
    bait_dir.mkdir(exist_ok=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    bait = Bait(bait_file, bait_dir, f"http://127.0.0.1:{listener.getsockname()[1]}/bait.dtd")
    allowed = tuple(os.path.abspath(p) + os.sep for p in {
        str(data_dir), sys.prefix, sys.base_prefix, sys.exec_prefix,
        str(REPO_ROOT / "bus"), str(REPO_ROOT / "adapters"), str(REPO_ROOT / "config"),
        str(REPO_ROOT / "tests"),
        str(REPO_ROOT / "schemas"), "/proc/self", "/dev/null", *also_allowed})
    recorder = _Recorder(allowed, server_port)
    with _lock:
        if not _hooked:
            sys.addaudithook(_hook)  # cannot be removed; idle when no recorder is set
            _hooked.append(True)
    seen: list[str] = []
    try:
        with watch([bait_file, bait_dir]) as touched:
            _current.append(recorder)
            try:
                yield bait, seen
            finally:
                _current.clear()
        seen.extend(touched)
        seen.extend(recorder.events)
        with contextlib.suppress(BlockingIOError):
            conn, peer = listener.accept()
            conn.close()
            seen.append(f"bait listener got a connection from {peer}")
    finally:
        listener.close()

"""routes.yaml and the directory as one value that is swapped whole, never edited.

A running bus must pick up an administrator's change without a restart, and must never
route with half of it: both files are loaded and checked together into a new
:class:`RoutingConfig`, and only a fully valid one replaces the current reference (a
single assignment, atomic for every reader). An invalid edit is logged with every
problem and the bus keeps routing with what it had.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from bus.directory import Agency, Directory, load_directory
from bus.directory.layer import axis_layer_path, read_axis_layer
from bus.errors import ConfigInvalid
from bus.lifecycle.deadlines import DeadlinePolicy, load_policy
from bus.routing import RouteTable
from bus.routing.routes import load_routes

log = structlog.get_logger("lgsp.reloader")


@dataclass(frozen=True)
class RoutingConfig:
    table: RouteTable
    directory: Directory
    loaded_at: float
    fingerprint: tuple[int, ...]
    deadlines: DeadlinePolicy | None = None


class Reloader:
    """Holds the current :class:`RoutingConfig`; ``reload()`` is safe from any thread."""

    def __init__(self, routes_path: str | Path, directory_path: str | Path, *,
                 known_adapters: Iterable[str] | None = None,
                 on_change: Callable[[RoutingConfig], None] | None = None,
                 validate: Callable[[RouteTable], object] | None = None,
                 lifecycle: tuple[Path, Path] | None = None,
                 zone: tzinfo | None = None) -> None:
        self.routes_path = Path(routes_path)
        self.directory_path = Path(directory_path)
        self.lifecycle = lifecycle
        self.zone = zone or ZoneInfo("Asia/Ho_Chi_Minh")
        self.known_adapters = tuple(known_adapters) if known_adapters is not None else None
        self.on_change = on_change
        self.validate = validate
        self.layer_path = axis_layer_path(self.directory_path)
        self._layer: tuple[tuple[int, ...], dict[str, Agency]] | None = None
        self._lock = threading.Lock()
        self._current = self._load()
        self.failures = 0
        self.last_refusal: tuple[float, list[str]] | None = None
        """When the last refused reload happened and its problems (the console shows it)."""

    def fingerprint(self) -> tuple[int, ...]:
        """Modification time and size of the files: what a change of any alters.

        routes.yaml, directory.yaml, the calendar and SLA rules when configured, then the
        axis layer (0, 0 while there is none).
        """
        out: list[int] = []
        for path in (self.routes_path, self.directory_path, *(self.lifecycle or ())):
            st = os.stat(path)
            out += [st.st_mtime_ns, st.st_size]
        return (*out, *_stamp(self.layer_path))

    def _axis_layer(self, stamp: tuple[int, ...]) -> dict[str, Agency]:
        """The axis layer, read again only when its file changed: an edit of
        directory.yaml does not pay for re-reading 100,000 national rows."""
        if self._layer is not None and self._layer[0] == stamp:
            return self._layer[1]
        layer, problems = read_axis_layer(self.layer_path)
        if problems:
            raise ConfigInvalid(problems, file=str(self.layer_path))
        self._layer = (stamp, layer)
        return layer

    def _load(self) -> RoutingConfig:
        fingerprint = self.fingerprint()
        layer = self._axis_layer(fingerprint[4:])
        directory = load_directory(self.directory_path, layer=layer)
        table = load_routes(self.routes_path, directory=directory,
                            known_adapters=self.known_adapters)
        if self.validate is not None:
            self.validate(table)
        policy = load_policy(*self.lifecycle, self.zone) if self.lifecycle else None
        return RoutingConfig(table, directory, time.time(), fingerprint, policy)

    def current(self) -> RoutingConfig:
        return self._current

    def reload(self) -> bool:
        """Loads both files again; True when the new configuration is in force."""
        with self._lock:
            try:
                fresh = self._load()
            except (ConfigInvalid, OSError) as exc:
                self.failures += 1
                problems = [str(p) for p in getattr(exc, "problems", [])] or [str(exc)]
                self.last_refusal = (time.time(), problems)
                log.error("routes.reload_refused", problems=problems,
                          kept_loaded_at=self._current.loaded_at)
                return False
            self._current = fresh
        log.info("routes.reloaded", destinations=len(fresh.table.destinations),
                 rules=len(fresh.table.rules), agencies=len(fresh.directory.agencies))
        if self.on_change:
            self.on_change(fresh)
        return True


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)

"""Which adapters are installed, found through the ``lgsp.adapters`` entry-point group.

Vendors ship adapters as ordinary Python distributions, so the bus never lists them in
its own code: whatever declares an entry point in the group is available under the
entry point's name. Listing is cheap (metadata only) and an adapter module is imported
only when a destination actually uses it, so one broken vendor package cannot stop the
bus from starting routes that do not need it.

Options are validated here, not in :mod:`bus.routing.routes`, because only the adapter knows
its ``Config``; :func:`build_adapters` reports every problem of every destination at
once, pointing at ``destinations.<name>.options.<field>``, so that an administrator
fixes routes.yaml in one pass.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from pydantic import ValidationError

from bus.adapter import Adapter
from bus.directory import did_you_mean
from bus.errors import ConfigInvalid, Problem
from bus.routing import Destination, RouteTable

__all__ = ["GROUP", "adapter_class", "available", "build_adapter", "build_adapters"]

GROUP: Final = "lgsp.adapters"

_loaded: dict[str, type[Adapter[Any]]] = {}
_lock = threading.Lock()


def available() -> dict[str, EntryPoint]:
    """Installed adapters by name, without importing any of them."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def adapter_class(name: str) -> type[Adapter[Any]]:
    """The adapter class registered as ``name``, imported on first use.

    Raises ConfigInvalid for an unknown name (with the closest installed one), for an
    entry point that cannot be imported, and for one that is not an Adapter subclass.
    """
    with _lock:
        cached = _loaded.get(name)
    if cached is not None:
        return cached
    found = available()
    ep = found.get(name)
    if ep is None:
        hint = did_you_mean(name, found)
        known = "" if hint else f" (installed: {', '.join(sorted(found)) or 'none'})"
        raise ConfigInvalid([Problem(f"no adapter named {name!r} is installed{hint}{known}")])
    try:
        loaded = ep.load()
    except Exception as exc:
        raise ConfigInvalid([Problem(
            f"adapter {name!r} ({ep.value}) cannot be imported: {type(exc).__name__}: {exc}"
        )]) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Adapter)):
        raise ConfigInvalid([Problem(
            f"entry point {name!r} ({ep.value}) is not a bus.adapter.Adapter subclass")])
    with _lock:
        _loaded[name] = loaded
    return loaded


def _option_problems(destination: Destination, exc: ValidationError,
                     source: str | None) -> list[Problem]:
    base = f"destinations.{destination.name}.options"
    problems = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        problems.append(Problem(
            f"{error['msg']} (adapter {destination.adapter!r})",
            file=source, line=destination.line, path=f"{base}.{loc}" if loc else base,
        ))
    return problems


def build_adapter(destination: Destination, *, source: str | None = None) -> Adapter[Any]:
    """One destination's adapter, built (no I/O) from its validated options."""
    try:
        cls = adapter_class(destination.adapter)
    except ConfigInvalid as exc:
        raise ConfigInvalid([
            Problem(f"destination {destination.name!r}: {p.message}", file=source,
                    line=destination.line, path=f"destinations.{destination.name}.adapter")
            for p in exc.problems
        ], file=source) from None
    try:
        return cls.from_options(destination.name, dict(destination.options))
    except ValidationError as exc:
        raise ConfigInvalid(_option_problems(destination, exc, source), file=source) from None


def build_adapters(table: RouteTable) -> dict[str, Adapter[Any]]:
    """Every destination's adapter, or ConfigInvalid listing every problem of every one."""
    adapters: dict[str, Adapter[Any]] = {}
    problems: list[Problem] = []
    for name, destination in table.destinations.items():
        try:
            adapters[name] = build_adapter(destination, source=table.source)
        except ConfigInvalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigInvalid(problems, file=table.source)
    return adapters

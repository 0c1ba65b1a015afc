"""The loaded directory: systems, agencies, successor rules, and the questions routing asks.

Agencies come in two kinds. Those with a ``system`` are hosted here (config/directory.yaml):
documents for them go to that system, and only that system may send as them. Those
without one were listed by the national axis (the axis layer, :mod:`bus.directory.layer`):
known by name and parent, routed outside like any code the province does not host.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import NamedTuple

from bus.directory.yamlfile import did_you_mean
from bus.edxml.dialects import DIALECTS
from bus.errors import AmbiguousSuccessor, ConfigInvalid, Problem


@dataclass(frozen=True, slots=True)
class System:
    """A connected agency system (eOffice, VNPT-iOffice, …) and the destination that reaches it."""

    name: str
    destination: str
    description: str = ""
    line: int | None = field(default=None, compare=False)
    dialect: str | None = None
    """The edXML dialect its client writes, translated at the door (bus.edxml.dialects)."""


class Agency(NamedTuple):
    """An organisation identifier; ``system`` is None for one only the axis lists.

    A named tuple rather than a dataclass: a national directory makes 100,000 of them per
    load, and a frozen dataclass's ``__init__`` was most of that load's time.
    """

    code: str
    name: str
    system: str | None
    parent: str | None = None
    line: int | None = None
    file: str | None = None
    """Set for the axis layer's entries, so a problem names the file it is in."""


@dataclass(frozen=True, slots=True, init=False)
class Successor:
    """``old`` was replaced by ``new`` from ``effective`` on.

    One new code is a merger or a re-coding (several old codes may name the same new one);
    several are a split, and documents to the old code then go to ``split_route`` if the
    directory names one, and are refused with AmbiguousSuccessor otherwise: guessing which
    of two communes inherits a file is the records office's decision, not the bus's.
    """

    old: str
    new: tuple[str, ...]
    effective: date
    note: str
    split_route: str | None
    line: int | None = field(compare=False)

    def __init__(self, old: str, new: str | Iterable[str], effective: date, note: str = "",
                 line: int | None = None, *, split_route: str | None = None) -> None:
        codes = (new,) if isinstance(new, str) else tuple(new)
        object.__setattr__(self, "old", old)
        object.__setattr__(self, "new", codes)
        object.__setattr__(self, "effective", effective)
        object.__setattr__(self, "note", note)
        object.__setattr__(self, "split_route", split_route)
        object.__setattr__(self, "line", line)

    @property
    def is_split(self) -> bool:
        return len(self.new) > 1

    def describe(self) -> str:
        when = self.effective.isoformat()
        if self.is_split:
            text = f"{self.old} split into {', '.join(self.new)} on {when}"
            if self.split_route is not None:
                text += f"; documents to {self.old} go to {self.split_route} (split_route)"
        else:
            text = f"{self.old} merged into {self.new[0]} on {when}"
        return f"{text}: {self.note}" if self.note else text


def successor_cycles(successors: Mapping[str, Successor]) -> list[list[str]]:
    """Each cycle once, in chain order from its code written first in the file.

    Every edge counts, split branches included: a code that is, through any branch, its
    own successor is a typing mistake whichever branch a document would take.
    """
    order = {code: number for number, code in enumerate(successors)}
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}
    for start in successors:
        if start in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(successors[start].new))]
        state[start], path = 1, [start]
        while stack:
            code, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[code] = 2
                continue
            if nxt not in successors or state.get(nxt) == 2:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                    cycles.append(cycle[first:] + cycle[:first])
                continue
            state[nxt] = 1
            path.append(nxt)
            stack.append((nxt, iter(successors[nxt].new)))
    return cycles


class Directory:
    """The loaded directory; immutable, with indexes built once for cheap lookups.

    Constructing one checks what the schema cannot (unknown systems, successor cycles)
    and raises ConfigInvalid, so a directory built in code is as trustworthy as a loaded one.
    """

    __slots__ = ("_agencies", "_hosted", "_source", "_successors", "_systems")

    def __init__(
        self,
        systems: Iterable[System],
        agencies: Iterable[Agency] | Mapping[str, Agency],
        successors: Iterable[Successor] = (),
        *,
        source: str | None = None,
    ) -> None:
        self._source = source
        self._systems = MappingProxyType({s.name: s for s in systems})
        table = dict(agencies) if isinstance(agencies, Mapping) else {a.code: a for a in agencies}
        self._agencies = MappingProxyType(table)
        self._successors = MappingProxyType({s.old: s for s in successors})
        problems = directory_problems(self._systems, self._agencies, self._successors, source)
        if problems:
            raise ConfigInvalid(problems, file=source)
        hosted: dict[str, set[str]] = {name: set() for name in self._systems}
        for agency in table.values():
            if agency.system is not None:
                hosted[agency.system].add(agency.code)
        self._hosted = MappingProxyType({k: frozenset(v) for k, v in hosted.items()})

    @property
    def source(self) -> str | None:
        return self._source

    @property
    def systems(self) -> Mapping[str, System]:
        return self._systems

    @property
    def agencies(self) -> Mapping[str, Agency]:
        return self._agencies

    @property
    def successors(self) -> Mapping[str, Successor]:
        return self._successors

    def host_of(self, code: str) -> str | None:
        """Name of the system hosting ``code`` as written (no successor resolution)."""
        agency = self._agencies.get(code)
        return agency.system if agency is not None else None

    def destination_of(self, system: str) -> str | None:
        found = self._systems.get(system)
        return found.destination if found is not None else None

    def dialect_of(self, system: str) -> str | None:
        """The dialect packets from ``system`` are translated from, if it has one."""
        found = self._systems.get(system)
        return found.dialect if found is not None else None

    def hosted_by(self, system: str) -> frozenset[str]:
        return self._hosted.get(system, frozenset())

    def hosts(self, system: str, code: str) -> bool:
        """Whether ``system`` may speak as ``code``: only codes listed under it, exactly."""
        return code in self._hosted.get(system, ())

    def resolve(self, code: str, on: date) -> tuple[str, tuple[str, ...]]:
        """Follow successors in effect on ``on``; returns the code and one note per step.

        Each step is judged by its own date, so a chain A→B (2025) → C (2026) gives B in
        2025 and C from 2026. A split in effect with no ``split_route`` raises
        AmbiguousSuccessor naming the candidates. Cycles are refused at construction.
        """
        trail: list[str] = []
        current = code
        step = self._successors.get(current)
        while step is not None and step.effective <= on:
            if step.is_split and step.split_route is None:
                raise AmbiguousSuccessor(
                    f"{current} was split into {', '.join(step.new)} on"
                    f" {step.effective.isoformat()}"
                    + (f" (reached from {code}: {'; '.join(trail)})" if trail else "")
                    + "; address the document to the one that now handles it (the directory"
                    " names no split_route for it)",
                    details={"recipient": code, "candidates": list(step.new),
                             "effective": step.effective.isoformat()},
                )
            trail.append(step.describe())
            current = step.split_route if step.split_route is not None else step.new[0]
            step = self._successors.get(current)
        return current, tuple(trail)

    def canonical(self, code: str, on: date) -> str:
        """``resolve``'s code, or ``code`` itself where a split leaves it ambiguous."""
        try:
            return self.resolve(code, on)[0]
        except AmbiguousSuccessor:
            return code

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._agencies.values())

    def __len__(self) -> int:
        return len(self._agencies)

    def __repr__(self) -> str:
        return (
            f"Directory({len(self._systems)} systems, {len(self._agencies)} agencies,"
            f" {len(self._successors)} successors, source={self._source!r})"
        )


def directory_problems(
    systems: Mapping[str, System],
    agencies: Mapping[str, Agency],
    successors: Mapping[str, Successor],
    file: str | None = None,
) -> list[Problem]:
    """Semantic checks over well-formed entries; lines come from the entries themselves."""
    problems: list[Problem] = []
    for system in systems.values():
        if system.dialect is not None and system.dialect not in DIALECTS:
            problems.append(
                Problem(
                    f"system {system.name} names unknown dialect {system.dialect!r}"
                    f"{did_you_mean(system.dialect, DIALECTS)}; known dialects: "
                    f"{', '.join(sorted(DIALECTS))}",
                    file=file,
                    line=system.line,
                    path=f"systems/{system.name}/dialect",
                )
            )
    for agency in agencies.values():
        where = agency.file or file
        if agency.system is not None and agency.system not in systems:
            problems.append(
                Problem(
                    f"agency {agency.code} is hosted by unknown system {agency.system!r}"
                    f"{did_you_mean(agency.system, systems)}",
                    file=where,
                    line=agency.line,
                    path=f"agencies/{agency.code}/system",
                )
            )
        if agency.parent == agency.code:
            problems.append(
                Problem(
                    f"agency {agency.code} is its own parent",
                    file=where,
                    line=agency.line,
                    path=f"agencies/{agency.code}/parent",
                )
            )
    for step in successors.values():
        if step.split_route is not None and step.split_route not in step.new:
            problems.append(
                Problem(
                    f"split_route {step.split_route} of {step.old} is not one of the codes that"
                    f" replaced it ({', '.join(step.new)})",
                    file=file,
                    line=step.line,
                    path=f"successors/{step.old}/split_route",
                )
            )
        if step.split_route is not None and not step.is_split:
            problems.append(
                Problem(
                    f"{step.old} has one successor: split_route is for a code replaced by"
                    " several",
                    file=file,
                    line=step.line,
                    path=f"successors/{step.old}/split_route",
                )
            )
    for cycle in successor_cycles(successors):
        head = successors[cycle[0]]
        loop = " -> ".join([*cycle, cycle[0]])
        problems.append(
            Problem(
                f"successor codes form a cycle: {loop}",
                file=file,
                line=head.line,
                path=f"successors/{head.old}",
            )
        )
    return problems

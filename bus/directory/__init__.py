"""The agency directory: which system hosts which organisation, and which codes replaced which.

edxml.md §6 settles who may use an identifier by the directory, not by a regex: codes
come in several generations of format, test codes are lower case, and after the 2025
merger of communes old codes keep arriving for months. So the directory answers three
questions, each used in one place:

* ``host_of`` / ``destination_of`` — where a recipient lives (routing);
* ``hosts`` / ``hosted_by`` — whether an authenticated system may speak as an
  organisation (ingress; a system may send only as the organisations it hosts);
* ``resolve`` — which code an old one became on a given day (routing; the trail of notes
  is stored with the delivery so an operator sees why a commune's mail went elsewhere).

An old code may stay listed as an agency: before its successor takes effect it is routed
to its own system, after that to its successor's.

The file is YAML checked against ``schemas/directory.schema.json`` and then semantically
(unknown systems, successor cycles, impossible dates); every problem is collected with
file, line and path before :class:`~bus.errors.ConfigInvalid` is raised, so an
administrator fixes them all in one pass. The small YAML-with-line-numbers reader used
for that lives here too and is shared with :mod:`bus.routing.routes`, which depends on this
module (never the other way round).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jsonschema
import jsonschema.exceptions
import yaml

from bus.edxml.dialects import DIALECTS
from bus.errors import ConfigInvalid, Problem

SCHEMA_DIR: Final = Path(__file__).resolve().parents[2] / "schemas"
DIRECTORY_SCHEMA: Final = "directory.schema.json"

YamlPath = tuple[str | int, ...]

_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"


def format_path(path: Iterable[str | int]) -> str:
    """Slash path of keys and list indexes, the form bus.errors.Location documents."""
    return "/".join(str(part) for part in path)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` suffix, or nothing when no choice is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class YamlDocument:
    """Plain YAML data plus the line of every key and list item, for precise messages."""

    file: str
    data: Any
    lines: Mapping[YamlPath, int]
    bool_words: Mapping[YamlPath, str] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        key = tuple(path)
        while True:
            line = self.lines.get(key)
            if line is not None or not key:
                return line
            key = key[:-1]

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        return Problem(
            message, file=self.file, line=self.line_of(path), path=format_path(path) or None
        )


class _Builder:
    """Turns a composed node tree into plain data, remembering where everything was.

    Mapping keys stay the text that was written (so ``000.00.31.H37`` or ``01`` never turn
    into numbers) and timestamps stay strings, which is what the JSON Schema expects;
    duplicate keys, which PyYAML silently accepts, are reported.
    """

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.lines: dict[YamlPath, int] = {}
        self.bool_words: dict[YamlPath, str] = {}
        self.problems: list[Problem] = []
        self._open: set[int] = set()

    def build(self, node: yaml.Node, path: YamlPath) -> Any:
        if id(node) in self._open:
            self._report(node, path, "recursive alias: a value cannot contain itself")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                items = []
                for number, item in enumerate(node.value):
                    self.lines[(*path, number)] = item.start_mark.line + 1
                    items.append(self.build(item, (*path, number)))
                return items
            if node.tag == _TIMESTAMP_TAG:
                return node.value
            value = self.loader.construct_object(node, deep=True)
            if isinstance(value, bool) and node.value.lower() not in ("true", "false"):
                self.bool_words[path] = node.value
            return value
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: YamlPath) -> dict[str, Any]:
        self.loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._report(key_node, path, "keys must be plain text, not lists or mappings")
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in out:
                first = self.lines.get((*path, key))
                self._report(
                    key_node, (*path, key), f"duplicate key {key!r} (first written on line {first})"
                )
                continue
            self.lines[(*path, key)] = line
            out[key] = self.build(value_node, (*path, key))
        return out

    def _report(self, node: yaml.Node, path: YamlPath, message: str) -> None:
        self.problems.append(
            Problem(
                message,
                file=self.file,
                line=node.start_mark.line + 1,
                path=format_path(path) or None,
            )
        )


def parse_yaml(text: str, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one YAML document keeping line numbers; a syntax error yields no document."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(file, None, {}), []
        builder = _Builder(loader, file)
        builder.lines[()] = node.start_mark.line + 1
        data = builder.build(node, ())
        doc = YamlDocument(
            file, data, MappingProxyType(builder.lines), MappingProxyType(builder.bool_words)
        )
        return doc, builder.problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "malformed YAML"
        line = mark.line + 1 if mark is not None else None
        return None, [Problem(f"YAML syntax error: {what}", file=file, line=line)]
    except yaml.YAMLError as exc:
        return None, [Problem(f"YAML error: {exc}", file=file)]
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> tuple[YamlDocument | None, list[Problem]]:
    """Read and parse a configuration file; unreadable files are problems, not tracebacks."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem("file not found", file=file)]
    except UnicodeDecodeError as exc:
        return None, [Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file)]
    except OSError as exc:
        return None, [Problem(f"cannot read the file: {exc.strerror or exc}", file=file)]
    return parse_yaml(text, file)


@functools.cache
def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    """The compiled validator of ``schemas/<name>``; compiled once per process."""
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _likely_cause(
    error: jsonschema.exceptions.ValidationError,
) -> jsonschema.exceptions.ValidationError | None:
    """The alternative the author most probably meant, among a oneOf/anyOf's failures.

    Branches rejected only because the value has another type say nothing useful ("is
    not of type 'object'" about a list); of the rest, the deepest error points closest
    to the mistake, e.g. the one bad identifier inside a list.
    """
    here = list(error.absolute_path)
    relevant = [
        e
        for e in error.context or ()
        if not (e.validator == "type" and list(e.absolute_path) == here)
    ]
    if not relevant:
        return None
    return max(relevant, key=lambda e: len(e.absolute_path))


def _schema_error_problems(
    doc: YamlDocument, error: jsonschema.exceptions.ValidationError
) -> list[Problem]:
    path: YamlPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        problems = []
        for key in error.instance:
            if key in allowed:
                continue
            hint = did_you_mean(key, allowed)
            expected = f"; expected {', '.join(allowed)}" if allowed and not hint else ""
            problems.append(doc.problem((*path, key), f"unknown key {key!r}{hint}{expected}"))
        return problems or [doc.problem(path, error.message)]
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        described = error.schema.get("description") if isinstance(error.schema, dict) else None
        why = described if isinstance(described, str) else error.message
        return [doc.problem((*path, error.instance), f"bad key {error.instance!r}: {why}")]
    if error.validator in ("oneOf", "anyOf", "not"):
        custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
        cause = _likely_cause(error)
        if cause is not None and (custom is None or len(cause.absolute_path) > len(path)):
            return _schema_error_problems(doc, cause)
        if isinstance(custom, str):
            found = "" if isinstance(error.instance, dict) else f" (found {_short(error.instance)})"
            return [doc.problem(path, custom + found)]
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in ("oneOf", "anyOf", "pattern") and isinstance(description, str):
        return [doc.problem(path, f"{_short(error.instance)} is not valid here: {description}")]
    word = doc.bool_words.get(path)
    if error.validator == "type" and word is not None:
        return [
            doc.problem(
                path,
                f"{error.message}: YAML reads an unquoted {word} as {error.instance!r};"
                f' write "{word}" in quotes',
            )
        ]
    return [doc.problem(path, error.message)]


def schema_problems(doc: YamlDocument, schema_name: str) -> list[Problem]:
    """Every JSON Schema violation of ``doc``, located on the offending line."""
    problems: list[Problem] = []
    for error in schema_validator(schema_name).iter_errors(doc.data):
        problems.extend(_schema_error_problems(doc, error))
    return problems


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """File order, so the list reads top to bottom like the file."""
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0))


@dataclass(frozen=True, slots=True)
class System:
    """A connected agency system (eOffice, VNPT-iOffice, …) and the destination that reaches it."""

    name: str
    destination: str
    description: str = ""
    line: int | None = field(default=None, compare=False)
    dialect: str | None = None
    """The edXML dialect its client writes, translated at the door (bus.edxml.dialects)."""


@dataclass(frozen=True, slots=True)
class Agency:
    """An organisation identifier hosted by one system."""

    code: str
    name: str
    system: str
    parent: str | None = None
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Successor:
    """``old`` became ``new`` from ``effective`` on (merger, split-and-rename, re-coding)."""

    old: str
    new: str
    effective: date
    note: str = ""
    line: int | None = field(default=None, compare=False)

    def describe(self) -> str:
        text = f"{self.old} merged into {self.new} on {self.effective.isoformat()}"
        return f"{text}: {self.note}" if self.note else text


def _successor_cycles(successors: Mapping[str, Successor]) -> list[list[str]]:
    """Each cycle once, as its codes in chain order starting from the first in the file."""
    order = {code: number for number, code in enumerate(successors)}
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in successors:
        chain: list[str] = []
        position: dict[str, int] = {}
        code: str | None = start
        while code is not None and code in successors and code not in done:
            if code in position:
                cycle = chain[position[code] :]
                first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                cycles.append(cycle[first:] + cycle[:first])
                break
            position[code] = len(chain)
            chain.append(code)
            code = successors[code].new
        done.update(chain)
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
        agencies: Iterable[Agency],
        successors: Iterable[Successor] = (),
        *,
        source: str | None = None,
    ) -> None:
        self._source = source
        self._systems = MappingProxyType({s.name: s for s in systems})
        self._agencies = MappingProxyType({a.code: a for a in agencies})
        self._successors = MappingProxyType({s.old: s for s in successors})
        problems = directory_problems(self._systems, self._agencies, self._successors, source)
        if problems:
            raise ConfigInvalid(problems, file=source)
        hosted: dict[str, set[str]] = {name: set() for name in self._systems}
        for agency in self._agencies.values():
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
        2025 and C from 2026. Cycles are refused at construction, so this terminates.
        """
        trail: list[str] = []
        current = code
        step = self._successors.get(current)
        while step is not None and step.effective <= on:
            trail.append(step.describe())
            current = step.new
            step = self._successors.get(current)
        return current, tuple(trail)

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
        if agency.system not in systems:
            problems.append(
                Problem(
                    f"agency {agency.code} is hosted by unknown system {agency.system!r}"
                    f"{did_you_mean(agency.system, systems)}",
                    file=file,
                    line=agency.line,
                    path=f"agencies/{agency.code}/system",
                )
            )
        if agency.parent == agency.code:
            problems.append(
                Problem(
                    f"agency {agency.code} is its own parent",
                    file=file,
                    line=agency.line,
                    path=f"agencies/{agency.code}/parent",
                )
            )
    for cycle in _successor_cycles(successors):
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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _entries(doc: YamlDocument, key: str) -> Iterator[tuple[str, dict[str, Any], int | None]]:
    section = doc.data.get(key) if isinstance(doc.data, dict) else None
    if not isinstance(section, dict):
        return
    for name, body in section.items():
        if isinstance(body, dict):
            yield name, body, doc.line_of((key, name))


def directory_from_document(doc: YamlDocument) -> tuple[Directory | None, list[Problem]]:
    """Schema check, then semantic checks over every entry that is well-formed.

    Malformed entries are skipped rather than aborting, so one pass reports both kinds.
    """
    problems = schema_problems(doc, DIRECTORY_SCHEMA)
    systems: dict[str, System] = {}
    for name, body, line in _entries(doc, "systems"):
        destination = _text(body.get("destination"))
        if destination is not None:
            systems[name] = System(name, destination, _text(body.get("description")) or "",
                                   line, _text(body.get("dialect")))
    agencies: dict[str, Agency] = {}
    for code, body, line in _entries(doc, "agencies"):
        system, title = _text(body.get("system")), _text(body.get("name"))
        if system is not None and title is not None:
            parent = _text(body.get("parent"))
            agencies[code] = Agency(code, title, system, parent, line)
    successors: dict[str, Successor] = {}
    for old, body, line in _entries(doc, "successors"):
        new, when = _text(body.get("replaced_by")), _text(body.get("effective"))
        if new is None or when is None:
            continue
        try:
            effective = date.fromisoformat(when)
        except ValueError:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", when):
                problems.append(
                    doc.problem(("successors", old, "effective"), f"{when} is not a real date")
                )
            continue
        successors[old] = Successor(old, new, effective, _text(body.get("note")) or "", line)
    problems.extend(directory_problems(systems, agencies, successors, doc.file))
    if problems:
        return None, sort_problems(problems)
    return Directory(systems.values(), agencies.values(), successors.values(), source=doc.file), []


def load_directory(path: str | Path) -> Directory:
    """Load config/directory.yaml (or another file), raising ConfigInvalid with every problem."""
    doc, problems = read_yaml(path)
    if doc is None:
        raise ConfigInvalid(problems, file=str(path))
    directory, more = directory_from_document(doc)
    problems = sort_problems([*problems, *more])
    if directory is None or problems:
        raise ConfigInvalid(problems, file=str(path))
    return directory

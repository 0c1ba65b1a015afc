"""config/directory.yaml (and its axis layer) into a checked :class:`Directory`.

The JSON Schema is the reference for what an entry may be, and every message about a bad
entry comes from it. But asking jsonschema about each of 10,000 well-formed agencies was a
fifth of the load time, so agencies go through a hand-written check of the same rules
first, and only the entries it rejects are shown to the validator (at their own paths, so
the messages and lines are unchanged). ``test_fast_check_agrees_with_the_schema`` keeps
the two in step.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, Final

from bus.directory.layer import axis_layer_path, read_axis_layer
from bus.directory.model import Agency, Directory, Successor, System, directory_problems
from bus.directory.yamlfile import (
    YamlDocument,
    read_yaml,
    schema_validator,
    sort_problems,
    validation_problems,
)
from bus.errors import ConfigInvalid, Problem

DIRECTORY_SCHEMA: Final = "directory.schema.json"

ORGAN_ID: Final = re.compile(r"[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*")
NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
_AGENCY_KEYS: Final = frozenset({"name", "system", "parent"})


def is_organ_id(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 35 and ORGAN_ID.fullmatch(value) is not None


def agency_entry_ok(code: object, body: object) -> bool:
    """The schema's rules for one ``agencies`` entry, without jsonschema's cost."""
    if not is_organ_id(code) or not isinstance(body, dict) or not body.keys() <= _AGENCY_KEYS:
        return False
    name, system, parent = body.get("name"), body.get("system"), body.get("parent")
    return (isinstance(name, str) and 1 <= len(name) <= 200
            and isinstance(system, str) and NAME.fullmatch(system) is not None
            and ((parent is None and "parent" not in body) or is_organ_id(parent)))


def _schema_problems(doc: YamlDocument) -> list[Problem]:
    data = doc.data
    section = data.get("agencies") if isinstance(data, dict) else None
    if isinstance(section, dict):
        doubtful = {code: body for code, body in section.items()
                    if not agency_entry_ok(code, body)}
        data = {**data, "agencies": doubtful}
    return validation_problems(doc, schema_validator(DIRECTORY_SCHEMA).iter_errors(data))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _entries(doc: YamlDocument, key: str) -> Iterator[tuple[str, dict[str, Any], int | None]]:
    section = doc.data.get(key) if isinstance(doc.data, dict) else None
    if not isinstance(section, dict):
        return
    for name, body in section.items():
        if isinstance(body, dict):
            yield name, body, doc.line_of((key, name))


def _successor(doc: YamlDocument, old: str, body: dict[str, Any], line: int | None,
               problems: list[Problem]) -> Successor | None:
    new, when = body.get("replaced_by"), _text(body.get("effective"))
    codes = [new] if isinstance(new, str) else new if isinstance(new, list) else None
    if (not codes or not all(isinstance(c, str) for c in codes) or when is None
            or (isinstance(new, list) and len(set(codes)) < 2)):
        return None
    try:
        effective = date.fromisoformat(when)
    except ValueError:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", when):
            problems.append(doc.problem(("successors", old, "effective"),
                                        f"{when} is not a real date"))
        return None
    return Successor(old, codes, effective, _text(body.get("note")) or "", line,
                     split_route=_text(body.get("split_route")))


def directory_from_document(
    doc: YamlDocument, layer: dict[str, Agency] | None = None,
) -> tuple[Directory | None, list[Problem]]:
    """Schema check, then semantic checks over every entry that is well-formed.

    Malformed entries are skipped rather than aborting, so one pass reports both kinds.
    ``layer`` holds the axis layer's agencies; the province's entry for a code wins.
    """
    problems = _schema_problems(doc)
    systems: dict[str, System] = {}
    for name, body, line in _entries(doc, "systems"):
        destination = _text(body.get("destination"))
        if destination is not None:
            systems[name] = System(name, destination, _text(body.get("description")) or "",
                                   line, _text(body.get("dialect")))
    agencies: dict[str, Agency] = dict(layer) if layer else {}
    intern = sys.intern
    for code, body, line in _entries(doc, "agencies"):
        system, title = _text(body.get("system")), _text(body.get("name"))
        if system is not None and title is not None:
            parent = _text(body.get("parent"))
            agencies[code] = Agency(code, title, intern(system),
                                    intern(parent) if parent else None, line)
    successors: dict[str, Successor] = {}
    for old, body, line in _entries(doc, "successors"):
        step = _successor(doc, old, body, line, problems)
        if step is not None:
            successors[old] = step
    problems.extend(directory_problems(systems, agencies, successors, doc.file))
    if problems:
        return None, sort_problems(problems)
    return Directory(systems.values(), agencies, successors.values(), source=doc.file), []


def load_directory(path: str | Path, *, layer: dict[str, Agency] | None = None) -> Directory:
    """Load config/directory.yaml with its axis layer beside it, raising ConfigInvalid
    with every problem of both.

    ``layer`` is an already read axis layer (the reloader keeps it while its file is
    unchanged); left out, the file beside ``path`` is read if there is one.
    """
    problems: list[Problem] = []
    if layer is None:
        layer, problems = read_axis_layer(axis_layer_path(path))
    doc, more = read_yaml(path)
    problems += more
    if doc is None:
        raise ConfigInvalid(sort_problems(problems), file=str(path))
    directory, more = directory_from_document(doc, layer)
    problems = sort_problems([*problems, *more])
    if directory is None or problems:
        raise ConfigInvalid(problems, file=str(path))
    return directory

"""Configuration YAML read with the line of every key, and checked against a JSON Schema.

Shared by the directory and :mod:`bus.routing.routes`. Composition runs in libyaml (the C
``CSafeLoader``) when PyYAML was built with it: the pure-Python composer was three quarters
of the time a 10,000-agency directory took to load. The node tree is the same either way,
so lines, duplicate keys and the "unquoted yes" hints do not depend on which one ran.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jsonschema
import jsonschema.exceptions
import yaml

from bus.errors import Problem

SCHEMA_DIR: Final = Path(__file__).resolve().parents[2] / "schemas"

YamlPath = tuple[str | int, ...]

_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_Loader: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)



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

    def __init__(self, loader: Any, file: str) -> None:
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
            if node.tag == _STR_TAG or node.tag == _TIMESTAMP_TAG:
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
    loader = _Loader(text)
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
    return validation_problems(doc, schema_validator(schema_name).iter_errors(doc.data))


def validation_problems(
    doc: YamlDocument, errors: Iterable[jsonschema.exceptions.ValidationError]
) -> list[Problem]:
    """``errors`` (from validating ``doc`` or a part of it at the same paths) as problems."""
    problems: list[Problem] = []
    for error in errors:
        problems.extend(_schema_error_problems(doc, error))
    return problems


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """File order, so the list reads top to bottom like the file."""
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0))


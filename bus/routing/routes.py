"""routes.yaml → :class:`~bus.routing.RouteTable`, with every mistake reported at once.

The table types live in :mod:`bus.routing` so that routing stays free of YAML and files;
this module is the only door from the file to those types. An administrator edits
routes.yaml by hand, often under pressure, so loading is built for them:

* nothing is half-loaded: either a complete, cross-checked table or
  :class:`~bus.errors.ConfigInvalid` listing *every* problem with file, line and path;
* the JSON Schema (``schemas/routes.schema.json``) catches shape errors, and the checks
  here catch what a schema cannot: references to destinations, regexes that do not
  compile, duplicate rule names, refusal codes that do not exist, systems of the
  directory without a destination, adapters that are not installed ("did you mean");
* doubtful but legal things — a rule whose decision can never apply because an earlier
  one always decides first, a secret written into options, a destination nothing
  uses — are :class:`ConfigWarning`: kept on ``RouteTable.warnings`` and printed by
  ``lgsp routes check``, never fatal.
"""


from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Final

from bus.directory import (
    Directory,
    YamlDocument,
    load_directory,
    parse_yaml,
    read_yaml,
    schema_problems,
    sort_problems,
)
from bus.errors import ConfigInvalid, LgspError, Problem
from bus.routing import DirectoryView, RouteTable, RoutingFacts, route
from bus.routing.routes_build import _build
from bus.routing.routes_checks import ConfigWarning, _Checker

__all__ = [
    "ROUTES_SCHEMA",
    "ConfigWarning",
    "RouteTable",
    "check_routes",
    "explain",
    "load_routes",
    "parse_routes",
]

ROUTES_SCHEMA: Final = "routes.schema.json"


def _check(
    doc: YamlDocument | None,
    syntax: list[Problem],
    directory: Directory | None,
    known_adapters: Iterable[str] | None,
) -> tuple[RouteTable | None, list[Problem], list[Problem]]:
    if doc is None:
        return None, syntax, []
    checker = _Checker(doc, directory, known_adapters)
    checker.run()
    errors = sort_problems([*syntax, *schema_problems(doc, ROUTES_SCHEMA), *checker.errors])
    warnings = sort_problems(checker.warnings)
    if errors:
        return None, errors, warnings
    return _build(doc, warnings), [], warnings


def parse_routes(
    text: str,
    *,
    file: str = "routes.yaml",
    directory: Directory | None = None,
    known_adapters: Iterable[str] | None = None,
) -> RouteTable:
    """Like :func:`load_routes`, from text already in memory (tests, settings overlays)."""
    doc, syntax = parse_yaml(text, file)
    table, errors, _ = _check(doc, syntax, directory, known_adapters)
    if table is None:
        raise ConfigInvalid(errors, file=file)
    return table


def load_routes(
    path: str | Path,
    *,
    directory: Directory | None = None,
    known_adapters: Iterable[str] | None = None,
) -> RouteTable:
    """Load routes.yaml; raise ConfigInvalid listing every error (warnings go on the table).

    With ``directory``, cross-checks that its systems name existing destinations and that
    ``recipient_system`` conditions name existing systems; with ``known_adapters`` (the
    installed adapter names), that every destination's adapter exists.
    """
    doc, syntax = read_yaml(path)
    table, errors, _ = _check(doc, syntax, directory, known_adapters)
    if table is None:
        raise ConfigInvalid(errors, file=str(path))
    return table


def check_routes(
    routes_path: str | Path,
    directory_path: str | Path,
    *,
    known_adapters: Iterable[str] | None = None,
) -> list[Problem]:
    """Every error and warning of both files, in file order (``lgsp routes check``).

    Errors are plain :class:`~bus.errors.Problem`; warnings are :class:`ConfigWarning`.
    A broken directory does not stop the routes from being checked on their own.
    """
    problems: list[Problem] = []
    directory: Directory | None = None
    try:
        directory = load_directory(directory_path)
    except ConfigInvalid as exc:
        problems.extend(exc.problems)
    doc, syntax = read_yaml(routes_path)
    _, errors, warnings = _check(doc, syntax, directory, known_adapters)
    return [*problems, *sort_problems([*errors, *warnings])]


def explain(
    facts: RoutingFacts,
    table: RouteTable,
    directory: DirectoryView,
    *,
    on: date | None = None,
) -> list[str]:
    """What :func:`bus.routing.route` does with ``facts``, step by step (``lgsp routes explain``).

    Never raises for a refusal: the refusal is the last line, since explaining it is the
    point of the command.
    """
    lines: list[str] = []
    try:
        decision = route(facts, table, directory, on=on, explain=lines)
    except LgspError as exc:
        lines.append(f"result: refused with {exc.code}: {exc.message}")
        return lines
    count = len(decision.deliveries)
    lines.append(f"result: {count} deliver{'y' if count == 1 else 'ies'}")
    for delivery in decision.deliveries:
        kind = "copy" if delivery.copy else "delivery"
        target = delivery.recipient
        if delivery.effective_recipient != delivery.recipient:
            target = f"{delivery.recipient} (now {delivery.effective_recipient})"
        lines.append(f"  {kind} for {target} -> {delivery.destination} [{delivery.rule}]")
    return lines

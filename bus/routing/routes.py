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

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from bus.directory import (
    Directory,
    YamlDocument,
    did_you_mean,
    load_directory,
    parse_yaml,
    read_yaml,
    schema_problems,
    sort_problems,
)
from bus.errors import ConfigInvalid, LgspError, Problem
from bus.routing import (
    REFUSAL_CODES,
    CodeMatch,
    Defaults,
    Destination,
    DirectoryView,
    Match,
    Refusal,
    RetryPolicy,
    RouteTable,
    RoutingFacts,
    Rule,
    normalize_status_code,
    route,
)

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

_SECRET_KEY: Final = re.compile(r"secret|passw|token|api_?key|access_?key|private", re.IGNORECASE)


@dataclass
class ConfigWarning(Problem):
    """A finding that does not stop the bus from loading the file."""

    def __str__(self) -> str:
        return f"warning: {super().__str__()}"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _code_match(spec: Any) -> CodeMatch:
    if isinstance(spec, str | list):
        return CodeMatch(exact=frozenset(_listed(spec)))
    if not isinstance(spec, dict):
        raise TypeError("not a code condition")
    exact, prefix, pattern = spec.get("exact"), spec.get("prefix"), spec.get("pattern")
    return CodeMatch(
        exact=frozenset(_listed(exact)) if exact is not None else frozenset(),
        prefixes=tuple(_listed(prefix)) if prefix is not None else (),
        pattern=re.compile(pattern) if pattern is not None else None,
    )


def _optional_set(spec: Mapping[str, Any], key: str) -> frozenset[Any] | None:
    value = spec.get(key)
    return None if value is None else frozenset(_listed(value))


def _match(spec: Any) -> Match:
    """Build a Match from schema-valid data; raises on malformed data (callers decide)."""
    if spec is None:
        return Match()
    if not isinstance(spec, dict):
        raise TypeError("match must be a mapping")
    statuses = spec.get("status_code")
    return Match(
        kind=spec.get("kind"),
        sender=_code_match(spec["sender"]) if "sender" in spec else None,
        recipient=_code_match(spec["recipient"]) if "recipient" in spec else None,
        business=_optional_set(spec, "business"),
        document_type=_optional_set(spec, "document_type"),
        priority=_optional_set(spec, "priority"),
        status_code=(
            None
            if statuses is None
            else frozenset(normalize_status_code(s) or "" for s in _listed(statuses))
        ),
        recipient_hosted=spec.get("recipient_hosted"),
        recipient_system=_optional_set(spec, "recipient_system"),
    )


def _retry(spec: Any, base: RetryPolicy) -> RetryPolicy:
    if not isinstance(spec, dict):
        return base
    return RetryPolicy(
        attempts=spec.get("attempts", base.attempts),
        first_delay_s=spec.get("first_delay_s", base.first_delay_s),
        max_delay_s=spec.get("max_delay_s", base.max_delay_s),
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rules(doc: YamlDocument) -> Iterator[tuple[int, dict[str, Any]]]:
    rules = _mapping(doc.data).get("rules")
    if isinstance(rules, list):
        for number, rule in enumerate(rules):
            if isinstance(rule, dict):
                yield number, rule


def _rule_label(rule: Mapping[str, Any], number: int) -> str:
    name = rule.get("name")
    return f"rule {name!r}" if isinstance(name, str) else f"rule #{number + 1}"


class _Checker:
    """The checks a schema cannot express; defensive, since they also run on bad shapes."""

    def __init__(
        self,
        doc: YamlDocument,
        directory: Directory | None,
        known_adapters: Iterable[str] | None,
    ) -> None:
        self.doc = doc
        self.data = _mapping(doc.data)
        self.directory = directory
        self.known_adapters = None if known_adapters is None else sorted(set(known_adapters))
        self.destinations = _mapping(self.data.get("destinations"))
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, path: tuple[str | int, ...], message: str) -> None:
        self.errors.append(self.doc.problem(path, message))

    def warn(self, path: tuple[str | int, ...], message: str) -> None:
        p = self.doc.problem(path, message)
        self.warnings.append(ConfigWarning(p.message, file=p.file, line=p.line, path=p.path))

    def run(self) -> None:
        self.check_destinations()
        self.check_defaults()
        self.check_rules()
        self.check_shadowing()
        self.check_directory()

    def destination_ref(self, path: tuple[str | int, ...], name: Any, what: str) -> None:
        if isinstance(name, str) and name not in self.destinations:
            self.error(
                path,
                f"{what} names unknown destination {name!r}{did_you_mean(name, self.destinations)}",
            )

    def check_retry(self, path: tuple[str | int, ...], spec: Any, base: RetryPolicy) -> None:
        policy = _retry(spec, base)
        numbers = (int, float)
        if (
            isinstance(policy.first_delay_s, numbers)
            and isinstance(policy.max_delay_s, numbers)
            and policy.max_delay_s < policy.first_delay_s
        ):
            self.error(
                path,
                f"max_delay_s ({policy.max_delay_s}) is less than first_delay_s"
                f" ({policy.first_delay_s})",
            )

    def default_retry(self) -> RetryPolicy:
        spec = _mapping(self.data.get("defaults")).get("retry")
        try:
            return _retry(spec, RetryPolicy())
        except TypeError:
            return RetryPolicy()

    def check_destinations(self) -> None:
        base = self.default_retry()
        for name, spec in self.destinations.items():
            if not isinstance(spec, dict):
                continue
            adapter = spec.get("adapter")
            if (
                self.known_adapters is not None
                and isinstance(adapter, str)
                and adapter not in self.known_adapters
            ):
                hint = did_you_mean(adapter, self.known_adapters)
                known = ", ".join(self.known_adapters) or "none"
                self.error(
                    ("destinations", name, "adapter"),
                    f"destination {name!r} uses adapter {adapter!r}, which is not installed"
                    f"{hint}" + ("" if hint else f" (installed: {known})"),
                )
            for key, value in _mapping(spec.get("options")).items():
                if _SECRET_KEY.search(key) and not key.endswith("_env") and value:
                    self.warn(
                        ("destinations", name, "options", key),
                        f"option {key!r} looks like a secret written into the file; secrets"
                        f" must come from the environment (write {key}_env: VARIABLE_NAME)",
                    )
            if "retry" in spec:
                self.check_retry(("destinations", name, "retry"), spec["retry"], base)

    def check_defaults(self) -> None:
        defaults = _mapping(self.data.get("defaults"))
        self.destination_ref(("defaults", "outside"), defaults.get("outside"), "defaults.outside")
        if "retry" in defaults:
            self.check_retry(("defaults", "retry"), defaults["retry"], RetryPolicy())

    def check_rules(self) -> None:
        seen: dict[str, int | None] = {}
        for number, rule in _rules(self.doc):
            here: tuple[str | int, ...] = ("rules", number)
            label = _rule_label(rule, number)
            name = rule.get("name")
            if isinstance(name, str):
                if name in seen:
                    self.error(
                        (*here, "name"),
                        f"rule name {name!r} is already used on line {seen[name]}",
                    )
                else:
                    seen[name] = self.doc.line_of((*here, "name"))
            deliver_to = rule.get("deliver_to")
            self.destination_ref((*here, "deliver_to"), deliver_to, f"{label} deliver_to")
            copy_to = rule.get("copy_to")
            if isinstance(copy_to, list):
                named: set[str] = set()
                for index, target in enumerate(copy_to):
                    self.destination_ref((*here, "copy_to", index), target, f"{label} copy_to")
                    if not isinstance(target, str):
                        continue
                    if target in named:
                        self.warn((*here, "copy_to", index), f"{label} copies to {target} twice")
                    elif target == deliver_to:
                        self.warn(
                            (*here, "copy_to", index),
                            f"{label} copies to {target}, which already gets the delivery",
                        )
                    named.add(target)
            refuse = _mapping(rule.get("refuse"))
            code = refuse.get("code")
            if isinstance(code, str) and code not in REFUSAL_CODES:
                hint = did_you_mean(code, REFUSAL_CODES)
                known = "" if hint else f" (one of {', '.join(sorted(REFUSAL_CODES))})"
                self.error(
                    (*here, "refuse", "code"),
                    f"{label} refuses with unknown error code {code!r}{hint}{known}",
                )
            self.check_match(here, label, rule.get("match"))

    def check_match(self, here: tuple[str | int, ...], label: str, match: Any) -> None:
        spec = _mapping(match)
        for who in ("sender", "recipient"):
            pattern = _mapping(spec.get(who)).get("pattern")
            if isinstance(pattern, str):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.error(
                        (*here, "match", who, "pattern"),
                        f"{label}: {who} pattern {pattern!r} is not a valid regular"
                        f" expression: {exc.msg}"
                        + (f" at position {exc.pos}" if exc.pos is not None else ""),
                    )
        systems = spec.get("recipient_system")
        if self.directory is not None and systems is not None:
            known = self.directory.systems
            for index, system in enumerate(_listed(systems)):
                if isinstance(system, str) and system not in known:
                    path = (*here, "match", "recipient_system")
                    if isinstance(systems, list):
                        path = (*path, index)
                    self.error(
                        path,
                        f"{label}: no system {system!r} in the agency directory"
                        f"{did_you_mean(system, known)}",
                    )

    def check_shadowing(self) -> None:
        deciders: list[tuple[str, int | None, Match]] = []
        for number, rule in _rules(self.doc):
            if not ("deliver_to" in rule or "refuse" in rule):
                continue
            try:
                match = _match(rule.get("match"))
            except (TypeError, ValueError, re.error):
                continue
            label = _rule_label(rule, number)
            for earlier, line, earlier_match in deciders:
                if earlier_match.covers(match):
                    why = (
                        "matches every packet"
                        if earlier_match.is_catch_all
                        else "matches every packet this one matches"
                    )
                    still = "; only its copy_to still applies" if rule.get("copy_to") else ""
                    self.warn(
                        ("rules", number),
                        f"{label} is unreachable for its decision: {earlier} (line {line})"
                        f" {why} and decides first{still}",
                    )
                    break
            deciders.append((label, self.doc.line_of(("rules", number)), match))

    def check_directory(self) -> None:
        if self.directory is None:
            return
        used: set[str] = set()
        for system in self.directory.systems.values():
            used.add(system.destination)
            if system.destination not in self.destinations:
                self.errors.append(
                    Problem(
                        f"system {system.name!r} delivers to destination {system.destination!r},"
                        f" which {self.doc.file} does not define"
                        f"{did_you_mean(system.destination, self.destinations)}",
                        file=self.directory.source,
                        line=system.line,
                        path=f"systems/{system.name}/destination",
                    )
                )
        outside = _mapping(self.data.get("defaults")).get("outside")
        if isinstance(outside, str):
            used.add(outside)
        for _, rule in _rules(self.doc):
            used.update(t for t in [rule.get("deliver_to")] if isinstance(t, str))
            copy_to = rule.get("copy_to")
            if isinstance(copy_to, list):
                used.update(t for t in copy_to if isinstance(t, str))
        for name in self.destinations:
            if name not in used:
                self.warn(
                    ("destinations", name),
                    f"destination {name!r} is used by no rule, no directory system and not"
                    " by defaults.outside",
                )


def _build(doc: YamlDocument, warnings: list[Problem]) -> RouteTable:
    data = doc.data
    defaults_spec = _mapping(data.get("defaults"))
    default_retry = _retry(defaults_spec.get("retry"), RetryPolicy())
    destinations = {
        name: Destination(
            name=name,
            adapter=spec["adapter"],
            options=MappingProxyType(dict(_mapping(spec.get("options")))),
            retry=_retry(spec["retry"], default_retry) if "retry" in spec else None,
            description=spec.get("description", ""),
            line=doc.line_of(("destinations", name)),
        )
        for name, spec in _mapping(data.get("destinations")).items()
    }
    rules = []
    for number, spec in _rules(doc):
        refuse = spec.get("refuse")
        rules.append(
            Rule(
                name=spec["name"],
                match=_match(spec.get("match")),
                deliver_to=spec.get("deliver_to"),
                copy_to=tuple(dict.fromkeys(spec.get("copy_to") or ())),
                refuse=Refusal(refuse["code"], refuse["message"]) if refuse else None,
                description=spec.get("description", ""),
                line=doc.line_of(("rules", number)),
            )
        )
    return RouteTable(
        destinations=MappingProxyType(destinations),
        rules=tuple(rules),
        defaults=Defaults(outside=defaults_spec.get("outside"), retry=default_retry,
                          recall_follows_original=bool(
                              defaults_spec.get("recall_follows_original", False))),
        source=doc.file,
        warnings=tuple(warnings),
    )


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

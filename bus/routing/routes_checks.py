"""The checks of routes.yaml that its JSON Schema cannot express (see :mod:`bus.routing.routes`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from bus.directory import Directory, YamlDocument, did_you_mean
from bus.errors import Problem
from bus.routing import REFUSAL_CODES, Match, RetryPolicy
from bus.routing.routes_build import _listed, _mapping, _match, _retry, _rule_label, _rules

_SECRET_KEY: Final = re.compile(r"secret|passw|token|api_?key|access_?key|private", re.IGNORECASE)


@dataclass
class ConfigWarning(Problem):
    """A finding that does not stop the bus from loading the file."""

    def __str__(self) -> str:
        return f"warning: {super().__str__()}"

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

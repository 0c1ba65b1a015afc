"""routes.yaml data → typed table: the builders the loader and its checks share."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from bus.directory import YamlDocument
from bus.errors import Problem
from bus.routing import (
    CodeMatch,
    Defaults,
    Destination,
    Match,
    Refusal,
    RetryPolicy,
    RouteTable,
    Rule,
    normalize_status_code,
)


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

"""``lgsp adapters list``: every installed adapter, its capabilities and its options."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bus import errors


def describe_adapters() -> list[dict[str, Any]]:
    """Every installed adapter as ``lgsp adapters list`` shows it, one that fails to load
    included: an operator must see the broken package beside the working ones."""
    from bus.registry import adapter_class, available

    described: list[dict[str, Any]] = []
    for name, ep in sorted(available().items()):
        dist = getattr(ep, "dist", None)
        entry: dict[str, Any] = {
            "name": name,
            "distribution": None if dist is None else {"name": dist.name,
                                                       "version": dist.version},
            "entry_point": ep.value,
            "class": None, "kind": None, "capabilities": [], "config_schema": None,
            "error": None, "warnings": [],
        }
        described.append(entry)
        try:
            cls = adapter_class(name)
        except errors.ConfigInvalid as exc:
            entry["error"] = "; ".join(p.message for p in exc.problems) or str(exc)
            continue
        entry["class"] = f"{cls.__module__}:{cls.__qualname__}"
        entry["kind"] = cls.kind
        entry["capabilities"] = sorted(str(c) for c in cls.capabilities)
        if cls.kind != name:
            entry["warnings"].append(f"the class declares kind {cls.kind!r} but is "
                                     f"registered as {name!r}; logs will not match routes.yaml")
        try:
            entry["config_schema"] = cls.Config.model_json_schema()
        except Exception as exc:
            entry["error"] = (f"configuration schema cannot be generated: "
                              f"{type(exc).__name__}: {exc}")
    return described


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_schema_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_schema_type(schema['items'])}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_schema_type(schema['additionalProperties'])}"
    return str(kind)


_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
           ("exclusiveMaximum", "<"), ("minLength", "length >="), ("maxLength", "length <="),
           ("pattern", "matches"))


def _option_lines(schema: dict[str, Any]) -> list[str]:
    """The options of a configuration schema, one line each, as an administrator reads
    them while writing routes.yaml; ``--json`` has the complete schema."""
    properties = schema.get("properties") or {}
    if not properties:
        return ["    (no options)"]
    required = set(schema.get("required") or ())
    width = max(len(name) for name in properties)
    lines = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        words = [_schema_type(spec)]
        words += [f"{sign} {spec[key]}" for key, sign in _BOUNDS if key in spec]
        if name in required:
            words.append("required")
        elif "default" in spec:
            words.append(f"default {json.dumps(spec['default'], ensure_ascii=False)}")
        else:
            words.append("optional")
        line = f"    {name:<{width}}  {', '.join(words)}"
        if spec.get("description"):
            line += f" — {spec['description']}"
        lines.append(line)
    if schema.get("additionalProperties") is False:
        lines.append("    (no other options are accepted)")
    return lines


def cmd_adapters_list(args: argparse.Namespace) -> int:
    described = describe_adapters()
    broken = sum(1 for entry in described if entry["error"])
    if args.json:
        print(json.dumps(described, indent=2, ensure_ascii=False))
        return 1 if broken else 0
    for entry in described:
        dist = entry["distribution"]
        origin = f"{dist['name']} {dist['version']}" if dist else "unknown distribution"
        print(f"{entry['name']} ({origin})")
        print(f"  entry point   {entry['entry_point']}")
        if entry["class"]:
            print(f"  class         {entry['class']}")
            print(f"  capabilities  {', '.join(entry['capabilities']) or '(none)'}")
        for warning in entry["warnings"]:
            print(f"  warning       {warning}")
        if entry["error"]:
            print(f"  error         {entry['error']}")
        if entry["config_schema"] is not None:
            print("  options")
            for line in _option_lines(entry["config_schema"]):
                print(line)
        print()
    count = len(described)
    print(f"{count} adapter{'s' if count != 1 else ''} installed"
          + (f", {broken} cannot be loaded" if broken else ""))
    return 1 if broken else 0

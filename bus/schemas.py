"""The project's edXML schemas, compiled once.

QCVN 102:2016 publishes no XSD, so the bus ships its own (``schemas/edxml/``). Compiling
them must not become a way to make the bus read arbitrary files or reach the network: a
schema may only include the ``.xsd`` files sitting next to it, and every byte is read by
this module, never by libxml2's own loaders.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lxml import etree

from bus import xmlsafe
from bus.errors import ConfigInvalid, Problem

__all__ = [
    "EDXML_NS",
    "EdxmlSchemas",
    "default_schemas",
    "default_schemas_dir",
    "load_edxml_schemas",
]

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"

_ENTRY_FILES = ("edoc.xsd", "status.xsd")
_ENV_DIR = "LGSP_SCHEMAS_DIR"
_REFUSED_DOC = b"<refused-by-lgsp-bus/>"
# libxml2 cannot compile schemas in two threads at once: the first concurrent requests
# of a fresh process failed with internal schema-parser errors without this lock.
_COMPILE_LOCK = threading.Lock()


@dataclass(frozen=True)
class EdxmlSchemas:
    """Both compiled schemas plus the version they were released as.

    Validate with ``schema.validate(tree)`` or ``schema.assertValid(tree)`` and read the
    errors from the result or the raised exception: ``schema.error_log`` is shared by all
    threads using the same object.
    """

    edoc: etree.XMLSchema
    status: etree.XMLSchema
    version: str


def default_schemas_dir() -> Path:
    """The folder the running bus uses; an environment override eases packaging and tests."""
    override = os.environ.get(_ENV_DIR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "schemas" / "edxml"


class _FolderResolver(etree.Resolver):
    """Serves ``xs:include`` from one folder and nothing else.

    A refused location is answered with a document that is not a schema, so compilation
    fails instead of libxml2 falling back to its own file or network loader.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory
        self.refused: list[str] = []
        self.served: list[Path] = []

    def local_file(self, url: str) -> Path | None:
        """The file ``url`` names if it is a ``.xsd`` directly in the folder, else None."""
        parts = urlsplit(url)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                return None
            raw = unquote(parts.path)
        elif parts.scheme == "" and not parts.netloc:
            raw = url
        else:
            return None
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self._directory / candidate
        try:
            candidate = candidate.resolve(strict=True)
        except OSError:
            return None
        if candidate.parent != self._directory or candidate.suffix != ".xsd":
            return None
        return candidate if candidate.is_file() else None

    # lxml-stubs 0.5 omit the ``context`` argument lxml passes.
    def resolve(  # type: ignore[override]
        self, system_url: str | None, public_id: str | None, context: Any
    ) -> Any:
        target = self.local_file(system_url) if system_url else None
        if target is None:
            self.refused.append(system_url or f"public id {public_id!r}")
            return self.resolve_string(_REFUSED_DOC, context, base_url=None)
        self.served.append(target)
        return self.resolve_string(target.read_bytes(), context, base_url=str(target))


def _schema_parser(resolver: _FolderResolver) -> etree.XMLParser:
    """The bus's hardened parser, with the one resolver that serves sibling ``.xsd`` files
    (and refuses everything else) in place of the one that refuses all."""
    return xmlsafe.hardened_parser(remove_pis=False, resolver=resolver)


def _compile(path: Path, directory: Path) -> tuple[etree.XMLSchema, list[str]]:
    resolver = _FolderResolver(directory)
    parser = _schema_parser(resolver)
    if resolver.local_file(str(path)) is None:
        raise ConfigInvalid(
            [Problem(f"schema must be a regular .xsd file inside {directory}", file=str(path))]
        )
    try:
        root = xmlsafe.fromstring(path.read_bytes(), parser, base_url=str(path))
    except OSError as exc:
        raise ConfigInvalid([Problem(f"cannot read schema: {exc}", file=str(path))]) from exc
    except etree.XMLSyntaxError as exc:
        raise ConfigInvalid(
            [Problem(f"schema is not well-formed XML: {exc.msg}", file=str(path), line=exc.lineno)]
        ) from exc
    try:
        schema = etree.XMLSchema(etree.ElementTree(root))
    except etree.XMLSchemaParseError as exc:
        problems = [
            Problem(
                f"included schema location refused (only .xsd files in {directory}): {url}",
                file=str(path),
            )
            for url in resolver.refused
        ] or [
            Problem(entry.message, file=entry.filename or str(path), line=entry.line)
            for entry in exc.error_log
        ]
        if not problems:
            problems = [Problem(f"schema does not compile: {exc}", file=str(path))]
        raise ConfigInvalid(problems) from exc
    versions = [str(root.get("version") or "")]
    versions.extend(_version_of(included) for included in resolver.served)
    return schema, versions


def _version_of(path: Path) -> str:
    try:
        root = xmlsafe.parse_trusted(path.read_bytes())
    except (OSError, etree.XMLSyntaxError):
        return ""
    return str(root.get("version") or "")


def load_edxml_schemas(directory: Path | None = None) -> EdxmlSchemas:
    """Compile ``edoc.xsd`` and ``status.xsd`` from ``directory`` (default: the bus's own).

    All files must carry the same ``version`` attribute: a half-updated folder would
    otherwise validate the two packet kinds by different rules without anyone noticing.
    """
    folder = (directory if directory is not None else default_schemas_dir()).resolve()
    if not folder.is_dir():
        raise ConfigInvalid([Problem("edXML schema folder not found", file=str(folder))])
    compiled: dict[str, etree.XMLSchema] = {}
    versions: dict[str, list[str]] = {}
    with _COMPILE_LOCK:
        for name in _ENTRY_FILES:
            compiled[name], versions[name] = _compile(folder / name, folder)
    seen = {v for vs in versions.values() for v in vs}
    if len(seen) != 1 or "" in seen:
        detail = "; ".join(
            f"{name}: {', '.join(v or '(none)' for v in vs)}" for name, vs in versions.items()
        )
        raise ConfigInvalid(
            [
                Problem(
                    "edXML schema files must all carry the same non-empty version attribute "
                    f"on xs:schema (found {detail})",
                    file=str(folder),
                )
            ]
        )
    return EdxmlSchemas(
        edoc=compiled["edoc.xsd"], status=compiled["status.xsd"], version=seen.pop()
    )


@functools.lru_cache(maxsize=1)
def default_schemas() -> EdxmlSchemas:
    """Compiled once per process: compiling costs milliseconds, validating microseconds."""
    return load_edxml_schemas()

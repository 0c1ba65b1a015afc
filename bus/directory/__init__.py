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
  A code split between several new ones resolves to its ``split_route`` or is refused
  with AmbiguousSuccessor naming the candidates.

An old code may stay listed as an agency: before its successor takes effect it is routed
to its own system, after that to its successor's.

Two files make it: the province's YAML (config/directory.yaml, checked against
``schemas/directory.schema.json`` and then semantically; every problem is collected with
file, line and path before :class:`~bus.errors.ConfigInvalid` is raised) and, under it, the
axis layer (config/directory.axis.csv, :mod:`bus.directory.layer`) that ``lgsp directory
sync`` keeps in step with the national axis. Modules: :mod:`.yamlfile` (YAML with lines,
schema messages; shared with :mod:`bus.routing.routes`, which depends on this package,
never the other way round), :mod:`.model`, :mod:`.loader`, :mod:`.layer`, :mod:`.sync`.
"""

from __future__ import annotations

from bus.directory.loader import DIRECTORY_SCHEMA, directory_from_document, load_directory
from bus.directory.model import Agency, Directory, Successor, System, directory_problems
from bus.directory.yamlfile import (
    SCHEMA_DIR,
    YamlDocument,
    YamlPath,
    did_you_mean,
    format_path,
    parse_yaml,
    read_yaml,
    schema_problems,
    schema_validator,
    sort_problems,
)

__all__ = [
    "DIRECTORY_SCHEMA", "SCHEMA_DIR", "Agency", "Directory", "Successor", "System",
    "YamlDocument", "YamlPath", "did_you_mean", "directory_from_document",
    "directory_problems", "format_path", "load_directory", "parse_yaml", "read_yaml",
    "schema_problems", "schema_validator", "sort_problems",
]

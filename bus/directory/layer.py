"""The axis layer: the national axis's agency list, kept beside the province's directory.

``config/directory.axis.csv`` (next to ``directory.yaml``, same stem) holds what
``lgsp directory sync`` last applied from the axis: one agency per row. It is written only
by that command, in one atomic replace, and it sits *under* directory.yaml: a code the
province lists there is the province's, whatever the axis says (the sync diff shows where
they disagree). The layer's agencies have no system, so they are never hosted here:
routing sends them to routes.yaml's ``defaults.outside`` as before, but the directory now
knows their names and parents.

CSV rather than YAML because the layer is national (~100,000 rows): read through the C
``csv`` module it loads in a fraction of a second where YAML needs seconds, and it is still
a file an administrator can open, grep and diff.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bus.directory.model import Agency
from bus.errors import Problem

COLUMNS: Final = ("code", "name", "parent", "center", "mail")
_MAX_ID: Final = 35


@dataclass(frozen=True, slots=True)
class AxisUnit:
    """One agency as the axis lists it (getAgenciesList / QD20 / getSynchronizeUnit merged).

    ``center`` is the hub or province system the axis files it under (getSynchronizeUnit's
    centerCode): a change of it is a move to another system.
    """

    code: str
    name: str
    parent: str = ""
    center: str = ""
    mail: str = ""

    def row(self) -> tuple[str, str, str, str, str]:
        return (self.code, self.name, self.parent, self.center, self.mail)


def axis_layer_path(directory_path: str | Path) -> Path:
    path = Path(directory_path)
    return path.with_name(f"{path.stem}.axis.csv")


_ORGAN_ID: Final = re.compile(r"[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*")
Row = tuple[str, str, str, str, str]


def _id_ok(value: str) -> bool:
    return len(value) <= _MAX_ID and _ORGAN_ID.fullmatch(value) is not None


def read_rows(path: Path) -> tuple[list[tuple[Row, int]], list[Problem]]:
    """Every well-formed row with its line; a missing file is an empty layer."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(f"cannot read the axis layer: {exc}", file=file)]
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return [], []
    if tuple(header) != COLUMNS:
        return [], [Problem(f"the first row must be {','.join(COLUMNS)} (found "
                            f"{','.join(header)[:80]}); the file is written by "
                            "`lgsp directory sync --apply`", file=file, line=1)]
    rows: list[tuple[Row, int]] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    intern = sys.intern
    for row in reader:
        line = reader.line_num
        if len(row) != len(COLUMNS):
            problems.append(Problem(f"{len(row)} columns, expected {len(COLUMNS)}",
                                    file=file, line=line))
            continue
        code, name, parent, center, mail = row
        if not _id_ok(code):
            problems.append(Problem(f"{code!r} is not an organisation identifier",
                                    file=file, line=line, path=f"agencies/{code}"))
            continue
        if parent and not _id_ok(parent):
            problems.append(Problem(f"parent {parent!r} is not an organisation identifier",
                                    file=file, line=line, path=f"agencies/{code}/parent"))
            continue
        if not name:
            problems.append(Problem(f"agency {code} has no name", file=file, line=line,
                                    path=f"agencies/{code}/name"))
            continue
        if code in seen:
            problems.append(Problem(f"agency {code} is listed twice (first on line "
                                    f"{seen[code]})", file=file, line=line))
            continue
        seen[code] = line
        rows.append(((code, name, intern(parent), intern(center), mail), line))
    return rows, problems


def read_units(path: Path) -> tuple[list[tuple[AxisUnit, int]], list[Problem]]:
    """The layer as the sync command compares it: every column, with its line."""
    rows, problems = read_rows(path)
    return [(AxisUnit(*row), line) for row, line in rows], problems


def read_axis_layer(path: Path) -> tuple[dict[str, Agency], list[Problem]]:
    """The layer as directory agencies (no system): code → Agency.

    Well-formed rows take one tight loop; any other row sends the whole file through
    :func:`read_rows`, which says what is wrong with each.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError):
        return {}, read_rows(path)[1]
    reader = csv.reader(io.StringIO(text))
    if next(reader, None) not in (None, list(COLUMNS)):
        return {}, read_rows(path)[1]
    agencies: dict[str, Agency] = {}
    intern, ok = sys.intern, _ORGAN_ID.fullmatch
    for row in reader:
        if len(row) != len(COLUMNS):
            return {}, read_rows(path)[1]
        code, name, parent = row[0], row[1], row[2]
        if (len(code) > _MAX_ID or ok(code) is None or not name or code in agencies
                or (parent and (len(parent) > _MAX_ID or ok(parent) is None))):
            return {}, read_rows(path)[1]
        agencies[code] = Agency(code, name, None, intern(parent) if parent else None,
                                reader.line_num, file)
    return agencies, []


def write_units(path: Path, units: Iterable[AxisUnit]) -> int:
    """Replace the layer in one atomic rename (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(COLUMNS)
            for unit in sorted(units, key=lambda u: u.code):
                writer.writerow(unit.row())
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count

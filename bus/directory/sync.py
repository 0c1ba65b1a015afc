"""Keeping the axis layer in step with the national axis: a diff, reviewed, then applied.

``lgsp directory sync`` never changes the directory on its own. It fetches the axis's list
(getAgenciesList, completed by getAgenciesListQD20 and getSynchronizeUnit where the axis
answers them), compares it with the axis layer in force, and saves a *change set* — the
diff for the administrator and the layer it would become — under
``<data_dir>/directory-sync/``. ``--apply ID`` then replaces the layer in one atomic rename;
the running bus sees the new file and swaps its directory whole (bus.reloader). A change
set prepared against another layer than the one in force is refused, so nothing reviewed
on Monday silently undoes Tuesday's apply.

The province's own file is never written. Where the axis disagrees with an agency the
province lists in directory.yaml (another name, parent, or the axis deleted it), the change
set shows a conflict; directory.yaml keeps winning until the administrator edits it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from bus import errors
from bus.directory.layer import AxisUnit, axis_layer_path, read_units, write_units
from bus.directory.model import Agency

KINDS: Final = ("new", "renamed", "moved", "removed", "mail")
_ID_CHARS: Final = frozenset("0123456789abcdefghijklmnopqrstuvwxyz-")


@dataclass(frozen=True)
class Change:
    kind: str
    code: str
    text: str


@dataclass
class ChangeSet:
    """One prepared sync: what the layer would become and how that differs from now."""

    id: str
    created_at: float
    source: str
    base: str
    """SHA-256 of the layer file it was prepared against ("" when there was none)."""
    target: str
    state: str = "pending"
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    units: int = 0
    applied_at: float | None = None
    applied_by: str = ""

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for change in self.changes:
            out[change.kind] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChangeSet:
        fields = dict(data)
        fields["changes"] = [Change(**c) for c in fields.get("changes", [])]
        fields["conflicts"] = [Change(**c) for c in fields.get("conflicts", [])]
        return cls(**fields)


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


def diff(current: Mapping[str, AxisUnit], fetched: Mapping[str, AxisUnit]) -> list[Change]:
    """What applying ``fetched`` over ``current`` changes, in code order."""
    changes: list[Change] = []
    for code in sorted(set(current) | set(fetched)):
        old, new = current.get(code), fetched.get(code)
        if old is None and new is not None:
            where = f" under {new.parent}" if new.parent else ""
            changes.append(Change("new", code, f"{code} \"{new.name}\"{where}"))
        elif new is None and old is not None:
            changes.append(Change("removed", code, f"{code} \"{old.name}\""))
        elif old is not None and new is not None:
            if old.name != new.name:
                changes.append(Change("renamed", code, f"{code}: \"{old.name}\" -> \"{new.name}\""))
            if old.parent != new.parent:
                changes.append(Change("moved", code, f"{code}: parent {old.parent or '(none)'}"
                                      f" -> {new.parent or '(none)'}"))
            if old.center != new.center:
                changes.append(Change("moved", code, f"{code}: centerCode {old.center or '(none)'}"
                                      f" -> {new.center or '(none)'}"))
            if old.mail != new.mail:
                changes.append(Change("mail", code, f"{code}: mail {old.mail or '(none)'} ->"
                                      f" {new.mail or '(none)'}"))
    return changes


def conflicts(province: Mapping[str, Agency], fetched: Mapping[str, AxisUnit],
              deleted: Iterable[str]) -> list[Change]:
    """Where the axis contradicts directory.yaml; the province's entry stays in force."""
    out: list[Change] = []
    for code in sorted(set(province) & set(fetched)):
        mine, theirs = province[code], fetched[code]
        if mine.name != theirs.name:
            out.append(Change("renamed", code, f"{code}: directory.yaml says \"{mine.name}\","
                              f" the axis \"{theirs.name}\" (directory.yaml is kept)"))
        if theirs.parent and (mine.parent or "") != theirs.parent:
            out.append(Change("moved", code, f"{code}: directory.yaml gives parent"
                              f" {mine.parent or '(none)'}, the axis {theirs.parent}"
                              " (directory.yaml is kept)"))
    for code in sorted(set(deleted) & set(province)):
        out.append(Change("removed", code, f"{code}: the axis deleted it but directory.yaml"
                          " lists it (it stays; remove it or give it a successor there)"))
    return out


class ChangeSets:
    """The change sets of one bus, as files in ``<data_dir>/directory-sync``."""

    def __init__(self, data_dir: Path, directory_path: Path) -> None:
        self.folder = Path(data_dir) / "directory-sync"
        self.layer = axis_layer_path(directory_path)

    def _json(self, set_id: str) -> Path:
        if not set_id or not set(set_id) <= _ID_CHARS:
            raise errors.InvalidRequest(f"{set_id!r} is not a change set id")
        return self.folder / f"{set_id}.json"

    def prepare(self, fetched: Mapping[str, AxisUnit], *, source: str,
                province: Mapping[str, Agency], deleted: Iterable[str] = (),
                notes: Iterable[str] = ()) -> ChangeSet:
        """Compare with the layer in force and save the change set (state pending)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        units, problems = read_units(self.layer)
        if problems:
            raise errors.ConfigInvalid(problems, file=str(self.layer))
        current = {unit.code: unit for unit, _ in units}
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        set_id = f"{stamp}-{os.urandom(3).hex()}"
        target = self.folder / f"{set_id}.csv"
        count = write_units(target, fetched.values())
        change_set = ChangeSet(
            set_id, time.time(), source, file_digest(self.layer), file_digest(target),
            changes=diff(current, fetched), conflicts=conflicts(province, fetched, deleted),
            notes=list(notes), units=count)
        self._save(change_set)
        return change_set

    def _save(self, change_set: ChangeSet) -> None:
        path = self._json(change_set.id)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(change_set.to_json(), out, ensure_ascii=False, indent=1)
        os.replace(tmp, path)

    def discard(self, set_id: str) -> None:
        self._json(set_id).unlink(missing_ok=True)
        (self.folder / f"{set_id}.csv").unlink(missing_ok=True)

    def get(self, set_id: str) -> ChangeSet:
        try:
            data = json.loads(self._json(set_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise errors.NotFound(f"no change set {set_id} in {self.folder} (the data "
                                  "directory's directory-sync folder)") from None
        return ChangeSet.from_json(data)

    def list(self) -> list[ChangeSet]:
        if not self.folder.is_dir():
            return []
        return [self.get(p.stem) for p in sorted(self.folder.glob("*.json"))]

    def latest_pending(self) -> ChangeSet | None:
        pending = [c for c in self.list() if c.state == "pending"]
        return pending[-1] if pending else None

    def reject(self, set_id: str, *, actor: str, note: str = "") -> ChangeSet:
        """Close a pending set unapplied, saying why; it stays listed for the record."""
        change_set = self.get(set_id)
        if change_set.state != "pending":
            raise errors.InvalidRequest(f"change set {set_id} is {change_set.state}, not pending")
        change_set.state, change_set.applied_by = "rejected", actor
        if note:
            change_set.notes.append(f"rejected: {note}")
        self._save(change_set)
        return change_set

    def apply(self, set_id: str, *, actor: str,
              check: Any = None) -> ChangeSet:
        """Replace the layer with the change set's, once; ``check(layer_path)`` may refuse
        (the CLI loads the whole directory with it first) by raising ConfigInvalid."""
        change_set = self.get(set_id)
        if change_set.state != "pending":
            raise errors.InvalidRequest(f"change set {set_id} is {change_set.state}, not pending")
        now = file_digest(self.layer)
        if now != change_set.base:
            raise errors.InvalidRequest(
                f"the axis layer {self.layer} changed since change set {set_id} was prepared;"
                " prepare a new one (`lgsp directory sync --from-axis`) and review it")
        target = self.folder / f"{set_id}.csv"
        if file_digest(target) != change_set.target:
            raise errors.InvalidRequest(f"{target} is not the file change set {set_id} saved")
        if check is not None:
            check(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.layer.name}.", dir=self.layer.parent)
        os.close(fd)
        try:
            shutil.copyfile(target, tmp)
            os.replace(tmp, self.layer)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        change_set.state, change_set.applied_at, change_set.applied_by = \
            "applied", time.time(), actor
        self._save(change_set)
        return change_set

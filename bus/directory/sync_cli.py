"""``lgsp directory sync``: fetch the axis's agencies, prepare a change set, show, apply.

Also the scheduled variant (setting ``directory_sync_interval_s``), which only prepares:
applying stays a person's decision.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog

from bus import errors
from bus.directory.layer import COLUMNS, AxisUnit, read_axis_layer
from bus.directory.loader import is_organ_id, load_directory
from bus.directory.sync import ChangeSet, ChangeSets

if TYPE_CHECKING:
    from bus.app import Bus
    from bus.settings import Settings

log = structlog.get_logger("lgsp.directory.sync")

AXIS_ADAPTER: Final = "national_axis"
_SHOWN: Final = 40


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class Fetched:
    """The axis's units by code, the codes it reported deleted, and what was left out."""

    def __init__(self) -> None:
        self.units: dict[str, AxisUnit] = {}
        self.deleted: set[str] = set()
        self.notes: list[str] = []
        self._code_of: dict[str, str] = {}

    def merge(self, rows: Iterable[dict[str, Any]], operation: str) -> None:
        """Rows of any of the three operations; later ones complete earlier ones.

        ``pid`` is the axis's id of the parent, turned into the parent's code through the
        ids every operation listed so far."""
        rows = list(rows)
        self._code_of.update({str(r.get("id")): str(r.get("code")) for r in rows if r.get("id")})
        code_of = self._code_of
        skipped, added = 0, 0
        for row in rows:
            code = str(row.get("code") or "").strip()
            if not is_organ_id(code):
                skipped += 1
                continue
            if _truthy(row.get("deleted")):
                self.deleted.add(code)
                self.units.pop(code, None)
                continue
            before = self.units.get(code)
            pid = str(row.get("pid") or "")
            parent = code_of.get(pid, "") if pid else ""
            if parent == code or not (parent == "" or is_organ_id(parent)):
                parent = ""
            name = str(row.get("name") or "").strip() or (before.name if before else code)
            unit = AxisUnit(
                code, name,
                parent or (before.parent if before else ""),
                str(row.get("centerCode") or "") or (before.center if before else ""),
                str(row.get("mail") or "") or (before.mail if before else ""))
            if before is None:
                added += 1
            self.units[code] = unit
        if skipped:
            self.notes.append(f"{operation}: {skipped} row(s) without a valid code left out")
        self.notes.append(f"{operation}: {len(rows)} row(s), {added} not in the operations"
                          " before it")


def fetch_from_axis(adapter: Any) -> Fetched:
    """getAgenciesList (required), then QD20 and getSynchronizeUnit where the axis has them."""
    from bus.adapter import Refuse, Retry

    fetched = Fetched()
    fetched.merge((a.to_json() for a in adapter.agencies()), "getAgenciesList")
    for operation, call in (("getAgenciesListQD20", adapter.agencies_qd20),
                            ("getSynchronizeUnit", adapter.synchronize_units)):
        try:
            rows = call()
        except (Retry, Refuse) as exc:
            fetched.notes.append(f"{operation} not used: {exc}")
            continue
        fetched.merge(rows, operation)
    return fetched


def fetch_from_file(path: Path) -> Fetched:
    """A saved axis answer (JSON: the answer, or its ``data`` list) or a layer-format CSV."""
    fetched = Fetched()
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        if rows and tuple(rows[0]) != COLUMNS:
            raise errors.InvalidRequest(f"{path}: the columns must be {','.join(COLUMNS)}")
        fetched.merge(({"code": r["code"], "name": r["name"], "mail": r["mail"],
                        "centerCode": r["center"], "id": r["code"],
                        "pid": r["parent"]} for r in rows), path.name)
        return fetched
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise errors.InvalidRequest(f"{path} is neither CSV nor JSON: {exc}") from None
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise errors.InvalidRequest(f"{path}: expected a list of agencies (or an axis answer "
                                    "whose data is one)")
    fetched.merge(items, path.name)
    return fetched


def axis_adapter(settings: Settings, name: str | None) -> Any:
    """The adapter of the routes.yaml destination that reaches the national axis."""
    from bus.registry import build_adapter
    from bus.routing.routes import load_routes

    directory = load_directory(settings.directory)
    table = load_routes(settings.routes, directory=directory)
    axis = [d for d in table.destinations.values() if d.adapter == AXIS_ADAPTER]
    if name is not None:
        axis = [d for d in axis if d.name == name]
    if len(axis) != 1:
        found = ", ".join(d.name for d in axis) or "none"
        raise errors.InvalidRequest(
            f"routes.yaml must have exactly one destination with adapter {AXIS_ADAPTER}"
            f"{f' named {name}' if name else ''} (found: {found}); name it: --from-axis NAME")
    return build_adapter(axis[0], source=str(settings.routes))


def prepare(settings: Settings, *, axis: str | None = None,
            file: Path | None = None) -> ChangeSet | None:
    """Fetch and save a change set; None when the layer already says what the axis says
    (conflicts alone change nothing to apply: each change set lists those in force)."""
    if file is not None:
        fetched, source = fetch_from_file(file), f"file:{file}"
    else:
        adapter = axis_adapter(settings, axis)
        adapter.open()
        try:
            fetched = fetch_from_axis(adapter)
        finally:
            adapter.close()
        source = f"axis:{adapter.name}"
    province = load_directory(settings.directory, layer={}).agencies
    sets = ChangeSets(settings.data_dir, settings.directory)
    change_set = sets.prepare(fetched.units, source=source, province=province,
                              deleted=fetched.deleted, notes=fetched.notes)
    if not change_set.changes:
        sets.discard(change_set.id)
        return None
    return change_set


def _check_layer(settings: Settings) -> Callable[[Path], None]:
    def check(layer_path: Path) -> None:
        layer, problems = read_axis_layer(layer_path)
        if problems:
            raise errors.ConfigInvalid(problems, file=str(layer_path))
        load_directory(settings.directory, layer=layer)
    return check


def apply(settings: Settings, set_id: str, actor: str) -> ChangeSet:
    sets = ChangeSets(settings.data_dir, settings.directory)
    return sets.apply(set_id, actor=actor, check=_check_layer(settings))


def summary(change_set: ChangeSet) -> str:
    counts = ", ".join(f"{kind} {n}" for kind, n in change_set.counts().items())
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(change_set.created_at))
    return (f"change set {change_set.id}  {change_set.state}  {when}  from {change_set.source}\n"
            f"  {counts}; {change_set.units} unit(s) in the new layer;"
            f" {len(change_set.conflicts)} conflict(s) with directory.yaml")


def show(change_set: ChangeSet, *, everything: bool = False) -> str:
    lines = [summary(change_set)]
    if change_set.applied_by:
        lines.append(f"  {change_set.state} by {change_set.applied_by}")
    lines += [f"  note: {n}" for n in change_set.notes]
    if change_set.conflicts:
        lines.append("conflicts (directory.yaml wins; edit it if the axis is right):")
        lines += [f"  {c.kind:8s} {c.text}" for c in change_set.conflicts]
    for kind in ("new", "renamed", "moved", "removed", "mail"):
        of_kind = [c for c in change_set.changes if c.kind == kind]
        if not of_kind:
            continue
        lines.append(f"{kind} ({len(of_kind)}):")
        shown = of_kind if everything else of_kind[:_SHOWN]
        lines += [f"  {c.text}" for c in shown]
        if len(shown) < len(of_kind):
            lines.append(f"  … {len(of_kind) - len(shown)} more (--all)")
    return "\n".join(lines)


class SyncSchedule(threading.Thread):
    """Prepares a change set every ``directory_sync_interval_s``; never applies one.

    A set identical to the newest pending one is not kept twice, so an administrator
    who is away for a week finds one set to review, not a hundred."""

    def __init__(self, bus: Bus) -> None:
        super().__init__(name="lgsp-directory-sync", daemon=True)
        self.bus = bus
        self.stopping = threading.Event()

    def run_once(self) -> ChangeSet | None:
        settings = self.bus.settings
        sets = ChangeSets(settings.data_dir, settings.directory)
        earlier = sets.latest_pending()
        change_set = prepare(settings)
        if change_set is not None and earlier is not None and \
                earlier.target == change_set.target and earlier.base == change_set.base:
            sets.discard(change_set.id)
            return earlier
        return change_set

    def run(self) -> None:
        interval = float(getattr(self.bus.settings, "directory_sync_interval_s", 0) or 0)
        while interval > 0 and not self.stopping.wait(interval):
            try:
                found = self.run_once()
            except Exception as exc:
                log.warning("directory.sync_failed", error=str(exc))
                continue
            if found is not None:
                log.info("directory.sync_prepared", change_set=found.id,
                         **found.counts(), conflicts=len(found.conflicts))

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
        return not self.is_alive()


# ---- the command line ------------------------------------------------------------------

def _settings(args: argparse.Namespace, *, must_exist: bool = True) -> Settings:
    """The bus's settings; change sets live in its data directory, which must exist (a
    typo in --data-dir would otherwise show an empty list or a new folder)."""
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    used = settings.data_dir.is_dir() and (
        bool(settings.database_url) or (settings.data_dir / "lgsp.db").is_file()
        or (settings.data_dir / "directory-sync").is_dir())
    if must_exist and not used:
        raise errors.ConfigInvalid([errors.Problem(
            f"data directory {settings.data_dir.resolve()} is not one `lgsp serve` or a sync "
            "has used: give the data directory of the bus (--data-dir or --config)")])
    return settings


def cmd_sync(args: argparse.Namespace) -> int:
    settings = _settings(args, must_exist=bool(args.apply))  # preparing may be the first use
    try:
        if args.apply:
            done = apply(settings, args.apply, f"operator:{getpass.getuser()}")
            print(summary(done))
            print(f"applied: {ChangeSets(settings.data_dir, settings.directory).layer} replaced;"
                  " a running bus picks it up within reload_check_s (or on SIGHUP)")
            return 0
        if args.from_axis is None and args.file is None:
            print("say where from: --from-axis [DESTINATION] or --file F"
                  " (or: sync list, sync show ID)")
            return 2
        axis = args.from_axis or None
        change_set = prepare(settings, axis=axis, file=Path(args.file) if args.file else None)
    except errors.LgspError as exc:
        print(f"{exc.code}: {exc.message}")
        for problem in getattr(exc, "problems", []):
            print(f"  {problem}")
        return 1
    if change_set is None:
        print("the axis layer already matches; no change set prepared")
        return 0
    print(summary(change_set))
    print(f"review: lgsp directory sync show {change_set.id}\n"
          f"apply:  lgsp directory sync --apply {change_set.id}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    change_set = ChangeSets(settings.data_dir, settings.directory).get(args.id)
    print(show(change_set, everything=args.all))
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    settings = _settings(args)
    change_set = ChangeSets(settings.data_dir, settings.directory).reject(
        args.id, actor=f"operator:{getpass.getuser()}", note=args.note or "")
    print(summary(change_set))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    sets = ChangeSets(settings.data_dir, settings.directory).list()
    for change_set in sets:
        print(summary(change_set))
    print(f"{len(sets)} change set(s)")
    return 0


def add_cli(dsub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``lgsp directory sync [--from-axis [DEST] | --file F] [--apply ID]``,
    ``sync show|reject|list``."""
    sync = dsub.add_parser("sync", help="bring the axis layer in step with the national axis:"
                           " prepare a change set, review it, apply it")
    common(sync)
    sync.add_argument("--from-axis", nargs="?", const="", metavar="DESTINATION",
                      help="fetch from the routes.yaml destination using the national_axis"
                      " adapter (name it when there are several)")
    sync.add_argument("--file", help="a saved getAgenciesList answer (JSON) or a layer CSV")
    sync.add_argument("--apply", metavar="ID", help="apply a reviewed change set")
    sync.set_defaults(func=cmd_sync)
    ssub = sync.add_subparsers(dest="sync_command", required=False)
    showing = ssub.add_parser("show", help="a change set: conflicts, then every change")
    common(showing)
    showing.add_argument("id")
    showing.add_argument("--all", action="store_true", help="every change, not the first 40")
    showing.set_defaults(func=cmd_show)
    rejecting = ssub.add_parser("reject", help="close a change set without applying it")
    common(rejecting)
    rejecting.add_argument("id")
    rejecting.add_argument("--note", help="why (kept with the change set)")
    rejecting.set_defaults(func=cmd_reject)
    listing = ssub.add_parser("list", help="change sets, oldest first")
    common(listing)
    listing.set_defaults(func=cmd_list)

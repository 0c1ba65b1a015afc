"""``lgsp reconcile axis`` and ``lgsp reconcile show``.

``axis`` exits 0 when the day is clean, 1 when it listed mismatches, 2 when the run failed
(the axis unreachable, a secret missing), so a cron job or a monitoring check can tell
the three apart.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import getpass
import io
import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from bus import errors
from bus.clierrors import UNREACHABLE
from bus.reconcile.model import COUNT_NAMES, MismatchView, RunDetail, RunSummary

FORMATS = ("table", "json", "csv")
_COLUMNS = ("kind", "destination", "axis_doc_id", "message_type", "document", "delivery",
            "organ_id", "detail", "action")


def parse_day(text: str | None, today: date) -> date:
    if text is None or text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise errors.InvalidRequest(f"--date {text!r}: give YYYY-MM-DD, today or "
                                    "yesterday") from None


def render(run: RunDetail, fmt: str, zone: tzinfo | None = None) -> str:
    if fmt == "json":
        return run.model_dump_json(indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["run", "day", *_COLUMNS])
        for item in run.items:
            values = item.model_dump(mode="json")
            writer.writerow([run.id, run.day, *(values[c] or "" for c in _COLUMNS)])
        return out.getvalue().rstrip("\n")
    return _table(run, zone)


def _local(text: str | None, zone: tzinfo | None) -> str:
    if not text:
        return "-"
    moment = datetime.fromisoformat(text)
    return (moment.astimezone(zone) if zone else moment).strftime("%Y-%m-%d %H:%M:%S %z")


def _table(run: RunDetail, zone: tzinfo | None) -> str:
    lines = [f"reconciliation {run.id}  day {run.day}  {run.state}  ({run.trigger}, "
             f"{run.actor}; {_local(run.started_at, zone)} → {_local(run.finished_at, zone)})"]
    if run.error:
        lines.append(f"  FAILED: {run.error}")
    counts = run.counts
    lines.append("  bus → axis: {sent} delivered through the axis, {confirmed} confirmed, "
                 "{sent_unconfirmed} not confirmed, {confirmed_unknown} confirmed by the "
                 "axis but unknown here, {recipient_refused} refused by the recipient's "
                 "system".format(**counts))
    lines.append("  axis → bus: {received} held by the axis, {recorded} recorded here; never "
                 "recorded: {received_not_fetched} document(s), {status_missing} status(es), "
                 "{refetched} fetched now; {refused_at_fetch} refused earlier, {in_flight} in "
                 "flight".format(**counts))
    lines.extend(f"  note: {note}" for note in run.notes)
    if not run.items:
        lines.append("  no mismatch" if not run.error else "  (no comparison kept)")
        return "\n".join(lines)
    lines.append(f"  {len(run.items)} mismatch(es):")
    for item in run.items:
        lines.append("  " + _item(item))
    return "\n".join(lines)


def _item(item: MismatchView) -> str:
    where = " ".join(f"{label}={value}" for label, value in (
        ("docId", item.axis_doc_id), ("organ", item.organ_id),
        ("document", item.document), ("delivery", item.delivery)) if value)
    text = f"{item.kind.value:21s} {where}\n      {item.detail}"
    return text + (f"\n      → {item.action}" if item.action else "")


def _summary_line(run: RunSummary, zone: tzinfo) -> str:
    state = run.state + (f": {run.error}" if run.error else "")
    return (f"{run.id}  {run.day}  {run.trigger:8s}  {_local(run.started_at, zone)}  "
            f"{run.mismatches} mismatch(es)  {state}")


def _bus(args: argparse.Namespace) -> Any:
    from bus.clierrors import existing_engine
    from bus.runtime import build_bus
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    existing_engine(settings).dispose()  # the bus's database, never a new one
    return build_bus(settings)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Warnings to stderr, readable; stdout keeps only the report (--format json parses).
    Restores the logging set-up on the way out (tests call the CLI in-process)."""
    import logging

    import structlog

    from bus import logging as bus_logging

    saved, handlers = structlog.get_config(), logging.root.handlers[:]
    level = logging.root.level
    bus_logging.configure(json=False, level="WARNING")
    try:
        yield
    finally:
        structlog.configure(**saved)
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)


def cmd_axis(args: argparse.Namespace) -> int:
    with _quiet_logs():
        return _axis(args)


def _axis(args: argparse.Namespace) -> int:
    from bus.reconcile import engine

    bus = _bus(args)  # a configuration mistake is main()'s one line, exit 1
    try:
        day = parse_day(args.date, datetime.now(bus.settings.zone).date())
        grace = bus.settings.reconcile_grace_s if args.grace is None else args.grace
        run = engine.run(bus, day, trigger="cli", actor=f"operator:{getpass.getuser()}",
                         grace_s=grace, destination=args.destination)
    except errors.LgspError as exc:
        print(f"{exc.code}: {exc.message}")
        return UNREACHABLE
    except Exception as exc:
        print(f"InternalError: the reconciliation stopped ({type(exc).__name__}); the run is "
              "kept as failed and the bus's log has the details")
        return UNREACHABLE
    finally:
        bus.close()
    print(render(run, args.format, bus.settings.zone))
    if run.state != "finished":
        return UNREACHABLE
    return 1 if run.items else 0


def cmd_show(args: argparse.Namespace) -> int:
    from bus.clierrors import existing_engine
    from bus.reconcile import runs
    from bus.settings import load_settings
    from bus.store import Store

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    store = Store(existing_engine(settings))
    try:
        if args.run:
            print(render(runs.get_run(store.engine, args.run), args.format, settings.zone))
            return 0
        listed = runs.list_runs(store.engine, day=args.date, limit=args.limit)
    except errors.LgspError as exc:
        print(f"{exc.code}: {exc.message}")
        return 1
    finally:
        store.engine.dispose()
    if args.format == "json":
        print(json.dumps([r.model_dump(mode="json") for r in listed], indent=2,
                         ensure_ascii=False))
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "day", "trigger", "state", "started_at", "mismatches",
                         *COUNT_NAMES])
        for r in listed:
            writer.writerow([r.id, r.day, r.trigger, r.state, r.started_at, r.mismatches,
                             *(r.counts.get(n, 0) for n in COUNT_NAMES)])
        print(out.getvalue().rstrip("\n"))
    else:
        for r in listed:
            print(_summary_line(r, settings.zone))
        print(f"{len(listed)} run(s)")
    return 0


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``lgsp reconcile axis|show``."""
    reconcile = sub.add_parser("reconcile", help="compare the bus's books with the "
                               "national axis' for a day")
    rsub = reconcile.add_subparsers(dest="reconcile_command", required=True)
    axis = rsub.add_parser("axis", help="run a reconciliation now, keep it and print it "
                           "(exit 0 clean, 1 mismatches, 2 failed)")
    common(axis)
    axis.add_argument("--date", help="YYYY-MM-DD, today or yesterday, in the bus's "
                      "timezone setting (default: today)")
    axis.add_argument("--format", choices=FORMATS, default="table")
    axis.add_argument("--destination", help="only this national-axis destination")
    axis.add_argument("--grace", type=float, default=None, help="seconds an item the axis "
                      "listed may wait for the poller before it counts as missing "
                      "(default: the reconcile_grace_s setting)")
    axis.set_defaults(func=cmd_axis)
    show = rsub.add_parser("show", help="kept runs, newest first; or one run in full")
    common(show)
    show.add_argument("run", nargs="?", help="a run id")
    show.add_argument("--date", help="only runs for this day (YYYY-MM-DD)")
    show.add_argument("--limit", type=int, default=20)
    show.add_argument("--format", choices=FORMATS, default="table")
    show.set_defaults(func=cmd_show)

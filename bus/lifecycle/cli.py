"""``lgsp report feedback``: the status-feedback report from the command line.

The CLI reads the database directly as an operator (every agency), the way
``lgsp deliveries list`` does; ``--agency`` narrows it to one code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from bus import errors


def cmd_feedback(args: argparse.Namespace) -> int:
    from bus.clierrors import existing_engine
    from bus.directory import load_directory
    from bus.lifecycle.feedback import agency_names, feedback, period, render
    from bus.settings import load_settings
    from bus.store.queries import Viewer

    settings = load_settings(args.config, data_dir=args.data_dir)
    span = period(args.start, args.end, settings.zone)  # a bad date: main()'s one line
    try:
        names = agency_names(load_directory(settings.directory).agencies)
    except errors.LgspError:
        names = {}
    engine = existing_engine(settings)  # the bus's database, never a new one
    try:
        report = feedback(engine, span, Viewer("cli", operator=True), agency=args.agency,
                          names=names, unanswered_limit=args.limit)
    finally:
        engine.dispose()
    sys.stdout.write(render(report, args.format, settings.zone))
    return 0


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``lgsp report feedback [--from D] [--to D] [--format csv|json|table] [--agency C]``."""
    report = sub.add_parser("report", help="reports for the province's IT centre")
    rsub = report.add_subparsers(dest="report_command", required=True)
    fb = rsub.add_parser("feedback", help="per recipient agency: documents received, share "
                         "answered with 01/03/06, median times, documents never answered")
    common(fb)
    fb.add_argument("--from", dest="start", metavar="D",
                    help="first day (YYYY-MM-DD, province time) or ISO time; "
                         "default 30 days before --to")
    fb.add_argument("--to", dest="end", metavar="D",
                    help="last day, inclusive (YYYY-MM-DD) or ISO time (exclusive); "
                         "default today")
    fb.add_argument("--format", choices=("table", "json", "csv"), default="table")
    fb.add_argument("--agency", metavar="CODE", help="only this recipient agency")
    fb.add_argument("--limit", type=int, default=100,
                    help="never-answered documents listed per agency (default 100)")
    fb.set_defaults(func=cmd_feedback)

"""The ``lgsp`` command: one entry point, one sub-command per job an operator does.

Each sub-command is a thin shell over a library call so that everything it does can be
tested without a subprocess; exit codes are 0 for success, 1 when the input was judged
bad, 2 for usage errors (argparse's own).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bus import errors
from bus.cliadapters import cmd_adapters_list
from bus.cliadapters import describe_adapters as describe_adapters

if TYPE_CHECKING:
    from collections.abc import Callable

    from bus.routing import RouteTable
    from bus.settings import Settings


def _describe(result: object) -> str:
    from bus.edxml import Edoc, ReadResult

    assert isinstance(result, ReadResult)
    packet = result.packet
    if isinstance(packet, Edoc):
        n = len(packet.to)
        what = f"edoc, {n} recipient{'s' if n != 1 else ''}"
        if packet.attachments:
            k = len(packet.attachments)
            what += f", {k} attachment{'s' if k != 1 else ''}"
    else:
        what = f"status {packet.status_code} ({packet.meaning})"
    return what


def cmd_validate(args: argparse.Namespace) -> int:
    from bus.edxml import Limits
    from bus.edxml.dialects import read_from

    limits = Limits(max_bytes=args.max_bytes) if args.max_bytes else Limits()
    bad = 0
    for name in args.files:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}")
            bad += 1
            continue
        try:
            result = read_from(data, dialect=args.dialect, limits=limits).result
        except errors.LgspError as exc:
            where = str(exc.location)
            print(f"{name}: {exc.code}: {exc.message}" + (f" ({where})" if where else ""))
            bad += 1
            continue
        print(f"{name}: OK ({_describe(result)})")
        if args.warnings:
            for notice in result.notices:
                loc = f" (line {notice.line}, {notice.path})" if notice.line else ""
                print(f"  warning {notice.code}: {notice.message}{loc}")
    return 1 if bad else 0


def cmd_routes_check(args: argparse.Namespace) -> int:
    from bus.routing.routes import ConfigWarning, check_routes, load_routes

    known = _known_adapters()
    problems = check_routes(args.routes, args.directory, known_adapters=known)
    if not problems or all(isinstance(p, ConfigWarning) for p in problems):
        problems += _option_problems(args.routes, load_routes)
    from bus.lifecycle.api import lifecycle_problems

    problems += lifecycle_problems(args.directory)
    errors_found = [p for p in problems if not isinstance(p, ConfigWarning)]
    for problem in problems:
        print(problem)
    warnings = len(problems) - len(errors_found)
    if errors_found:
        print(f"{len(errors_found)} error(s), {warnings} warning(s): the bus would refuse "
              "these files and keep its current configuration")
        return 1
    if not args.files_only:
        from bus.readiness import destination_problems

        found = destination_problems(load_routes(args.routes), probe=not args.offline)
        for problem in found:
            print(problem)
        cannot = [p for p in found if not isinstance(p, ConfigWarning)]
        if cannot:
            print(f"the files are valid, but {len(cannot)} destination(s) cannot work: set "
                  "what is named above in the environment of `lgsp serve` and `lgsp worker`"
                  " (--files-only checks the files alone)")
            return 1
        warnings += len(found)
    print(f"OK: {args.routes} and {args.directory} are valid ({warnings} warning(s))")
    return 0


def cmd_routes_explain(args: argparse.Namespace) -> int:
    from bus.directory import load_directory
    from bus.edxml import read_packet
    from bus.ingress import facts_of
    from bus.routing.routes import explain, load_routes

    try:
        directory = load_directory(args.directory)
        table = load_routes(args.routes, directory=directory)
    except errors.ConfigInvalid as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    bad = 0
    for name in args.files:
        try:
            packet = read_packet(Path(name).read_bytes()).packet
        except errors.LgspError as exc:
            print(f"{name}: {exc}")
            bad += 1
            continue
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}")
            bad += 1
            continue
        print(f"{name}:")
        for line in explain(facts_of(packet), table, directory):
            print(f"  {line}")
    return 1 if bad else 0


def _settings(args: argparse.Namespace) -> Settings:
    from bus.settings import load_settings

    return load_settings(getattr(args, "config", None),
                         port=getattr(args, "port", None),
                         data_dir=getattr(args, "data_dir", None))


def cmd_serve(args: argparse.Namespace) -> int:
    from bus import logging as bus_logging
    from bus.runtime import serve

    settings = _settings(args)
    bus_logging.configure(json=settings.log_json, level=settings.log_level)
    if args.with_simulators:
        import importlib

        # Like the demo, the sandbox drives the built-in adapters' simulators.
        serve = importlib.import_module("adapters.sandbox").serve
    serve(settings, deliver=not args.no_workers)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from bus import logging as bus_logging
    from bus.runtime import work

    settings = _settings(args)
    bus_logging.configure(json=settings.log_json, level=settings.log_level)
    work(settings)
    return 0


def cmd_deliveries_list(args: argparse.Namespace) -> int:
    import time

    from bus.clierrors import existing_engine
    from bus.store.queries import list_deliveries

    engine = existing_engine(_settings(args))
    rows = list_deliveries(engine, state=args.state, destination=args.destination,
                           limit=args.limit)
    now = time.time()
    for r in rows:
        age = int(now - r.updated_at)
        print(f"{r.id}  {r.state:10s} {r.destination:14s} {r.recipient:16s} "
              f"attempts={r.attempts:<3d} idle={age}s  doc={r.document} ({r.document_id})"
              + (f"\n    last error: {r.last_error}" if r.last_error else ""))
    print(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}")
    return 0


def _option_problems(routes: str, load: Callable[..., RouteTable]) -> list[errors.Problem]:
    """Each destination's options, validated by its adapter as the running bus would."""
    from bus.registry import build_adapters

    try:
        build_adapters(load(routes))
    except errors.ConfigInvalid as exc:
        return list(exc.problems)
    return []


def cmd_demo(args: argparse.Namespace) -> int:
    import importlib

    # The demo drives the built-in adapters' simulators, so it lives beside them; the
    # engine itself never imports adapters.
    demo = importlib.import_module("adapters.demo")
    code: int = demo.run(check=args.check, timeout_s=args.timeout)
    return code


def _known_adapters() -> list[str] | None:
    try:
        from bus.registry import available
    except ImportError:
        return None
    return sorted(available())


def build_parser() -> argparse.ArgumentParser:
    from bus.edxml.dialects import DIALECTS

    parser = argparse.ArgumentParser(
        prog="lgsp", description="Provincial integration bus for edXML documents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser(
        "validate", help="check edXML packets as the bus would at its door"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--warnings", "-w", action="store_true",
                          help="also print non-fatal findings (field lengths, identifier form)")
    validate.add_argument("--max-bytes", type=int, default=0,
                          help="size cap in bytes (default: the bus's)")
    validate.add_argument("--dialect", choices=sorted(DIALECTS), default=None,
                          help="read as the bus reads a system configured with this dialect "
                               "(config/directory.yaml, systems.<name>.dialect)")
    validate.set_defaults(func=cmd_validate)


    from bus.settings import Settings as _Defaults

    defaults = _Defaults()
    routes = sub.add_parser("routes", help="check or explain routes.yaml and the directory")
    routes_sub = routes.add_subparsers(dest="routes_command", required=True)
    for name, helptext in (("check", "report every problem with file, line and path"),
                           ("explain", "show where each recipient of packets would go")):
        cmd = routes_sub.add_parser(name, help=helptext)
        cmd.add_argument("--routes", default=str(defaults.routes))
        cmd.add_argument("--directory", default=str(defaults.directory))
        if name == "check":
            cmd.add_argument("--offline", action="store_true",
                             help="do not contact the destinations (secrets are still checked)")
            cmd.add_argument("--files-only", action="store_true",
                             help="check the files alone: no secrets, no destinations")
        if name == "explain":
            cmd.add_argument("files", nargs="+", metavar="FILE.edxml")
            cmd.set_defaults(func=cmd_routes_explain)
        else:
            cmd.set_defaults(func=cmd_routes_check)

    def common(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--config", help="settings file (YAML); LGSP_* variables override it")
        cmd.add_argument("--data-dir", dest="data_dir", help="where the embedded default keeps "
                         "its database (default: var/)")

    serve = sub.add_parser("serve", help="run the bus: REST, SOAP and (by default) delivery")
    common(serve)
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-workers", action="store_true",
                       help="ingress only; delivery is left to 'lgsp worker' processes")
    serve.add_argument("--with-simulators", action="store_true",
                       help="development: start a simulator of each destination on the "
                            "127.0.0.1 address routes.yaml gives it (the sample province)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="deliver queued documents (no HTTP)")
    common(worker)
    worker.set_defaults(func=cmd_worker)

    adapters = sub.add_parser("adapters", help="installed adapters and their options")
    adapters_sub = adapters.add_subparsers(dest="adapters_command", required=True)
    listing_adapters = adapters_sub.add_parser(
        "list", help="each installed adapter: distribution, class, capabilities, options")
    listing_adapters.add_argument("--json", action="store_true",
                                  help="machine-readable, with each full JSON Schema")
    listing_adapters.set_defaults(func=cmd_adapters_list)

    demo = sub.add_parser("demo", help="the sample province end to end: four systems' "
                          "simulators, documents and statuses, live")
    demo.add_argument("--check", action="store_true",
                      help="no display; exit 0 only when every journey completed")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    demo.set_defaults(func=cmd_demo)

    deliveries = sub.add_parser("deliveries", help="operator view of deliveries")
    dsub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    listing = dsub.add_parser("list", help="deliveries by state/destination, stuck first")
    common(listing)
    from bus.store.tables import STATES

    listing.add_argument("--state", choices=list(STATES))
    listing.add_argument("--destination")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_deliveries_list)
    from bus.console.cli import add_cli as add_console_cli

    add_console_cli(sub, common, dsub)

    from bus.directory.requests import add_cli

    add_cli(sub, common)
    from bus.reconcile.cli import add_cli as add_reconcile_cli

    add_reconcile_cli(sub, common)
    from bus.lifecycle.api import add_cli as add_deadlines_cli

    add_deadlines_cli(sub, common)
    from bus.maintenance.cli import add_cli as add_maintenance_cli

    add_maintenance_cli(sub, common)
    from bus.evidence.cli import add_cli as add_evidence_cli

    add_evidence_cli(sub, common)
    from bus.lifecycle.cli import add_cli as add_lifecycle_cli

    add_lifecycle_cli(sub, common)
    from bus.migrate.cli import add_cli as add_migrate_cli

    add_migrate_cli(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Every failure of every sub-command becomes one line and an exit code here
    (:mod:`bus.clierrors`): no traceback reaches an operator."""
    from bus.clierrors import report

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BaseException as exc:
        return report(exc)
    return code


if __name__ == "__main__":
    sys.exit(main())

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

from bus import errors


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
    from bus.edxml import Limits, read_packet

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
            result = read_packet(data, limits=limits)
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
    from bus.routes import ConfigWarning, check_routes

    known = _known_adapters()
    problems = check_routes(args.routes, args.directory, known_adapters=known)
    errors_found = [p for p in problems if not isinstance(p, ConfigWarning)]
    for problem in problems:
        print(problem)
    warnings = len(problems) - len(errors_found)
    if errors_found:
        print(f"{len(errors_found)} error(s), {warnings} warning(s): the bus would refuse "
              "these files and keep its current configuration")
        return 1
    print(f"OK: {args.routes} and {args.directory} are valid ({warnings} warning(s))")
    return 0


def cmd_routes_explain(args: argparse.Namespace) -> int:
    from bus.directory import load_directory
    from bus.edxml import read_packet
    from bus.ingress import facts_of
    from bus.routes import explain, load_routes

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


def _known_adapters() -> list[str] | None:
    try:
        from bus.registry import available
    except ImportError:
        return None
    return sorted(available())


def build_parser() -> argparse.ArgumentParser:
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
    validate.set_defaults(func=cmd_validate)

    from bus.settings import Settings

    defaults = Settings()
    routes = sub.add_parser("routes", help="check or explain routes.yaml and the directory")
    routes_sub = routes.add_subparsers(dest="routes_command", required=True)
    for name, helptext in (("check", "report every problem with file, line and path"),
                           ("explain", "show where each recipient of packets would go")):
        cmd = routes_sub.add_parser(name, help=helptext)
        cmd.add_argument("--routes", default=str(defaults.routes))
        cmd.add_argument("--directory", default=str(defaults.directory))
        if name == "explain":
            cmd.add_argument("files", nargs="+", metavar="FILE.edxml")
            cmd.set_defaults(func=cmd_routes_explain)
        else:
            cmd.set_defaults(func=cmd_routes_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""``lgsp audit verify|head|seal`` and ``lgsp evidence export|verify``.

Exit codes: 0 when everything checks out, 1 on any finding or a clear mistake (unknown
document, no database, unreadable file), each with one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bus import errors
from bus.store.blobs import PayloadFiles


def _names(args: argparse.Namespace) -> dict[str, str]:
    """The directory's organisation names, or none if it cannot be read (the bundle is
    still whole without them)."""
    from bus.directory import load_directory
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    try:
        agencies = load_directory(settings.directory).agencies
    except (errors.LgspError, OSError):
        return {}
    return {code: agency.name for code, agency in agencies.items()}


def _files(args: argparse.Namespace, engine: Engine) -> PayloadFiles:
    """Where the bus keeps large payloads, as its settings say."""
    from bus.settings import load_settings
    from bus.store.large_objects import payload_store

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    return payload_store(settings, engine)


def _engine(args: argparse.Namespace) -> tuple[Engine, str]:
    from bus.clierrors import existing_engine
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    return existing_engine(settings), settings.timezone  # never a new database


def _run(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Mistakes (unknown id, unreadable bundle) are main()'s one line: bus.clierrors."""
    return body


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from bus.evidence.verify import verify
    from bus.store.queries import iso

    engine, _ = _engine(args)
    report = verify(engine, check_payloads=not args.skip_payloads,
                    files=_files(args, engine))
    if args.json:
        print(json.dumps({"ok": report.ok, "seals": report.seals, "events": report.events,
                          "purged_events": report.purged_events, "unsealed": report.unsealed,
                          "head": report.head, "first_broken": report.first_broken,
                          "purges": report.purges, "findings_total": report.total_findings,
                          "findings": [f.__dict__ for f in report.findings]},
                         ensure_ascii=False, indent=1))
        return 0 if report.ok else 1
    if report.first_broken:
        print(f"first broken link: {report.first_broken}")
    for finding in report.findings:
        print(f"{finding.kind}: {finding.message}")
    if report.total_findings > len(report.findings):
        print(f"... and {report.total_findings - len(report.findings)} more findings")
    for purge in report.purges:
        print(f"purge: {purge}")
    if report.unsealed:
        print(f"warning: {report.unsealed} events not sealed yet (oldest at "
              f"{iso(report.oldest_unsealed)}); a serve or worker process seals them")
    head = report.head
    where = f"head seal {head['number']} {head['hash']}" if head else "no seal yet"
    verdict = "OK" if report.ok else f"TAMPERED: {report.total_findings} findings"
    print(f"{verdict}: {report.seals} seals, {report.events} events checked, "
          f"{report.purged_events} purged; {where}")
    return 0 if report.ok else 1


def cmd_audit_head(args: argparse.Namespace) -> int:
    from bus.evidence.chain import head_summary

    engine, _ = _engine(args)
    print(json.dumps(head_summary(engine), indent=1))
    return 0


def cmd_audit_seal(args: argparse.Namespace) -> int:
    from bus.evidence import Evidence

    engine, _ = _engine(args)
    print(f"sealed {Evidence(engine).tick()} events")
    return 0


def cmd_evidence_export(args: argparse.Namespace) -> int:
    from bus.evidence.bundle import write
    from bus.store.queries import Viewer

    engine, zone = _engine(args)
    output = Path(args.output)
    partial = output.with_name(output.name + ".part")
    try:
        with partial.open("wb") as target:
            size = write(target, engine, args.id, Viewer(system="lgsp-cli", operator=True),
                         zone=zone, names=_names(args), payload_files=_files(args, engine))
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    print(f"{args.output}: {size} bytes")
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from bus.evidence.bundle import check

    with Path(args.bundle).open("rb") as bundle:
        report = check(bundle)
    for problem in report.problems:
        print(f"problem: {problem}")
    for note in report.notes:
        print(f"note: {note}")
    verdict = "OK" if report.ok else f"NOT VALID: {len(report.problems)} problems"
    print(f"{verdict}: {report.events} events proven by {report.seals} seals")
    return 0 if report.ok else 1


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    audit = sub.add_parser("audit", help="the hash-chained audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser("verify", help="recompute the chain; name every row changed or "
                             "removed outside the bus (exit 1 on any)")
    common(verify)
    verify.add_argument("--skip-payloads", action="store_true",
                        help="do not re-hash every stored payload (faster on large stores)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_run(cmd_audit_verify))
    head = asub.add_parser("head", help="the chain head, to write down outside the bus")
    common(head)
    head.set_defaults(func=_run(cmd_audit_head))
    seal = asub.add_parser("seal", help="seal what is ready now (serve and worker do it "
                           "every second)")
    common(seal)
    seal.set_defaults(func=_run(cmd_audit_seal))
    evidence = sub.add_parser("evidence", help="one document's evidence bundle")
    esub = evidence.add_subparsers(dest="evidence_command", required=True)
    export = esub.add_parser("export", help="write the bundle of a document (bus id)")
    common(export)
    export.add_argument("id", metavar="ID")
    export.add_argument("-o", "--output", required=True, metavar="FILE")
    export.set_defaults(func=_run(cmd_evidence_export))
    check = esub.add_parser("verify", help="check a bundle offline, without the database")
    check.add_argument("bundle", metavar="BUNDLE")
    check.set_defaults(func=_run(cmd_evidence_verify))

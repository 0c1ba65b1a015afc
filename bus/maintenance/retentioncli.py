"""``lgsp hold add|remove|list`` and ``lgsp purge [--dry-run]``."""

from __future__ import annotations

import argparse
import getpass
import time
from collections.abc import Callable
from typing import Any


def _opened(args: argparse.Namespace) -> tuple[Any, Any]:
    from bus.clierrors import existing_engine
    from bus.settings import load_settings

    settings = load_settings(getattr(args, "config", None),
                             data_dir=getattr(args, "data_dir", None))
    engine = existing_engine(settings)  # the bus's database, never a new one
    return settings, engine


def _actor() -> str:
    return f"operator:{getpass.getuser()}"


def cmd_hold_add(args: argparse.Namespace) -> int:
    from bus.maintenance import holds

    _, engine = _opened(args)
    held = holds.add(engine, args.document, reason=args.reason, actor=_actor())
    print(f"held: {', '.join(held)}" if held else "already held")
    return 0


def cmd_hold_remove(args: argparse.Namespace) -> int:
    from bus.maintenance import holds

    _, engine = _opened(args)
    lifted = holds.remove(engine, args.document, reason=args.reason, actor=_actor())
    print(f"hold lifted: {', '.join(lifted)}")
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    from bus.maintenance import holds

    _, engine = _opened(args)
    rows = holds.listing(engine)
    for h in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(h.held_at))
        print(f"{h.document}  {h.document_id or '(purged?)'}  from {h.sender or '-'}  "
              f"held {when} by {h.held_by}: {h.reason}")
    print(f"{len(rows)} hold(s)")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from bus.maintenance.retention import Policy, preview, purge

    settings, engine = _opened(args)
    policy = Policy.from_settings(settings.retention)
    if not policy.rules:
        print("no retention rules (settings: retention); nothing is ever purged")
        return 0
    if args.dry_run:
        for key, count in preview(engine, policy).items():
            print(f"{key}: {count} document(s) would be purged")
        return 0
    report = purge(engine, policy, actor=_actor(), batch=settings.purge_batch,
                   batch_bytes=settings.purge_batch_bytes, pause_s=settings.purge_pause_s,
                   batch_ms=settings.purge_batch_ms,
                   max_slowdown=settings.purge_max_slowdown,
                   live_ms=settings.purge_live_ms,
                   min_docs_per_s=settings.purge_min_docs_per_s)
    print(f"purged {report.documents} document(s) and {report.payloads} payload(s) in "
          f"{report.batches} batch(es)"
          + "".join(f"\n  {k}: {v}" for k, v in sorted(report.by_rule.items())))
    return 0


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    hold = sub.add_parser("hold", help="legal holds: documents the retention purge keeps")
    hsub = hold.add_subparsers(dest="hold_command", required=True)
    for name, func, helptext in (("add", cmd_hold_add, "hold a document (id or DocumentId)"),
                                 ("remove", cmd_hold_remove, "lift a hold")):
        cmd = hsub.add_parser(name, help=helptext)
        common(cmd)
        cmd.add_argument("document", metavar="DOC", help="the bus's id or the DocumentId")
        cmd.add_argument("--reason", required=True, help="why (kept in the audit trail)")
        cmd.set_defaults(func=func)
    listing = hsub.add_parser("list", help="every hold")
    common(listing)
    listing.set_defaults(func=cmd_hold_list)
    purge = sub.add_parser("purge", help="remove documents past retention (settings: "
                           "retention), except held ones and those still being delivered")
    common(purge)
    purge.add_argument("--dry-run", action="store_true", help="only count, per rule")
    purge.set_defaults(func=cmd_purge)

"""``lgsp backup -o DIR`` and ``lgsp restore DIR``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _settings(args: argparse.Namespace) -> Any:
    from bus.settings import load_settings

    return load_settings(getattr(args, "config", None),
                         data_dir=getattr(args, "data_dir", None))


def cmd_backup(args: argparse.Namespace) -> int:
    from bus.maintenance.backup import backup

    manifest = backup(_settings(args), Path(args.output), config_file=args.config)
    print(f"backed up {manifest['documents']} document(s), {manifest['payloads']} "
          f"payload(s), {len(manifest['files']) - 1} configuration file(s) to {args.output} "
          f"(schema {manifest['revision']})")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from bus.maintenance.backup import restore

    checked = restore(_settings(args), Path(args.backup),
                      config_to=Path(args.config_to) if args.config_to else None)
    print(f"restored {checked.documents} document(s) and {checked.payloads} payload(s); "
          f"every payload read back and matches its SHA-256 ({checked.bytes} bytes)")
    return 0


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    backup = sub.add_parser("backup", help="copy the database (SQLite online backup, or "
                            "pg_dump) and the configuration files to a new directory")
    common(backup)
    backup.add_argument("-o", "--output", required=True, metavar="DIR")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a backup into an empty database and "
                             "check every document against its hash")
    common(restore)
    restore.add_argument("backup", metavar="DIR")
    restore.add_argument("--config-to", metavar="DIR",
                         help="also copy the backed-up configuration files there")
    restore.set_defaults(func=cmd_restore)

"""One hook for bus/cli.py: every maintenance sub-command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    from bus.maintenance import backupcli, dbcli, retentioncli

    dbcli.add_cli(sub, common)
    backupcli.add_cli(sub, common)
    retentioncli.add_cli(sub, common)

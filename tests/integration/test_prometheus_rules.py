"""The shipped alert rules load in Prometheus and fire when, and only when, they should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing; run ops/install-services.sh (Debian package prometheus)")
    return tool


def test_rules_are_valid() -> None:
    done = subprocess.run([_promtool(), "check", "rules", "alerts.yml"], cwd=RULES,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_fire_as_the_unit_tests_expect() -> None:
    done = subprocess.run([_promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

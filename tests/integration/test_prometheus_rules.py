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


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """All of them, not three of five: each rule in alerts.yml has a promtool case where
    it fires (with its labels and annotations) and one where it must not."""
    import yaml

    rules = yaml.safe_load((RULES / "alerts.yml").read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]
              if "alert" in rule}
    cases = yaml.safe_load((RULES / "alerts_test.yml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts, "alerts.yml lost its rules"
    assert alerts - firing == set(), "no promtool case where these fire"
    assert alerts - quiet == set(), "no promtool case where these stay quiet"

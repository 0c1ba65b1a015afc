"""``lgsp adapters list``: what an operator reads to learn what can go in routes.yaml.

Each installed adapter is shown with the distribution that brought it, so that a
problem can be taken to the right vendor, and one broken package is reported beside the
working ones rather than hiding them.
"""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from bus import registry
from bus.cli import main

BROKEN = EntryPoint("broken_vendor", "lgsp_no_such_vendor_module:Adapter", registry.GROUP)
NOT_AN_ADAPTER = EntryPoint("not_an_adapter", "json:dumps", registry.GROUP)


@pytest.fixture
def with_broken_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.available

    def available() -> dict[str, EntryPoint]:
        return {**real(), BROKEN.name: BROKEN, NOT_AN_ADAPTER.name: NOT_AN_ADAPTER}

    monkeypatch.setattr(registry, "available", available)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["adapters", "list", *args])
    return code, capsys.readouterr().out


def block(out: str, name: str) -> str:
    """One adapter's paragraph of the human-readable listing."""
    for paragraph in out.split("\n\n"):
        if paragraph.startswith(f"{name} ("):
            return paragraph
    raise AssertionError(f"{name} is not listed:\n{out}")


def test_lists_each_adapter_with_distribution_class_capabilities_and_options(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys)
    http = block(out, "http")
    print(f"\n{http}")
    assert code == 0, out
    assert http.splitlines()[0] == "http (lgsp-bus 0.1.0)"
    assert "  entry point   adapters.http:HttpAdapter" in http
    assert "  class         adapters.http.adapter:HttpAdapter" in http
    assert "  capabilities  deliver" in http
    assert "    url             string, required" in http
    assert "    timeout_s       number, > 0, <= 600, default 10.0" in http
    assert "(no other options are accepted)" in http
    assert out.rstrip().splitlines()[-1].endswith("adapters installed")


def test_json_carries_the_full_configuration_schema(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--json")
    listed: list[dict[str, Any]] = json.loads(out)
    by_name = {entry["name"]: entry for entry in listed}
    http = by_name["http"]
    assert code == 0
    assert [entry["name"] for entry in listed] == sorted(by_name)
    assert http["distribution"] == {"name": "lgsp-bus", "version": "0.1.0"}
    assert http["kind"] == "http" and http["capabilities"] == ["deliver"]
    schema = http["config_schema"]
    assert schema["required"] == ["url"] and schema["additionalProperties"] is False
    assert schema["properties"]["timeout_s"]["exclusiveMinimum"] == 0
    assert http["error"] is None


def test_a_broken_package_is_shown_beside_the_working_ones(
        capsys: pytest.CaptureFixture[str], with_broken_packages: None) -> None:
    code, out = run(capsys)
    broken = block(out, "broken_vendor")
    wrong = block(out, "not_an_adapter")
    assert code == 1
    assert "unknown distribution" in broken.splitlines()[0]
    assert "cannot be imported: ModuleNotFoundError" in broken
    assert "is not a bus.adapter.Adapter subclass" in wrong
    assert "capabilities  deliver" in block(out, "http")
    assert out.rstrip().endswith(", 2 cannot be loaded")
    code, listing = run(capsys, "--json")
    print(f"\n{broken}\n{wrong}\n{out.rstrip().splitlines()[-1]}")
    by_name = {entry["name"]: entry for entry in json.loads(listing)}
    assert code == 1
    assert by_name["broken_vendor"]["class"] is None
    assert "lgsp_no_such_vendor_module" in by_name["broken_vendor"]["error"]
    assert by_name["http"]["error"] is None

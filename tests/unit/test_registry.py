"""Adapters come from entry points, and a bad routes.yaml is reported whole, with paths."""

from __future__ import annotations

import pytest

from adapters.http import HttpAdapter
from bus.errors import ConfigInvalid
from bus.registry import GROUP, adapter_class, available, build_adapters
from bus.routing.routes import parse_routes

ROUTES = """\
version: 1
destinations:
  archive:
    adapter: http
    options: {url: "http://127.0.0.1:9/archive", timeout_s: 3}
  portal:
    adapter: http
    options: {timeout_s: 3}
  commune:
    adapter: http
    options: {url: "http://127.0.0.1:9/c", timeout_s: -1, proxy: "http://p:3128"}
  axis:
    adapter: htp
    options: {url: "http://127.0.0.1:9/axis"}
defaults:
  retry: {attempts: 3, first_delay_s: 1, max_delay_s: 10}
"""


def test_http_is_installed_through_the_entry_point_group() -> None:
    found = available()
    print(f"\n[registry] {GROUP}: {sorted(found)}")
    assert found["http"].value == "adapters.http:HttpAdapter"
    assert adapter_class("http") is HttpAdapter
    assert adapter_class("http") is adapter_class("http")


def test_unknown_adapter_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigInvalid) as invalid:
        adapter_class("htp")
    print(f"\n[registry] {invalid.value.problems[0]}")
    assert "did you mean 'http'?" in invalid.value.problems[0].message


def test_unknown_adapter_without_a_close_name_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigInvalid) as invalid:
        adapter_class("zeep-soap-thing")
    message = invalid.value.problems[0].message
    assert "installed:" in message and "http" in message


def test_valid_destinations_build_without_io() -> None:
    table = parse_routes(ROUTES.split("  portal:")[0] + "defaults: {}\n")
    adapters = build_adapters(table)
    assert list(adapters) == ["archive"]
    archive = adapters["archive"]
    assert isinstance(archive, HttpAdapter)
    assert archive.name == "archive" and archive.config.timeout_s == 3


def test_every_problem_of_every_destination_is_reported_with_its_path() -> None:
    table = parse_routes(ROUTES, file="routes.yaml")
    with pytest.raises(ConfigInvalid) as invalid:
        build_adapters(table)
    problems = invalid.value.problems
    for problem in problems:
        print(f"\n[registry] {problem}", end="")
    print()
    assert [p.path for p in problems] == [
        "destinations.portal.options.url",
        "destinations.commune.options.timeout_s",
        "destinations.commune.options.proxy",
        "destinations.axis.adapter",
    ]
    assert all(p.file == "routes.yaml" and p.line for p in problems)
    assert "did you mean 'http'?" in problems[-1].message
    assert "Field required" in problems[0].message

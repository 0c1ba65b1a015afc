"""The directory at national scale, checked small enough for the suite.

Timing is never compared with a fixed number (the machine is shared): each load is
compared with a baseline measured in the same test on the same bytes — reading the CSV
with the csv module for the axis layer, composing the YAML with libyaml for
directory.yaml — which no faster loader can beat and a slow one (jsonschema per entry,
the pure-Python YAML composer) exceeds many times over. Memory is asserted outright.
tests/bench/bench_directory.py prints the full figures (10k/30k/100k).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.directory import load_directory, schema_validator
from bus.directory.layer import axis_layer_path
from bus.directory.loader import DIRECTORY_SCHEMA, agency_entry_ok
from bus.errors import ConfigInvalid
from bus.reloader import Reloader

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "bench"))
import bench_directory as bench  # noqa: E402

LAYER_SIZE = 20_000
YAML_SIZE = 3_000


def fastest(action: Callable[[], Any], rounds: int = 3) -> float:
    """The least CPU time of this thread over ``rounds``: wall time on a shared machine
    moves with other work (a wall-clock version of these tests failed under load)."""
    times = []
    for _ in range(rounds):
        started = time.thread_time()
        action()
        times.append(time.thread_time() - started)
    return min(times)


def test_twenty_thousand_axis_agencies_load_near_csv_speed_and_small(tmp_path: Path) -> None:
    bench.write_layer(tmp_path, LAYER_SIZE)
    path = tmp_path / "directory.yaml"
    text = axis_layer_path(path).read_text(encoding="utf-8")
    baseline = fastest(lambda: [tuple(row) for row in csv.reader(io.StringIO(text))])
    loaded = fastest(lambda: load_directory(path))
    assert len(load_directory(path)) == LAYER_SIZE
    assert loaded < 8 * baseline + 0.05, (loaded, baseline)
    tracemalloc.start()
    try:
        directory = load_directory(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(directory) == LAYER_SIZE
    assert peak < 30 * 2**20, f"{peak / 2**20:.1f} MB"


def test_yaml_agencies_load_near_the_speed_of_libyaml(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    bench.write_yaml(path, YAML_SIZE)
    text = path.read_text(encoding="utf-8")
    baseline = fastest(lambda: yaml.CSafeLoader(text).get_single_node())
    loaded = fastest(lambda: load_directory(path))
    assert loaded < 4 * baseline + 0.05, (loaded, baseline)


def test_a_reload_after_a_directory_yaml_edit_keeps_the_unchanged_layer(
        tmp_path: Path) -> None:
    bench.write_layer(tmp_path, 3_000)
    reloader = Reloader(tmp_path / "routes.yaml", tmp_path / "directory.yaml")
    code = bench.code(2_500)
    before = reloader.current().directory.agencies[code]
    os.utime(tmp_path / "directory.yaml", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert reloader.reload()
    assert reloader.current().directory.agencies[code] is before
    shutil.copy(axis_layer_path(tmp_path / "directory.yaml"), tmp_path / "copy.csv")
    os.replace(tmp_path / "copy.csv", axis_layer_path(tmp_path / "directory.yaml"))
    assert reloader.reload()
    after = reloader.current().directory.agencies[code]
    assert after == before and after is not before


_AGENCY = schema_validator(DIRECTORY_SCHEMA).schema["$defs"]["agency"]
_ROOT = schema_validator(DIRECTORY_SCHEMA).schema
_codes = st.sampled_from(["000.00.12.H37", "vxp.saas.03", "a", "000..12", "x" * 36,
                          "000.00.12.H37 ", "Xã", "1.2.3.4.5.6"])
_texts = st.one_of(st.sampled_from(["", "Sở", "x" * 200, "x" * 201, "eoffice", "9bad",
                                    "hcm_egov", "000.00.00.H37", "a b"]),
                   st.integers(), st.booleans(), st.none(), st.lists(st.text(max_size=2)))


_names = st.sampled_from(["", "Sở", "x" * 200, "x" * 201, 7, None])
_systems = st.sampled_from(["eoffice", "hcm_egov", "9bad", "a b", "", 3])
_parents = st.sampled_from(["000.00.00.H37", "a", "", None, 5])


@settings(max_examples=1000, deadline=None)
@given(code=_codes, body=st.one_of(
    st.fixed_dictionaries({"name": _names, "system": _systems},
                          optional={"parent": _parents, "extra": _texts}),
    st.dictionaries(st.sampled_from(["name", "system", "parent", "extra"]), _texts),
    _texts))
def test_fast_check_agrees_with_the_schema(code: str, body: Any) -> None:
    """The hand-written check accepts exactly what the schema accepts."""
    # Only the definitions: beside a "$ref", 2020-12 applies the root's own keywords too
    # (type object, required version/systems/agencies), which no entry can meet.
    validator = jsonschema.Draft202012Validator(
        {"$defs": _ROOT["$defs"], "$ref": "#/$defs/agency"}, format_checker=None)
    key_ok = jsonschema.Draft202012Validator(
        {"$defs": _ROOT["$defs"], "$ref": "#/$defs/organId"}).is_valid(code)
    assert agency_entry_ok(code, body) == (key_ok and validator.is_valid(body)), (code, body)
    assert _AGENCY["additionalProperties"] is False


def test_bad_layer_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    bench.write_layer(tmp_path, 1_200)
    layer = axis_layer_path(tmp_path / "directory.yaml")
    lines = layer.read_text(encoding="utf-8").splitlines()
    lines[5] = "000..12.H37,Xã hỏng,,,"
    lines[9] = lines[8]
    lines[12] = "only,three,columns"
    layer.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid) as caught:
        load_directory(tmp_path / "directory.yaml")
    found = [(p.file, p.line) for p in caught.value.problems]
    assert found == [(str(layer), 6), (str(layer), 10), (str(layer), 13)], found
    words = " ".join(p.message for p in caught.value.problems)
    assert "not an organisation identifier" in words and "listed twice (first on line 9)" in words
    assert "3 columns, expected 5" in words

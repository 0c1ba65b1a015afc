"""Every operator mistake gets one line naming what to fix and a non-zero exit, never a
traceback: each sub-command is run as a real ``lgsp`` process with bad inputs.

The sub-commands are read from the parser itself, so a command added later is covered by
the generic cases (settings file missing / not YAML / misspelt key, data directory
missing or empty) without anyone remembering to add it here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus.app import Bus
from bus.cli import build_parser
from bus.settings import REPO_ROOT, load_settings
from tests.servers import free_port

WRITERS = {("serve",), ("worker",), ("db", "upgrade"), ("restore",), ("users", "add")}
"""Commands that create the data directory and its database: an empty one is not a mistake."""


@dataclass(frozen=True)
class Leaf:
    words: tuple[str, ...]
    options: frozenset[str]
    positionals: tuple[argparse.Action, ...]
    required: tuple[argparse.Action, ...] = ()


def _leaves(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[Leaf]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        options = frozenset(s for a in parser._actions for s in a.option_strings)
        positionals = tuple(a for a in parser._actions if not a.option_strings)
        required = tuple(a for a in parser._actions if a.option_strings and a.required)
        yield Leaf(words, options, positionals, required)
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*words, name))


LEAVES = list(_leaves(build_parser()))


def _filled(leaf: Leaf) -> list[str]:
    """The command with a value for each positional: an id no database holds."""
    argv = list(leaf.words)
    for action in leaf.positionals:
        if action.choices:
            argv.append(str(next(iter(action.choices))))
        else:
            argv.append("987654" if action.type is int else "no-such-thing")
    for action in leaf.required:
        value = (str(next(iter(action.choices))) if action.choices
                 else "987654" if action.type is int else "no-such-thing")
        argv += [action.option_strings[-1], value]
    return argv


@dataclass
class Ran:
    argv: list[str]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"lgsp {' '.join(self.argv)} -> {self.code}\n{self.out}{self.err}"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    env.update(PYTHONPATH=str(REPO_ROOT), **extra)
    return env


def _lgsp(argv: list[str], cwd: Path, **env: str) -> Ran:
    done = subprocess.run([sys.executable, "-m", "bus.cli", *argv], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=60)
    return Ran(argv, done.returncode, done.stdout, done.stderr)


def _run_all(cases: list[tuple[list[str], Path, dict[str, str]]]) -> list[Ran]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda c: _lgsp(c[0], c[1], **c[2]), cases))


def _one_line(ran: Ran) -> None:
    """The contract: refused, no traceback, exactly one line on stderr saying why."""
    assert ran.code not in (0, 2), str(ran)
    assert "Traceback" not in ran.out + ran.err, str(ran)
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lgsp: "), str(ran)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mistakes")
    (root / "missing-dir-parent").mkdir()
    (root / "empty").mkdir()
    (root / "bad.yaml").write_text("port: [8080\n", encoding="utf-8")
    (root / "typo.yaml").write_text("data_dir: var\nprot: 8081\n", encoding="utf-8")
    (root / "list.yaml").write_text("- port\n", encoding="utf-8")
    bus = Bus(load_settings(environ={}, data_dir=root / "initialised"))
    bus.close()
    return root


def test_every_command_with_a_bad_settings_file(folder: Path) -> None:
    """Each way the file can be wrong on ``serve``; one of them, in turn, on every other
    command (they share the loader, but each must reach main's reporting)."""
    names = ("missing.yaml", "bad.yaml", "typo.yaml", "list.yaml")
    cases: list[tuple[list[str], Path, dict[str, str]]] = [
        (["serve", "--config", name], folder, {}) for name in names]
    others = [leaf for leaf in LEAVES if "--config" in leaf.options and leaf.words != ("serve",)]
    for number, leaf in enumerate(others):
        cases.append(([*_filled(leaf), "--config", names[number % len(names)]], folder, {}))
    assert len(others) >= 5, "the settings cases lost their commands"
    for ran in _run_all(cases):
        _one_line(ran)
        name = ran.argv[-1]
        assert name in ran.err, str(ran)
        if name == "typo.yaml":
            assert "line 2" in ran.err and "did you mean 'port'" in ran.err, str(ran)
        if name == "bad.yaml":
            assert "not valid YAML" in ran.err, str(ran)


def test_every_reading_command_with_a_wrong_data_dir_leaves_nothing(folder: Path) -> None:
    cases: list[tuple[list[str], Path, dict[str, str]]] = []
    for leaf in LEAVES:
        if "--data-dir" not in leaf.options or leaf.words in WRITERS:
            continue
        for data_dir in ("missing-dir-parent/var", "empty"):
            cases.append(([*_filled(leaf), "--data-dir", data_dir], folder, {}))
    assert len(cases) >= 2 * 4
    for ran in _run_all(cases):
        _one_line(ran)
        assert "data dir" in ran.err or "lgsp.db" in ran.err, str(ran)
    assert list((folder / "empty").iterdir()) == []
    assert list((folder / "missing-dir-parent").iterdir()) == []


def test_run_from_another_directory(folder: Path, tmp_path: Path) -> None:
    ran = _lgsp(["deliveries", "list"], tmp_path)
    _one_line(ran)
    assert str(tmp_path / "var") in ran.err and "--data-dir" in ran.err
    assert list(tmp_path.iterdir()) == []


def test_unknown_ids_on_a_real_database(folder: Path) -> None:
    data_dir = str(folder / "initialised")
    requeue, approve = _run_all([
        (["deliveries", "requeue", "no-such-delivery", "--reason", "test", "--data-dir",
          data_dir], folder, {}),
        (["directory", "requests", "approve", "987654", "--data-dir", data_dir], folder, {}),
    ])
    for ran in (requeue, approve):
        assert ran.code == 1 and "Traceback" not in ran.out + ran.err, str(ran)
        assert len((ran.out + ran.err).strip().splitlines()) == 1, str(ran)
    assert "no-such-delivery" in requeue.out + requeue.err
    assert "987654" in approve.out + approve.err


def test_database_unreachable(folder: Path) -> None:
    url = f"postgresql+psycopg://lgsp:secret-word@127.0.0.1:{free_port()}/lgsp"
    for ran in _run_all([(["deliveries", "list"], folder, {"LGSP_DATABASE_URL": url}),
                         (["deliveries", "list", "--config", "typo.yaml"], folder,
                          {"LGSP_DATABASE_URL": url})]):
        if "--config" in ran.argv:
            _one_line(ran)
            continue
        _one_line(ran)
        assert ran.code == 3, str(ran)
        assert "cannot be reached" in ran.err and "secret-word" not in ran.err, str(ran)


def test_bad_setting_from_the_environment_names_the_variable(folder: Path) -> None:
    ran = _lgsp(["worker"], folder, LGSP_DELIVERY_THREADS="many")
    _one_line(ran)
    assert "LGSP_DELIVERY_THREADS" in ran.err


def test_file_commands_report_per_file_without_traceback(folder: Path) -> None:
    for ran in _run_all([(["validate", "nope.edxml"], folder, {}),
                         (["routes", "check", "--routes", "nope.yaml"], folder, {}),
                         (["routes", "explain", "nope.edxml"], folder, {}),
                         (["routes", "explain", "nope.edxml", "--routes", "bad.yaml"],
                          folder, {})]):
        assert ran.code == 1 and "Traceback" not in ran.out + ran.err, str(ran)
        assert "nope" in ran.out or "bad.yaml" in ran.out, str(ran)

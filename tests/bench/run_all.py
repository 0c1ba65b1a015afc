"""Runs every benchmark and prints one table: the previous figures beside the new ones.

    python tests/bench/run_all.py [--only edxml bus ...] [--update] [--scale-documents N]
                                  [--scale-backends sqlite postgresql]
                                  [--scale-sqlite FILE] [--scale-postgres URL]

The previous figures are kept in tests/bench/figures.json (with the commit, date and
machine they were measured on); ``--update`` replaces them with this run's, for a commit
that changes the README's figures too. Each benchmark runs as its own process, as it is
run by hand, and prints its own report (kept in full under ``--log-dir``); the figures
are read from the Markdown tables it prints (every numeric cell, keyed by the row's
labels and the column's header), from bench_instructions' lines, and from bench_scale's
``--json``. A benchmark that fails is reported and the others still run; the exit status
is then 1. Wall-clock figures on a shared machine move by ±20 % from one run to the
next: the change column is there to spot a step, not to judge a percent. A benchmark that
exits non-zero after printing its table (bench_edxml does when a target is not met) still
gives its figures; its own report, kept under ``--log-dir``, says which target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIGURES = HERE / "figures.json"
Parser = Callable[[str], dict[str, float]]


@dataclass(frozen=True)
class Bench:
    name: str
    argv: list[str]
    parse: Parser
    timeout_s: float


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+$")


def _number(cell: str) -> float | None:
    text = cell.strip().strip("*").replace(" ", "")
    if not _NUMBER.match(text):
        return None
    return float(text.replace(",", ""))


def markdown_figures(output: str) -> dict[str, float]:
    """Every numeric cell of every Markdown table: '<row labels> · <column header>'."""
    figures: dict[str, float] = {}
    header: list[str] | None = None
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        labels = [c for c in cells if _number(c) is None]
        for title, cell in zip(header, cells, strict=False):
            value = _number(cell)
            if value is not None:
                figures[f"{' '.join(labels)} · {title}"] = value
    return figures


_CALLGRIND = re.compile(r"^\s*(\d+ [KM]B)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)\s*$")


def instruction_figures(output: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in output.splitlines():
        match = _CALLGRIND.match(line)
        if match:
            out[f"{match[1]} · instructions"] = float(match[2].replace(",", ""))
            out[f"{match[1]} · ratio to base"] = float(match[4])
    return out


def benches(args: argparse.Namespace, folder: Path) -> list[Bench]:
    py = sys.executable
    scale = [py, str(HERE / "bench_scale.py"), "--documents", str(args.scale_documents),
             "--json", str(folder / "scale.json")]
    scale += ["--backends", *args.scale_backends, *shlex.split(args.scale_extra)]
    if args.scale_sqlite:
        scale += ["--sqlite", args.scale_sqlite]
    if args.scale_postgres:
        scale += ["--postgres", args.scale_postgres]

    def scale_figures(_output: str) -> dict[str, float]:
        loaded: dict[str, float] = json.loads((folder / "scale.json").read_text())
        return loaded

    found = [
        Bench("edxml", [py, str(HERE / "bench_edxml.py")], markdown_figures, 1800),
        Bench("bus", [py, str(HERE / "bench_bus.py"), "--quick"], markdown_figures, 3600),
        Bench("instructions", [py, str(HERE / "bench_instructions.py")], instruction_figures,
              1800),
        Bench("directory", [py, str(HERE / "bench_directory.py")], markdown_figures, 1800),
        Bench("scale", scale, scale_figures, 4 * 3600),
    ]
    return [b for b in found if Path(b.argv[1]).exists()
            and (not args.only or b.name in args.only)]


def run(bench: Bench, log_dir: Path) -> tuple[dict[str, float], str | None]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    began = time.monotonic()
    print(f"running {bench.name}: {' '.join(bench.argv[1:])}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(bench.argv, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=bench.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {}, f"{bench.name}: no answer in {bench.timeout_s:.0f} s"
    (log_dir / f"{bench.name}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    print(f"  {bench.name} took {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    try:
        figures = bench.parse(done.stdout)
    except (OSError, ValueError) as exc:
        figures, problem = {}, f"its figures could not be read: {exc}"
    else:
        problem = None if figures else "it printed no figures"
    if done.returncode != 0 and not figures:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        problem = f"exit {done.returncode}: {' / '.join(tail)}"
    if problem:
        return {}, f"{bench.name}: {problem}"
    return {f"{bench.name}: {k}": v for k, v in figures.items()}, None


def compare(previous: dict[str, float], new: dict[str, float]) -> str:
    lines = ["| figure | previous | new | change |", "|---|---:|---:|---:|"]
    for key in sorted(set(previous) | set(new)):
        old, now = previous.get(key), new.get(key)
        change = f"{(now - old) / old:+.0%}" if old and now is not None else ""
        lines.append(f"| {key} | {_fmt(old)} | {_fmt(now)} | {change} |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def machine() -> str:
    cpus = os.cpu_count() or 0
    model = ""
    with_info = Path("/proc/cpuinfo")
    if with_info.exists():
        for line in with_info.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()}: {cpus} CPUs {model}, Python {platform.python_version()}"


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", nargs="*", help="edxml bus instructions directory scale")
    parser.add_argument("--update", action="store_true",
                        help=f"write this run's figures to {FIGURES.relative_to(REPO)}")
    parser.add_argument("--scale-documents", type=int, default=1_000_000)
    parser.add_argument("--scale-backends", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--scale-extra", default="",
                        help="more arguments for bench_scale.py, e.g. '--purge-cap 120'")
    parser.add_argument("--scale-sqlite", help="an SQLite file fill_db.py already filled")
    parser.add_argument("--scale-postgres", help="a PostgreSQL URL fill_db.py already filled")
    parser.add_argument("--log-dir", type=Path, help="keep each benchmark's full output here")
    args = parser.parse_args(argv)
    previous = json.loads(FIGURES.read_text()) if FIGURES.exists() else {"figures": {}}
    measured = commit()
    new: dict[str, float] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lgsp-bench-") as tmp:
        folder = Path(tmp)
        log_dir = args.log_dir or folder
        log_dir.mkdir(parents=True, exist_ok=True)
        for bench in benches(args, folder):
            figures, failure = run(bench, log_dir)
            new.update(figures)
            if failure:
                failures.append(failure)
    if args.only:
        kept = {k: v for k, v in previous["figures"].items()
                if k.split(":", 1)[0] in args.only}
    else:
        kept = previous["figures"]
    print(f"previous: {previous.get('commit', '—')} on {previous.get('date', '—')} "
          f"({previous.get('machine', '—')})")
    print(f"new: {measured} on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine()})\n")
    print(compare(kept, new))
    for failure in failures:
        print(f"\nFAILED {failure}")
    if args.update and new:
        merged = dict(previous["figures"]) | new
        FIGURES.write_text(json.dumps({
            "commit": measured, "date": f"{datetime.now(UTC):%Y-%m-%d}",
            "machine": machine(), "figures": dict(sorted(merged.items()))},
            indent=1, ensure_ascii=False) + "\n")
        print(f"\nwrote {FIGURES.relative_to(REPO)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

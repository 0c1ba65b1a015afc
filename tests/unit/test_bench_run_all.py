"""run_all.py reads every benchmark's figures and sets them beside the previous ones."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.bench import run_all

BUS = """Some words first.

| configuration | size | bus docs/s | bare docs/s | ratio | bus CPU ms/doc |
|---|---|---:|---:|---:|---:|
| RabbitMQ + PostgreSQL | 10 KB | 276 | 456 | 0.61 | 5.9 |
| embedded SQLite | 100 KB | 1,257 | 437 | 0.59 | 3.7 |

- target met
"""

CALLGRIND = """    size     this tree        HEAD~1  ratio
    5 KB       744,520       739,427  1.007
  100 KB     1,809,360     1,809,090  1.000
"""


def test_every_numeric_cell_of_a_markdown_table_is_a_figure() -> None:
    figures = run_all.markdown_figures(BUS)
    assert figures["RabbitMQ + PostgreSQL 10 KB · bus docs/s"] == 276
    assert figures["embedded SQLite 100 KB · bus docs/s"] == 1257
    assert figures["embedded SQLite 100 KB · ratio"] == 0.59
    assert len(figures) == 8


def test_instruction_counts_are_figures() -> None:
    figures = run_all.instruction_figures(CALLGRIND)
    assert figures == {"5 KB · instructions": 744520, "5 KB · ratio to base": 1.007,
                       "100 KB · instructions": 1809360, "100 KB · ratio to base": 1.0}


def test_the_table_sets_previous_beside_new_with_the_change() -> None:
    table = run_all.compare({"bus: a · x": 200.0, "bus: gone · x": 1.0},
                            {"bus: a · x": 150.0, "scale: new · y": 0.5})
    lines = table.splitlines()
    assert "| bus: a · x | 200 | 150 | -25% |" in lines
    assert "| bus: gone · x | 1 | — |  |" in lines
    assert "| scale: new · y | — | 0.5 |  |" in lines


def test_a_benchmark_that_misses_a_target_still_gives_its_figures(tmp_path: Path) -> None:
    """bench_edxml exits 1 when a target is not met, after printing its table."""
    table = "| size | ratio |\n|---|---:|\n| 5 KB | 0.42 |\n"
    missed = run_all.Bench("edxml", [sys.executable, "-c",
                                     f"print({table!r}); raise SystemExit(1)"],
                           run_all.markdown_figures, 60)
    figures, failure = run_all.run(missed, tmp_path)
    assert figures == {"edxml: 5 KB · ratio": 0.42} and failure is None
    broken = run_all.Bench("bus", [sys.executable, "-c", "raise SystemExit('no servers')"],
                           run_all.markdown_figures, 60)
    figures, failure = run_all.run(broken, tmp_path)
    assert figures == {} and failure is not None and "no servers" in failure

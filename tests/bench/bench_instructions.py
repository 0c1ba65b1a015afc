"""Instructions per read_packet, this tree against another revision: a figure noise cannot move.

    python tests/bench/bench_instructions.py [--against REV] [--reads N] [--sizes '5 KB' ...]

Wall-clock rates on a shared two-core machine move by ±20 % from one minute to the next,
which hides a few per cent either way. Valgrind's callgrind counts the instructions a
process executes, and that count does not depend on what else the machine is doing. Each
tree runs the same script twice under callgrind, once reading the packet ``N`` times and
once not at all (after the same warm-up); the difference divided by ``N`` is the cost of
one read, with interpreter start-up and imports taken out. Instructions are not time
(cache misses and branch mispredictions are not counted), so this complements
``bench_edxml.py`` rather than replacing it: use it to tell whether a change added work.

The other revision is checked out into a temporary git worktree and removed afterwards.
Needs ``valgrind`` (a Debian package). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys
from bus.edxml import read_packet
from bus.schemas import default_schemas
data = open(sys.argv[1], "rb").read()
schemas = default_schemas()
for _ in range(20):
    read_packet(data, schemas=schemas)
for _ in range(int(sys.argv[2])):
    read_packet(data, schemas=schemas)
"""

_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(tree: Path, packet: Path, reads: int, scratch: Path) -> int:
    """Instructions executed by ``reads`` reads of ``packet`` with ``tree``'s code."""
    script = scratch / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch / 'cg.out'}",
         sys.executable, str(script), str(packet), str(reads)],
        cwd=tree, env=env, capture_output=True, text=True, timeout=1800, check=True)
    found = _COLLECTED.search(out.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no total:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def per_read(tree: Path, packet: Path, reads: int, scratch: Path) -> float:
    return (instructions(tree, packet, reads, scratch)
            - instructions(tree, packet, 0, scratch)) / reads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision (default HEAD~1)")
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--sizes", nargs="*", default=["5 KB", "100 KB"])
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    sys.path.insert(0, str(REPO))
    from tests.edxml_factory import SIZES, sized_edoc_bytes

    with tempfile.TemporaryDirectory(prefix="lgsp-instr-") as folder:
        scratch = Path(folder)
        other = scratch / "other"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.against],
                       cwd=REPO, check=True, capture_output=True)
        try:
            print(f"{'size':>8}  {'this tree':>12}  {args.against:>12}  ratio")
            for name in args.sizes:
                packet = scratch / f"{SIZES[name]}.edxml"
                packet.write_bytes(sized_edoc_bytes(SIZES[name]))
                reads = max(5, args.reads * 5 * 1024 // max(SIZES[name], 5 * 1024))
                mine = per_read(REPO, packet, reads, scratch)
                theirs = per_read(other, packet, reads, scratch)
                print(f"{name:>8}  {mine:12,.0f}  {theirs:12,.0f}  {mine / theirs:.3f}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO,
                           check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

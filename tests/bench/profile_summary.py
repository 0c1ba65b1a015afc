"""py-spy's collapsed stacks summed up: where a process held the GIL, by project step
(inclusive), by library and by function (self)."""

from __future__ import annotations

import collections
import re
from pathlib import Path

from tests.bench.bench_procs import REPO

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_STDLIB = re.compile(r"/lib/python3\.\d+/")
_OWN = ("bus/", "adapters/")


def _frame(frame: str) -> tuple[str, str]:
    """(function (short file), package) of one py-spy frame."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "?"
    file = match["file"]
    if "/site-packages/" in file:
        file = file.split("/site-packages/", 1)[1]
        package = file.split("/", 1)[0].removesuffix(".py")
    elif file.startswith(str(REPO) + "/"):
        file = file[len(str(REPO)) + 1:]
        package = file.split("/", 1)[0]
    elif _STDLIB.search(file):
        file = _STDLIB.split(file, 1)[1]
        package = "stdlib:" + file.split("/", 1)[0].removesuffix(".py")
    else:
        package = file
    return f"{match['func']} ({file})", package


def summarise_profile(raw: Path, top: int = 15) -> str:
    """Where the GIL was spent: the project's own steps (inclusive), and the libraries and
    functions that ran (self), from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        for name in {name for name, _ in frames}:
            if name.split(" (", 1)[-1].startswith(_OWN):
                inclusive[name] += count
        own[frames[-1][0]] += count
        packages[frames[-1][1]] += count
    if not total:
        return "(no samples)"

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [f"{total} samples holding the GIL", "project steps, inclusive:"]
    lines += [f"  {pct(n)}  {name}" for name, n in inclusive.most_common(top)]
    lines.append("self time by package:")
    lines += [f"  {pct(n)}  {name}" for name, n in packages.most_common(12)]
    lines.append("self time by function:")
    lines += [f"  {pct(n)}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)

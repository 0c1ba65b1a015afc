"""Benchmark: loading the agency directory at provincial and national scale.

    python tests/bench/bench_directory.py [--sizes 10000,30000,100000] [--before REV]

For each size N it writes a directory in the real formats and loads it in a fresh child
process (so one case's memory never hides another's), printing:

* ``yaml``: all N agencies in config/directory.yaml (how the province's own file scales);
* ``layer``: the national shape: 1,000 agencies hosted by the province in directory.yaml
  and the other N - 1,000 in the axis layer (config/directory.axis.csv) that
  ``lgsp directory sync`` writes; plus the reloader's reload after an edit of
  directory.yaml (the layer is unchanged and kept) and after a new axis layer.

Time is the median of ``--rounds`` loads without tracing, wall clock and the process's
CPU time (on a shared machine the second is the steadier figure); memory is measured in a second
child: tracemalloc's peak (Python allocations during the load) and the rise of the
resident set (ru_maxrss after minus the resident size just before). ``--before REV`` loads
the same YAML with the tree at git revision REV (exported with ``git archive``), which is
how the "before" column of the README was made; the old tree had no axis layer.

Not collected by pytest (the name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOSTED_IN_LAYER_CASE = 1000

ROUTES = """\
version: 1
destinations:
  eoffice: {adapter: eoffice, options: {url: "http://127.0.0.1:1/x", timeout_s: 5}}
  hcm_egov: {adapter: hcm_egov, options: {url: "http://127.0.0.1:1/x", timeout_s: 5}}
rules: []
"""


def code(i: int) -> str:
    """Distinct codes of the QCVN 102 form spread over provinces H01..H63."""
    return f"{i % 1000:03d}.{(i // 1000) % 100:02d}.{(i // 100000) % 100:02d}.H{i % 63 + 1:02d}"


def write_yaml(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("version: 1\nsystems:\n  eoffice:\n    destination: eoffice\n"
                  "  hcm_egov:\n    destination: hcm_egov\nagencies:\n")
        for i in range(n):
            out.write(f'  "{code(i)}":\n    name: Ủy ban nhân dân xã mẫu số {i}\n'
                      f'    system: {"hcm_egov" if i % 2 else "eoffice"}\n')
            if i:
                out.write(f'    parent: "{code(i // 50)}"\n')
        out.write(f'successors:\n  "999.99.99.H37":\n    replaced_by: "{code(1)}"\n'
                  '    effective: 2025-07-01\n')


def write_layer(folder: Path, n: int, *, salt: str = "") -> None:
    from bus.directory.layer import AxisUnit, write_units

    write_yaml(folder / "directory.yaml", min(n, HOSTED_IN_LAYER_CASE))
    write_units(folder / "directory.axis.csv", (
        AxisUnit(code(i), f"Ủy ban nhân dân xã {salt}{i}, tỉnh mẫu", code(i // 50),
                 f"00.{i % 63 + 1:02d}.W00", f"vt{i}@example.gov.vn")
        for i in range(HOSTED_IN_LAYER_CASE, n)))
    (folder / "routes.yaml").write_text(ROUTES, encoding="utf-8")


CHILD = r"""
import json, os, resource, statistics, sys, time, tracemalloc
from pathlib import Path
path, mode, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
from bus.directory import load_directory
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
out = {}
if mode == "time":
    times, cpu = [], []
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        d = load_directory(path)
        times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
        n = len(d); del d
    out["load_s"] = statistics.median(times); out["agencies"] = n
    out["cpu_s"] = statistics.median(cpu)
elif mode == "reload":
    from bus.directory.layer import axis_layer_path
    from bus.reloader import Reloader
    r = Reloader(path.with_name("routes.yaml"), path, known_adapters=None)
    times = []
    for _ in range(rounds):
        os.utime(path, ns=(time.time_ns(), time.time_ns()))
        t = time.perf_counter(); ok = r.reload(); times.append(time.perf_counter() - t)
        assert ok
    out["reload_yaml_s"] = statistics.median(times)
    layer = axis_layer_path(path)
    times = []
    for _ in range(rounds):
        os.utime(layer, ns=(time.time_ns(), time.time_ns()))
        t = time.perf_counter(); ok = r.reload(); times.append(time.perf_counter() - t)
        assert ok
    out["reload_layer_s"] = statistics.median(times)
else:
    before = rss_kb()
    tracemalloc.start()
    d = load_directory(path)
    out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    out["rss_rise_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(out))
"""


def child(tree: Path, path: Path, mode: str, rounds: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # cwd=tree: ``python -c`` puts the current directory first on sys.path.
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(rounds)],
                          env=env, cwd=tree, capture_output=True, text=True, timeout=1800,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({mode}, {path}):\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "bus", "schemas", "adapters"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", metavar="REV", help="also load the YAML with this revision")
    parser.add_argument("--before-max", type=int, default=30000,
                        help="largest size given to the old tree (it is slow)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="bench-directory-") as tmp:
        work = Path(tmp)
        old = None
        if args.before:
            (work / "before").mkdir()
            old = export(args.before, work / "before")
        print(f"{'case':32s} {'agencies':>9s} {'load s':>8s} {'CPU s':>7s} {'traced MB':>10s} "
              f"{'RSS rise MB':>12s} {'reload s':>9s}")
        for n in sizes:
            yaml_dir = work / f"yaml-{n}"
            yaml_dir.mkdir()
            write_yaml(yaml_dir / "directory.yaml", n)
            layer_dir = work / f"layer-{n}"
            layer_dir.mkdir()
            write_layer(layer_dir, n)
            cases = [("yaml, this tree", REPO, yaml_dir, False),
                     ("yaml 1k + axis layer, this tree", REPO, layer_dir, True)]
            if old is not None and n <= args.before_max:
                cases.insert(0, (f"yaml, {args.before}", old, yaml_dir, False))
            for label, tree, folder, reload in cases:
                path = folder / "directory.yaml"
                timed = child(tree, path, "time", args.rounds)
                mem = child(tree, path, "memory", 1)
                again = child(tree, path, "reload", args.rounds) if reload else {}
                reloads = (f"{again['reload_yaml_s']:.2f}/{again['reload_layer_s']:.2f}"
                           if again else "-")
                print(f"{label:32s} {int(timed['agencies']):9d} {timed['load_s']:8.2f} "
                      f"{timed['cpu_s']:7.2f} "
                      f"{mem['traced_peak_mb']:10.0f} {mem['rss_rise_mb']:12.0f} {reloads:>9s}",
                      flush=True)
        print("reload s: after an edit of directory.yaml / after a new axis layer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

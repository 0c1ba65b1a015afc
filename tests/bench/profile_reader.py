"""Throughput of ``read_packet`` against bare lxml parse + XSD validation.

The issue's target is that the full path (byte scan, hardened parse, XSD, second pass,
base64 decoding, typed model) keeps at least half the throughput of the two lxml calls
alone. A script rather than a test: timings on a shared machine are noise to a test
suite, but a developer changing the reader needs the figure.

    python -m tests.bench.profile_reader [--repeat 25] [--seconds 0.02]

Bare and full runs are interleaved per size and the best of ``--repeat`` rounds is kept,
so a burst of load from a neighbour hurts both sides equally or neither.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from lxml import etree

from bus.edxml import packet_bytes, read_packet
from bus.edxml.reader import hardened_parser
from bus.schemas import default_schemas
from tests.edxml_factory import KB, repaired_edoc_sample, sized_edoc_bytes

_Step = Callable[[], object]


def _parser() -> etree.XMLParser:
    # The reader's own settings, so the baseline does the same libxml2 work.
    return hardened_parser()


def _per_call(step: _Step, seconds: float) -> tuple[float, int]:
    """Seconds per call of ``step``, timed over enough calls to last about ``seconds``."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            step()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or number >= 1 << 16:
            break
        number *= 2
    number = max(1, int(number * seconds / max(elapsed, 1e-9)))
    start = time.perf_counter()
    for _ in range(number):
        step()
    return (time.perf_counter() - start) / number, number


def packets() -> dict[str, bytes]:
    sample = packet_bytes(read_packet(repaired_edoc_sample()).packet)
    return {
        "5 KB": sized_edoc_bytes(5 * KB),
        "100 KB": sized_edoc_bytes(100 * KB),
        "SDK sample, canonical": sample,
    }


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--repeat", type=int, default=25, help="rounds; the best is kept")
    args.add_argument("--seconds", type=float, default=0.02, help="length of one timing")
    options = args.parse_args(argv)

    schema = default_schemas().edoc
    parser = _parser()
    cases = packets()
    steps: dict[str, tuple[_Step, _Step]] = {}
    for name, data in cases.items():
        def bare(data: bytes = data) -> object:
            return schema.validate(etree.fromstring(data, parser))

        def full(data: bytes = data) -> object:
            return read_packet(data)

        assert bare(), f"{name}: the packet must be valid for the comparison to mean much"
        steps[name] = (bare, full)

    best: dict[str, list[float]] = {name: [float("inf")] * 2 for name in cases}
    for _ in range(options.repeat):
        for name, pair in steps.items():
            for side, step in enumerate(pair):
                seconds, _calls = _per_call(step, options.seconds)
                best[name][side] = min(best[name][side], seconds)

    print(f"{'packet':<24}{'bytes':>9}{'bare µs':>10}{'full µs':>10}{'ratio':>8}")
    for name, (bare_s, full_s) in best.items():
        print(
            f"{name:<24}{len(cases[name]):>9}{bare_s * 1e6:>10.1f}{full_s * 1e6:>10.1f}"
            f"{bare_s / full_s:>8.2f}"
        )
    print("ratio = bare time / full time = full throughput as a fraction of bare (goal ≥ 0.50)")


if __name__ == "__main__":
    main()

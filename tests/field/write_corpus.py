"""Writes the producer corpus to a folder, for ``lgsp validate`` and the other helpers.

    python -m tests.field.write_corpus OUT_DIR

One file per producer, accepted and refused: ``<producer>.edxml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.field.producers import ACCEPTED, REFUSED, sample_data


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "field-corpus")
    out.mkdir(parents=True, exist_ok=True)
    data = sample_data()
    producers = {**ACCEPTED, **{name: entry[0] for name, entry in REFUSED.items()}}
    for name, producer in producers.items():
        (out / f"{name}.edxml").write_bytes(producer(data))
        print(out / f"{name}.edxml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

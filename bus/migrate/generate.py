"""A synthetic legacy archive, the same every time for the same parameters.

Tests and ``tests/bench/bench_migrate.py`` need archives of any size without keeping
them anywhere: :class:`GeneratedArchive` is a :class:`~bus.migrate.source.Source` whose
records and file bytes are computed from (seed, record number) when asked for, so a
100,000-record archive costs no disk and a file reads back byte-identical. It names real
agencies of the sample province by code, by name and by a replaced code, and mixes in
records that must be rejected (classified, unknown agency) when asked to.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bus.migrate.source import (
    HistoryEntry,
    LegacyFile,
    LegacyRecord,
    RecordRef,
    record_to_json,
)

__all__ = ["GeneratedArchive", "file_bytes", "write_folder"]

KB, MB = 1024, 1024 * 1024
_ISSUERS = ("000.00.00.H37", "Văn phòng Ủy ban nhân dân tỉnh Lạng Sơn", "000.00.31.H37",
            "000.00.33.H37", "000.00.00.G22", "Ủy ban nhân dân xã mẫu 32")
_TYPES = ("Công văn", "Quyết định", "Kế hoạch", "Báo cáo", "Thông báo", "Giấy mời")
_URGENCY = ("thường", "thường", "thường", "khẩn", "thượng khẩn", "hỏa tốc")
_SUBJECTS = ("V/v triển khai chuyển đổi số cấp xã", "V/v báo cáo tình hình kinh tế - xã hội",
             "V/v tổ chức hội nghị tổng kết năm", "V/v phân bổ kinh phí sự nghiệp",
             "V/v kiểm tra công tác cải cách hành chính")


_BLOCK = 1 * MB + 4093  # not a power of two: files at different offsets never line up


@functools.lru_cache(maxsize=4)
def _block(seed: int) -> bytes:
    return random.Random(seed).randbytes(_BLOCK)  # noqa: S311 - test data, not secrets


def file_bytes(seed: int, label: str, size: int, rnd: random.Random) -> bytes:
    """``size`` bytes unique to ``label``: a header naming the file, then the seed's
    random block from an offset of its own, repeated. Drawing every byte from the
    generator (150 MB/s) cost more CPU than the migration it fed; slicing costs nothing."""
    head = f"%PDF-1.4\n% {label} {size}\n".encode()[:size]
    block = _block(seed)
    offset = rnd.randrange(_BLOCK)
    need = size - len(head)
    pieces = [head, block[offset:offset + need]]
    need -= len(pieces[1])
    while need > 0:
        pieces.append(block[:need])
        need -= len(pieces[-1])
    return b"".join(pieces)


class GeneratedArchive:
    """``spread`` draws each file's size in ``sizes`` uniformly (``uniform``) or
    log-uniformly (``log``: most files small, a long tail, as scanned archives are)."""

    def __init__(self, count: int, *, owner: str = "000.00.12.H37", seed: int = 1,
                 sizes: tuple[int, int] = (50 * KB, 500 * KB), big_every: int = 0,
                 big: tuple[int, int] = (20 * MB, 50 * MB), reject_every: int = 0,
                 years: tuple[int, int] = (2019, 2024), spread: str = "uniform",
                 second_every: int = 2) -> None:
        if spread not in ("uniform", "log"):
            raise ValueError(f"spread {spread!r} is neither uniform nor log")
        self.count, self.owner, self.seed = count, owner, seed
        self.sizes, self.big_every, self.big = sizes, big_every, big
        self.reject_every, self.years, self.spread = reject_every, years, spread
        self.second_every = max(second_every, 1)
        self.label = f"generated:{seed}:{count}"

    def spec(self) -> dict[str, Any]:
        return {"kind": "generated", "count": self.count, "owner": self.owner,
                "seed": self.seed, "sizes": list(self.sizes), "big_every": self.big_every,
                "big": list(self.big), "reject_every": self.reject_every,
                "years": list(self.years), "spread": self.spread,
                "second_every": self.second_every}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> GeneratedArchive:
        return cls(int(spec["count"]), owner=spec["owner"], seed=int(spec["seed"]),
                   sizes=tuple(spec["sizes"]), big_every=int(spec["big_every"]),
                   big=tuple(spec["big"]), reject_every=int(spec["reject_every"]),
                   years=tuple(spec["years"]), spread=str(spec.get("spread") or "uniform"),
                   second_every=int(spec.get("second_every") or 2))

    def _size(self, rnd: random.Random, low: int, high: int) -> int:
        if self.spread == "log" and low > 0:
            return int(math.exp(rnd.uniform(math.log(low), math.log(high))))
        return rnd.randint(low, high)

    def _ref(self, n: int) -> RecordRef:
        register = "VBDEN" if n % 4 else "VBDI"
        span = self.years[1] - self.years[0] + 1
        return RecordRef(f"R{n:07d}", register, self.years[0] + n % span)

    def pages(self, page_size: int) -> Iterator[list[RecordRef]]:
        for start in range(0, self.count, page_size):
            yield [self._ref(n) for n in range(start, min(start + page_size, self.count))]

    def fetch(self, record_id: str) -> LegacyRecord:
        n = int(record_id.lstrip("R"))
        if not 0 <= n < self.count or record_id != f"R{n:07d}":
            raise KeyError(record_id)
        ref = self._ref(n)
        rnd = random.Random(self.seed * 1_000_003 + n)  # noqa: S311 - test data, not secrets
        issued = date(ref.year, 1 + n % 12, 1 + n % 28)
        outgoing = ref.register == "VBDI"
        rejected = self.reject_every and n % self.reject_every == self.reject_every - 1
        confidentiality = "mật" if rejected and n % 2 else "thường"
        issuer = self.owner if outgoing else _ISSUERS[n % len(_ISSUERS)]
        if rejected and not n % 2:
            issuer = "Sở Không Có Trong Danh Bạ"
        start = datetime(issued.year, issued.month, issued.day, 8, 0, 0) + timedelta(days=1)
        steps = (("drafted", "signed", "issued") if outgoing
                 else ("đến", "tiếp nhận", "phân công", "hoàn thành")[: 1 + n % 4])
        history = tuple(HistoryEntry(step, start + timedelta(hours=3 * i), "Nguyễn Văn An",
                                     "Văn phòng", "") for i, step in enumerate(steps))
        files = []
        for i in range(1 + (n % self.second_every == 1 % self.second_every)):
            big = self.big_every and n % self.big_every == self.big_every // 2 and i == 0
            low, high = self.big if big else self.sizes
            size = self._size(rnd, low, high)
            name = f"van-ban-{n}-{i + 1}.pdf"
            files.append(LegacyFile(name, "application/pdf",
                                    file_bytes(self.seed, f"{record_id}/{name}", size, rnd)))
        return LegacyRecord(
            record_id=record_id, register=ref.register,
            direction="outgoing" if outgoing else "incoming",
            number=str(100 + n), notation="UBND-VP" if outgoing else "CV",
            issued=issued, received=None if outgoing else issued + timedelta(days=1),
            issuer=issuer,
            recipients=("000.00.31.H37", "000.00.00.H37") if outgoing else (self.owner,),
            subject=f"{_SUBJECTS[n % len(_SUBJECTS)]} (số {n})",
            doc_type=_TYPES[n % len(_TYPES)], signer="Trần Thị Bình",
            signer_position="Phó Giám đốc", urgency=_URGENCY[n % len(_URGENCY)],
            confidentiality=confidentiality,
            due=issued + timedelta(days=15) if n % 3 == 0 else None,
            handling_unit="Phòng Bưu chính, Viễn thông", history=history, files=tuple(files))

    def close(self) -> None:
        return None


def write_folder(archive: GeneratedArchive, folder: Path, *, csv_form: bool = False) -> None:
    """Writes ``archive`` as a folder export (register.jsonl or register.csv + files/)."""
    import csv

    (folder / "files").mkdir(parents=True, exist_ok=True)
    rows = []
    for page in archive.pages(500):
        for ref in page:
            record = archive.fetch(ref.record_id)
            paths = []
            for i, item in enumerate(record.files):
                rel = f"files/{record.record_id}-{i + 1}.pdf"
                (folder / rel).write_bytes(item.data)
                paths.append(rel)
            rows.append(record_to_json(record, paths))
    if not csv_form:
        with (folder / "register.jsonl").open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    columns = [k for k in rows[0] if k not in ("files",)] + ["files"]
    with (folder / "register.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        for row in rows:
            flat = dict(row)
            flat["recipients"] = ";".join(row["recipients"])
            flat["history"] = json.dumps(row["history"], ensure_ascii=False)
            flat["files"] = ";".join(f["path"] for f in row["files"])
            writer.writerow({k: "" if v is None else v for k, v in flat.items()})

"""The simulated axis's agency directory: a national-size list that changes between calls.

What ``lgsp directory sync`` is tested against: getAgenciesList, getAgenciesListQD20 and
getSynchronizeUnit answer from one list of units, and a test renames, moves, removes and
adds units between two syncs the way the Government Office's list changed in 2025.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from bus import vxp

_FORM_102: Final = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")


@dataclass
class UnitFacts:
    """What getSynchronizeUnit adds to a getAgenciesList row."""

    center: str = ""
    version: int = 1
    deleted: bool = False
    modified: str = "2025-01-01 00:00:00"


def national_agencies(count: int, *, province: str = "H37") -> list[vxp.Agency]:
    """``count`` agencies shaped like the national list, parents first; the third group is
    50 or more so that none collides with the sample province's codes."""
    out: list[vxp.Agency] = []
    for i in range(count):
        area = f"H{i % 63 + 1:02d}" if i % 7 else province
        code = f"{i % 1000:03d}.{(i // 1000) % 100:02d}.{50 + (i // 100000) % 50:02d}.{area}"
        parent = f"{i // 50:d}" if i >= 50 else ""
        out.append(vxp.Agency(code, f"Ủy ban nhân dân xã mẫu {i}, {area}", str(i), parent,
                              f"vanthu{i}@{area.lower()}.gov.vn"))
    return out


class UnitBook:
    """Mixed into AxisSimulator: its ``agencies`` plus the facts only the sync lists."""

    agencies: list[vxp.Agency]
    _lock: threading.Lock
    _facts: dict[str, UnitFacts]
    _removed: dict[str, vxp.Agency]

    def _book(self) -> dict[str, UnitFacts]:
        if not hasattr(self, "_facts"):
            self._facts, self._removed = {}, {}
        return self._facts

    def _touch(self, code: str, now: datetime, **changes: Any) -> None:
        facts = self._book().setdefault(code, UnitFacts())
        facts.version += 1
        facts.modified = now.strftime("%Y-%m-%d %H:%M:%S")
        for key, value in changes.items():
            setattr(facts, key, value)

    def set_center(self, code: str, center: str) -> None:
        with self._lock:
            self._book().setdefault(code, UnitFacts()).center = center

    def rename(self, code: str, name: str, *, now: datetime) -> None:
        self._edit(code, now, name=name)

    def move(self, code: str, *, now: datetime, parent_code: str | None = None,
             center: str | None = None) -> None:
        """A new parent (by code) and/or a new center (another province's system)."""
        with self._lock:
            ids = {a.code: a.id for a in self.agencies}
        if parent_code is not None:
            self._edit(code, now, pid=ids[parent_code])
        if center is not None:
            with self._lock:
                self._touch(code, now, center=center)

    def remove(self, code: str, *, now: datetime) -> None:
        """Off getAgenciesList; getSynchronizeUnit still lists it, ``deleted: true``."""
        with self._lock:
            self._book()
            found = [a for a in self.agencies if a.code == code]
            self.agencies[:] = [a for a in self.agencies if a.code != code]
            self._removed.update({a.code: a for a in found})
            self._touch(code, now, deleted=True)

    def add(self, agency: vxp.Agency, *, now: datetime, center: str = "") -> None:
        with self._lock:
            self.agencies.append(agency)
            self._touch(agency.code, now, center=center, deleted=False)

    def _edit(self, code: str, now: datetime, **fields: str) -> None:
        with self._lock:
            self.agencies[:] = [replace(a, **fields) if a.code == code else a
                                for a in self.agencies]
            self._touch(code, now)

    def qd20_rows(self) -> list[dict[str, str]]:
        """Called with the simulator's lock held (its ``_operate``)."""
        return [{"code": a.code, "id": a.id, "mail": a.mail, "name": a.name,
                 "code102": a.code if _FORM_102.fullmatch(a.code) else ""}
                for a in self.agencies]

    def unit_rows(self) -> list[dict[str, Any]]:
        """Called with the simulator's lock held (its ``_operate``)."""
        book = self._book()
        rows = []
        for a in [*self.agencies, *self._removed.values()]:
            facts = book.get(a.code, UnitFacts())
            rows.append({"id": a.id, "pid": a.pid, "code": a.code, "name": a.name,
                         "mail": a.mail, "centerCode": facts.center,
                         "modifyDate": facts.modified, "version": facts.version,
                         "deleted": facts.deleted, "isAgency": True})
        return rows

"""bench_bus.py's measured rounds, the rows they make and the Markdown tables and verdicts
printed from them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

TARGET = 0.8  # bus docs/s ÷ bare docs/s, every row (issue 16; issue 3 asked 0.5)
CPU_TARGET = 1.3  # bus CPU ms/doc ÷ bare CPU ms/doc, every row (issue 16)
CONFIGS: dict[str, str] = {"a": "(a) RabbitMQ + PostgreSQL", "b": "(b) embedded SQLite"}
SERVERS = "servers"
CLIENT = "client+sink"


@dataclass
class Round:
    posted: int
    delivered: int
    seconds: float
    latencies_ms: list[float]
    errors: list[str]
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per delivered document

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


@dataclass
class Row:
    config: str
    size: str
    bus: list[Round] = field(default_factory=list)
    bare: list[Round] = field(default_factory=list)
    pace: float = 0.0
    bus_paced: list[Round] = field(default_factory=list)
    bare_paced: list[Round] = field(default_factory=list)

    @staticmethod
    def _rate(rounds: list[Round]) -> float:
        return statistics.median(r.rate for r in rounds) if rounds else 0.0

    @staticmethod
    def _latencies(rounds: list[Round]) -> list[float]:
        return [x for r in rounds for x in r.latencies_ms]

    @property
    def bus_rate(self) -> float:
        return self._rate(self.bus)

    @property
    def bare_rate(self) -> float:
        return self._rate(self.bare)

    @property
    def ratio(self) -> float:
        return self.bus_rate / self.bare_rate if self.bare_rate else float("nan")

    @property
    def met(self) -> bool:
        return self.ratio >= TARGET and not any(r.errors for r in [*self.bus, *self.bare])

    @property
    def cpu_ratio(self) -> float:
        bus, bare = cpu_breakdown(self.bus)[0], cpu_breakdown(self.bare)[0]
        return bus / bare if bare else float("nan")

    @property
    def errors(self) -> list[str]:
        rounds = [*self.bus, *self.bare, *self.bus_paced, *self.bare_paced]
        return [e for r in rounds for e in r.errors]

    def paced_cells(self) -> list[str]:
        bus_lat, bare_lat = self._latencies(self.bus_paced), self._latencies(self.bare_paced)
        return [CONFIGS[self.config], self.size, f"{self.pace:.0f}",
                f"{quantile(bus_lat, 0.5):.0f}", f"{quantile(bus_lat, 0.99):.0f}",
                f"{quantile(bare_lat, 0.5):.0f}", f"{quantile(bare_lat, 0.99):.0f}",
                f"{len(bus_lat)} / {len(bare_lat)}"]

    def cells(self) -> list[str]:
        bus_lat, bare_lat = self._latencies(self.bus), self._latencies(self.bare)
        return [CONFIGS[self.config], self.size, f"{self.bus_rate:.1f}",
                f"{self.bare_rate:.1f}", f"{self.ratio:.2f}",
                f"{quantile(bus_lat, 0.5):.0f}", f"{quantile(bus_lat, 0.99):.0f}",
                f"{quantile(bare_lat, 0.5):.0f}", f"{quantile(bare_lat, 0.99):.0f}",
                "met" if self.met else "NOT met"]


def cpu_ms(rounds: list[Round], group: str) -> float:
    values = [r.cpu_ms[group] for r in rounds if group in r.cpu_ms]
    return statistics.median(values) if values else float("nan")


def cpu_breakdown(rounds: list[Round]) -> tuple[float, str]:
    """Total CPU ms per document of a pipeline (its processes and the servers), and its
    parts, e.g. ``serve 3.6 + worker 5.3 + servers 3.7``."""
    names = [n for n in (rounds[0].cpu_ms if rounds else {}) if n != CLIENT]
    parts = [(n, cpu_ms(rounds, n)) for n in names]
    total = sum(ms for _, ms in parts)
    return total, " + ".join(f"{n} {ms:.1f}" for n, ms in parts)


def cpu_table(rows: list[Row]) -> str:
    """What each document cost in CPU, where: the noise-resistant companion of docs/s."""
    head = ["configuration", "size", "bus CPU ms/doc", "bare CPU ms/doc", "bus ÷ bare",
            "client+sink ms/doc (bus / bare)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|---:|---:|"]
    for row in rows:
        bus, bus_parts = cpu_breakdown(row.bus)
        bare, bare_parts = cpu_breakdown(row.bare)
        lines.append("| " + " | ".join([
            CONFIGS[row.config], row.size, f"**{bus:.1f}** = {bus_parts}",
            f"**{bare:.1f}** = {bare_parts}", f"{bus / bare:.1f}×" if bare else "n/a",
            f"{cpu_ms(row.bus, CLIENT):.2f} / {cpu_ms(row.bare, CLIENT):.2f}"]) + " |")
    return "\n".join(lines)


def paced_table(rows: list[Row]) -> str:
    head = ["configuration", "size", "offered docs/s", "bus p50 ms", "bus p99 ms",
            "bare p50 ms", "bare p99 ms", "samples (bus / bare)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    lines += ["| " + " | ".join(row.paced_cells()) + " |" for row in rows]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    head = ["configuration", "size", "bus docs/s", "bare docs/s", "ratio", "bus p50 ms",
            "bus p99 ms", "bare p50 ms", "bare p99 ms", f"bus ≥ {TARGET}× bare"]
    lines = ["| " + " | ".join(head) + " |",
             "|---|---|" + "---:|" * (len(head) - 3) + "---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)

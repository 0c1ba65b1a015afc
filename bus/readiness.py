"""Can each destination work? Its adapter's secrets and ``check()``, per destination.

Three readers ask: ``/readyz`` (a load balancer, a scrape, an operator's curl), the
``lgsp_destination_up`` gauge, and ``lgsp routes check``. The answers must be cheap for
the first two — a scrape storm must not become a storm against an agency's system — and
bounded for all: an adapter's own timeout may be 30 s (the national axis), far too long
for a probe. So the checks run in the background, each cut off after ``timeout_s``, and
their results are kept for ``ttl_s``; a reader gets the cached answers at once, or waits
at most ``wait_s`` for a first or stale round. A check still running from the previous
round is not started again: one slow system never accumulates threads.

A destination that cannot work does not make the bus "not ready": ingress still accepts
and queues documents for it, and every other destination keeps delivering. Taking the
whole bus out of a load balancer because one commune's system is down would stop every
agency's traffic. ``/readyz`` therefore answers 200 with each destination's verdict
(and the names of the failing ones under ``degraded``); 503 stays for the bus itself
(database, configuration, schemas, broker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from bus import errors

if TYPE_CHECKING:
    from bus.adapter import Adapter
    from bus.routing import Destination, RouteTable

log = structlog.get_logger("lgsp.readiness")

OK: Final = "ok"
PENDING: Final = "not checked yet"

Builder = Callable[..., "Adapter[Any]"]


def _default_builder(destination: Destination, *, source: str | None = None) -> Adapter[Any]:
    from bus.registry import build_adapter

    return build_adapter(destination, source=source)


def secret_problems(table: RouteTable, build: Builder = _default_builder
                    ) -> list[errors.Problem]:
    """Every destination whose secrets are unset in this environment, with its place in
    routes.yaml (no I/O)."""
    problems: list[errors.Problem] = []
    for name, destination in table.destinations.items():
        try:
            missing = build(destination, source=table.source).missing_secrets()
        except errors.ConfigInvalid as exc:
            problems.extend(exc.problems)
            continue
        if missing:
            problems.append(errors.Problem(missing, file=table.source,
                                           line=destination.line, path=f"destinations.{name}"))
    return problems


def destination_problems(table: RouteTable, *, probe: bool = True, timeout_s: float = 3.0,
                         build: Builder = _default_builder) -> list[errors.Problem]:
    """``lgsp routes check``'s view of the destinations: an unset secret is an error (the
    destination cannot work anywhere); an unreachable system a warning, since an
    administrator's machine may not reach what the bus hosts reach."""
    from bus.routing.routes import ConfigWarning

    problems = secret_problems(table, build)
    if not probe:
        return problems
    failing = {p.path for p in problems}
    checks = DestinationChecks(lambda: table, timeout_s=timeout_s, build=build, announce=False)
    for name, verdict in checks.results(wait_s=timeout_s + 2.0).items():
        if verdict in (OK, PENDING) or f"destinations.{name}" in failing:
            continue
        problems.append(ConfigWarning(f"{verdict} (from this host)", file=table.source,
                                      line=table.destinations[name].line,
                                      path=f"destinations.{name}"))
    return problems


class DestinationChecks:
    """Cached, time-bounded verdicts per destination of the routes in force."""

    def __init__(self, table: Callable[[], RouteTable], *, ttl_s: float = 30.0,
                 timeout_s: float = 3.0, build: Builder = _default_builder,
                 announce: bool = True) -> None:
        self.table = table
        self.announce = announce
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.build = build
        self._lock = threading.Lock()
        self._results: dict[str, str] = {}
        self._checked_at: float | None = None
        self._checked_table: RouteTable | None = None
        self._round: threading.Thread | None = None
        self._round_done = threading.Event()
        self._probes: dict[str, threading.Thread] = {}

    def results(self, wait_s: float = 0.0) -> dict[str, str]:
        """Each destination's verdict: ``"ok"`` or why it cannot work. Starts a round
        when the last one is older than ``ttl_s`` or the routes changed. Waits for it (at
        most ``wait_s``) only when there is no verdict on these routes yet: a stale one is
        answered at once, so a probe with a one-second timeout never waits on a system."""
        table = self.table()
        with self._lock:
            checked = self._checked_at
            unknown = checked is None or self._checked_table is not table
            stale = checked is None or unknown or time.monotonic() - checked >= self.ttl_s
            if stale and (self._round is None or not self._round.is_alive()):
                self._round_done = threading.Event()
                self._round = threading.Thread(target=self._run_round, args=(table,),
                                               name="lgsp-destination-checks", daemon=True)
                self._round.start()
            done = self._round_done
        if unknown and wait_s > 0:
            done.wait(wait_s)
        with self._lock:
            return {name: self._results.get(name, PENDING) for name in table.destinations}

    def _run_round(self, table: RouteTable) -> None:
        verdicts: dict[str, str] = {}
        boxes: dict[str, list[str]] = {}
        started = time.monotonic()
        for name, destination in table.destinations.items():
            try:
                adapter = self.build(destination, source=table.source)
                missing = adapter.missing_secrets()
            except Exception as exc:
                verdicts[name] = f"cannot be built: {exc}"
                continue
            if missing:
                verdicts[name] = f"secret missing: {missing}"
                continue
            running = self._probes.get(name)
            if running is not None and running.is_alive():
                verdicts[name] = (f"unreachable: no answer within {self.timeout_s:g} s "
                                  "(the previous check is still waiting)")
                continue
            box: list[str] = []
            boxes[name] = box
            probe = threading.Thread(target=_probe, args=(adapter, box),
                                     name=f"lgsp-check-{name}", daemon=True)
            self._probes[name] = probe
            probe.start()
        for name, box in boxes.items():
            self._probes[name].join(max(0.0, started + self.timeout_s - time.monotonic()))
            verdicts[name] = box[0] if box else \
                f"unreachable: no answer within {self.timeout_s:g} s"
        with self._lock:
            changed = {n: v for n, v in verdicts.items() if self._results.get(n) != v}
            self._results = verdicts
            self._checked_at = time.monotonic()
            self._checked_table = table
            done = self._round_done
        for name, verdict in changed.items() if self.announce else ():
            if verdict == OK:
                log.info("destination.ok", destination=name)
            else:
                log.warning("destination.cannot_work", destination=name, reason=verdict)
        done.set()


def _probe(adapter: Adapter[Any], box: list[str]) -> None:
    try:
        reason = adapter.check()
        box.append(OK if reason is None else _clip(reason))
    except Exception as exc:
        box.append(f"check failed: {type(exc).__name__}: {exc}")
    finally:
        try:
            adapter.close()
        except Exception:
            log.warning("destination.close_failed", destination=adapter.name)


def _clip(reason: str, limit: int = 300) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= limit else reason[:limit - 1] + "…"


class _UpCollector(Collector):
    def __init__(self, checks: DestinationChecks) -> None:
        self.checks = checks

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "lgsp_destination_up", "1 when the destination's secrets are set and its "
            "system answered the last check (cached), else 0", labels=["destination"])
        try:
            results = self.checks.results(wait_s=0.0)
        except Exception:
            results = {}
        for name, verdict in results.items():
            if verdict != PENDING:
                up.add_metric([name], 1.0 if verdict == OK else 0.0)
        yield up


def watch(checks: DestinationChecks, registry: CollectorRegistry) -> None:
    """Publishes the verdicts as ``lgsp_destination_up``; a scrape never waits for them."""
    registry.register(_UpCollector(checks))

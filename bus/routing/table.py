"""The typed route table (destinations, rules, defaults) and the decision routing returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bus.errors import ConfigInvalid, Problem
from bus.routing.rules import Rule


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential back-off; after ``attempts`` a delivery is parked for an operator."""

    attempts: int = 8
    first_delay_s: float = 30
    max_delay_s: float = 3600


@dataclass(frozen=True, slots=True)
class Destination:
    """A named place deliveries go to: one adapter with its options.

    ``options`` are validated by the adapter's own Config when the adapter registry loads;
    routing only needs the name.
    """

    name: str
    adapter: str
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    retry: RetryPolicy | None = None
    description: str = ""
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Defaults:
    """What applies when no rule decides: ``outside`` names the destination for codes the
    directory does not host (None: refuse them), ``retry`` is every destination's policy
    unless it sets its own."""

    outside: str | None = None
    retry: RetryPolicy = RetryPolicy()
    recall_follows_original: bool = False
    """A revoke/update/replace also goes to the original's recipients it does not name."""


@dataclass(frozen=True, slots=True)
class RouteTable:
    """routes.yaml, typed. Built by :func:`bus.routing.routes.load_routes`, or directly in tests."""

    destinations: Mapping[str, Destination] = field(default_factory=dict, hash=False)
    rules: tuple[Rule, ...] = ()
    defaults: Defaults = Defaults()
    source: str | None = None
    warnings: tuple[Problem, ...] = field(default=(), compare=False, hash=False)

    def destination(self, name: str) -> Destination:
        """The destination, or ConfigInvalid: a table built by the loader never gets there."""
        try:
            return self.destinations[name]
        except KeyError:
            raise ConfigInvalid(
                [Problem(f"destination {name!r} is not defined", file=self.source)]
            ) from None

    def retry_for(self, name: str) -> RetryPolicy:
        return self.destination(name).retry or self.defaults.retry


@dataclass(frozen=True, slots=True)
class RoutedDelivery:
    """One (addressee, destination) pair the store turns into a delivery row.

    ``recipient`` is the code as the packet wrote it (what the sender will ask about);
    ``effective_recipient`` is what it resolved to (what the destination is told).
    """

    recipient: str
    effective_recipient: str
    destination: str
    rule: str
    copy: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Every delivery of one packet, addressees in packet order, each main delivery
    followed by its copies."""

    deliveries: tuple[RoutedDelivery, ...]
    on: date

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.destination for d in self.deliveries))

    def for_recipient(self, code: str) -> tuple[RoutedDelivery, ...]:
        """Deliveries whose original or effective addressee is ``code``."""
        return tuple(d for d in self.deliveries if code in (d.recipient, d.effective_recipient))

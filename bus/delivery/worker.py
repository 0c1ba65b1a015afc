"""One delivery attempt, from lease to recorded outcome, whatever brought the task.

The embedded queue (:mod:`.embedded`) and RabbitMQ (:mod:`.broker`) only decide
*which* delivery id to try next; everything that makes delivery safe happens here, once:

* the lease (:meth:`Store.claim`) is the only admission ticket. A second task for the
  same delivery — a broker redelivery, a relay republishing, two consumers — finds the
  row leased or terminal and is ``skipped`` without touching the destination;
* the adapter gets an idempotency key that is the same on every attempt, so a delivery
  repeated after a crash (lease expired, swept back to pending) is one effect at a
  destination that honours the key;
* the outcome is committed with a conditional UPDATE on the attempt number; a worker
  that lost its lease while the destination was slow learns it (``stale``) and its late
  answer is not recorded over the newer attempt's;
* retries back off exponentially with full jitter and stop at the destination's
  ``attempts``: the packet is then parked, payload and reason kept, for an operator.

A :class:`DeliveryWorker` is used by one thread at a time, so adapters never need to be
thread-safe; each delivery thread or consumer owns its worker and therefore its own
adapter instances, opened on first use and closed by :meth:`DeliveryWorker.close`.
"""

from __future__ import annotations

import collections
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

import structlog

from bus import errors
from bus.adapter import Adapter, Delivery, Receipt, Refuse, Retry
from bus.metrics import Metrics
from bus.registry import build_adapter
from bus.routing import Destination, RetryPolicy, RouteTable
from bus.store import Claim, Store
from bus.store.blobs import PayloadBody

if TYPE_CHECKING:
    from bus.app import Bus

__all__ = ["DeliveryWorker", "Outcome", "backoff_s", "idempotency_key"]

log = structlog.get_logger("lgsp.worker")

Outcome = Literal["awaiting", "delivered", "retry", "parked", "refused", "skipped", "stale"]
_REASON_CHARS: Final = 2000


def idempotency_key(claim: Claim) -> str:
    """Bus document + recipient + destination: stable across attempts, workers, restarts."""
    return f"{claim.document}:{claim.effective_recipient}:{claim.destination}"


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Full-jitter exponential back-off after failed attempt number ``attempt`` (1-based).

    Full jitter spreads the retries of a destination that was down for everyone, so its
    recovery is not met by every parked-up delivery in the same second.
    """
    exponent = min(max(attempt, 1) - 1, 62)
    ceiling = min(float(policy.max_delay_s), float(policy.first_delay_s) * 2.0 ** exponent)
    return (rng or random).uniform(0.0, max(ceiling, 0.0))


def _default_name() -> str:
    name = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    return name[-64:]


def _clip(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


Decision = Receipt | Retry | Refuse


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        routes: Callable[[], RouteTable],
        *,
        metrics: Metrics | None = None,
        lease_s: float = 300.0,
        name: str | None = None,
        build: Callable[[Destination], Adapter[Any]] = build_adapter,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.routes = routes
        self.metrics = metrics
        self.lease_s = lease_s
        self.name = (name or _default_name())[:64]
        self.build = build
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self.counts: collections.Counter[str] = collections.Counter()
        self._table: RouteTable | None = None
        self._adapters: dict[str, tuple[Destination, Adapter[Any]]] = {}
        self._opened: set[str] = set()
        self._counted: dict[tuple[str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    @classmethod
    def from_bus(cls, bus: Bus, *, name: str | None = None) -> DeliveryWorker:
        return cls(bus.store, lambda: bus.reloader.current().table, metrics=bus.metrics,
                   lease_s=bus.settings.lease_s, name=name)

    def handle(self, delivery_id: str) -> Outcome:
        """Attempts one delivery and commits the outcome before returning it."""
        claim = self.store.claim(delivery_id, lease_s=self.lease_s, worker=self.name)
        if claim is None:
            self.counts["skipped"] += 1
            log.debug("delivery.skipped", delivery=delivery_id, worker=self.name)
            return "skipped"
        table = self.routes()
        try:
            policy = table.retry_for(claim.destination)
        except errors.ConfigInvalid:
            policy = table.defaults.retry
        decision = self._attempt(claim, table)
        outcome = self._record(claim, decision, policy)
        self.counts[outcome] += 1
        if self.metrics is not None:
            key = (claim.destination, outcome)
            counter = self._counted.get(key)
            if counter is None:
                # labels() takes the metric's lock and builds its key on every call;
                # the child it returns is the same object each time (none is removed).
                counter = self._counted[key] = self.metrics.deliveries.labels(*key)
            counter.inc()
        return outcome

    def close(self) -> None:
        """Closes every adapter this worker opened; safe to call twice."""
        adapters, self._adapters = self._adapters, {}
        for name, (_, adapter) in adapters.items():
            if name in self._opened:
                try:
                    adapter.close()
                except Exception:
                    log.exception("adapter.close_failed", destination=name)
        self._opened.clear()

    def _adapter(self, table: RouteTable, name: str) -> Adapter[Any]:
        if table is not self._table:
            self._forget_changed(table)
            self._table = table
        cached = self._adapters.get(name)
        if cached is not None:
            return cached[1]
        destination = table.destinations.get(name)
        if destination is None:
            raise Retry(f"destination {name!r} is not defined in {table.source or 'routes'}")
        try:
            adapter = self.build(destination)
        except errors.ConfigInvalid as exc:
            raise Retry("; ".join(str(p) for p in exc.problems) or str(exc)) from exc
        self._adapters[name] = (destination, adapter)
        return adapter

    def _forget_changed(self, table: RouteTable) -> None:
        """After a reload, rebuild only the adapters whose destination entry changed."""
        for name, (destination, adapter) in list(self._adapters.items()):
            if table.destinations.get(name) != destination:
                del self._adapters[name]
                if name in self._opened:
                    self._opened.discard(name)
                    try:
                        adapter.close()
                    except Exception:
                        log.exception("adapter.close_failed", destination=name)

    def _attempt(self, claim: Claim, table: RouteTable) -> Decision:
        try:
            adapter = self._adapter(table, claim.destination)
            body = (PayloadBody.of(claim.payload) if claim.payload is not None
                    else self.store.body(claim.payload_sha256))
        except Retry as signal:
            return signal
        except errors.NotFound as exc:
            return Retry(exc.message)
        delivery = Delivery(
            body=body, idempotency_key=idempotency_key(claim),
            document_id=claim.document_id, kind=claim.kind, sender=claim.sender,
            recipient=claim.effective_recipient, destination=claim.destination,
            attempt=claim.attempts,
            headers={"X-LGSP-Delivery": claim.id, "X-LGSP-Attempt": str(claim.attempts)},
        )
        try:
            if claim.destination not in self._opened:
                adapter.open()
                self._opened.add(claim.destination)
            result = adapter.deliver(delivery)
        except (Retry, Refuse) as signal:
            return signal
        except Exception as exc:
            decision = adapter.classify(exc)
            log.error("delivery.adapter_error", delivery=claim.id, destination=claim.destination,
                      attempt=claim.attempts, decision=type(decision).__name__, exc_info=True)
            return decision
        if not isinstance(result, Receipt):
            return Retry(f"adapter {adapter.kind!r} returned {type(result).__name__}, "
                         "not a Receipt")
        return result

    def _record(self, claim: Claim, decision: Decision, policy: RetryPolicy) -> Outcome:
        outcome: Outcome
        fields = {"delivery": claim.id, "document": claim.document, "sender": claim.sender,
                  "recipient": claim.effective_recipient, "destination": claim.destination,
                  "attempt": claim.attempts, "worker": self.name}
        if isinstance(decision, Receipt) and decision.awaiting_pickup:
            outcome = "awaiting"
            done = self.store.finish(claim, "awaiting", worker=self.name,
                                     reference=decision.reference)
            log.info("delivery.awaiting_pickup", reference=decision.reference, **fields)
        elif isinstance(decision, Receipt):
            outcome = "delivered"
            done = self.store.finish(claim, "delivered", worker=self.name,
                                     reference=decision.reference)
            if done:
                self._observe_latency(claim)
                log.info("delivery.delivered", reference=decision.reference,
                         duplicate=decision.duplicate, **fields)
        elif isinstance(decision, Refuse):
            outcome = "refused"
            reason = _clip(f"[{decision.code}] {decision.reason}" if decision.code
                           else decision.reason)
            done = self.store.finish(claim, "refused", worker=self.name, reason=reason)
            log.warning("delivery.refused", reason=reason, **fields)
        elif claim.attempts < max(policy.attempts, 1):
            outcome = "retry"
            if decision.delay_s is not None:
                delay = min(max(decision.delay_s, 0.0), float(policy.max_delay_s))
            else:
                delay = backoff_s(claim.attempts, policy, self.rng)
            done = self.store.finish(claim, "pending", worker=self.name,
                                     reason=_clip(decision.reason),
                                     retry_at=time.time() + delay)
            log.info("delivery.retry", reason=decision.reason, delay_s=round(delay, 3),
                     **fields)
        else:
            outcome = "parked"
            reason = _clip(f"gave up after {claim.attempts} attempt(s): {decision.reason}")
            done = self.store.finish(claim, "parked", worker=self.name, reason=reason)
            log.warning("delivery.parked", reason=reason, **fields)
        if not done:
            log.warning("delivery.lease_lost", outcome=outcome, **fields)
            return "stale"
        return outcome

    def _observe_latency(self, claim: Claim) -> None:
        if self.metrics is not None:
            histogram = self._timed.get(claim.destination)
            if histogram is None:
                histogram = self._timed[claim.destination] = self.metrics.latency.labels(
                    claim.destination)
            histogram.observe(max(0.0, time.time() - claim.created_at))

"""The conformance kit: the promises of bus/adapter.py checked against one adapter."""


from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bus.adapter import Adapter, Delivery, Receipt, Refuse, Retry
from bus.testing.harness import (
    AdapterThread,
    HungCallError,
    fail,
    implements,
    outcome,
    probe_error,
    recording_io,
    skip,
)
from bus.testing.targets import UNKNOWN_OPTION, ConformanceTarget

if TYPE_CHECKING:
    pass

class AdapterConformance:
    """The contract of :mod:`bus.adapter` as pytest tests; subclass it and give one fixture.

    The subclass's name must start with ``Test`` for pytest to collect it, and must
    define a fixture ``conformance_target`` returning a :class:`ConformanceTarget` (see
    the module documentation for an example). Do not override the tests; a path that
    does not apply to your adapter is skipped from the target's description.
    """

    # ---- helpers (not collected: pytest collects only test_* methods) -----------------

    @staticmethod
    def _checked(target: object) -> ConformanceTarget:
        if not isinstance(target, ConformanceTarget):
            fail("the conformance_target fixture must return a bus.testing.ConformanceTarget,"
                  f" not {type(target).__name__}")
        if not (isinstance(target.adapter_class, type)
                and issubclass(target.adapter_class, Adapter)):
            fail(f"ConformanceTarget.adapter_class {target.adapter_class!r} is not a "
                  "bus.adapter.Adapter subclass")
        levers = [name for name in ("make_unavailable", "make_refusing")
                  if getattr(target, name) is not None]
        if levers and target.restore is None:
            fail(f"ConformanceTarget gives {' and '.join(levers)} but no restore(): the "
                  "suite must put the far side back to accepting after each such test")
        return target

    @staticmethod
    @contextlib.contextmanager
    def _adapter(target: ConformanceTarget,
                 opened: bool = True) -> Iterator[tuple[Adapter[Any], AdapterThread]]:
        """A fresh adapter on its own thread, opened, and closed whatever the test did."""
        runner = AdapterThread(target.call_timeout_s)
        try:
            adapter = runner.call("from_options()", target.build)
            try:
                if opened:
                    AdapterConformance._open(runner, adapter)
                yield adapter, runner
            finally:
                if not runner.hung:
                    runner.call("close()", adapter.close)
        except HungCallError as exc:
            hung = str(exc)
        else:
            return
        finally:
            runner.stop()
        fail(hung)

    @staticmethod
    def _open(runner: AdapterThread, adapter: Adapter[Any]) -> None:
        _, error = outcome(runner, "open()", adapter.open)
        if error is not None:
            fail(f"open() raised {type(error).__name__}: {error} with the destination healthy")

    @staticmethod
    @contextlib.contextmanager
    def _lever(target: ConformanceTarget,
               lever: Callable[[], object] | None) -> Iterator[None]:
        assert lever is not None and target.restore is not None
        lever()
        try:
            yield
        finally:
            target.restore()

    @staticmethod
    def _deliver(runner: AdapterThread, adapter: Adapter[Any], delivery: Delivery,
                 situation: str) -> Receipt:
        """deliver() under a healthy far side: anything but a Receipt fails, with why."""
        result, error = outcome(runner, "deliver()", lambda: adapter.deliver(delivery))
        if isinstance(error, Retry | Refuse):
            fail(f"deliver() raised {type(error).__name__}({error.reason!r}) {situation};"
                  " a healthy destination must give a Receipt")
        if error is not None:
            fail(f"deliver() raised {type(error).__name__}: {error} {situation}; deliver must "
                  "return a Receipt or raise bus.adapter.Retry / Refuse")
        if not isinstance(result, Receipt):
            fail(f"deliver() returned {type(result).__name__} {situation}, not a "
                  "bus.adapter.Receipt; the bus would retry the delivery forever")
        return result

    @staticmethod
    def _signal(runner: AdapterThread, adapter: Adapter[Any], delivery: Delivery,
                expected: type[Retry] | type[Refuse], situation: str) -> Retry | Refuse:
        """deliver() where the far side makes one signal the right answer."""
        result, error = outcome(runner, "deliver()", lambda: adapter.deliver(delivery))
        if isinstance(error, expected):
            if not (isinstance(error.reason, str) and error.reason.strip()):
                fail(f"{expected.__name__} raised {situation} has no reason; the reason is "
                      "what an operator reads in `lgsp deliveries list`")
            return error
        if isinstance(error, Retry | Refuse):
            fail(f"deliver() raised {type(error).__name__}({error.reason!r}) {situation};"
                  f" expected {expected.__name__}")
        if error is not None:
            decision = type(adapter.classify(error)).__name__
            fail(f"deliver() raised {type(error).__name__}: {error} {situation}. The bus "
                  f"would count it as {decision}, but it logs an unexpected exception as an "
                  "adapter bug, with a traceback; catch it and raise "
                  f"bus.adapter.{expected.__name__}(reason) for a condition the adapter "
                  "expects")
        fail(f"deliver() returned {result!r} {situation}; expected {expected.__name__}")

    # ---- configuration -----------------------------------------------------------------

    def test_valid_options_are_accepted(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        try:
            adapter = target.build()
        except ValidationError as exc:
            fail(f"the target's options were refused: {exc}")
        if not isinstance(adapter, target.adapter_class):
            fail(f"{target.adapter_class.__name__}.from_options() returned "
                  f"{type(adapter).__name__}")
        assert adapter.name == target.destination, "the adapter must keep its destination name"
        if not isinstance(adapter.config, target.adapter_class.Config):
            fail(f"adapter.config is {type(adapter.config).__name__}, not "
                  f"{target.adapter_class.Config.__name__} (the class's Config)")

    def test_invalid_options_are_refused(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if not target.invalid_options:
            skip("the target lists no invalid_options")
        for options in target.invalid_options:
            try:
                target.build(options)
            except ValidationError:
                continue
            fail(f"options {dict(options)!r} were accepted; they must raise "
                  "pydantic.ValidationError so routes.yaml is refused when it loads, not "
                  "when the first packet arrives")

    def test_unknown_option_is_refused(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        options = {**target.options, UNKNOWN_OPTION: True}
        try:
            target.build(options)
        except ValidationError:
            return
        fail(f"an unknown option ({UNKNOWN_OPTION}) was accepted: declare model_config = "
              "ConfigDict(extra='forbid') on the adapter's Config so that a misspelt option "
              "in routes.yaml is reported instead of silently ignored")

    def test_constructor_does_no_io(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        runner = AdapterThread(target.call_timeout_s)

        def build() -> list[str]:
            with recording_io() as seen:
                target.build()
            return list(seen)

        try:
            seen = runner.call("from_options()", build)
        finally:
            runner.stop()
        if seen:
            fail("building the adapter did I/O: " + "; ".join(seen[:5]) + ". The bus builds "
                  "adapters whenever routes load; move connections to open()")

    # ---- identity ----------------------------------------------------------------------

    def test_kind_matches_the_entry_point(self, conformance_target: ConformanceTarget) -> None:
        from importlib.metadata import entry_points

        from bus.registry import GROUP

        target = self._checked(conformance_target)
        cls = target.adapter_class
        if not (isinstance(cls.kind, str) and cls.kind):
            fail(f"{cls.__name__}.kind is not set; it is the name routes.yaml uses "
                  "(adapter: NAME) and must equal the entry point's name")
        registered: list[str] = []
        for ep in entry_points(group=GROUP):
            if ep.name != cls.kind and ep.attr != cls.__name__:
                continue
            try:
                loaded = ep.load()
            except Exception:  # noqa: S112 - another package's problem, not this adapter's
                continue
            if loaded is cls:
                registered.append(ep.name)
        wrong = [name for name in registered if name != cls.kind]
        if wrong:
            fail(f"{cls.__name__} is registered in {GROUP} as {wrong[0]!r} but its kind is "
                  f"{cls.kind!r}; routes.yaml names the entry point, logs name the kind: "
                  "make them equal")

    def test_capabilities_are_declared(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        cls = target.adapter_class
        caps = cls.capabilities
        if not isinstance(caps, frozenset) or not all(isinstance(c, str) for c in caps):
            fail(f"{cls.__name__}.capabilities must be a frozenset of strings, not {caps!r}")
        if not caps & {"deliver", "mailbox", "poll"}:
            fail(f"{cls.__name__}.capabilities {sorted(caps)} declares none of 'deliver', "
                  "'mailbox', 'poll': the bus would never use the adapter")
        if {"deliver", "mailbox"} <= caps:
            fail("declare 'deliver' (the system receives the packet) or 'mailbox' (the "
                  "system collects it later), not both")
        if caps & {"deliver", "mailbox"} and not implements(cls, "deliver"):
            fail(f"{cls.__name__} declares delivery but does not override deliver()")
        if "poll" in caps and not implements(cls, "poll"):
            fail(f"{cls.__name__} declares 'poll' but does not override poll()")

    # ---- lifecycle ---------------------------------------------------------------------

    def test_open_and_close_are_idempotent(self,
                                           conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        with self._adapter(target, opened=False) as (adapter, runner):
            for step, call in (("close() before open()", adapter.close),
                               ("open()", adapter.open), ("close()", adapter.close),
                               ("a second close()", adapter.close),
                               ("open() after close()", adapter.open)):
                _, error = outcome(runner, step, call)
                if error is not None:
                    fail(f"{step} raised {type(error).__name__}: {error}; the worker closes "
                          "and reopens adapters when routes change, and may close twice")
            if target.delivers:
                delivery = target.delivery()
                self._deliver(runner, adapter, delivery, "after open() → close() → open()")

    def test_check_answers_without_raising(self,
                                           conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        with self._adapter(target) as (adapter, runner):
            answer, error = outcome(runner, "check()", adapter.check)
            if error is not None:
                fail(f"check() raised {type(error).__name__}: {error}; it feeds /readyz and "
                      "must return None (reachable) or a reason")
            if answer is not None and not isinstance(answer, str):
                fail(f"check() returned {answer!r}; expected None or a reason string")

    # ---- delivery ----------------------------------------------------------------------

    def test_deliver_returns_a_receipt(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if not target.delivers:
            skip("the adapter declares neither 'deliver' nor 'mailbox'")
        delivery = target.delivery()
        with self._adapter(target) as (adapter, runner):
            receipt = self._deliver(runner, adapter, delivery, "to a healthy destination")
        mailbox = "mailbox" in target.capabilities
        if receipt.awaiting_pickup != mailbox:
            fail(f"Receipt.awaiting_pickup is {receipt.awaiting_pickup} but the adapter "
                  f"{'declares' if mailbox else 'does not declare'} the 'mailbox' capability")
        if receipt.reference is not None and not (
                isinstance(receipt.reference, str) and len(receipt.reference) <= 255):
            fail(f"Receipt.reference {receipt.reference!r} must be None or a string of at "
                  "most 255 characters (the bus stores it)")
        effects = target.effects(delivery.idempotency_key)
        if effects != 1:
            fail(f"the far side recorded {effects} effect(s) for the delivery; expected 1")

    def test_unavailable_destination_means_retry(
            self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if target.make_unavailable is None:
            if "deliver" in target.capabilities:
                fail("the adapter declares 'deliver', so it contacts its system and must be "
                      "tested with the system down: give ConformanceTarget.make_unavailable")
            skip("no make_unavailable: the adapter's deliver() does not contact the system")
        delivery = target.delivery()
        with self._adapter(target) as (adapter, runner):
            with self._lever(target, target.make_unavailable):
                signal = self._signal(runner, adapter, delivery, Retry,
                                      "while the destination is unavailable")
                assert isinstance(signal, Retry)
                if signal.delay_s is not None and not signal.delay_s >= 0:
                    fail(f"Retry.delay_s is {signal.delay_s!r}; use None or seconds >= 0")
                if target.effects(delivery.idempotency_key) != 0:
                    fail("the far side recorded an effect although deliver() raised Retry")
            again = dataclasses.replace(delivery, attempt=2,
                                        headers={**delivery.headers, "X-LGSP-Attempt": "2"})
            self._deliver(runner, adapter, again,
                          "on the next attempt, after the destination came back (restore())")
        effects = target.effects(delivery.idempotency_key)
        if effects != 1:
            fail(f"after the retry the far side holds {effects} effect(s); expected 1")

    def test_refusing_destination_means_refuse(
            self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if target.make_refusing is None:
            skip("no make_refusing: the target says its far side never refuses a packet")
        delivery = target.delivery()
        with (self._adapter(target) as (adapter, runner),
              self._lever(target, target.make_refusing)):
            self._signal(runner, adapter, delivery, Refuse,
                         "while the destination refuses packets")
        effects = target.effects(delivery.idempotency_key)
        if effects != 0:
            fail(f"the far side holds {effects} effect(s) for a refused delivery; the bus "
                  "records 'refused' and the sender is told it was not delivered")

    def test_duplicate_delivery_is_absorbed(self,
                                            conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if not target.delivers:
            skip("the adapter declares neither 'deliver' nor 'mailbox'")
        delivery = target.delivery()
        with self._adapter(target) as (adapter, runner):
            self._deliver(runner, adapter, delivery, "the first time")
            second = dataclasses.replace(delivery, attempt=2,
                                         headers={**delivery.headers, "X-LGSP-Attempt": "2"})
            self._deliver(runner, adapter, second,
                          "for a delivery already made (same idempotency key)")
        with self._adapter(target) as (other, runner):
            self._deliver(runner, other, second,
                          "from a second adapter instance (a worker after a crash)")
        effects = target.effects(delivery.idempotency_key)
        if effects != 1:
            fail(f"the same delivery sent 3 times made {effects} effects at the far side; "
                  "pass Delivery.idempotency_key to the system, or look it up before sending")

    def test_unexpected_errors_are_classified(self,
                                              conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        adapter = target.build()
        cls = target.adapter_class
        retry, refuse = Retry("busy"), Refuse("never")
        if adapter.classify(retry) is not retry or adapter.classify(refuse) is not refuse:
            fail("classify() must return a Retry or Refuse it is given unchanged")
        decision = adapter.classify(RuntimeError("conformance probe"))
        if not isinstance(decision, Retry):
            fail(f"classify(RuntimeError) gave {type(decision).__name__}; an unexpected "
                 "exception must be retried (only permanent_errors are refusals)")
        for exc_class in cls.permanent_errors:
            probe = probe_error(exc_class)
            if probe is not None and not isinstance(adapter.classify(probe), Refuse):
                fail(f"classify({exc_class.__name__}) is not Refuse although it is listed in "
                      "permanent_errors")
        for exc_class in cls.retryable_errors:
            if cls.permanent_errors and issubclass(exc_class, cls.permanent_errors):
                continue
            probe = probe_error(exc_class)
            if probe is not None and not isinstance(adapter.classify(probe), Retry):
                fail(f"classify({exc_class.__name__}) is not Retry although it is listed in "
                      "retryable_errors")

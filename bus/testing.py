"""Test an adapter the way the bus will use it, before a province does.

A vendor has two questions before shipping an adapter, and this module answers each
without RabbitMQ, PostgreSQL or a running bus:

* *does my adapter keep the contract of* :mod:`bus.adapter`? — subclass
  :class:`AdapterConformance`;
* *do routes.yaml and my adapter deliver what I expect?* — :class:`InMemoryBus`.

The conformance suite needs pytest (``pip install pytest``); it is imported only when a
test runs, so :class:`InMemoryBus` and :func:`sample_delivery` work without it.

Running the conformance suite
=============================

Write one test module and give the suite one fixture, ``conformance_target``, that
describes your adapter and a far side you control — a simulator of your system, or the
system's own test instance::

    import pytest
    from bus.testing import AdapterConformance, ConformanceTarget

    from acme_lgsp.adapter import AcmeAdapter
    from acme_lgsp.simulator import AcmeSimulator      # yours: a fake Acme on loopback

    @pytest.fixture(scope="module")
    def acme():
        with AcmeSimulator() as simulator:
            yield simulator

    class TestAcmeConformance(AdapterConformance):
        @pytest.fixture
        def conformance_target(self, acme):
            return ConformanceTarget(
                adapter_class=AcmeAdapter,
                options={"url": acme.url, "timeout_s": 2},
                invalid_options=[{"timeout_s": 2}, {"url": "ftp://acme", "timeout_s": 2}],
                make_unavailable=acme.stop,           # connections refused
                make_refusing=lambda: acme.answer_always(400),
                restore=acme.start,                   # back to accepting everything
                effects=acme.documents_with_key,      # idempotency key -> count stored
            )

Then ``pytest tests/test_acme_conformance.py``. Every test names the rule it checks and
tells how to fix a failure. What the suite holds your adapter to:

* **configuration**: ``options`` are accepted by :meth:`Adapter.from_options`; each of
  ``invalid_options`` and an unknown option are refused with ``pydantic.ValidationError``
  (declare ``model_config = ConfigDict(extra="forbid")`` so that a misspelt option in
  routes.yaml is reported, not ignored);
* **no I/O in the constructor**: the bus builds adapters whenever routes load, so no
  socket may be opened, no name resolved and no process started while building one;
* **identity**: ``kind`` is set and equals the name of the entry point registering the
  class; ``capabilities`` is a ``frozenset`` of strings, and what it declares is
  implemented (see below);
* **lifecycle**: ``close()`` before ``open()``, twice after it, and ``open()`` again after
  ``close()`` all work — the worker closes and reopens adapters when routes change;
* **delivery**: with the far side healthy, ``deliver`` returns a :class:`Receipt` (with
  ``awaiting_pickup=True`` for a mailbox) and the far side records exactly one effect;
* **retry path**: with the far side down (``make_unavailable``), ``deliver`` raises
  :class:`Retry` itself — not a library's exception, which the bus would also retry but
  log with a traceback as if it were a bug — and after ``restore`` the same delivery
  goes through;
* **refuse path**: with the far side refusing (``make_refusing``), ``deliver`` raises
  :class:`Refuse` and nothing was recorded there;
* **duplicates absorbed**: the same delivery sent three times, the last by a second
  adapter instance (a worker that took over after a crash), is one effect;
* **classification**: ``classify`` turns an unexpected exception into ``Retry`` and the
  classes of ``permanent_errors`` into ``Refuse``;
* every adapter call returns within ``call_timeout_s``: a hung call would hold a
  delivery lease until it expires.

Capabilities
------------

The suite reads ``capabilities`` to know which paths apply:

``"deliver"``
    ``deliver()`` hands the packet to the system. The retry path then always applies, so
    ``make_unavailable`` is required; ``make_refusing`` may be None for a system that has
    no way to refuse a packet for good (its test is then skipped with that reason).
``"mailbox"``
    ``deliver()`` only puts the packet where the system collects it and returns
    ``Receipt(awaiting_pickup=True)``; the system confirms later through
    :meth:`bus.store.Store.acknowledge`. When ``deliver()`` never contacts the system,
    leave ``make_unavailable`` and ``make_refusing`` None: those tests are skipped.
``"poll"``
    :meth:`Adapter.poll` fetches inbound packets.

A test that does not apply is skipped with the reason, never passed silently; test
inbound polling through :meth:`InMemoryBus.poll` against your simulator.

Testing routes with your adapter
================================

:class:`InMemoryBus` is the real ingress, store, routing and delivery worker on a
temporary SQLite file, with the adapter instances you give in place of the registry's::

    adapter = AcmeAdapter.from_options("eoffice", {"url": acme.url})
    with InMemoryBus(ROUTES_YAML_TEXT, adapters=[adapter]) as bus:
        receipt = bus.submit(packet_bytes(edoc))           # as the sender's system
        bus.deliver_all()
        assert bus.states(receipt["id"]) == {"000.00.12.H37": "delivered"}

It takes milliseconds, so every rule of a province's routes.yaml can have its test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NoReturn, Self, TypeVar

from pydantic import ValidationError

from bus.adapter import Adapter, Delivery, Receipt, Refuse, Retry

if TYPE_CHECKING:
    from bus.app import Bus
    from bus.delivery.worker import DeliveryWorker, Outcome
    from bus.routing import Destination

__all__ = [
    "DEFAULT_RECIPIENT",
    "DEFAULT_SENDER",
    "AdapterConformance",
    "ConformanceTarget",
    "DeliveryState",
    "InMemoryBus",
    "sample_delivery",
]

DEFAULT_SENDER: Final = "000.00.12.H37"
DEFAULT_RECIPIENT: Final = "000.00.00.H37"
UNKNOWN_OPTION: Final = "lgsp_conformance_unknown_option"

T = TypeVar("T")


def sample_delivery(destination: str = "conformance", *, sender: str = DEFAULT_SENDER,
                    recipient: str = DEFAULT_RECIPIENT,
                    subject: str = "Kiểm thử bộ chuyển đổi (conformance)") -> Delivery:
    """A delivery of a valid edoc as the worker would build it, with a key never used before.

    The key is fresh on every call so that tests sharing one long-lived simulator never
    see each other's effects.
    """
    from bus.edxml import EdocBuilder, packet_bytes

    edoc = (EdocBuilder(sender).to(recipient).subject(subject)
            .signer("Nguyễn Văn Kiểm", "Chuyên viên").build())
    document = uuid.uuid4().hex
    return Delivery(
        payload=packet_bytes(edoc),
        idempotency_key=f"{document}:{recipient}:{destination}",
        document_id=edoc.document_id or document,
        kind="edoc", sender=sender, recipient=recipient, destination=destination,
        attempt=1,
        headers={"X-LGSP-Delivery": uuid.uuid4().hex, "X-LGSP-Attempt": "1"},
    )


@dataclass(kw_only=True)
class ConformanceTarget:
    """One adapter under test and the levers the suite pulls on its far side.

    ``options`` must point at a far side that is running and accepting when the fixture
    returns. ``make_unavailable`` and ``make_refusing`` change that far side; ``restore``
    brings it back to accepting, and is called once after each test that pulled a lever.
    ``effects(idempotency_key)`` is how many documents the far side holds for that key:
    the suite's proof of "exactly one effect" is the far side's count, not the adapter's
    word. ``delivery_factory`` must return a delivery with a fresh idempotency key on
    each call (default: :func:`sample_delivery` — an edoc from 000.00.12.H37 to
    000.00.00.H37 for ``destination``, which is also the adapter's name); give one when
    your system only takes packets for the agencies it hosts. ``call_timeout_s`` bounds
    every adapter call; keep it above the timeout your ``options`` configure.
    """

    adapter_class: type[Adapter[Any]]
    options: Mapping[str, Any]
    effects: Callable[[str], int]
    invalid_options: Sequence[Mapping[str, Any]] = ()
    make_unavailable: Callable[[], object] | None = None
    make_refusing: Callable[[], object] | None = None
    restore: Callable[[], object] | None = None
    delivery_factory: Callable[[], Delivery] | None = None
    destination: str = "conformance"
    call_timeout_s: float = 30.0

    def delivery(self) -> Delivery:
        if self.delivery_factory is not None:
            return self.delivery_factory()
        return sample_delivery(self.destination)

    def build(self, options: Mapping[str, Any] | None = None) -> Adapter[Any]:
        return self.adapter_class.from_options(
            self.destination, dict(self.options if options is None else options))

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.adapter_class.capabilities)

    @property
    def delivers(self) -> bool:
        return bool(self.capabilities & {"deliver", "mailbox"})


# ---- pytest, imported only when a test runs -------------------------------------------

def _fail(message: str) -> NoReturn:
    """A pytest failure without the adapter's traceback: the message says what to fix."""
    import pytest

    raise pytest.fail.Exception(message, pytrace=False) from None


def _skip(reason: str) -> NoReturn:
    import pytest

    pytest.skip(reason)


# ---- bounded adapter calls on one thread ----------------------------------------------

class _HungCallError(Exception):
    """An adapter call outlived its bound; the thread running it is abandoned."""


class _AdapterThread:
    """Runs every call of one adapter on one thread, each bounded in time.

    One thread, because the bus gives an adapter to one worker thread for its lifetime
    (an adapter may keep thread-bound handles); a bound, because a hung ``deliver``
    would hang the vendor's whole test run. The thread is a daemon so that an abandoned
    call cannot keep the interpreter from exiting.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._calls: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lgsp-conformance-adapter",
                                        daemon=True)
        self._thread.start()
        self.hung = False

    def _run(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            call()

    def call(self, what: str, function: Callable[[], T]) -> T:
        if self.hung:
            raise _HungCallError(f"{what} not attempted: an earlier call never returned")
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = function()
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

        self._calls.put(run)
        if not done.wait(self.timeout_s):
            self.hung = True
            raise _HungCallError(
                f"{what} did not return within {self.timeout_s:g} s; bound every network "
                "wait of the adapter (a timeout option), since a hung call holds the "
                "delivery's lease until it expires")
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def stop(self) -> None:
        self._calls.put(None)
        if not self.hung:
            self._thread.join(self.timeout_s)


# ---- "no I/O in the constructor": audit events, recorded per thread --------------------

_IO_EVENTS: Final = frozenset({
    "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
    "socket.getnameinfo", "socket.bind", "socket.sendto", "socket.sendmsg",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "http.client.connect", "urllib.Request", "ftplib.connect", "smtplib.connect",
})
_audit_local = threading.local()
_audit_lock = threading.Lock()
_audit_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    seen: list[str] | None = getattr(_audit_local, "seen", None)
    if seen is not None and event in _IO_EVENTS:
        seen.append(f"{event}{_short_args(args)}")


def _short_args(args: tuple[Any, ...]) -> str:
    text = repr(args)
    return text if len(text) <= 160 else text[:159] + "…"


@contextlib.contextmanager
def _recording_io() -> Iterator[list[str]]:
    """The I/O audit events this thread raises inside the block.

    An audit hook cannot be removed, so one is installed once per process and records
    only while a thread has asked it to; it sees sockets opened by any Python library,
    which patching one client library would not.
    """
    global _audit_installed
    with _audit_lock:
        if not _audit_installed:
            sys.addaudithook(_audit)
            _audit_installed = True
    seen: list[str] = []
    _audit_local.seen = seen
    try:
        yield seen
    finally:
        _audit_local.seen = None


def _outcome(runner: _AdapterThread, what: str,
             function: Callable[[], T]) -> tuple[T | None, Exception | None]:
    """The call's value or its exception, so that a test fails outside the except block
    (a pytest failure raised inside one drags the adapter's traceback into the report)."""
    try:
        return runner.call(what, function), None
    except _HungCallError:
        raise
    except Exception as exc:
        return None, exc


def _implements(cls: type[Adapter[Any]], method: str) -> bool:
    return getattr(cls, method) is not getattr(Adapter, method)


def _probe(exc_class: type[BaseException]) -> BaseException | None:
    """An instance of ``exc_class`` to hand classify(), or None when it cannot be made:
    library exceptions often need constructor arguments the suite cannot guess."""
    for args in (("conformance probe",), ()):
        try:
            return exc_class(*args)
        except Exception:  # noqa: S112 - try the next constructor form
            continue
    try:
        probe = exc_class.__new__(exc_class)
        str(probe)
    except Exception:
        return None
    return probe


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
            _fail("the conformance_target fixture must return a bus.testing.ConformanceTarget,"
                  f" not {type(target).__name__}")
        if not (isinstance(target.adapter_class, type)
                and issubclass(target.adapter_class, Adapter)):
            _fail(f"ConformanceTarget.adapter_class {target.adapter_class!r} is not a "
                  "bus.adapter.Adapter subclass")
        levers = [name for name in ("make_unavailable", "make_refusing")
                  if getattr(target, name) is not None]
        if levers and target.restore is None:
            _fail(f"ConformanceTarget gives {' and '.join(levers)} but no restore(): the "
                  "suite must put the far side back to accepting after each such test")
        return target

    @staticmethod
    @contextlib.contextmanager
    def _adapter(target: ConformanceTarget,
                 opened: bool = True) -> Iterator[tuple[Adapter[Any], _AdapterThread]]:
        """A fresh adapter on its own thread, opened, and closed whatever the test did."""
        runner = _AdapterThread(target.call_timeout_s)
        try:
            adapter = runner.call("from_options()", target.build)
            try:
                if opened:
                    AdapterConformance._open(runner, adapter)
                yield adapter, runner
            finally:
                if not runner.hung:
                    runner.call("close()", adapter.close)
        except _HungCallError as exc:
            hung = str(exc)
        else:
            return
        finally:
            runner.stop()
        _fail(hung)

    @staticmethod
    def _open(runner: _AdapterThread, adapter: Adapter[Any]) -> None:
        _, error = _outcome(runner, "open()", adapter.open)
        if error is not None:
            _fail(f"open() raised {type(error).__name__}: {error} with the destination healthy")

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
    def _deliver(runner: _AdapterThread, adapter: Adapter[Any], delivery: Delivery,
                 situation: str) -> Receipt:
        """deliver() under a healthy far side: anything but a Receipt fails, with why."""
        result, error = _outcome(runner, "deliver()", lambda: adapter.deliver(delivery))
        if isinstance(error, Retry | Refuse):
            _fail(f"deliver() raised {type(error).__name__}({error.reason!r}) {situation};"
                  " a healthy destination must give a Receipt")
        if error is not None:
            _fail(f"deliver() raised {type(error).__name__}: {error} {situation}; deliver must "
                  "return a Receipt or raise bus.adapter.Retry / Refuse")
        if not isinstance(result, Receipt):
            _fail(f"deliver() returned {type(result).__name__} {situation}, not a "
                  "bus.adapter.Receipt; the bus would retry the delivery forever")
        return result

    @staticmethod
    def _signal(runner: _AdapterThread, adapter: Adapter[Any], delivery: Delivery,
                expected: type[Retry] | type[Refuse], situation: str) -> Retry | Refuse:
        """deliver() where the far side makes one signal the right answer."""
        result, error = _outcome(runner, "deliver()", lambda: adapter.deliver(delivery))
        if isinstance(error, expected):
            if not (isinstance(error.reason, str) and error.reason.strip()):
                _fail(f"{expected.__name__} raised {situation} has no reason; the reason is "
                      "what an operator reads in `lgsp deliveries list`")
            return error
        if isinstance(error, Retry | Refuse):
            _fail(f"deliver() raised {type(error).__name__}({error.reason!r}) {situation};"
                  f" expected {expected.__name__}")
        if error is not None:
            decision = type(adapter.classify(error)).__name__
            _fail(f"deliver() raised {type(error).__name__}: {error} {situation}. The bus "
                  f"would count it as {decision}, but it logs an unexpected exception as an "
                  "adapter bug, with a traceback; catch it and raise "
                  f"bus.adapter.{expected.__name__}(reason) for a condition the adapter "
                  "expects")
        _fail(f"deliver() returned {result!r} {situation}; expected {expected.__name__}")

    # ---- configuration -----------------------------------------------------------------

    def test_valid_options_are_accepted(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        try:
            adapter = target.build()
        except ValidationError as exc:
            _fail(f"the target's options were refused: {exc}")
        if not isinstance(adapter, target.adapter_class):
            _fail(f"{target.adapter_class.__name__}.from_options() returned "
                  f"{type(adapter).__name__}")
        assert adapter.name == target.destination, "the adapter must keep its destination name"
        if not isinstance(adapter.config, target.adapter_class.Config):
            _fail(f"adapter.config is {type(adapter.config).__name__}, not "
                  f"{target.adapter_class.Config.__name__} (the class's Config)")

    def test_invalid_options_are_refused(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if not target.invalid_options:
            _skip("the target lists no invalid_options")
        for options in target.invalid_options:
            try:
                target.build(options)
            except ValidationError:
                continue
            _fail(f"options {dict(options)!r} were accepted; they must raise "
                  "pydantic.ValidationError so routes.yaml is refused when it loads, not "
                  "when the first packet arrives")

    def test_unknown_option_is_refused(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        options = {**target.options, UNKNOWN_OPTION: True}
        try:
            target.build(options)
        except ValidationError:
            return
        _fail(f"an unknown option ({UNKNOWN_OPTION}) was accepted: declare model_config = "
              "ConfigDict(extra='forbid') on the adapter's Config so that a misspelt option "
              "in routes.yaml is reported instead of silently ignored")

    def test_constructor_does_no_io(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        runner = _AdapterThread(target.call_timeout_s)

        def build() -> list[str]:
            with _recording_io() as seen:
                target.build()
            return list(seen)

        try:
            seen = runner.call("from_options()", build)
        finally:
            runner.stop()
        if seen:
            _fail("building the adapter did I/O: " + "; ".join(seen[:5]) + ". The bus builds "
                  "adapters whenever routes load; move connections to open()")

    # ---- identity ----------------------------------------------------------------------

    def test_kind_matches_the_entry_point(self, conformance_target: ConformanceTarget) -> None:
        from importlib.metadata import entry_points

        from bus.registry import GROUP

        target = self._checked(conformance_target)
        cls = target.adapter_class
        if not (isinstance(cls.kind, str) and cls.kind):
            _fail(f"{cls.__name__}.kind is not set; it is the name routes.yaml uses "
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
            _fail(f"{cls.__name__} is registered in {GROUP} as {wrong[0]!r} but its kind is "
                  f"{cls.kind!r}; routes.yaml names the entry point, logs name the kind: "
                  "make them equal")

    def test_capabilities_are_declared(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        cls = target.adapter_class
        caps = cls.capabilities
        if not isinstance(caps, frozenset) or not all(isinstance(c, str) for c in caps):
            _fail(f"{cls.__name__}.capabilities must be a frozenset of strings, not {caps!r}")
        if not caps & {"deliver", "mailbox", "poll"}:
            _fail(f"{cls.__name__}.capabilities {sorted(caps)} declares none of 'deliver', "
                  "'mailbox', 'poll': the bus would never use the adapter")
        if {"deliver", "mailbox"} <= caps:
            _fail("declare 'deliver' (the system receives the packet) or 'mailbox' (the "
                  "system collects it later), not both")
        if caps & {"deliver", "mailbox"} and not _implements(cls, "deliver"):
            _fail(f"{cls.__name__} declares delivery but does not override deliver()")
        if "poll" in caps and not _implements(cls, "poll"):
            _fail(f"{cls.__name__} declares 'poll' but does not override poll()")

    # ---- lifecycle ---------------------------------------------------------------------

    def test_open_and_close_are_idempotent(self,
                                           conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        with self._adapter(target, opened=False) as (adapter, runner):
            for step, call in (("close() before open()", adapter.close),
                               ("open()", adapter.open), ("close()", adapter.close),
                               ("a second close()", adapter.close),
                               ("open() after close()", adapter.open)):
                _, error = _outcome(runner, step, call)
                if error is not None:
                    _fail(f"{step} raised {type(error).__name__}: {error}; the worker closes "
                          "and reopens adapters when routes change, and may close twice")
            if target.delivers:
                delivery = target.delivery()
                self._deliver(runner, adapter, delivery, "after open() → close() → open()")

    def test_check_answers_without_raising(self,
                                           conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        with self._adapter(target) as (adapter, runner):
            answer, error = _outcome(runner, "check()", adapter.check)
            if error is not None:
                _fail(f"check() raised {type(error).__name__}: {error}; it feeds /readyz and "
                      "must return None (reachable) or a reason")
            if answer is not None and not isinstance(answer, str):
                _fail(f"check() returned {answer!r}; expected None or a reason string")

    # ---- delivery ----------------------------------------------------------------------

    def test_deliver_returns_a_receipt(self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if not target.delivers:
            _skip("the adapter declares neither 'deliver' nor 'mailbox'")
        delivery = target.delivery()
        with self._adapter(target) as (adapter, runner):
            receipt = self._deliver(runner, adapter, delivery, "to a healthy destination")
        mailbox = "mailbox" in target.capabilities
        if receipt.awaiting_pickup != mailbox:
            _fail(f"Receipt.awaiting_pickup is {receipt.awaiting_pickup} but the adapter "
                  f"{'declares' if mailbox else 'does not declare'} the 'mailbox' capability")
        if receipt.reference is not None and not (
                isinstance(receipt.reference, str) and len(receipt.reference) <= 255):
            _fail(f"Receipt.reference {receipt.reference!r} must be None or a string of at "
                  "most 255 characters (the bus stores it)")
        effects = target.effects(delivery.idempotency_key)
        if effects != 1:
            _fail(f"the far side recorded {effects} effect(s) for the delivery; expected 1")

    def test_unavailable_destination_means_retry(
            self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if target.make_unavailable is None:
            if "deliver" in target.capabilities:
                _fail("the adapter declares 'deliver', so it contacts its system and must be "
                      "tested with the system down: give ConformanceTarget.make_unavailable")
            _skip("no make_unavailable: the adapter's deliver() does not contact the system")
        delivery = target.delivery()
        with self._adapter(target) as (adapter, runner):
            with self._lever(target, target.make_unavailable):
                signal = self._signal(runner, adapter, delivery, Retry,
                                      "while the destination is unavailable")
                assert isinstance(signal, Retry)
                if signal.delay_s is not None and not signal.delay_s >= 0:
                    _fail(f"Retry.delay_s is {signal.delay_s!r}; use None or seconds >= 0")
                if target.effects(delivery.idempotency_key) != 0:
                    _fail("the far side recorded an effect although deliver() raised Retry")
            again = dataclasses.replace(delivery, attempt=2,
                                        headers={**delivery.headers, "X-LGSP-Attempt": "2"})
            self._deliver(runner, adapter, again,
                          "on the next attempt, after the destination came back (restore())")
        effects = target.effects(delivery.idempotency_key)
        if effects != 1:
            _fail(f"after the retry the far side holds {effects} effect(s); expected 1")

    def test_refusing_destination_means_refuse(
            self, conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if target.make_refusing is None:
            _skip("no make_refusing: the target says its far side never refuses a packet")
        delivery = target.delivery()
        with (self._adapter(target) as (adapter, runner),
              self._lever(target, target.make_refusing)):
            self._signal(runner, adapter, delivery, Refuse,
                         "while the destination refuses packets")
        effects = target.effects(delivery.idempotency_key)
        if effects != 0:
            _fail(f"the far side holds {effects} effect(s) for a refused delivery; the bus "
                  "records 'refused' and the sender is told it was not delivered")

    def test_duplicate_delivery_is_absorbed(self,
                                            conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        if not target.delivers:
            _skip("the adapter declares neither 'deliver' nor 'mailbox'")
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
            _fail(f"the same delivery sent 3 times made {effects} effects at the far side; "
                  "pass Delivery.idempotency_key to the system, or look it up before sending")

    def test_unexpected_errors_are_classified(self,
                                              conformance_target: ConformanceTarget) -> None:
        target = self._checked(conformance_target)
        adapter = target.build()
        cls = target.adapter_class
        retry, refuse = Retry("busy"), Refuse("never")
        if adapter.classify(retry) is not retry or adapter.classify(refuse) is not refuse:
            _fail("classify() must return a Retry or Refuse it is given unchanged")
        decision = adapter.classify(RuntimeError("conformance probe"))
        if not isinstance(decision, Retry):
            _fail(f"classify(RuntimeError) gave {type(decision).__name__}; an unexpected "
                  "exception must be retried (only permanent_errors are refusals)")
        for exc_class in cls.permanent_errors:
            probe = _probe(exc_class)
            if probe is not None and not isinstance(adapter.classify(probe), Refuse):
                _fail(f"classify({exc_class.__name__}) is not Refuse although it is listed in "
                      "permanent_errors")
        for exc_class in cls.retryable_errors:
            if cls.permanent_errors and issubclass(exc_class, cls.permanent_errors):
                continue
            probe = _probe(exc_class)
            if probe is not None and not isinstance(adapter.classify(probe), Retry):
                _fail(f"classify({exc_class.__name__}) is not Retry although it is listed in "
                      "retryable_errors")


# ---- the in-memory bus -----------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryState:
    """One delivery of a document as :class:`InMemoryBus` sees it in the store."""

    id: str
    recipient: str
    effective_recipient: str
    destination: str
    rule: str
    is_copy: bool
    state: str
    attempts: int
    last_error: str | None
    reference: str | None


class _Inbox:
    """What InMemoryBus.poll hands an adapter: the same door and source key as a poller."""

    def __init__(self, bus: InMemoryBus, destination: str) -> None:
        self._bus = bus
        self._destination = destination

    def submit(self, packet: bytes, *, source_id: str | None = None) -> dict[str, Any]:
        from bus.delivery.pollers import BusInbox

        return BusInbox(self._bus.bus, self._destination).submit(packet, source_id=source_id)


class InMemoryBus:
    """routes.yaml, the directory and a few adapter instances, with no server and no broker.

    Everything but the transport is the production code: :class:`bus.app.Bus` with its
    ingress (validation, sender check, routing, one commit per document), the store's state
    machine on a temporary SQLite file, and :class:`bus.delivery.worker.DeliveryWorker` running due
    deliveries synchronously. ``routes`` is YAML text, or a :class:`~pathlib.Path` to a
    file (copied, so :meth:`set_routes` never touches it); ``directory`` defaults to the
    shipped ``config/directory.yaml``.

    ``adapters`` replace what the registry would build, matched on their name (the
    destination name, the first argument of ``from_options``); destinations without a
    given instance are built from their options through the installed entry points, as
    the bus does. A given instance's ``kind`` must be the destination's ``adapter``, and
    may be one that is not installed yet.
    """

    def __init__(self, routes: str | Path, *, adapters: Iterable[Adapter[Any]] = (),
                 directory: str | Path | None = None, data_dir: str | Path | None = None,
                 bus_organ_id: str = "00.37.W00", lease_s: float = 60.0) -> None:
        from bus.app import Bus
        from bus.metrics import Metrics
        from bus.registry import available
        from bus.settings import REPO_ROOT, Settings

        given = list(adapters)
        self._given = {adapter.name: adapter for adapter in given}
        if len(self._given) != len(given):
            raise ValueError("two adapters were given for the same destination name")
        self._owned_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="lgsp-inmemory-") if data_dir is None
                             else data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.routes_path = self.data_dir / "routes.yaml"
        text = routes.read_text(encoding="utf-8") if isinstance(routes, Path) else routes
        self.routes_path.write_text(text, encoding="utf-8")
        self.known_adapters = sorted(set(available()) | {a.kind for a in given if a.kind})
        settings = Settings(
            data_dir=self.data_dir, routes=self.routes_path,
            directory=Path(directory) if directory is not None
            else REPO_ROOT / "config" / "directory.yaml",
            bus_organ_id=bus_organ_id, lease_s=lease_s,
        )
        self.bus: Bus = Bus(settings, metrics=Metrics(), known_adapters=self.known_adapters)
        try:
            self._check_given()
            self.worker: DeliveryWorker = self._worker()
        except BaseException:
            self.bus.close()
            self._remove_dir()
            raise
        self.outcomes: Counter[str] = Counter()
        self._polled: dict[str, Adapter[Any]] = {}

    def _worker(self) -> DeliveryWorker:
        from bus.delivery.worker import DeliveryWorker

        return DeliveryWorker(self.bus.store, lambda: self.bus.reloader.current().table,
                              metrics=self.bus.metrics, lease_s=self.bus.settings.lease_s,
                              name="in-memory-bus", build=self._build)

    def _check_given(self) -> None:
        """Given instances must fit their destinations, and every other destination's
        options must build, as ``lgsp serve`` checks at start; the bus's reload does not
        build adapters, but in a test a bad option should fail where it was written."""
        from bus.errors import ConfigInvalid, Problem
        from bus.registry import build_adapter

        table = self.bus.reloader.current().table
        problems: list[Problem] = []
        for destination in table.destinations.values():
            if destination.name not in self._given:
                try:
                    build_adapter(destination, source=str(self.routes_path))
                except ConfigInvalid as exc:
                    problems.extend(exc.problems)
        if problems:
            raise ConfigInvalid(problems, file=str(self.routes_path))
        for name, adapter in self._given.items():
            found = table.destinations.get(name)
            if found is None:
                raise ValueError(f"an adapter was given for destination {name!r}, which the "
                                 f"routes do not define ({', '.join(table.destinations)})")
            if found.adapter != adapter.kind:
                raise ValueError(f"destination {name!r} uses adapter {found.adapter!r}"
                                 f" but the instance given is of kind {adapter.kind!r}")

    def _build(self, destination: Destination) -> Adapter[Any]:
        from bus.registry import build_adapter

        given = self._given.get(destination.name)
        if given is not None:
            return given
        return build_adapter(destination, source=str(self.routes_path))

    # ---- configuration ---------------------------------------------------------------

    def set_routes(self, routes: str | Path) -> None:
        """Replaces routes.yaml as an administrator's edit would, reloaded atomically.

        Raises :class:`~bus.errors.ConfigInvalid` with every problem instead of keeping
        the previous routes, since in a test a refused edit is a mistake to see at once.
        """
        from bus.errors import ConfigInvalid
        from bus.routing.routes import parse_routes

        text = routes.read_text(encoding="utf-8") if isinstance(routes, Path) else routes
        parse_routes(text, file=str(self.routes_path),
                     directory=self.bus.reloader.current().directory,
                     known_adapters=self.known_adapters)
        previous = self.routes_path.read_text(encoding="utf-8")
        self.routes_path.write_text(text, encoding="utf-8")
        try:
            if not self.bus.reload():
                raise ConfigInvalid([], file=str(self.routes_path))
            self._check_given()
        except (ConfigInvalid, ValueError):
            self.routes_path.write_text(previous, encoding="utf-8")
            self.bus.reload()
            raise

    # ---- the door --------------------------------------------------------------------

    def submit(self, packet: bytes, *, system: str | None = None,
               channel: str = "test") -> dict[str, Any]:
        """Submits through the bus's door; returns the receipt or raises its refusal.

        ``system`` is the connected system sending; by default the one the directory says
        hosts the packet's sender, or ``national_axis`` (the gateway) for a sender outside
        the province.
        """
        if system is None:
            system = self._system_of(packet)
        accepted = self.bus.submit(packet, system=system, channel=channel)
        return dict(accepted.receipt)

    def _system_of(self, packet: bytes) -> str:
        from bus.edxml import read_packet

        sender = read_packet(packet).packet.sender
        return self.bus.reloader.current().directory.host_of(sender) or "national_axis"

    # ---- delivery --------------------------------------------------------------------

    def deliver_all(self, *, max_rounds: int = 10,
                    skip_backoff: bool = False) -> Counter[Outcome]:
        """Runs due deliveries until none is due or ``max_rounds`` passes; counts outcomes.

        A retried delivery is due only after its back-off, so by default it waits for a
        later call; ``skip_backoff`` makes it due at once, which lets a test walk a
        delivery through its whole retry budget to ``parked`` in one call.
        """
        outcomes: Counter[Outcome] = Counter()
        for _ in range(max(max_rounds, 1)):
            now = time.time() + (10.0 ** 9 if skip_backoff else 0.0)
            due = self.bus.store.due(limit=1000, now=now)
            if not due:
                break
            for row in due:
                outcome = self.worker.handle(row.id)
                outcomes[outcome] += 1
        self.outcomes.update(outcomes)
        return outcomes

    def poll(self, destination: str) -> int:
        """One poll of a destination's adapter, as the bus's poller thread would make it."""
        table = self.bus.reloader.current().table
        if destination not in table.destinations:
            raise KeyError(f"no destination {destination!r} in the routes")
        adapter = self._polled.get(destination)
        if adapter is None:
            adapter = self._build(table.destinations[destination])
            adapter.open()
            self._polled[destination] = adapter
        return adapter.poll(_Inbox(self, destination))

    def acknowledge(self, delivery: str, *, ok: bool = True, reason: str | None = None,
                    actor: str = "test") -> bool:
        """A mailbox system confirms (or refuses) a delivery it collected."""
        return self.bus.store.acknowledge(delivery, ok=ok, actor=actor, reason=reason)

    # ---- what happened ---------------------------------------------------------------

    def deliveries(self, document: str) -> list[DeliveryState]:
        """The deliveries of a document: the bus id (receipt ``id``) or its DocumentId."""
        import sqlalchemy as sa

        from bus.store.tables import deliveries, documents

        d = deliveries
        query = (sa.select(d.c.id, d.c.recipient, d.c.effective_recipient, d.c.destination,
                           d.c.rule, d.c.is_copy, d.c.state, d.c.attempts, d.c.last_error,
                           d.c.receipt_reference)
                 .join(documents, documents.c.id == d.c.document)
                 .where(sa.or_(documents.c.id == document,
                               documents.c.document_id == document))
                 .order_by(d.c.created_at, d.c.effective_recipient, d.c.destination))
        with self.bus.store.engine.connect() as conn:
            return [DeliveryState(id=r[0], recipient=r[1], effective_recipient=r[2],
                                  destination=r[3], rule=r[4], is_copy=bool(r[5]),
                                  state=r[6], attempts=int(r[7]), last_error=r[8],
                                  reference=r[9])
                    for r in conn.execute(query)]

    def states(self, document: str) -> dict[str, str]:
        """``{effective recipient[@destination]: state}``; the destination is added only for
        a recipient served by more than one (a copy_to beside its main delivery)."""
        rows = self.deliveries(document)
        counts = Counter(r.effective_recipient for r in rows)
        return {(r.effective_recipient if counts[r.effective_recipient] == 1
                 else f"{r.effective_recipient}@{r.destination}"): r.state for r in rows}

    # ---- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Closes the adapters the worker opened, the database, and the temporary files."""
        try:
            self.worker.close()
            for adapter in {id(a): a for a in [*self._given.values(),
                                                *self._polled.values()]}.values():
                with contextlib.suppress(Exception):
                    adapter.close()
        finally:
            self.bus.close()
            self._remove_dir()

    def _remove_dir(self) -> None:
        if self._owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

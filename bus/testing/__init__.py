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
inbound polling through :meth:`InMemoryBus.poll` against your simulator. Its inbox is
the bus's own: ``submit`` takes ``bytes``, an open binary file or an iterable of pieces,
spools a large packet to disk and enforces ``max_body_bytes`` while reading, so a test
there proves your adapter streams what it fetches.

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

from bus.testing.conformance import AdapterConformance
from bus.testing.inmemory import DeliveryState, InMemoryBus
from bus.testing.targets import (
    DEFAULT_RECIPIENT,
    DEFAULT_SENDER,
    ConformanceTarget,
    sample_delivery,
)

__all__ = [
    "DEFAULT_RECIPIENT",
    "DEFAULT_SENDER",
    "AdapterConformance",
    "ConformanceTarget",
    "DeliveryState",
    "InMemoryBus",
    "sample_delivery",
]

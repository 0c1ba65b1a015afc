"""The ``vnpt_ioffice`` mailbox adapter keeps the contract of :mod:`bus.adapter`.

Its far side is the mailbox, and the mailbox is the bus's own delivery row: ``deliver()``
contacts nobody, and the worker records ``awaiting`` with the receipt's reference, which
is the docId iOffice will list. So the far side here is what the worker would record,
one mailbox item per reference, and "one effect" means that every attempt of the same
delivery, from any adapter instance, names the same item. The levers that take a system
down or make it refuse do not apply (the suite skips them, saying why); iOffice being
down or refusing is tested end to end in test_vnpt_ioffice.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from adapters.vnpt_ioffice import VnptIofficeAdapter
from bus.adapter import Delivery, Receipt
from bus.testing import AdapterConformance, ConformanceTarget


class _Mailbox:
    """reference (docId) → idempotency key, as the worker would file the receipts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, str] = {}

    def file(self, delivery: Delivery, receipt: Receipt) -> None:
        if receipt.awaiting_pickup and receipt.reference is not None:
            with self._lock:
                self.items.setdefault(receipt.reference, delivery.idempotency_key)

    def effects(self, key: str) -> int:
        with self._lock:
            return sum(1 for owner in self.items.values() if owner == key)


MAILBOX = _Mailbox()


class _FiledIoffice(VnptIofficeAdapter):
    """The adapter under test, unchanged, plus the worker's filing of its receipt."""

    def deliver(self, delivery: Delivery) -> Receipt:
        receipt = super().deliver(delivery)
        MAILBOX.file(delivery, receipt)
        return receipt


class TestVnptIofficeConformance(AdapterConformance):
    @pytest.fixture
    def conformance_target(self) -> Iterator[ConformanceTarget]:
        yield ConformanceTarget(
            adapter_class=_FiledIoffice,
            options={"system_id": "000.00.00.H37"},
            invalid_options=[{}, {"system_id": ""}, {"system_id": "has space"},
                             {"system_id": "x" * 65}],
            effects=MAILBOX.effects,
            destination="vnpt_ioffice",
            call_timeout_s=5.0,
        )


def test_the_registered_class_is_the_one_under_test() -> None:
    """The suite runs on a filing subclass; this pins that the entry point's class is the
    parent, whose kind and capabilities the subclass inherits unchanged."""
    from importlib.metadata import entry_points

    [ep] = [e for e in entry_points(group="lgsp.adapters") if e.name == "vnpt_ioffice"]
    assert ep.load() is VnptIofficeAdapter
    assert _FiledIoffice.kind == VnptIofficeAdapter.kind == "vnpt_ioffice"
    assert _FiledIoffice.capabilities is VnptIofficeAdapter.capabilities

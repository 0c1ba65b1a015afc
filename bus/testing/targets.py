"""What a conformance run is pointed at: the system's side of an adapter under test."""


from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from bus.adapter import Adapter, Delivery

if TYPE_CHECKING:
    pass

DEFAULT_SENDER: Final = "000.00.12.H37"
DEFAULT_RECIPIENT: Final = "000.00.00.H37"
UNKNOWN_OPTION: Final = "lgsp_conformance_unknown_option"



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

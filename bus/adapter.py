"""The contract between the bus and a document system: one method per direction.

Writing an adapter
==================

A province connects systems of many vendors; each is reached through an adapter. The
bus does everything that is the same for all of them — queueing, retries with back-off,
parking, idempotency bookkeeping, metrics, the audit trail — so an adapter only answers
one question per direction.

**Outbound** (the bus hands a packet to your system)::

    from pydantic import BaseModel, ConfigDict
    from bus.adapter import Adapter, Delivery, Receipt, Refuse, Retry

    class AcmeConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")   # a misspelt option is an error
        url: str
        timeout_s: float = 10.0

    class AcmeAdapter(Adapter[AcmeConfig]):
        kind = "acme"                      # the name used in routes.yaml: adapter: acme
        Config = AcmeConfig                # validated when routes load, errors point at YAML
        capabilities = frozenset({"deliver"})

        def open(self) -> None:            # optional: connections, sessions
            self.session = make_session(self.config.url)

        def deliver(self, delivery: Delivery) -> Receipt:
            answer = self.session.post(delivery.payload,
                                       headers={"Idempotency-Key": delivery.idempotency_key})
            if answer.status in (429, 503):
                raise Retry("Acme is busy", delay_s=30)
            if answer.status == 400:
                raise Refuse(f"Acme refused the packet: {answer.text}")
            return Receipt(reference=answer.json()["id"])

``deliver`` returns a :class:`Receipt` when the system has the packet, raises
:class:`Retry` when trying later may work, and :class:`Refuse` when it never will. Any
other exception counts as retryable, and its traceback is logged; exceptions listed in
``permanent_errors`` count as refusals. The same delivery can arrive twice (a worker may
die after your system answered but before the bus recorded it): pass
``idempotency_key`` on to the system, or look it up before sending.

**Inbound** (your system hands packets to the bus): systems that push call the bus's REST
or SOAP endpoints themselves and need no code here. For systems that must be polled,
implement :meth:`Adapter.poll` and add ``"poll"`` to ``capabilities`` (the bus starts a
poller only for adapters declaring it); it is called every ``poll_interval_s`` with an
:class:`Inbox`, and calls ``inbox.submit(packet, source_id=...)`` per packet. The
bus answers with the receipt or raises the refusal; ``source_id`` (e.g. the axis docId)
makes a second submission of the same item a no-op. Catch :class:`bus.errors.LgspError`
around each ``submit``: a refused packet must be reported back to its system (or
acknowledged as failed) and must not stop the rest of the round.

``packet`` is ``bytes`` for a small packet. A large one (a scan of hundreds of
megabytes) should not be read into memory: pass an open binary file, or any iterable of
``bytes`` pieces — the HTTP answer's ``response.iter_bytes()``, or a generator decoding
it as it arrives::

    with session.stream("GET", url) as answer:
        receipt = inbox.submit(answer.iter_bytes(), source_id=item_id)

The bus reads the pieces to the end into a file (hashed on the way, refused with
``PAYLOAD_TOO_LARGE`` as soon as they pass its ``max_body_bytes``) before it checks or
commits anything. So a generator may still find at its last piece that the answer was
unusable: whatever it raises then comes out of ``submit`` unchanged, and nothing was
accepted (the national axis adapter raises :class:`Retry` for a cut-short answer).

**Can it work?** Two optional methods tell an operator before documents pile up.
``missing_secrets()`` names a secret the adapter needs and cannot find (an unset
environment variable), without I/O: ``lgsp routes check`` fails on it, /readyz lists it,
and a poller skips its rounds with one warning instead of failing every round.
``check()`` asks the system whether it answers (a HEAD, a WSDL fetch); the bus runs it in
the background every 30 s, cuts it off after 3 s and publishes the verdict in /readyz
(``destinations``) and as ``lgsp_destination_up`` (:mod:`bus.readiness`).

**Registering**: declare an entry point in your distribution's ``pyproject.toml``::

    [project.entry-points."lgsp.adapters"]
    acme = "acme_lgsp.adapter:AcmeAdapter"

and ``lgsp adapters list`` shows it. Constructors must not do I/O: the bus builds
adapters to validate configuration when routes load, long before it delivers anything.
Run :mod:`bus.testing`'s conformance suite against your adapter before shipping it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from bus.store.blobs import PayloadBody


class NoConfig(BaseModel):
    """For adapters that take no options."""

    model_config = ConfigDict(extra="forbid")


ConfigT = TypeVar("ConfigT", bound=BaseModel)


class Retry(Exception):  # noqa: N818 - a signal, named for what the bus should do
    """Try this delivery again later; ``delay_s`` overrides the bus's back-off once."""

    def __init__(self, reason: str, *, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class Refuse(Exception):  # noqa: N818 - a signal, named for what the bus should do
    """The destination will never accept this packet: record it and stop trying."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, init=False)
class Delivery:
    """One packet for one recipient at one destination, as the adapter sees it.

    The packet is ``body``: its ``size``, and ``open()``/``chunks()`` to stream it, which
    is what an adapter should use (a scanned packet may be hundreds of megabytes, kept
    in a file). ``payload`` reads it all into memory, for adapters written before
    streaming and for small packets. Built either from ``payload=bytes`` or ``body=``.
    """

    body: PayloadBody
    idempotency_key: str
    document_id: str
    kind: str
    sender: str
    recipient: str
    destination: str
    attempt: int
    headers: dict[str, str]

    def __init__(self, payload: bytes | None = None, idempotency_key: str = "",
                 document_id: str = "", kind: str = "edoc", sender: str = "",
                 recipient: str = "", destination: str = "", attempt: int = 1,
                 headers: dict[str, str] | None = None, *,
                 body: PayloadBody | None = None) -> None:
        if body is None:
            if payload is None:
                raise TypeError("a Delivery needs its payload or its body")
            body = PayloadBody.of(payload)
        elif payload is not None:
            raise TypeError("give a Delivery its payload or its body, not both")
        for name, value in (("body", body), ("idempotency_key", idempotency_key),
                            ("document_id", document_id), ("kind", kind), ("sender", sender),
                            ("recipient", recipient), ("destination", destination),
                            ("attempt", attempt), ("headers", headers or {})):
            object.__setattr__(self, name, value)

    @functools.cached_property
    def payload(self) -> bytes:
        """Every byte of the packet, read once on first use."""
        return self.body.read()


@dataclass(frozen=True)
class Receipt:
    """What the destination answered; ``reference`` is its own id for the packet, if any.

    ``awaiting_pickup`` is for systems that collect their packets themselves (a mailbox
    they poll): the delivery then waits in state ``awaiting`` until the system
    acknowledges it through :meth:`bus.store.Store.acknowledge`.
    """

    reference: str | None = None
    detail: str | None = None
    duplicate: bool = False
    awaiting_pickup: bool = False


InboundPacket = bytes | BinaryIO | Iterable[bytes]
"""A polled packet: in memory, an open binary file, or its pieces in order."""


class Inbox(Protocol):
    """What a polling adapter hands packets to; implemented by the bus. A packet given
    as a file or as pieces is read to its end before anything is checked or committed;
    an exception the pieces raise comes out of ``submit`` as it is."""

    def submit(self, packet: InboundPacket, *,
               source_id: str | None = None) -> dict[str, Any]: ...


class Adapter(Generic[ConfigT]):
    """Base class of every adapter; see the module documentation for a worked example."""

    kind: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = NoConfig
    capabilities: ClassVar[frozenset[str]] = frozenset({"deliver"})
    retryable_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    permanent_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    poll_interval_s: ClassVar[float] = 30.0

    def __init__(self, name: str, config: ConfigT) -> None:
        self.name = name
        self.config = config

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any]) -> Adapter[ConfigT]:
        """Validates ``options`` (raises pydantic.ValidationError) and builds the adapter."""
        config = cls.Config.model_validate(options)
        return cls(name, config)  # type: ignore[arg-type]

    def open(self) -> None:
        """Acquire connections; called once before the first delivery or poll."""

    def close(self) -> None:
        """Release what open() acquired; must be safe to call twice."""

    def missing_secrets(self) -> str | None:
        """Which secret this destination needs and cannot find (an unset environment
        variable), else None. No I/O: ``lgsp routes check`` calls it on an administrator's
        machine and fails when it answers."""
        return None

    def check(self) -> str | None:
        """Returns None when the destination looks reachable, else a reason (for /readyz,
        ``lgsp routes check`` and the console; cached, and cut off after a few seconds)."""
        return None

    def deliver(self, delivery: Delivery) -> Receipt:
        raise Refuse(f"adapter {self.kind!r} cannot deliver packets")

    def poll(self, inbox: Inbox) -> int:
        """Fetch pending packets and submit each; returns how many were submitted."""
        return 0

    def classify(self, exc: BaseException) -> Retry | Refuse:
        """Turns an unexpected exception into the bus's decision, using the class lists."""
        if isinstance(exc, Retry | Refuse):
            return exc
        if self.permanent_errors and isinstance(exc, self.permanent_errors):
            return Refuse(f"{type(exc).__name__}: {exc}")
        return Retry(f"{type(exc).__name__}: {exc}")

"""Inbound polling: systems that do not push (the national axis) are asked for packets.

Each destination whose adapter declares the ``poll`` capability gets one thread that
calls :meth:`~bus.adapter.Adapter.poll` with an :class:`Inbox`. The inbox sends every
packet through the same door as REST and SOAP, with the adapter's item id as the source
key, so an item listed twice — or fetched by two worker processes at once — is accepted
once and answered with the same receipt.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog

from bus import errors, registry
from bus.adapter import Adapter, InboundPacket, Retry
from bus.delivery.inbound import gather
from bus.routing import Destination
from bus.store.blobs import Spool

if TYPE_CHECKING:
    from bus.app import Bus

log = structlog.get_logger("lgsp.pollers")


class BusInbox:
    """The :class:`~bus.adapter.Inbox` the bus hands to a polling adapter."""

    def __init__(self, bus: Bus, destination: str) -> None:
        self.bus = bus
        self.destination = destination

    @property
    def system(self) -> str:
        """The system the packets come from: the directory's system served by this
        destination, or the destination itself for gateways such as the national axis."""
        directory = self.bus.reloader.current().directory
        for system in directory.systems.values():
            if system.destination == self.destination:
                return system.name
        return self.destination

    def submit(self, packet: InboundPacket, *,
               source_id: str | None = None) -> dict[str, Any]:
        """A file or pieces are gathered first (:mod:`bus.delivery.inbound`): spooled to
        disk when large, refused past ``max_body_bytes`` while still arriving."""
        source = (self.destination, source_id) if source_id else None
        if isinstance(packet, bytes | bytearray | memoryview):
            data: bytes | Spool = bytes(packet)
        else:
            what = f"the packet {source_id}" if source_id else "a packet"
            data = gather(packet, self.bus.store.files, self.bus.settings.max_body_bytes,
                          what=f"{what} polled from {self.destination}")
        try:
            accepted = self.bus.submit(data, system=self.system, channel="poll",
                                       source=source)
        finally:
            if isinstance(data, Spool):
                data.discard()
        return accepted.receipt


class Poller(threading.Thread):
    def __init__(self, bus: Bus, destination: Destination, adapter: Adapter[Any]) -> None:
        super().__init__(name=f"lgsp-poll-{destination.name}", daemon=True)
        self.bus = bus
        self.destination = destination
        self.adapter = adapter
        self.inbox = BusInbox(bus, destination.name)
        self.stopping = threading.Event()
        self.polls = 0
        self.failing: str | None = None
        """Why the last round could not poll, until one succeeds."""

    @property
    def interval_s(self) -> float:
        configured = getattr(self.adapter.config, "poll_interval_s", None)
        return float(configured if configured is not None else self.adapter.poll_interval_s)

    def run(self) -> None:
        opened = False
        while not self.stopping.is_set():
            try:
                missing = self.adapter.missing_secrets()
                if missing:
                    self._cannot_poll(missing)
                else:
                    if not opened:
                        self.adapter.open()
                        opened = True
                    submitted = self.adapter.poll(self.inbox)
                    self.polls += 1
                    self._polling()
                    if submitted:
                        log.info("poll.submitted", destination=self.destination.name,
                                 count=submitted)
            except errors.LgspError as exc:
                log.warning("poll.refused", destination=self.destination.name, code=exc.code,
                            reason=exc.message)
            except Retry as exc:
                self._cannot_poll(exc.reason)
            except Exception as exc:
                self._cannot_poll(f"{type(exc).__name__}: {exc}", unexpected=True)
            self.stopping.wait(self.interval_s)
        if opened:
            self.adapter.close()

    def _cannot_poll(self, reason: str, *, unexpected: bool = False) -> None:
        """One warning per reason: a poller that cannot run says why once (with the
        traceback if the adapter failed in a way it did not foresee), then again only when
        the reason changes, instead of every round."""
        if reason == self.failing:
            return
        self.failing = reason
        if unexpected:
            log.exception("poll.failed", destination=self.destination.name, reason=reason,
                          repeats="not logged again until the reason changes")
        else:
            log.warning("poll.cannot_run", destination=self.destination.name, reason=reason,
                        repeats="not logged again until the reason changes")

    def _polling(self) -> None:
        if self.failing is not None:
            log.info("poll.resumed", destination=self.destination.name, after=self.failing)
            self.failing = None

    def stop(self, timeout: float = 30.0) -> bool:
        self.stopping.set()
        self.join(timeout)
        return not self.is_alive()


class Pollers:
    """One poller per polling destination of the routes in force at start."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.pollers: list[Poller] = []

    def start(self) -> None:
        table = self.bus.reloader.current().table
        for destination in table.destinations.values():
            cls = registry.adapter_class(destination.adapter)
            if "poll" not in cls.capabilities:
                continue
            adapter = registry.build_adapter(destination, source=table.source)
            poller = Poller(self.bus, destination, adapter)
            poller.start()
            self.pollers.append(poller)

    def stop(self, timeout: float = 30.0) -> bool:
        for poller in self.pollers:
            poller.stopping.set()
        return all([poller.stop(timeout) for poller in self.pollers])

"""The bus without a server or broker: routes.yaml rules and adapters tested in milliseconds."""


from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from bus.adapter import Adapter, InboundPacket

if TYPE_CHECKING:
    from bus.app import Bus
    from bus.delivery.worker import DeliveryWorker, Outcome
    from bus.routing import Destination

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

    def submit(self, packet: InboundPacket, *,
               source_id: str | None = None) -> dict[str, Any]:
        """bytes, a binary file or pieces, as :class:`bus.adapter.Inbox` says."""
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

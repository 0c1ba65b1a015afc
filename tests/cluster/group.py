"""A cluster of bus processes sharing settings, database and vhost, and the database's
view of where its deliveries stand."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import sqlalchemy as sa
import yaml

from bus.settings import Settings
from tests.cluster.basics import REPO_ROOT, TERMINAL, write_routes
from tests.cluster.process import BusProcess, Role

_SETTINGS_DEFAULTS: Final[Mapping[str, Any]] = {
    "delivery_threads": 2,
    "lease_s": 5.0,
    "requeue_unclaimed_after_s": 10.0,
    "sweep_interval_s": 1.0,
    "poll_interval_s": 0.2,
    "reload_check_s": 2.0,
    "log_json": True,
    "log_level": "INFO",
}


class Cluster:
    """A set of bus processes sharing one settings file, database and broker vhost.

    Leave ``broker_url`` empty for the embedded default (SQLite under the temp dir, the
    database as the queue). Settings are validated here with the bus's own model, so a
    typo fails the test at once instead of crashing every child.
    """

    def __init__(self, root: Path, *, routes: Mapping[str, Any], database_url: str = "",
                 broker_url: str = "", **settings: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.routes_path = write_routes(root / "routes.yaml", routes)
        values: dict[str, Any] = {**_SETTINGS_DEFAULTS, **settings}
        values.update(
            data_dir=str(root / "var"), database_url=database_url, broker_url=broker_url,
            routes=str(self.routes_path),
            directory=str(REPO_ROOT / "config" / "directory.yaml"),
            credentials=str(REPO_ROOT / "config" / "credentials.yaml"),
        )
        self.settings = Settings.model_validate(values)
        self.config_path = root / "settings.yaml"
        self.config_path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
        self.processes: list[BusProcess] = []
        self._engine: sa.Engine | None = None

    @property
    def database_url(self) -> str:
        return self.settings.effective_database_url

    def add(self, role: Role, name: str | None = None) -> BusProcess:
        name = name or f"{role}-{sum(p.role == role for p in self.processes) + 1}"
        process = BusProcess(name, role, self.config_path, self.root / "logs",
                             delivery_threads=self.settings.delivery_threads)
        self.processes.append(process)
        return process

    def launch(self, role: Role, count: int = 1, timeout: float = 60.0) -> list[BusProcess]:
        """Starts ``count`` processes in parallel, then waits for every one to be ready.

        The very first process of a cluster is started alone: processes that start
        together on an empty PostgreSQL database race in CREATE TABLE and one of them
        dies (test_startup.py proves it). That bug has its own test; the battery measures
        delivery, so it does not let the bug decide whether a scenario can start.
        """
        started = [self.add(role) for _ in range(count)]
        if len(self.processes) == len(started):
            started[0].start()
            started[0].wait_ready(timeout)
        for process in started:
            if not process.alive():
                process.start()
        for process in started:
            process.wait_ready(timeout)
        return started

    def by_role(self, role: Role) -> list[BusProcess]:
        return [p for p in self.processes if p.role == role]

    def urls(self) -> list[str]:
        return [p.url for p in self.processes if p.role != "worker"]

    @property
    def engine(self) -> sa.Engine:
        """A reader on the bus's database: plain engine, so SQLite reads never take the
        write lock (the bus's own engine begins every transaction IMMEDIATE)."""
        if self._engine is None:
            self._engine = sa.create_engine(self.database_url, pool_pre_ping=True,
                                            pool_size=2)
        return self._engine

    def states(self) -> dict[str, int]:
        return delivery_states(self.engine)

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.stop()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(p.log_tail(lines) for p in self.processes)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            with contextlib.suppress(Exception):
                exc.add_note(self.log_tails())
        self.stop()


# --------------------------------------------------------------------------------------
# Reading the truth from the database
# --------------------------------------------------------------------------------------

_DELIVERIES = sa.table("deliveries", sa.column("id"), sa.column("document"),
                       sa.column("recipient"), sa.column("effective_recipient"),
                       sa.column("destination"), sa.column("state"), sa.column("attempts"),
                       sa.column("last_error"))


def delivery_states(engine: sa.Engine) -> dict[str, int]:
    """Deliveries per transport state: what "nothing lost" is counted on."""
    d = _DELIVERIES.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.state, sa.func.count()).group_by(d.state)).all()
    return {str(state): int(count) for state, count in rows}


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    document: str
    recipient: str
    effective_recipient: str
    destination: str
    state: str
    attempts: int
    last_error: str | None

    @property
    def key(self) -> str:
        """The idempotency key the worker sends (bus.delivery.worker.idempotency_key)."""
        return f"{self.document}:{self.effective_recipient}:{self.destination}"


def delivery_rows(engine: sa.Engine) -> list[DeliveryRow]:
    """Every delivery, read with a table stub so the audit does not trust bus.store."""
    d = _DELIVERIES.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.id, d.document, d.recipient, d.effective_recipient,
                                      d.destination, d.state, d.attempts, d.last_error)).all()
    return [DeliveryRow(*row) for row in rows]


def all_terminal(engine: sa.Engine) -> bool:
    """Whether delivery is over; an empty table is not "over", it is "not started"."""
    states = delivery_states(engine)
    return bool(states) and all(state in TERMINAL for state in states)

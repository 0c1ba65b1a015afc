"""The bus as real, separate processes, for tests that kill things.

The reliability battery must crash what production crashes: a process, by SIGKILL, with
its sockets, threads and half-written transactions. Threads inside the test process cannot
be killed like that, so every bus process here is a child started exactly as an operator
starts it (``lgsp serve``, ``lgsp serve --no-workers``, ``lgsp worker``), configured only
through a settings file, and killed or stopped only through its own pid.

Isolation: each test gets its own PostgreSQL database (:func:`fresh_database`), its own
RabbitMQ virtual host (:func:`fresh_vhost`; the bus has no queue-prefix setting, so a
vhost is the only way to keep tests from consuming each other's tasks) or its own SQLite
file, and a routes.yaml whose every destination is a loopback :class:`HttpSink`.

Diagnosis: each process writes its stderr (the bus's JSON log) to its own file. A
:class:`Cluster` used as a context manager attaches the tail of every log to whatever
exception leaves the block, so a CI failure says which process did what.
"""

from __future__ import annotations

from tests.cluster.basics import (
    DESTINATIONS,
    REPO_ROOT,
    SOAK_SCALE,
    TERMINAL,
    TEST_RETRY,
    fresh_database,
    fresh_vhost,
    routes_document,
    soak,
    wait_until,
    write_routes,
)
from tests.cluster.group import Cluster, DeliveryRow, all_terminal, delivery_rows, delivery_states
from tests.cluster.process import BusProcess
from tests.cluster.sender import Outgoing, Progress, Sender, Submission, background

__all__ = [
    "DESTINATIONS",
    "REPO_ROOT",
    "SOAK_SCALE",
    "TERMINAL",
    "TEST_RETRY",
    "BusProcess",
    "Cluster",
    "DeliveryRow",
    "Outgoing",
    "Progress",
    "Sender",
    "Submission",
    "all_terminal",
    "background",
    "delivery_rows",
    "delivery_states",
    "fresh_database",
    "fresh_vhost",
    "routes_document",
    "soak",
    "wait_until",
    "write_routes",
]

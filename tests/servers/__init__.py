"""Private, throw-away RabbitMQ and PostgreSQL servers for the test suite.

The suite never talks to a system-wide broker or database: a CI machine may or may not run
one, their state would leak from run to run, and the reliability tests SIGKILL the servers,
which must never hit a service somebody else depends on. So every server here lives in its
own temporary directory, listens on its own loopback ports, and is found (and killed) only
through the pid it wrote itself, double-checked against the command line of that pid.

This module deliberately does not import pytest, so it can also be used from a REPL or a
script to get a broker and a database for manual experiments::

    with RabbitMQServer() as mq, PostgresServer() as pg:
        print(mq.url, pg.url)

Two things about the machines this runs on shape the code:

* Containers often run a PID 1 that never reaps orphans. A daemonised server that dies is
  then left as a zombie forever, and ``kill(pid, 0)`` still succeeds on it. Liveness is
  therefore read from ``/proc/<pid>/stat`` and a zombie counts as dead.
* Every wait is bounded, and every failure carries the tail of the server's log, because a
  hang or a bare "did not start" in CI is undiagnosable after the fact.
"""

from __future__ import annotations

from tests.servers.postgres import PostgresServer
from tests.servers.process import INSTALL_HINT as INSTALL_HINT
from tests.servers.process import LOOPBACK as LOOPBACK
from tests.servers.process import ServerError, ServerNotInstalledError, free_port, pid_alive
from tests.servers.rabbitmq import RabbitMQServer
from tests.servers.rabbitmq_cluster import RabbitMQCluster

__all__ = [
    "PostgresServer",
    "RabbitMQCluster",
    "RabbitMQServer",
    "ServerError",
    "ServerNotInstalledError",
    "free_port",
    "pid_alive",
]

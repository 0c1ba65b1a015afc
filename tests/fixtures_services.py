"""Session-wide RabbitMQ and PostgreSQL fixtures, backed by private servers.

Imported into tests/conftest.py (``from tests.fixtures_services import rabbitmq, postgres``)
rather than living there, so the server plumbing stays in one reviewable place.

A missing server binary fails the tests instead of skipping them: on CI a skip would look
green while the integration and reliability suites never ran.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import INSTALL_HINT, PostgresServer, RabbitMQServer

__all__ = ["postgres", "rabbitmq"]


def _fail_if_missing(kind: str, missing: list[str]) -> None:
    if missing:
        pytest.fail(
            f"{kind} server binaries are missing: {', '.join(missing)}; {INSTALL_HINT}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQServer]:
    """A broker shared by the whole session; tests must use their own queue names."""
    _fail_if_missing("RabbitMQ", RabbitMQServer.missing_binaries())
    server = RabbitMQServer()
    try:
        server.start()
        print(
            f"\n[services] RabbitMQ {server.nodename} on {server.url} "
            f"started in {server.last_start_seconds:.2f}s"
        )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A database shared by the whole session; tests must clean up or use own schemas."""
    _fail_if_missing("PostgreSQL", PostgresServer.missing_binaries())
    server = PostgresServer()
    try:
        server.start()
        print(
            f"\n[services] PostgreSQL on {server.url} started in {server.last_start_seconds:.2f}s"
        )
        yield server
    finally:
        server.stop()

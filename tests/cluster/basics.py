"""What every cluster test shares: constants, bounded waits, and its own database,
vhost and routes.yaml."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

import psycopg
import yaml
from psycopg import sql

from bus.routing import RetryPolicy
from tests.http_sink import HttpSink
from tests.servers import PostgresServer, RabbitMQServer

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DESTINATIONS: Final = ("eoffice", "vnpt_ioffice", "hcm_egov", "national_axis", "archive")
TEST_RETRY: Final = RetryPolicy(attempts=30, first_delay_s=0.2, max_delay_s=2.0)
TERMINAL: Final = frozenset({"delivered", "refused", "parked"})
SOAK_SCALE: Final = max(float(os.environ.get("LGSP_SOAK_SCALE", "1") or 1), 0.1)
"""``LGSP_SOAK_SCALE=10`` turns the outage scenarios into soaks: ten times the documents
and the deadlines, the same outages and assertions."""


def soak(value: float) -> int:
    """A volume or a deadline of a reliability scenario, times :data:`SOAK_SCALE`."""
    return max(int(value * SOAK_SCALE), 1)

T = TypeVar("T")


# --------------------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float, *, step: float = 0.1,
               what: str = "the condition",
               explain: Callable[[], str] | None = None) -> T:
    """The predicate's first truthy value; TimeoutError naming ``what`` at the deadline.

    A reliability test that hangs tells nobody anything, so every wait has a deadline and
    the error carries ``explain()`` (current counts, say) to show how far it got.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = ""
            if explain is not None:
                with contextlib.suppress(Exception):
                    detail = f"; {explain()}"
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s{detail}")
        time.sleep(step)


# --------------------------------------------------------------------------------------
# Per-test database, vhost and configuration files
# --------------------------------------------------------------------------------------


def fresh_database(postgres: PostgresServer, prefix: str = "lgsp") -> str:
    """SQLAlchemy URL of a new, empty database on the session's server.

    Counting "0 lost" means counting every row, so no other test's rows may be there.
    """
    name = f"{prefix}_{secrets.token_hex(5)}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return postgres.url.rsplit("/", 1)[0] + "/" + name


def fresh_vhost(rabbitmq: RabbitMQServer, prefix: str = "lgsp-test") -> str:
    """AMQP URL of a new virtual host that guest may use fully.

    The bus names its queues ``lgsp.deliver.<destination>`` with no setting to change
    that, so two tests on one broker would share queues; a vhost separates them.
    """
    name = f"{prefix}-{secrets.token_hex(4)}"
    for args in (("add_vhost", name), ("set_permissions", "-p", name, "guest", ".*", ".*", ".*")):
        result = rabbitmq.rabbitmqctl(*args)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: "
                               f"{(result.stdout + result.stderr).strip()}")
    return f"amqp://guest:guest@{rabbitmq.host}:{rabbitmq.port}/{quote(name, safe='')}"


def routes_document(sinks: HttpSink | Mapping[str, HttpSink], *,
                    retry: RetryPolicy = TEST_RETRY,
                    retry_for: Mapping[str, RetryPolicy] | None = None,
                    rules: Sequence[Mapping[str, Any]] = (),
                    timeout_s: float = 10.0) -> dict[str, Any]:
    """routes.yaml as data: every destination is the ``http`` adapter aimed at a sink.

    One sink serves all destinations on different paths (``/eoffice`` …) unless a mapping
    gives a destination its own sink, so a test can take one destination down alone.
    """
    destinations: dict[str, Any] = {}
    for name in DESTINATIONS:
        sink = sinks.get(name) if isinstance(sinks, Mapping) else sinks
        if sink is None:
            raise KeyError(f"no sink for destination {name!r}")
        entry: dict[str, Any] = {"adapter": "http",
                                 "options": {"url": sink.url("/" + name),
                                             "timeout_s": timeout_s}}
        own = (retry_for or {}).get(name)
        if own is not None:
            entry["retry"] = _retry_dict(own)
        destinations[name] = entry
    return {"version": 1, "destinations": destinations,
            "defaults": {"outside": "national_axis", "retry": _retry_dict(retry)},
            "rules": [dict(rule) for rule in rules]}


def _retry_dict(policy: RetryPolicy) -> dict[str, float]:
    return {"attempts": policy.attempts, "first_delay_s": policy.first_delay_s,
            "max_delay_s": policy.max_delay_s}


def write_routes(path: Path, document: Mapping[str, Any]) -> Path:
    """Writes atomically (rename), so a watcher or a SIGHUP never reads half a file."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(yaml.safe_dump(dict(document), allow_unicode=True, sort_keys=False),
                       encoding="utf-8")
    scratch.replace(path)
    return path

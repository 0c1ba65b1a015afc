"""The wire to RabbitMQ: connections to a cluster, queue names and declaration, the task body."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
import structlog

log = structlog.get_logger("lgsp.broker")

QUEUE_PREFIX: Final = "lgsp.deliver."
AMQP_ERRORS: Final = (pika.exceptions.AMQPError, OSError)


def queue_name(destination: str, prefix: str = QUEUE_PREFIX) -> str:
    return f"{prefix}{destination}"


def parameters(url: str, *, timeout_s: float = 5.0, heartbeat_s: int = 60) -> Any:
    """Connection parameters that fail fast: the callers own every retry decision."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = timeout_s
    params.stack_timeout = timeout_s * 2
    params.blocked_connection_timeout = timeout_s * 6
    params.heartbeat = heartbeat_s
    return params


def endpoints(url: str) -> list[str]:
    """One URL per node of a ``broker_url`` that lists several, comma-separated::

        amqp://user:pass@10.0.0.1:5672,10.0.0.2:5672,10.0.0.3/vhost

    Credentials, virtual host and query apply to every node; a node without a port
    uses the scheme's default. A plain single-node URL comes back unchanged.
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [url]
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host.strip()}"))
            for host in hosts.split(",") if host.strip()]


def connect(url: str, *, timeout_s: float = 5.0, heartbeat_s: int = 60) -> Any:
    """A blocking connection to the first node of ``url`` that answers.

    The nodes are tried in a random order, so the processes of a bus spread over a
    cluster and none depends on one node being up; a node that is down refuses at once
    (or within ``timeout_s``) and the next is tried. Raises one of AMQP_ERRORS when no
    node takes the connection.
    """
    nodes = endpoints(url)
    random.shuffle(nodes)
    return pika.BlockingConnection(
        [parameters(node, timeout_s=timeout_s, heartbeat_s=heartbeat_s) for node in nodes])


def declare(channel: Any, queue: str) -> None:
    """Idempotent: a quorum queue replicates and survives a node crash with its messages."""
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


def ping(url: str, *, timeout_s: float = 2.0) -> str | None:
    """None when the broker accepts a connection (readiness), else the reason."""
    try:
        connection = connect(url, timeout_s=timeout_s)
    except AMQP_ERRORS as exc:
        return f"RabbitMQ unreachable: {type(exc).__name__}: {exc}"
    with contextlib.suppress(*AMQP_ERRORS):
        connection.close()
    return None


def _task(delivery: str) -> bytes:
    return json.dumps({"delivery": delivery}).encode()


def _delivery_of(body: bytes) -> str:
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("delivery"), str):
        raise ValueError("task body is not {\"delivery\": \"<id>\"}")
    return str(data["delivery"])

"""Scale-out delivery through RabbitMQ: the broker distributes work, the database decides.

The broker carries small tasks (``{"delivery": id}``), never packets, one durable quorum
queue per destination (``lgsp.deliver.<destination>``) so that a destination that is down
fills only its own queue. Nothing here needs the broker to be exactly-once:

* :class:`RabbitDispatcher` publishes each committed delivery, from its own thread, with
  publisher confirms, and only then marks the row ``queued``. If the broker is
  unreachable the row stays ``pending`` and the ingress is neither failed nor slowed:
  the document is already committed.
* :class:`Relay` (in every worker process) returns lost work to ``pending`` and publishes
  whatever is pending and due — rows whose first publish failed, retries whose time has
  come, leases that expired. It may publish a row twice; that is harmless.
* :class:`RabbitConsumer` acks a task only after :meth:`DeliveryWorker.handle` returned,
  i.e. after the outcome is committed. A crash before the ack means redelivery, and the
  lease turns the duplicate into ``skipped``.

pika's BlockingConnection is not thread-safe, so every thread has its own connection.
"""

from __future__ import annotations

from bus.delivery.broker.amqp import (
    AMQP_ERRORS,
    QUEUE_PREFIX,
    connect,
    declare,
    endpoints,
    parameters,
    ping,
    queue_name,
)
from bus.delivery.broker.consuming import RabbitConsumer, Relay, WorkerPool
from bus.delivery.broker.publishing import Publisher, RabbitDispatcher

__all__ = [
    "AMQP_ERRORS",
    "QUEUE_PREFIX",
    "Publisher",
    "RabbitConsumer",
    "RabbitDispatcher",
    "Relay",
    "WorkerPool",
    "connect",
    "declare",
    "endpoints",
    "parameters",
    "ping",
    "queue_name",
]

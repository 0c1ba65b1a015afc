"""The publisher's batches on a real RabbitMQ: sent together, confirmed together, and a
task the broker did not take never counted as published.

The dispatcher marks ``queued`` only what :meth:`Publisher.publish_many` returns, and a
``queued`` row is not republished by the relay until ``requeue_unclaimed_after_s``: a
task counted as confirmed that the broker had in fact returned would sit there that long.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pika.channel
import pytest
from pika.adapters import select_connection

from bus.delivery.broker import Publisher, connect, queue_name
from tests.servers import RabbitMQServer

pytestmark = [pytest.mark.services]


@pytest.fixture
def publisher(rabbitmq: RabbitMQServer) -> Iterator[tuple[Publisher, Any]]:
    prefix = f"lgsp.test.{secrets.token_hex(4)}."
    publisher = Publisher(rabbitmq.url, queue_prefix=prefix)
    admin = connect(rabbitmq.url)
    try:
        yield publisher, admin.channel()
    finally:
        publisher.close()
        admin.close()


def _depth(channel: Any, queue: str) -> int:
    deadline = time.monotonic() + 10
    count = 0
    while time.monotonic() < deadline:
        count = int(channel.queue_declare(queue, passive=True).method.message_count)
        if count:
            return count
        time.sleep(0.1)
    return count


def test_a_batch_is_sent_at_once_and_every_confirmed_task_is_queued(
        publisher: tuple[Publisher, Any]) -> None:
    pub, admin = publisher
    tasks = [(f"d{n:03d}", "hcm") for n in range(40)]
    confirmed = pub.publish_many(tasks[:1])  # opens the link, declares the queue
    link = pub._local.link
    # The private pieces _Link uses (tests/unit/test_pika_internals.py pins their code).
    assert isinstance(link.connection._impl.ioloop, select_connection.IOLoop)
    assert isinstance(link.channel._impl, pika.channel.Channel)
    original = link._wait
    sent_at_waits: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> None:
        sent_at_waits.append(link._sent)
        original(*args, **kwargs)

    link._wait = counted
    confirmed += pub.publish_many(tasks[1:])
    assert confirmed == [d for d, _ in tasks]
    assert _depth(admin, queue_name("hcm", pub.queue_prefix)) == 40
    # One wait for the whole batch, entered after its last task was sent.
    assert sent_at_waits == [40]


def test_a_returned_task_is_not_counted_and_its_queue_is_declared_again(
        rabbitmq: RabbitMQServer, publisher: tuple[Publisher, Any]) -> None:
    """A task routed to a queue deleted behind the publisher's back comes back: it is not
    counted, and the link forgets the queue, so the next send declares it again (the link
    used to keep it in its cache and every later task to it came back too)."""
    pub, admin = publisher
    once = Publisher(rabbitmq.url, queue_prefix=pub.queue_prefix, resend_after_s=())
    try:
        assert once.publish_many([("a0", "hcm"), ("b0", "gone")]) == ["a0", "b0"]
        admin.queue_delete(queue_name("gone", pub.queue_prefix))
        assert once.publish_many([("a1", "hcm"), ("b1", "gone"), ("a2", "hcm")]) == ["a1", "a2"]
        assert once.publish_many([("b2", "gone")]) == ["b2"]
        with pytest.raises(Exception, match="NACKed"):
            admin.queue_delete(queue_name("gone", pub.queue_prefix))
            once.publish("b3", "gone")
    finally:
        once.close()
    # With the default pauses, the returned task is sent again within the same call.
    assert pub.publish_many([("c0", "gone")]) == ["c0"]
    admin.queue_delete(queue_name("gone", pub.queue_prefix))
    assert pub.publish_many([("a3", "hcm"), ("c1", "gone")]) == ["a3", "c1"]
    assert _depth(admin, queue_name("hcm", pub.queue_prefix)) == 4

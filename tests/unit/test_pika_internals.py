"""The private pieces of pika that bus/delivery/broker/publishing.py's ``_Link`` stands on.

pika's blocking API has no batch-confirm mode, so ``_Link`` turns confirms on on the
asynchronous channel under the ``BlockingChannel`` (``BlockingChannel._impl``), waits with
the blocking channel's own I/O loop (``BlockingChannel._flush_output`` →
``BlockingConnection._flush_output``) and bounds the wait with a timer on the connection's
ioloop (``BlockingConnection._impl.ioloop``). Any change of pika in that code must be read
before it is trusted: these tests fail on one. When they do, check against the new pika
that (1) ``_flush_output`` still returns once a waiter is true and the output is flushed,
and raises when the channel or connection closes; (2) acks, nacks and returns still reach
the callbacks registered on ``_impl`` from inside that loop; (3) the ioloop timer still
fires from it. Then run tests/integration/test_rabbit_publishing*.py and
test_rabbit_delivery.py, and only then update the digests below.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import pika
import pika.channel
import pytest
from pika.adapters import blocking_connection, select_connection

PINNED: dict[str, tuple[Callable[..., Any], str]] = {
    # _impl is the asynchronous channel, assigned once in the constructor.
    "BlockingChannel.__init__": (blocking_connection.BlockingChannel.__init__,
                                 "e00d833fcb040656"),
    "BlockingChannel._flush_output": (blocking_connection.BlockingChannel._flush_output,
                                      "37078de93235f0ac"),
    "BlockingConnection._flush_output": (
        blocking_connection.BlockingConnection._flush_output, "5fae7068efaeb287"),
    "Channel.confirm_delivery": (pika.channel.Channel.confirm_delivery, "50e219d40306ce02"),
    "Channel._on_return": (pika.channel.Channel._on_return, "069f3c0bce38f12e"),
    "IOLoop.call_later": (select_connection.IOLoop.call_later, "909cf0c33aed82fe"),
    "IOLoop.remove_timeout": (select_connection.IOLoop.remove_timeout, "1e944ebe05c19fbb"),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_pika_code_the_publisher_relies_on_is_the_code_it_was_checked_against(
        name: str) -> None:
    function, digest = PINNED[name]
    source = inspect.getsource(function)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, (
        f"pika {pika.__version__} changed {name}: re-check _Link in "
        "bus/delivery/broker/publishing.py as this module's docstring says")


def test_the_private_names_exist_with_the_shapes_used() -> None:
    confirm = inspect.signature(pika.channel.Channel.confirm_delivery).parameters
    assert list(confirm)[1:3] == ["ack_nack_callback", "callback"]
    flush = inspect.signature(blocking_connection.BlockingChannel._flush_output).parameters
    assert [p.kind for p in flush.values()][1:] == [inspect.Parameter.VAR_POSITIONAL]
    on_return = inspect.signature(pika.channel.Channel.add_on_return_callback).parameters
    assert list(on_return) == ["self", "callback"]
    assert callable(blocking_connection.BlockingConnection.__dict__.get("_flush_output"))
    # (tests/integration/test_rabbit_publishing.py checks on a live connection that
    # BlockingConnection._impl.ioloop is select_connection's IOLoop.)

"""The listening socket under every simulated system and test destination.

A simulator proves an adapter over real sockets, so it must be able to vanish and come
back as a real system does: :meth:`LoopbackServer.stop` closes the socket (connections
are refused, not left hanging), and a later :meth:`LoopbackServer.start` binds the *same*
port again, so the URL an adapter was configured with stays valid across the outage.
Port 0 asks the kernel for a free port once; that port is kept from then on.

A simulator either is a :class:`LoopbackServer` (passing itself as the owner) or holds
one; either way its request handlers reach it as ``self.server.owner``. Handlers still
silence ``log_message`` themselves: they subclass ``BaseHTTPRequestHandler`` directly so
that linters recognise its ``do_GET``-style method names.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Generic, Self, TypeVar

__all__ = ["LoopbackServer", "OwnedHTTPServer"]

OwnerT = TypeVar("OwnerT")


class OwnedHTTPServer(ThreadingHTTPServer, Generic[OwnerT]):
    """Carries the simulator, so that handlers, built per request, can answer for it."""

    # Request threads must not keep a finished run alive, and a port released by stop()
    # must be bindable again at once (despite TIME_WAIT) when start() comes back on it.
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int],
                 handler: type[BaseHTTPRequestHandler], owner: OwnerT) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that timed out and hung up is part of the scenario, not a failure."""


class LoopbackServer:
    """One socket and the thread serving it; start and stop may be repeated freely, since
    tests switch a system off and on from whatever state a scenario left it in."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], owner: object, *,
                 port: int = 0, host: str = "127.0.0.1", name: str = "loopback") -> None:
        self.port = port
        self._handler, self._owner = handler, owner
        self._bind_host, self._thread_name = host, name
        self._server: OwnedHTTPServer[object] | None = None
        self._thread: threading.Thread | None = None
        # Set from stop() until the next start(): a handler that sleeps to play a slow
        # system waits on it, so that stopping never waits out the sleep.
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._server is not None:
            return
        self._stopping.clear()
        self._server = OwnedHTTPServer((self._bind_host, self.port), self._handler,
                                       self._owner)
        self.port = int(self._server.server_address[1])
        # A short poll interval, so that stop() returns at once even in a tight test loop.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"{self._thread_name}-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def down(self) -> None:
        """Stops listening, as a system that went away: connections are refused (not left
        unanswered) until :meth:`start` listens again on the same port."""
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

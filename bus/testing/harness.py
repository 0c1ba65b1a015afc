"""Running adapter code under watch: bounded calls on one thread, I/O seen by audit hooks."""
from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final, NoReturn, TypeVar

from bus.adapter import Adapter

T = TypeVar("T")


# ---- pytest, imported only when a test runs -------------------------------------------

def fail(message: str) -> NoReturn:
    """A pytest failure without the adapter's traceback: the message says what to fix."""
    import pytest

    raise pytest.fail.Exception(message, pytrace=False) from None


def skip(reason: str) -> NoReturn:
    import pytest

    pytest.skip(reason)


# ---- bounded adapter calls on one thread ----------------------------------------------

class HungCallError(Exception):
    """An adapter call outlived its bound; the thread running it is abandoned."""


class AdapterThread:
    """Runs every call of one adapter on one thread, each bounded in time.

    One thread, because the bus gives an adapter to one worker thread for its lifetime
    (an adapter may keep thread-bound handles); a bound, because a hung ``deliver``
    would hang the vendor's whole test run. The thread is a daemon so that an abandoned
    call cannot keep the interpreter from exiting.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._calls: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lgsp-conformance-adapter",
                                        daemon=True)
        self._thread.start()
        self.hung = False

    def _run(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            call()

    def call(self, what: str, function: Callable[[], T]) -> T:
        if self.hung:
            raise HungCallError(f"{what} not attempted: an earlier call never returned")
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = function()
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

        self._calls.put(run)
        if not done.wait(self.timeout_s):
            self.hung = True
            raise HungCallError(
                f"{what} did not return within {self.timeout_s:g} s; bound every network "
                "wait of the adapter (a timeout option), since a hung call holds the "
                "delivery's lease until it expires")
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def stop(self) -> None:
        self._calls.put(None)
        if not self.hung:
            self._thread.join(self.timeout_s)


# ---- "no I/O in the constructor": audit events, recorded per thread --------------------

_IO_EVENTS: Final = frozenset({
    "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
    "socket.getnameinfo", "socket.bind", "socket.sendto", "socket.sendmsg",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "http.client.connect", "urllib.Request", "ftplib.connect", "smtplib.connect",
})
_audit_local = threading.local()
_audit_lock = threading.Lock()
_audit_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    seen: list[str] | None = getattr(_audit_local, "seen", None)
    if seen is not None and event in _IO_EVENTS:
        seen.append(f"{event}{_short_args(args)}")


def _short_args(args: tuple[Any, ...]) -> str:
    text = repr(args)
    return text if len(text) <= 160 else text[:159] + "…"


@contextlib.contextmanager
def recording_io() -> Iterator[list[str]]:
    """The I/O audit events this thread raises inside the block.

    An audit hook cannot be removed, so one is installed once per process and records
    only while a thread has asked it to; it sees sockets opened by any Python library,
    which patching one client library would not.
    """
    global _audit_installed
    with _audit_lock:
        if not _audit_installed:
            sys.addaudithook(_audit)
            _audit_installed = True
    seen: list[str] = []
    _audit_local.seen = seen
    try:
        yield seen
    finally:
        _audit_local.seen = None


def outcome(runner: AdapterThread, what: str,
             function: Callable[[], T]) -> tuple[T | None, Exception | None]:
    """The call's value or its exception, so that a test fails outside the except block
    (a pytest failure raised inside one drags the adapter's traceback into the report)."""
    try:
        return runner.call(what, function), None
    except HungCallError:
        raise
    except Exception as exc:
        return None, exc


def implements(cls: type[Adapter[Any]], method: str) -> bool:
    return getattr(cls, method) is not getattr(Adapter, method)


def probe_error(exc_class: type[BaseException]) -> BaseException | None:
    """An instance of ``exc_class`` to hand classify(), or None when it cannot be made:
    library exceptions often need constructor arguments the suite cannot guess."""
    for args in (("conformance probe",), ()):
        try:
            return exc_class(*args)
        except Exception:  # noqa: S112 - try the next constructor form
            continue
    try:
        probe = exc_class.__new__(exc_class)
        str(probe)
    except Exception:
        return None
    return probe

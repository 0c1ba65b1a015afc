"""bus.api.hot.in_thread: the hand-over of a submission to a door thread."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from bus.api.hot import in_thread

_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


def test_the_thread_runs_in_the_requests_context_and_returns_its_result() -> None:
    async def main() -> tuple[str, str]:
        _REQUEST.set("req-1")
        return await in_thread(lambda suffix: _REQUEST.get() + suffix, "!"), \
            await in_thread(threading.current_thread)  # type: ignore[return-value]

    seen, thread = asyncio.run(main())
    assert seen == "req-1!"
    assert thread.name.startswith("lgsp-door")  # type: ignore[attr-defined]


def test_an_exception_in_the_thread_reaches_the_caller() -> None:
    def fails() -> None:
        raise LookupError("no such route")

    with pytest.raises(LookupError, match="no such route"):
        asyncio.run(in_thread(fails))


def test_a_cancelled_caller_waits_for_its_thread_before_going_on() -> None:
    """The caller's ``finally`` discards the spooled body: it must not run while the
    thread still reads it."""
    release = threading.Event()
    order: list[str] = []

    def slow() -> None:
        release.wait(10)
        order.append("thread done")

    async def caller() -> None:
        try:
            await in_thread(slow)
        finally:
            order.append("caller finally")

    async def main() -> None:
        task = asyncio.create_task(caller())
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()  # a second cancellation is waited out too
        await asyncio.sleep(0.05)
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert order == ["thread done", "caller finally"]

"""The two POSTs every document takes, served without FastAPI's router.

A packet's CPU at the door was as much as the bare pipeline's whole ingress, and a good
part of it was machinery the submission endpoints do not use: matching the path against
every route of the console, SOAP, /vxp and the reads, solving a dependency that reads one
header, wrapping the call for exception handling twice, and anyio's thread hop. So
``POST /api/v1/edocs`` and ``POST /api/v1/statuses`` are answered by :class:`HotPosts`, a
plain ASGI layer inside :class:`bus.api.RequestContext` (request id, access log, the
coded 500 all still apply) and in front of the router. Everything else, other methods on
the same paths included, goes on to FastAPI, where the same endpoints stay declared so
that the OpenAPI document describes them.

Refusals are answered by the application's own exception handlers, looked up the way
Starlette does (the exception's class hierarchy), so a refusal reads the same whichever
way the request came.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, ParamSpec, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bus.api import API_KEY_HEADER

P = ParamSpec("P")
T = TypeVar("T")

HOT_PATHS: Final = {"/api/v1/edocs": "edoc", "/api/v1/statuses": "status"}
"""Path → the packet kind its POST expects."""

DOOR_THREADS: Final = 40
"""Threads that run submissions at once: the bound anyio's default limiter gave them.
Reads and the other sync endpoints keep anyio's pool (and its 40) for themselves."""

_API_KEY: Final = API_KEY_HEADER.lower().encode("latin-1")
_pool: ThreadPoolExecutor | None = None

Submit = Callable[[Request, "str | None", str], Awaitable[Response]]
Handler = Callable[[Request, Exception], "Response | Awaitable[Response]"]


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=DOOR_THREADS, thread_name_prefix="lgsp-door")
    return _pool


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn`` on a door thread, in a copy of this task's context (the request's log
    bindings), as ``run_in_threadpool`` did at two thirds of its CPU (a C queue, no
    capacity limiter or cancel scope per call).

    A cancelled caller still waits for the thread to finish before the cancellation
    goes on, as anyio does: the caller's ``finally`` may discard the spooled body the
    thread is reading."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    done: Future[T] = _executor().submit(context.run, fn, *args, **kwargs)  # type: ignore[arg-type]
    try:
        return await asyncio.wrap_future(done, loop=loop)
    except asyncio.CancelledError:
        while not done.done():
            try:
                await asyncio.wrap_future(done, loop=loop)
            except asyncio.CancelledError:
                continue
            except Exception:
                break
        raise


def _handler_for(handlers: Mapping[Any, Handler], exc: Exception) -> Handler | None:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class HotPosts:
    """ASGI middleware: the submission POSTs straight to ``submit``, the rest to ``app``.

    ``handlers`` is the application's exception-handler table (read at each refusal, so
    handlers added later count); an exception none claims goes up to RequestContext."""

    def __init__(self, app: ASGIApp, submit: Submit, handlers: Mapping[Any, Handler]) -> None:
        self.app = app
        self.submit = submit
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        expect = HOT_PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if expect is None or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        key: str | None = None
        for name, value in scope["headers"]:
            if name == _API_KEY:
                key = value.decode("latin-1") or None
                break
        request = Request(scope, receive)
        try:
            response = await self.submit(request, key, expect)
        except Exception as exc:
            handler = _handler_for(self.handlers, exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

"""Each answer leaves the server in one write (head and body together), and what the
client receives is unchanged: HEAD, ``100 Continue``, streamed and large bodies, a close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from bus.server.limits import ServerLimits
from bus.server.protocol import protocol_for

LIMITS = ServerLimits(max_header_bytes=16 * 1024, header_timeout_s=5.0,
                      body_idle_timeout_s=5.0, keep_alive_s=5.0, max_connections=100)


class _Transport(asyncio.Transport):
    """Records every write the server makes on a connection."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def _exchange(app: Any, request: bytes, *, settle: int = 20) -> _Transport:
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    config.load()
    protocol = protocol_for(LIMITS)(config, ServerState(), {}, asyncio.get_running_loop())
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(settle):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


async def _json(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    body = b'{"ok":true}'
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _post(body: bytes, *extra: bytes) -> bytes:
    return (b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + b"".join(extra) + b"\r\n" + body)


def test_an_answer_is_one_write() -> None:
    transport = asyncio.run(_exchange(_json, _post(b"<edoc/>")))
    assert len(transport.writes) == 1, transport.writes
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 Accepted\r\n") and body == b'{"ok":true}'


def test_two_answers_on_one_connection_are_one_write_each() -> None:
    transport = asyncio.run(_exchange(_json, _post(b"<a/>") + _post(b"<b/>")))
    assert len(transport.writes) == 2, transport.writes
    assert all(w.endswith(b'{"ok":true}') for w in transport.writes)


def test_a_continue_goes_out_at_once_and_the_answer_after_it() -> None:
    async def run() -> _Transport:
        config = uvicorn.Config(_json, log_config=None, access_log=False, lifespan="off")
        config.load()
        protocol = protocol_for(LIMITS)(config, ServerState(), {},
                                        asyncio.get_running_loop())
        transport = _Transport()
        protocol.connection_made(transport)
        body = b"<edoc/>"
        protocol.data_received(_post(b"", b"Expect: 100-continue\r\n").replace(
            b"Content-Length: 0", b"Content-Length: " + str(len(body)).encode()))
        for _ in range(10):
            await asyncio.sleep(0)
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        protocol.data_received(body)
        for _ in range(10):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    transport = asyncio.run(run())
    assert len(transport.writes) == 2 and transport.writes[1].endswith(b'{"ok":true}')


def test_head_streamed_and_large_answers_keep_their_bytes() -> None:
    big = b"x" * (256 * 1024)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if scope["method"] == "HEAD":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"5")]})
            await send({"type": "http.response.body", "body": b""})
        elif scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"one", "more_body": True})
            await send({"type": "http.response.body", "body": b"two"})
        else:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(big)).encode())]})
            await send({"type": "http.response.body", "body": big})

    head = asyncio.run(_exchange(app, b"HEAD /x HTTP/1.1\r\nHost: bus\r\n\r\n"))
    assert len(head.writes) == 1 and head.writes[0].endswith(b"content-length: 5\r\n\r\n")
    stream = asyncio.run(_exchange(app, b"GET /stream HTTP/1.1\r\nHost: bus\r\n\r\n"))
    assert b"".join(stream.writes).endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")
    assert len(stream.writes) == 2 and stream.writes[0].endswith(b"3\r\none\r\n")
    large = asyncio.run(_exchange(app, b"GET /big HTTP/1.1\r\nHost: bus\r\n\r\n"))
    assert [len(w) for w in large.writes][1:] == [len(big)]
    assert b"".join(large.writes).endswith(big)


@pytest.mark.parametrize("started", [False, True])
def test_a_failing_application_still_gets_its_answer_or_close(started: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if started:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"10")]})
        raise RuntimeError("boom")

    transport = asyncio.run(_exchange(app, b"GET /x HTTP/1.1\r\nHost: bus\r\n\r\n"))
    sent = b"".join(transport.writes)
    if started:
        assert sent.startswith(b"HTTP/1.1 200 OK\r\n") and transport.closed
    else:
        assert sent.startswith(b"HTTP/1.1 500 ") and sent.endswith(b"Internal Server Error")
        assert len(transport.writes) == 1

"""What bus.server's limits cost: requests per second, stock uvicorn vs the bus's protocol.

Each server runs in its own process (so the client does not share its interpreter) on the
real bus app; the client keeps C connections alive and sends for D seconds: plain
``GET /healthz``, then ``POST /api/v1/edocs`` of a 5 KB packet (accepted once, then
answered 200 ``existing``: the bus's full read path without growing the database).
Rounds alternate the two servers so a neighbour's load hits both alike; on a shared
machine the server process's CPU time per request (from /proc) is the steadier figure.

    python tests/bench/bench_server.py [--seconds 5] [--rounds 3] [--connections 8]
    python tests/bench/bench_server.py --micro     # the protocol alone, no sockets

``--micro`` feeds requests straight into each protocol object over an in-memory transport
with a trivial app, so what remains is the protocol's own cost per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[2]


def serve(kind: str, port: int, data_dir: str) -> None:
    import uvicorn

    from bus.api.rest import create_app
    from bus.app import Bus
    from bus.server import build_server
    from bus.settings import load_settings

    settings = load_settings(environ={}, data_dir=Path(data_dir), port=port, log_level="ERROR")
    app = create_app(Bus(settings))
    if kind == "stock":
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                      access_log=False, lifespan="off")).run()
    else:
        build_server(app, settings, lifespan="off").run()


def _read_response(conn: socket.socket, buf: bytearray) -> int:
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    buf[:] = rest[length:]
    return int(head.split(b" ", 2)[1])


def load(port: int, request: bytes, seconds: float, connections: int) -> float:
    counts = [0] * connections
    stop = time.monotonic() + seconds

    def client(slot: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            buf = bytearray()
            while time.monotonic() < stop:
                conn.sendall(request)
                status = _read_response(conn, buf)
                assert status in (200, 202), status
                counts[slot] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


class _MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.waiter: asyncio.Future[None] | None = None
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.waiter is not None and bytes(data).endswith(b"}"):
            self.waiter.set_result(None)
            self.waiter = None

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _tiny_app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"15")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


async def _per_request_us(protocol: type[asyncio.Protocol], app: Any, request: bytes,
                          count: int) -> float:
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            http=protocol)
    config.load()
    loop = asyncio.get_running_loop()
    proto: Any = protocol(config=config, server_state=ServerState(),  # type: ignore[call-arg]
                          app_state={}, _loop=loop)
    transport = _MemoryTransport()
    proto.connection_made(transport)
    started = time.perf_counter()
    for _ in range(count):
        transport.waiter = loop.create_future()
        proto.data_received(request)
        await transport.waiter
    return (time.perf_counter() - started) / count * 1e6


def micro(rounds: int) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from bus.server.limits import ServerLimits
    from bus.server.protocol import protocol_for
    from bus.server.proxy import ProxiedClientCert
    from bus.settings import load_settings

    ours = protocol_for(ServerLimits.from_settings(load_settings(environ={})))
    body = b"x" * 5120
    requests = {
        "GET /healthz": b"GET /healthz HTTP/1.1\r\nHost: bus\r\nUser-Agent: bench\r\n\r\n",
        "POST 5 KB": b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\nContent-Type: "
                     b"application/xml\r\nContent-Length: 5120\r\n\r\n" + body,
    }

    async def run() -> None:
        for name, request in requests.items():
            stock, bus = [], []
            for _ in range(rounds):
                stock.append(await _per_request_us(HttpToolsProtocol, _tiny_app, request, 3000))
                bus.append(await _per_request_us(
                    ours, ProxiedClientCert(_tiny_app, ["127.0.0.1"]), request, 3000))
            print(f"{name:14} protocol+trivial app, best of {rounds}: stock {min(stock):6.1f} us"
                  f"  bus.server {min(bus):6.1f} us  (+{min(bus) - min(stock):.1f} us)")

    asyncio.run(run())


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "DIR"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--micro", action="store_true")
    args = parser.parse_args()
    if args.micro:
        micro(max(args.rounds, 10))
        return
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return
    sys.path.insert(0, str(HERE))
    from bus.edxml import packet_bytes
    from tests.edxml_factory import builder, random_bytes

    edoc = builder("000.00.12.H37", "000.00.00.H37").attach("cong-van.pdf", random_bytes(2200))
    packet = packet_bytes(edoc.build(check=False))
    requests = {
        "GET /healthz": b"GET /healthz HTTP/1.1\r\nHost: bus\r\n\r\n",
        "POST 5 KB edoc": (b"POST /api/v1/edocs HTTP/1.1\r\nHost: bus\r\n"
                           b"X-API-Key: dev-eoffice-key\r\nContent-Type: application/xml\r\n"
                           b"Content-Length: " + str(len(packet)).encode() + b"\r\n\r\n"
                           + packet),
    }
    results: dict[tuple[str, str], list[float]] = {}
    cpu_costs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for kind in ("stock", "bus"):
            with tempfile.TemporaryDirectory() as data_dir:
                port = _free_port()
                proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port),
                                         data_dir], cwd=HERE, stdout=subprocess.DEVNULL)
                try:
                    deadline = time.monotonic() + 20
                    while True:
                        try:
                            socket.create_connection(("127.0.0.1", port), timeout=1).close()
                            break
                        except OSError:
                            assert time.monotonic() < deadline, "server did not start"
                            time.sleep(0.1)
                    for name, request in requests.items():
                        load(port, request, 0.5, 1)
                        cpu = _cpu_s(proc.pid)
                        rate = load(port, request, args.seconds, args.connections)
                        cpu_us = (_cpu_s(proc.pid) - cpu) / (rate * args.seconds) * 1e6
                        results.setdefault((name, kind), []).append(rate)
                        cpu_costs.setdefault((name, kind), []).append(cpu_us)
                finally:
                    proc.terminate()
                    proc.wait(10)
    for name in requests:
        print(f"{name}: {len(requests[name])} bytes per request")
        stock = statistics.median(results[(name, "stock")])
        ours = statistics.median(results[(name, "bus")])
        print(f"{name:16} stock {stock:8.0f}/s  bus.server {ours:8.0f}/s  "
              f"ratio {ours / stock:.3f}  (rounds: stock "
              f"{[round(r) for r in results[(name, 'stock')]]}, bus "
              f"{[round(r) for r in results[(name, 'bus')]]})")
        stock_cpu = statistics.median(cpu_costs[(name, "stock")])
        ours_cpu = statistics.median(cpu_costs[(name, "bus")])
        print(f"{'':16} server CPU per request: stock {stock_cpu:6.0f} us  bus.server "
              f"{ours_cpu:6.0f} us  ratio {ours_cpu / stock_cpu:.3f}")


if __name__ == "__main__":
    main()

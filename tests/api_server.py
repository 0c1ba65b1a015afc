"""A real bus HTTP server for tests: ``lgsp serve``'s own server (uvicorn under the
bus's connection limits, :mod:`bus.server`) on a free loopback port, in a thread.

Tests talk to it over sockets with httpx and zeep, exactly as agency systems would, so
body streaming, the size cap, headers and status codes are exercised for real. It runs in
a thread rather than a subprocess so a test can reach into ``server.bus`` (append a
readiness check, swap the store, count metrics). The bus's logs go to a file per server
(``server.log_path``), not to the test output.

    with running_bus(tmp_path) as server:
        httpx.get(server.url + "/healthz")
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog
import yaml

from bus.api.rest import create_app
from bus.app import Bus
from bus.server import build_server
from bus.settings import REPO_ROOT, load_settings

__all__ = ["ApiServer", "RawResponse", "api_key", "raw_http", "routes_without_outside",
           "running_bus"]


@dataclass
class ApiServer:
    url: str
    bus: Bus
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _log_to(path: Path) -> IO[str]:
    sink = path.open("a", encoding="utf-8")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(file=sink),
        cache_logger_on_first_use=False,
    )
    return sink


def routes_without_outside(folder: Path) -> Path:
    """A copy of routes.yaml where unlisted recipients have nowhere to go (UnknownRecipient)."""
    raw = yaml.safe_load((REPO_ROOT / "routes.yaml").read_text(encoding="utf-8"))
    raw.get("defaults", {}).pop("outside", None)
    raw["rules"] = [r for r in raw.get("rules", [])
                    if r.get("match", {}).get("recipient_hosted") is not False]
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def running_bus(data_dir: Path, *, start_timeout_s: float = 15.0,
                **settings: Any) -> Iterator[ApiServer]:
    """Yields a started server; on exit it stops, joins the thread and closes the bus."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "bus.log"
    saved_logging = structlog.get_config()
    sink = _log_to(log_path)
    bus = Bus(load_settings(environ={}, data_dir=data_dir, **settings))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = build_server(create_app(bus), bus.settings, bind=False, log_level="warning",
                          lifespan="off", timeout_graceful_shutdown=5)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"bus-api-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start; log: {log_path}")
            time.sleep(0.02)
        yield ApiServer(url=f"http://127.0.0.1:{port}", bus=bus, log_path=log_path)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        bus.close()
        structlog.configure(**saved_logging)
        sink.close()
        if thread.is_alive():
            raise RuntimeError("the API server thread did not stop")



def api_key(system: str) -> dict[str, str]:
    """The X-API-Key header with the development key of ``system``."""
    return {"X-API-Key": f"dev-{system}-key"}


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def raw_http(url: str, request: bytes, *, timeout_s: float = 5.0) -> RawResponse:
    """Sends bytes as they are and reads one response, for what httpx will not send
    (a Content-Length with no body, a chunked body that never ends). A server that waits
    for the rest of the body makes this raise ``TimeoutError``."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {data!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawResponse(int(lines[0].split()[1]), headers, body, time.monotonic() - started)

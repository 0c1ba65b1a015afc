"""The simulated axis's HTTP handler: one request in, :meth:`AxisSimulator.handle` answers."""

from __future__ import annotations

from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Final

from adapters.simulation import OwnedHTTPServer
from bus import vxp

if TYPE_CHECKING:
    from adapters.national_axis.simulator import AxisSimulator

_MAX_BODY: Final = 256 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: OwnedHTTPServer[AxisSimulator]

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._send(413, vxp.fail_answer(vxp.ErrorCode.MALFORMED_REQUEST, "body too large"))
            return
        body = self.rfile.read(length)
        operation = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        status, answer = self.server.owner.handle(operation, list(self.headers.items()), body)
        self._send(status, answer)

    def _send(self, status: int, answer: dict[str, Any]) -> None:
        data = vxp.encode_answer(answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        return format_datetime(self.server.owner.now(), usegmt=True)

    def log_message(self, format: str, *args: object) -> None:
        return None


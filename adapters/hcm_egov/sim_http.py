"""The simulated platform's HTTP handler: one request in, :meth:`HcmEgovSimulator.answer`
answers."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from adapters.hcm_egov.sim_records import CUT_AFTER
from adapters.simulation import OwnedHTTPServer

if TYPE_CHECKING:
    from adapters.hcm_egov.simulator import HcmEgovSimulator


class _Handler(BaseHTTPRequestHandler):
    server: OwnedHTTPServer[HcmEgovSimulator]

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, data, content_type, extra = self.server.owner.answer(
            self.command, self.path, headers, body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        cut = extra.pop(CUT_AFTER, None)
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if cut is None:
            self.wfile.write(data)
        else:
            self.wfile.write(data[:int(cut)])
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        return None

"""The simulated axis's HTTP handler: one request in, :meth:`AxisSimulator.handle` answers.

getEdoc's ``data`` (:class:`EdocData`) is base64-encoded here, block by block, while the
answer is written: a large packet is never held whole, so a test measures the bus, not
the simulator. This is also where ``garble_get_edoc`` spoils the answer.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Final

from adapters.national_axis.sim_records import EdocData
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
        if isinstance(answer.get("data"), EdocData):
            self._send_edoc(status, answer, answer["data"])
            return
        data = vxp.encode_answer(answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_edoc(self, status: int, answer: dict[str, Any], data: EdocData) -> None:
        rest = {key: value for key, value in answer.items() if key != "data"}
        garble = data.garble
        if garble == "no_data":
            self._send(status, rest)
            return
        if garble == "fail_after_data":
            fields = vxp.encode_answer(vxp.fail_answer(vxp.ErrorCode.INTERNAL,
                                                       "simulated: FAIL after the data"))
            head, tail = b'{"data":"', b'",' + fields[1:]
        else:
            head, tail = vxp.encode_answer(rest)[:-1] + b',"data":"', b'"}'
        encoded = -(-data.size // 3) * 4
        stop = encoded // 2 if garble in ("cut_short", "broken") else None
        length: int | None = len(head) + encoded + len(tail)
        if garble == "cut_short":
            length = len(head) + encoded // 2
        elif garble == "escaped_slashes":
            length = None  # unknown before encoding: the end of the connection ends it
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(head)
        written = 0
        for text in _encoded(data.blocks(), garble):
            if stop is not None and written + len(text) >= stop:
                self.wfile.write(text[:stop - written])
                self.close_connection = True
                return
            self.wfile.write(text)
            written += len(text)
        self.wfile.write(tail)
        if length is None:
            self.close_connection = True

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


def _encoded(blocks: Iterator[bytes], garble: str | None) -> Iterator[bytes]:
    first = True
    for block in blocks:
        text = base64.b64encode(block)
        if garble == "bad_base64" and first:
            middle = len(text) // 2
            text = text[:middle] + b"*" + text[middle + 1:]
        elif garble == "escaped_slashes":
            text = text.replace(b"/", b"\\/")
        first = False
        yield text

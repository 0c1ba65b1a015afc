"""The other side of each adapter for ``bench_large.py``: protocol-correct, never holding.

The simulators (adapters/*/simulator.py) are the interfaces' executable definitions and
read a request whole, which is right for tests and wrong for a 500 MB benchmark: they
would spend gigabytes and tens of seconds parsing in the benchmark's own process. These
stand-ins speak the same protocols but only hash what they receive, as it arrives:

- :class:`EofficePeer`: ReceiveDocument over SOAP; the packet's base64 is decoded
  piece by piece out of the envelope and hashed; answers the WSDL's acknowledgement.
- :class:`AxisPeer`: sendEdoc; the body minus the SDK's CRLF is hashed and compared
  with the signed ``hash-file``; answers a DocId.
- :class:`IofficePoller`: iOffice collecting its mailbox from the bus's /vxp facade:
  getReceivedEdocList, downloadEdoc streamed and hashed, updateStatus done.

Each keeps ``received``: (packet size, SHA-256) per packet, to compare with the
document's stored ``payload_sha256``.
"""

from __future__ import annotations

import binascii
import hashlib
import http.server
import re
import socketserver
import threading
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from adapters.eoffice.protocol import OPERATIONS
from adapters.eoffice.simulator import EofficeSimulator, Received
from adapters.vnpt_ioffice.simulator import IofficeSimulator
from bus import vxp

_PIECE: Final = 1 << 20
_PACKET_START: Final = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?packet>")
_KIND_OF: Final = {operation: kind for kind, operation in OPERATIONS.items()}


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.received: list[tuple[int, str]] = []
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def pieces(self) -> Any:
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            piece = self.rfile.read(min(left, _PIECE))
            if not piece:
                return
            left -= len(piece)
            yield piece

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _EofficeHandler(_Handler):
    def do_POST(self) -> None:
        digest, size = hashlib.sha256(), 0
        head, carry, state = b"", b"", "head"
        for piece in self.pieces():
            if state == "head":
                head += piece
                found = _PACKET_START.search(head)
                if found is None:
                    continue
                piece, state = head[found.end():], "packet"
            if state == "packet":
                end = piece.find(b"<")
                text = carry + (piece if end < 0 else piece[:end])
                whole = len(text) - len(text) % 4
                decoded = binascii.a2b_base64(text[:whole], strict_mode=True)
                digest.update(decoded)
                size += len(decoded)
                carry = text[whole:]
                if end >= 0:
                    state = "tail"
        operation = (self.headers.get("SOAPAction") or "").strip('"').rpartition("#")[2]
        self.server.received.append((size, digest.hexdigest()))
        found_item = Received(_KIND_OF.get(operation, "edoc"), uuid.uuid4().hex, "", "",
                              f"EO-{len(self.server.received):06d}", b"", datetime.now(UTC))
        ack = EofficeSimulator._ack(operation or "ReceiveDocument", found_item, False)
        self.answer(200, ack, "text/xml; charset=utf-8")


class EofficePeer(_Server):
    def __init__(self) -> None:
        super().__init__(_EofficeHandler)

    @property
    def endpoint(self) -> str:
        return self.url("/eoffice/DocumentExchange")


class _AxisHandler(_Handler):
    def do_POST(self) -> None:
        digest, size, held = hashlib.sha256(), 0, b""
        for piece in self.pieces():
            data = held + piece
            held = data[-2:]
            digest.update(data[:-2])
            size += len(data) - 2
        declared = self.headers.get(vxp.HEADER_PREFIX + "hash-file", "")
        mine = "".join(format(byte, "x") for byte in digest.digest())
        if held != vxp.CRLF or declared != mine:
            answer = vxp.fail_answer(vxp.ErrorCode.MALFORMED_REQUEST, "hash-file mismatch")
        else:
            self.server.received.append((size, digest.hexdigest()))
            answer = vxp.ok_answer(DocId=uuid.uuid4().hex)
        self.answer(200, vxp.encode_answer(answer), "application/json; charset=utf-8")


class AxisPeer(_Server):
    def __init__(self) -> None:
        super().__init__(_AxisHandler)

    @property
    def endpoint(self) -> str:
        return self.url("/vdxp")


class IofficePoller:
    """Polls the bus's /vxp every 0.2 s as iOffice; downloads are streamed and hashed."""

    def __init__(self, endpoint: str, system_id: str, secret: str) -> None:
        self.sim = IofficeSimulator(endpoint, system_id, secret, timeout_s=900)
        self.received: list[tuple[int, str]] = []
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(900), trust_env=False)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                listing = self.sim.list_received("edoc")
                for item in listing.items:
                    doc_id = str(item.get("docId", ""))
                    if doc_id and doc_id not in self._seen:
                        self.received.append(self._download(doc_id))
                        self._seen.add(doc_id)
                        self.sim.update_status(doc_id, "done")
            except httpx.HTTPError:
                continue

    def _download(self, doc_id: str) -> tuple[int, str]:
        call = self.sim.prepare("downloadEdoc", [("docId", doc_id), ("filePath", "")])
        digest, size = hashlib.sha256(), 0
        with self._client.stream("GET", call.url, headers=call.headers) as response:
            response.raise_for_status()
            for piece in response.iter_bytes(_PIECE):
                digest.update(piece)
                size += len(piece)
        return size, digest.hexdigest()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()
        self.sim.close()

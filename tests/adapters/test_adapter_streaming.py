"""The eoffice and national_axis adapters send a packet kept in a file as a stream.

A scanned packet of hundreds of megabytes is a payload file; the adapters must send it
without reading it into memory (``Delivery.payload``) and the other side must receive
the same bytes it would have received from the in-memory code. The bodies here are
file-backed ``PayloadBody`` objects whose ``read()`` fails: an adapter that still reads
the packet whole fails these tests. The memory itself is measured end to end in
tests/reliability/test_large_payloads.py.
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest

from adapters._http import SizedStream, base64_length, base64_pieces
from adapters.eoffice import EofficeAdapter
from adapters.eoffice.simulator import EofficeSimulator
from adapters.national_axis import NationalAxisAdapter
from adapters.national_axis.adapter import send_edoc_streamed
from adapters.national_axis.simulator import AxisSimulator
from bus import vxp
from bus.adapter import Delivery
from bus.edxml import EdocBuilder, packet_bytes
from bus.store.blobs import PayloadBody

DICT = "000.00.12.H37"
UBND = "000.00.00.H37"
OUTSIDE = "000.00.00.G22"
SYSTEM = "000.00.00.H37"
SECRET = "s3cr3t"
ENV = "LGSP_TEST_STREAM_AXIS_SECRET"


class FileOnlyBody(PayloadBody):
    """A payload in a file that refuses to be read whole."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.stat().st_size, opener=lambda: path.open("rb"))
        self.opened = 0

    def open(self) -> IO[bytes]:
        self.opened += 1
        return super().open()

    def read(self) -> bytes:
        raise AssertionError("the adapter read the whole packet into memory")


def large_packet(path: Path, sender: str, recipient: str, attachment: int) -> bytes:
    scan = os.urandom(attachment)
    packet = packet_bytes(EdocBuilder(sender).to(recipient).subject("Hồ sơ quét")
                          .signer("A").attach("scan.pdf", scan).build())
    path.write_bytes(packet)
    return packet


def test_base64_pieces_equal_the_whole_encoding_whatever_the_reads() -> None:
    data = os.urandom(100_003)
    rng = random.Random(7)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 30)))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        encoded = b"".join(base64_pieces(chunks))
        assert encoded == base64.b64encode(data)
        assert len(encoded) == base64_length(len(data))
    assert b"".join(base64_pieces([])) == b"" and base64_length(0) == 0


def test_a_sized_stream_refuses_to_send_other_than_its_declared_length() -> None:
    assert b"".join(SizedStream(5, lambda: [b"ab", b"cde"])) == b"abcde"
    assert len(SizedStream(5, lambda: [b"ab", b"cde"])) == 5
    with pytest.raises(ValueError, match="ended at 2"):
        list(SizedStream(5, lambda: [b"ab"]))
    with pytest.raises(ValueError, match="longer"):
        list(SizedStream(1, lambda: [b"ab"]))


@pytest.fixture
def eoffice() -> Iterator[EofficeSimulator]:
    with EofficeSimulator() as running:
        yield running


def test_eoffice_gets_a_file_payload_streamed_into_its_envelope(
        tmp_path: Path, eoffice: EofficeSimulator) -> None:
    path = tmp_path / "p.xml"
    packet = large_packet(path, UBND, DICT, 3 * 1024 * 1024 + 1)
    adapter = EofficeAdapter.from_options("eoffice", {"endpoint": eoffice.url})
    body = FileOnlyBody(path)
    try:
        receipt = adapter.deliver(Delivery(body=body, idempotency_key="k-1",
                                           document_id="d-1", sender=UBND, recipient=DICT,
                                           destination="eoffice"))
        # A retry (same key) streams the file again from its start and is the same item.
        again = adapter.deliver(Delivery(body=body, idempotency_key="k-1",
                                         document_id="d-1", sender=UBND, recipient=DICT,
                                         destination="eoffice"))
    finally:
        adapter.close()
    assert receipt.reference and not receipt.duplicate
    assert again.duplicate and again.reference == receipt.reference
    assert body.opened == 2
    [stored] = eoffice.documents
    assert stored.packet == packet


@pytest.fixture
def axis(monkeypatch: pytest.MonkeyPatch) -> Iterator[AxisSimulator]:
    monkeypatch.setenv(ENV, SECRET)
    with AxisSimulator({SYSTEM: SECRET}) as sim:
        yield sim


def test_the_national_axis_gets_a_file_payload_streamed_with_its_hash(
        tmp_path: Path, axis: AxisSimulator) -> None:
    path = tmp_path / "p.xml"
    packet = large_packet(path, UBND, OUTSIDE, 2 * 1024 * 1024)
    adapter = NationalAxisAdapter.from_options("national_axis", {
        "endpoint": axis.endpoint, "system_id": SYSTEM, "secret_env": ENV})
    body = FileOnlyBody(path)
    try:
        receipt = adapter.deliver(Delivery(body=body, idempotency_key="k-1",
                                           document_id="d-1", sender=UBND,
                                           recipient=OUTSIDE, destination="national_axis"))
    finally:
        adapter.close()
    [sent] = axis.sent(SYSTEM)
    assert receipt.reference == sent.doc_id
    # The simulator checked hash-file against the body and stripped the SDK's CRLF.
    assert sent.packet == packet and sent.recipients == [OUTSIDE]


@pytest.mark.parametrize("status", [False, True])
def test_streamed_send_edoc_headers_are_the_sdk_headers(status: bool) -> None:
    """The streamed request signs exactly what :func:`bus.vxp.send_edoc` signs."""
    packet = b"<edXML>" + os.urandom(1000) + b"</edXML>"
    creds = vxp.Credentials(SYSTEM, SECRET)
    now = datetime(2026, 5, 17, 8, 30, tzinfo=UTC)
    kind = vxp.MessageType.STATUS if status else vxp.MessageType.EDOC
    recipients = [] if status else [OUTSIDE]
    whole = vxp.send_edoc(creds, packet, sender=UBND, recipients=recipients,
                          message_type=kind, idempotency_key="key-1", now=now)
    streamed = send_edoc_streamed(creds, PayloadBody.of(packet), sender=UBND,
                                  recipients=recipients, message_type=kind,
                                  idempotency_key="key-1", tz=vxp.AXIS_TZ, now=now)
    assert streamed.headers == whole.headers
    assert streamed.operation is whole.operation

"""A large SendEdoc through the real SOAP door: the envelope is spooled to disk as it
arrives, the packet's base64 decoded to disk, and the document stored as a payload file;
a large envelope whose packet is not base64 is refused as a small one is."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lxml import etree

import bus.api.soap as soap_module
from bus.store.tables import documents, payload_files
from tests.api_server import ApiServer, running_bus
from tests.integration.test_soap import NS, envelope, raw_fault, send_edoc_body, soap_post
from tests.large_packet import write_large_packet

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_bus(tmp_path_factory.mktemp("soap-large")) as running:
        yield running


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the envelopes the door read from disk rather than memory."""
    seen: list[int] = []
    real = soap_module.spooled_call

    def spy(spool: Any, files: Any, cap: int) -> Any:
        seen.append(spool.size)
        return real(spool, files, cap)

    monkeypatch.setattr(soap_module, "spooled_call", spy)
    return seen


def test_a_large_send_edoc_is_spooled_decoded_to_disk_and_stored_as_a_file(
        server: ApiServer, tmp_path: Path, spooled: list[int]) -> None:
    _, digest = write_large_packet(tmp_path / "p.xml", 15 * MB)
    packet = (tmp_path / "p.xml").read_bytes()
    # MIME-style lines, as some SOAP stacks write base64Binary.
    request = envelope(send_edoc_body(base64.encodebytes(packet).decode()))
    response = soap_post(server, request)
    assert response.status_code == 200, response.text
    root = etree.fromstring(response.content)
    document = root.findtext(f".//{{{NS}}}receipt/{{{NS}}}id")
    assert spooled == [len(request)]
    with server.bus.store.engine.connect() as conn:
        sent, kept = conn.execute(sa.select(documents.c.sha256, documents.c.payload_sha256)
                                  .where(documents.c.id == document)).one()
        files = set(conn.execute(sa.select(payload_files.c.sha256)).scalars())
    assert sent == digest == hashlib.sha256(packet).hexdigest() and kept in files


def test_a_large_envelope_whose_packet_is_not_base64_is_refused(
        server: ApiServer, tmp_path: Path, spooled: list[int]) -> None:
    write_large_packet(tmp_path / "p.xml", 15 * MB)
    text = base64.b64encode((tmp_path / "p.xml").read_bytes()).decode()
    middle = len(text) // 2
    response = soap_post(server, envelope(send_edoc_body(text[:middle] + "*" + text[middle:])))
    fault = raw_fault(response)
    assert fault["code"] == "MalformedXml" and "not valid base64" in fault["message"]
    assert len(spooled) == 1

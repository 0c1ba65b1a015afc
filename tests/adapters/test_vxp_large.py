"""Large packets through the provincial-axis facade: sendEdoc spooled to disk as it
arrives (checked against the signed hash-file the same way as a body in memory), and
getEdoc/downloadEdoc streamed from the payload file. 20 MB packets, above the 8 MiB
spooling threshold and the 256 KiB payload-file threshold."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import bus.api.vxp as facade_module
from bus import vxp
from bus.store.blobs import Spool
from bus.store.tables import documents, payload_files
from tests.adapters.test_vnpt_ioffice import SO_TTTT, SYSTEM_ID, VP_UBND, Province
from tests.adapters.test_vxp_sdk_surface import CREDS, answer, drain, send
from tests.adapters.test_vxp_sdk_surface import province as province
from tests.large_packet import write_large_packet

MB = 1024 * 1024


@pytest.fixture
def packet(tmp_path: Path) -> bytes:
    write_large_packet(tmp_path / "p.xml", 20 * MB, sender=VP_UBND, recipient=SO_TTTT)
    return (tmp_path / "p.xml").read_bytes()


@pytest.fixture
def mailbox(province: Province) -> Iterator[Province]:
    drain(province)
    yield province
    drain(province)


def _stored(province: Province, document: str) -> tuple[str, str]:
    with province.server.bus.store.engine.connect() as conn:
        row = conn.execute(sa.select(documents.c.sha256, documents.c.payload_sha256)
                           .where(documents.c.id == document)).one()
        files = set(conn.execute(sa.select(payload_files.c.sha256)).scalars())
    assert row.payload_sha256 in files  # kept as a file, not a row
    return row.sha256, row.payload_sha256


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the sendEdoc bodies the facade took from disk rather than memory."""
    seen: list[int] = []
    real = facade_module.check_spooled

    def spy(verified: vxp.VerifiedRequest, spool: Spool) -> vxp.VerifiedRequest:
        seen.append(spool.size)
        return real(verified, spool)

    monkeypatch.setattr(facade_module, "check_spooled", spy)
    return seen


def test_a_large_send_edoc_is_spooled_and_checked_against_hash_file(
        province: Province, packet: bytes, spooled: list[int]) -> None:
    request = vxp.send_edoc(CREDS, packet, sender=SYSTEM_ID, recipients=[SO_TTTT])
    assert request.body != packet  # the SDK's body: the file and a CRLF
    document = answer(send(province, request))["DocId"]
    sent, _ = _stored(province, document)
    assert sent == hashlib.sha256(packet).hexdigest()  # the CRLF is not the packet's
    assert spooled == [len(request.body)]


def test_a_large_send_edoc_whose_body_does_not_match_hash_file_is_refused(
        province: Province, packet: bytes, spooled: list[int]) -> None:
    request = vxp.send_edoc(CREDS, packet, sender=SYSTEM_ID, recipients=[SO_TTTT])
    body = bytearray(request.body)
    body[len(body) // 2] ^= 1
    response = httpx.post(province.endpoint + "/sendEdoc", headers=request.headers,
                          content=bytes(body), timeout=60)
    answer(response, "HashMismatch")
    assert spooled == [len(body)]


def test_get_edoc_and_download_edoc_stream_a_large_payload(
        mailbox: Province, packet: bytes) -> None:
    response = httpx.post(mailbox.server.url + "/api/v1/edocs",
                          content=packet.replace(VP_UBND.encode(), b"\x00").replace(
                              SO_TTTT.encode(), VP_UBND.encode()).replace(
                              b"\x00", SO_TTTT.encode()),
                          headers={"X-API-Key": "dev-eoffice-key"}, timeout=60)
    assert response.status_code == 202, response.text
    delivery = response.json()["recipients"][0]["delivery"]
    mailbox.wait_state(delivery, "awaiting")
    _, digest = _stored(mailbox, response.json()["id"])
    downloaded = send(mailbox, vxp.download_edoc(CREDS, delivery))
    assert downloaded.status_code == 200
    assert int(downloaded.headers["content-length"]) == len(downloaded.content)
    assert hashlib.sha256(downloaded.content).hexdigest() == digest
    fetched = send(mailbox, vxp.get_edoc(CREDS, delivery))
    assert int(fetched.headers["content-length"]) == len(fetched.content)
    assert base64.b64decode(answer(fetched)["data"]) == downloaded.content

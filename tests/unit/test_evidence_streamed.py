"""The evidence bundle's streamed parts: the sender's bytes cut out of a forwarded file,
and a bundle checked from its file."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

from bus.edxml import EdocBuilder, packet_bytes, status_for
from bus.evidence.bundle import _sender_cut, check, sender_bytes
from bus.store.blobs import PayloadBody
from tests.unit.test_evidence_bundle import forwarded


def file_body(path: Path, data: bytes) -> PayloadBody:
    path.write_bytes(data)
    return PayloadBody(len(data), opener=lambda: path.open("rb"))


def test_the_senders_bytes_are_cut_from_the_forwarded_file_as_a_stream(
        tmp_path: Path) -> None:
    edoc = (EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("Công văn")
            .signer("A").attach("scan.pdf", os.urandom(3 * 1024 * 1024 + 5)).build())
    for n, sent in enumerate((packet_bytes(edoc), packet_bytes(status_for(edoc, "03")))):
        out = forwarded(sent)
        body = file_body(tmp_path / f"f{n}", out)
        cut = _sender_cut(body, hashlib.sha256(sent).hexdigest())
        assert cut is not None
        # Read in 1 MiB pieces: the cut falls inside the first one; every byte after
        # it comes through whole.
        assert b"".join(cut.chunks()) == sent == sender_bytes(out, hashlib.sha256(
            sent).hexdigest())
        assert _sender_cut(body, "0" * 64) is None


def test_a_bundle_is_checked_from_its_file_and_a_changed_payload_is_named(
        tmp_path: Path) -> None:
    """check() hashes members as it reads them; a changed payload entry is still found."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("manifest.json", b'{"format": "lgsp-evidence/1", "files": '
                         b'{"forwarded/forwarded.edxml": "' + b"0" * 64 + b'"}}')
        archive.writestr("forwarded/forwarded.edxml", b"<edXML/>")
    path = tmp_path / "b.zip"
    path.write_bytes(data.getvalue())
    with path.open("rb") as bundle:
        report = check(bundle)
    assert not report.ok
    assert report.problems == ["forwarded/forwarded.edxml: was changed (its SHA-256 is not "
                               "the manifest's)"]

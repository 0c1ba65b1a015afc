"""A real ``lgsp serve`` takes, stores and delivers packets far larger than its memory budget.

Issue 16: a 500 MB scan must be accepted, stored and delivered with the serve process's
resident size rising by at most 256 MB, whatever the size. In CI the same path runs at
two smaller sizes: the rise must stay under a fixed bound at both, and must not grow
with the packet (the larger packet is three times the smaller). Before streaming, a
60 MB packet alone cost the process several times its size (the body, the lifted copy,
the forwarded copy, the payload row read back for delivery). tests/bench/bench_large.py
runs the same path at 500 MB.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Final

import httpx
import pytest
import sqlalchemy as sa
import yaml

from bus.evidence.bundle import FORWARDED, ORIGINAL, check
from bus.store import Store
from bus.store.blobs import PayloadFiles
from bus.store.tables import documents, payload_files
from tests.cluster import REPO_ROOT, Cluster, fresh_database, routes_document
from tests.field import producers as field
from tests.http_sink import HttpSink
from tests.large_packet import _encoded as encoded_content
from tests.large_packet import file_chunks, write_large_packet
from tests.memory_probe import BOUND, MB, PeakRss, resident

KEY: Final = "dev-eoffice-key"
SIZES: Final = (20 * MB, 60 * MB)


def _stored_sizes(engine: sa.Engine, folder: Path) -> set[int]:
    """Sizes of the payloads kept outside rows, as files (SQLite) or large objects."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(payload_files.c.size, payload_files.c.location)).all()
    sizes = set()
    for size, location in rows:
        if location.startswith("lo:"):
            sizes.add(int(size))
        else:
            sizes.add((folder / location).stat().st_size)
    return sizes


def send_and_deliver(url: str, path: Path, size: int, sink: HttpSink, count: int,
                     timeout_s: float = 300.0) -> tuple[float, float]:
    """POSTs the packet at ``path`` streamed from disk, waits until the sink has its
    ``count``-th request; (seconds to accept, seconds to delivered)."""
    began = time.monotonic()
    answer = httpx.post(url + "/api/v1/edocs", content=file_chunks(path),
                        headers={"X-API-Key": KEY, "Content-Length": str(size),
                                 "Content-Type": "application/xml"}, timeout=timeout_s)
    accepted = time.monotonic() - began
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + timeout_s
    while len(sink.requests) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sink.requests) >= count, "the packet was not delivered in time"
    return accepted, time.monotonic() - began


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_large_packets_are_accepted_and_delivered_in_bounded_memory(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    """On SQLite the payloads are files under the data dir; on PostgreSQL, large objects."""
    database_url = ("" if backend == "sqlite"
                    else fresh_database(request.getfixturevalue("postgres")))
    with HttpSink() as sink, Cluster(tmp_path, routes=routes_document(sink),
                                     database_url=database_url,
                                     max_body_bytes=1024 * MB,
                                     max_attachment_bytes=1024 * MB) as cluster:
        bus = cluster.add("embedded")
        bus.start()
        bus.wait_ready(60)
        assert bus.pid is not None
        # Warm up every code path once (imports, pools, the allocator) at a small size.
        warm = tmp_path / "warm.xml"
        size, _ = write_large_packet(warm, 9 * MB)
        send_and_deliver(bus.url, warm, size, sink, 1)
        time.sleep(1.0)
        rises = []
        for number, content in enumerate(SIZES, start=2):
            packet = tmp_path / f"p{number}.xml"
            size, digest = write_large_packet(packet, content)
            base = resident(bus.pid)
            with PeakRss(bus.pid) as rss:
                send_and_deliver(bus.url, packet, size, sink, number)
            rises.append(rss.peak - base)
            delivered = sink.requests[number - 1].body
            original = packet.read_bytes()
            # What the recipient got is the sender's bytes with the bus's TraceHeader.
            assert len(delivered) > size and hashlib.sha256(delivered).hexdigest() != digest
            assert delivered[-1000:] == original[-1000:]
            assert delivered[len(delivered) - size + 40_000:][:1000] == \
                original[40_000:41_000]
            del delivered, original
            stored = _stored_sizes(cluster.engine, tmp_path / "var" / "payloads")
            assert len(sink.requests[number - 1].body) in stored
    small, large = rises
    print(f"\n[large] RSS rise: {small // MB} MB at {SIZES[0] // MB} MB, "
          f"{large // MB} MB at {SIZES[1] // MB} MB")
    assert small <= BOUND and large <= BOUND
    # Not proportional: three times the packet adds less than half the difference (an
    # in-memory copy adds all of it). A quarter was within the allocator's noise: the
    # rises move by ±6 MB between runs of the same code, and a 267 MB body rises 22 MB.
    assert large - small < (SIZES[1] - SIZES[0]) // 2, rises


def test_a_serve_killed_while_large_packets_arrive_never_names_a_missing_payload(
        tmp_path: Path) -> None:
    """SIGKILL at moments spread over the upload, the checks and the accept of 60 MB
    packets: afterwards every payload row names a whole file with its digest, every
    accepted document's payload reads back, and what a killed upload or accept left on
    disk (a spool, a staged file no row names) is removed by the payload sweep."""
    packet = tmp_path / "big.xml"
    size, _ = write_large_packet(packet, 45 * MB)
    with HttpSink() as sink, Cluster(tmp_path, routes=routes_document(sink),
                                     max_body_bytes=1024 * MB,
                                     max_attachment_bytes=1024 * MB) as cluster:
        bus = cluster.add("embedded")
        bus.start()
        bus.wait_ready(60)
        for delay in (0.05, 0.25, 0.45, 0.65, 0.85, 1.1):
            sender = threading.Thread(target=_post_quietly, args=(bus.url, packet, size))
            sender.start()
            time.sleep(delay)
            bus.kill9()
            sender.join(timeout=60)
            bus.start()
            bus.wait_ready(60)
        root = tmp_path / "var" / "payloads"
        files = PayloadFiles(root)
        store = Store(cluster.engine, files)
        with cluster.engine.connect() as conn:
            rows = conn.execute(sa.select(payload_files)).all()
            digests = list(conn.execute(sa.select(documents.c.payload_sha256)).scalars())
        for row in rows:
            hashed = hashlib.sha256()
            for chunk in store.body(row.sha256).chunks():
                hashed.update(chunk)
            assert hashed.hexdigest() == row.sha256
            assert (root / row.location).stat().st_size == row.size
        for digest in digests:
            assert store.body(digest).size > 0
        spooled = len(list(files.tmp.iterdir()))
        assert spooled >= 1  # some kills did land during an upload
        store.sweep_payload_files(older_than_s=-1)
        left = {p.name for p in root.glob("??/*")}
        assert left == {row.sha256 for row in rows}
        assert list(files.tmp.iterdir()) == []
        # The sender retries, as the contract says, and gets its receipt.
        answer = httpx.post(bus.url + "/api/v1/edocs", content=file_chunks(packet),
                            headers={"X-API-Key": KEY, "Content-Length": str(size)},
                            timeout=120)
        assert answer.status_code in (200, 202), answer.text
    print(f"\n[large] after 6 kills: {len(rows)} payload file(s), {len(digests)} "
          f"document(s), {spooled} abandoned upload(s) swept")


def _post_quietly(url: str, path: Path, size: int) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(url + "/api/v1/edocs", content=file_chunks(path),
                   headers={"X-API-Key": KEY, "Content-Length": str(size)}, timeout=60)


def _soap_envelope(packet: Path, out: Path) -> int:
    """``packet`` base64-encoded into a SendEdoc envelope written to ``out``; its size."""
    with out.open("wb") as target, packet.open("rb") as source:
        target.write(b'<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap='
                     b'"http://schemas.xmlsoap.org/soap/envelope/" xmlns:lgsp='
                     b'"urn:lgsp-bus:soap:v1"><soap:Header><lgsp:ApiKey>' + KEY.encode()
                     + b"</lgsp:ApiKey></soap:Header><soap:Body><lgsp:SendEdoc><lgsp:packet>")
        while piece := source.read(3 << 20):
            target.write(base64.b64encode(piece))
        target.write(b"</lgsp:packet></lgsp:SendEdoc></soap:Body></soap:Envelope>")
    return out.stat().st_size


def test_a_large_soap_send_edoc_is_taken_in_bounded_memory(tmp_path: Path) -> None:
    """The SOAP door: a 60 MB packet is an 80 MB envelope; spooled, decoded to disk."""
    with HttpSink() as sink, Cluster(tmp_path, routes=routes_document(sink),
                                     max_body_bytes=1024 * MB,
                                     max_attachment_bytes=1024 * MB) as cluster:
        bus = cluster.add("embedded")
        bus.start()
        bus.wait_ready(60)
        assert bus.pid is not None
        warm = tmp_path / "warm.xml"
        size, _ = write_large_packet(warm, 9 * MB)
        send_and_deliver(bus.url, warm, size, sink, 1)
        packet = tmp_path / "p.xml"
        _, digest = write_large_packet(packet, SIZES[1])
        envelope = tmp_path / "p.soap"
        length = _soap_envelope(packet, envelope)
        time.sleep(1.0)
        base = resident(bus.pid)
        with PeakRss(bus.pid) as rss:
            answer = httpx.post(bus.url + "/soap", content=file_chunks(envelope),
                                headers={"Content-Length": str(length),
                                         "Content-Type": "text/xml; charset=utf-8"},
                                timeout=300)
        assert answer.status_code == 200, answer.text
        with cluster.engine.connect() as conn:
            assert digest in set(conn.execute(sa.select(documents.c.sha256)).scalars())
    rise = rss.peak - base
    print(f"\n[large] SOAP: RSS rise {rise // MB} MB for a {length // MB} MB envelope")
    assert rise < 64 * MB


# ---- every adapter (issue 16, second part) ---------------------------------------------

def _peak_child_rss(argv: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """Runs ``argv``; (exit status, its peak RSS in bytes, its output).

    The peak is the child's VmHWM, read until it exits (its mm's high-water mark since
    exec; ``ru_maxrss`` from wait4 would include the RSS of this process at fork)."""
    peak = 0
    with subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError), open(
                    f"/proc/{proc.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
            time.sleep(0.01)
        output = proc.communicate(timeout=60)[0].decode()
    return proc.returncode, peak, output


def test_the_evidence_of_a_large_document_is_exported_in_bounded_memory(
        tmp_path: Path) -> None:
    """GET /api/v1/edocs/{id}/evidence of a 60 MB document from a real ``lgsp serve``,
    and ``lgsp evidence export`` of it: the zip carries both payloads, ``lgsp evidence
    verify`` passes, and neither process holds the payloads."""
    with HttpSink() as sink, Cluster(tmp_path, routes=routes_document(sink),
                                     max_body_bytes=1024 * MB,
                                     max_attachment_bytes=1024 * MB) as cluster:
        bus = cluster.add("embedded")
        bus.start()
        bus.wait_ready(60)
        assert bus.pid is not None
        ids = []
        for number, content in enumerate((1 * MB, SIZES[1]), start=1):
            packet = tmp_path / f"p{number}.xml"
            size, digest = write_large_packet(packet, content)
            send_and_deliver(bus.url, packet, size, sink, number)
            with cluster.engine.connect() as conn:
                ids.append(conn.execute(sa.select(documents.c.id).where(
                    documents.c.sha256 == digest)).scalar_one())
        small_id, large_id = ids
        url = bus.url + "/api/v1/edocs/{}/evidence"
        headers = {"X-API-Key": KEY}
        httpx.get(url.format(small_id), headers=headers, timeout=60).raise_for_status()
        time.sleep(1.0)
        zipped = tmp_path / "api.zip"
        base = resident(bus.pid)
        with PeakRss(bus.pid) as rss, zipped.open("wb") as out, httpx.stream(
                "GET", url.format(large_id), headers=headers, timeout=300) as answer:
            assert answer.status_code == 200
            assert int(answer.headers["Content-Length"]) > 50 * MB
            for piece in answer.iter_bytes():
                out.write(piece)
        api_rise = rss.peak - base
        assert check(zipped).ok
        env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        peaks = []
        for doc_id in (small_id, large_id):
            out_path = tmp_path / f"cli-{doc_id}.zip"
            status, peak, output = _peak_child_rss(
                [sys.executable, "-m", "bus.cli", "evidence", "export", doc_id,
                 "-o", str(out_path), "--config", str(cluster.config_path)], env)
            assert status == 0, output
            peaks.append(peak)
        status, _, output = _peak_child_rss(
            [sys.executable, "-m", "bus.cli", "evidence", "verify", str(out_path)], env)
        assert status == 0 and "OK" in output, output
    with zipfile.ZipFile(zipped) as archive:
        names = set(archive.namelist())
        forwarded = archive.getinfo(FORWARDED).file_size
    assert {ORIGINAL, FORWARDED} <= names and forwarded > SIZES[1]
    cli_rise = peaks[1] - peaks[0]
    print(f"\n[large] evidence of a {SIZES[1] // MB} MB document: serve RSS rise "
          f"{api_rise // MB} MB, CLI peak {peaks[1] // MB} MB ({cli_rise // MB} MB over a "
          "1 MB document)")
    assert api_rise < 48 * MB
    assert cli_rise < 48 * MB


# ---- a dialect packet translated at the door ------------------------------------------

_DIALECT_MARKER: Final = b"LGSP-LARGE-DIALECT-MARKER" * 4


def write_dialect_packet(path: Path, size: int, number: int) -> tuple[int, str]:
    """A vendor-hub-2019 packet (tests/field/producers.py) whose attachment holds
    ``size`` bytes; its file size and SHA-256."""
    data = field.sample_data(
        document_id=f"000.00.12.H37,2025/03/14,{number}/STTTT-VP",
        attachments=[{"id": "1", "name": "scan.pdf", "type": "application/pdf",
                      "content": _DIALECT_MARKER}])
    head, found, tail = field.vendor_hub_2019(data).partition(
        base64.b64encode(_DIALECT_MARKER))
    assert found
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for piece in (head, *encoded_content(size), tail):
            out.write(piece)
            digest.update(piece)
    return path.stat().st_size, digest.hexdigest()


def test_a_large_dialect_packet_is_translated_at_the_door_in_bounded_memory(
        tmp_path: Path) -> None:
    """eOffice configured with ``dialect: vendor-hub-2019`` sends 20 and 60 MB packets in
    that dialect: receivers get the standard form, the sender's bytes are kept, and the
    serve process does not hold the packet while translating and reading it."""
    directory = tmp_path / "directory.yaml"
    shipped = (REPO_ROOT / "config" / "directory.yaml").read_text(encoding="utf-8")
    anchor = "  eoffice:\n    destination: eoffice\n"
    directory.write_text(shipped.replace(anchor, anchor + "    dialect: vendor-hub-2019\n"),
                         encoding="utf-8")
    with HttpSink() as sink, Cluster(tmp_path, routes=routes_document(sink),
                                     max_body_bytes=1024 * MB,
                                     max_attachment_bytes=1024 * MB) as cluster:
        values = yaml.safe_load(cluster.config_path.read_text(encoding="utf-8"))
        values["directory"] = str(directory)
        cluster.config_path.write_text(yaml.safe_dump(values, sort_keys=False),
                                       encoding="utf-8")
        bus = cluster.add("embedded")
        bus.start()
        bus.wait_ready(60)
        assert bus.pid is not None
        warm = tmp_path / "warm.xml"
        size, _ = write_dialect_packet(warm, 9 * MB, 1)
        send_and_deliver(bus.url, warm, size, sink, 1)
        time.sleep(1.0)
        rises = []
        for number, content in enumerate(SIZES, start=2):
            packet = tmp_path / f"d{number}.xml"
            size, digest = write_dialect_packet(packet, content, number)
            base = resident(bus.pid)
            with PeakRss(bus.pid) as rss:
                send_and_deliver(bus.url, packet, size, sink, number)
            rises.append(rss.peak - base)
            delivered = sink.requests[number - 1].body
            head = delivered[:10_000]
            assert b"<edXML:Bussiness>" in head and b"<edXML:Business>" not in head
            assert b"edXML:version" not in head
            assert delivered[-1000:] == packet.read_bytes()[-1000:]
            del delivered
            with cluster.engine.connect() as conn:
                original = conn.execute(sa.select(documents.c.original_sha256).where(
                    documents.c.sha256 == digest)).scalar_one()
            assert original == digest  # the sender's own bytes are kept as sent
    small, large = rises
    print(f"\n[large] dialect: RSS rise {small // MB} MB at {SIZES[0] // MB} MB, "
          f"{large // MB} MB at {SIZES[1] // MB} MB")
    assert small <= BOUND and large <= BOUND
    # Half the difference: the in-memory code grew by 100-350 MB here, RSS noise is ~10.
    assert large - small < (SIZES[1] - SIZES[0]) // 2, rises

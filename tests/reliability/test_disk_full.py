"""The embedded bus's data directory runs out of disk under load, then gets it back.

One ``lgsp serve`` on SQLite (the embedded default) with its data directory on a small
tmpfs mounted for the test. A filler file takes every free byte while a client posts.
New documents must then be refused with a code (StorageFull, 507: nothing stored), the
database must stay intact (``PRAGMA integrity_check``), every document accepted with a
2xx must still be delivered, and the bus must take documents again by itself once the
filler is deleted — same process, no restart.

Payload bytes live in the database (table ``payloads``, written in the same transaction
as the document that references them), so a payload cut short by the full disk can
only be rolled back with its document: the test checks that every stored document's
payload is present and hashes to the digest the document records, a multi-megabyte one
refused during the outage included.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest

from bus.edxml import EdocBuilder, packet_bytes
from bus.store import Store
from bus.store.large_objects import payload_store
from bus.store.tables import create_engine
from tests.cluster import (
    Cluster,
    Outgoing,
    Progress,
    Sender,
    Submission,
    background,
    routes_document,
    soak,
)
from tests.http_sink import HttpSink
from tests.reliability.battery_kit import RULES, audit, make_documents, report, settle

pytestmark = [pytest.mark.slow]

DOCUMENTS: Final = soak(1_500)
TMPFS_MB: Final = soak(48)
FULL_S: Final = 10.0
LARGE_BYTES: Final = 3 * 1024 * 1024


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` at ``path``; skips the test if mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs",
                              str(path)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")
    try:
        yield path
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True,
                              check=False).returncode == 0:
                break
            time.sleep(0.5)


def fill(path: Path) -> int:
    """Writes until the disk says ENOSPC; the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 16, 1 << 12):
            block = b"\0" * chunk
            while True:
                try:
                    written += out.write(block)
                except OSError:
                    break
        with contextlib.suppress(OSError):
            os.fsync(out.fileno())
    return written


def large_document() -> Outgoing:
    sender = "000.00.12.H37"
    blob = os.urandom(LARGE_BYTES)
    builder = (EdocBuilder(sender).to("000.00.00.H37").code("9999", "DISK")
               .subject("Hồ sơ quét dung lượng lớn", "Nội dung.")
               .signer("Nguyễn Văn An", "Giám đốc")
               .document_id(f"{sender},2024/05/17,9999/disk-{blob[:4].hex()}")
               .attach("ho-so-quet.pdf", blob))
    return Outgoing(packet_bytes(builder.build()), "eoffice")


def test_data_directory_disk_full_then_space_returns(tmp_path: Path) -> None:
    root = tmp_path / "bus"
    documents = make_documents(DOCUMENTS, "dsk")
    submissions = [Submission(d) for d in documents]
    large = Submission(large_document())
    with small_disk(root / "var", TMPFS_MB) as var, HttpSink() as sink, \
            Cluster(root, routes=routes_document(sink, rules=RULES),
                    delivery_threads=2) as cluster:
        bus = cluster.add("embedded")
        bus.start()
        bus.wait_ready(60)
        filler = var / "filler"
        progress = Progress()
        began = time.monotonic()
        with Sender([bus.url], timeout_s=10, max_pause_s=0.5) as sender:
            with background(lambda: sender.submit_all(
                    submissions, threads=2, deadline=began + soak(240), progress=progress),
                    "client"):
                assert progress.wait_for(DOCUMENTS // 3, soak(120)), progress.value
                filled = fill(filler)
                full_at = time.monotonic()
                refused_before = sender.counts.get("http_507", 0)
                time.sleep(FULL_S / 2)
                large_answer = sender.post_once(large.outgoing)
                time.sleep(max(0.0, full_at + FULL_S - time.monotonic()))
                refused_full = sender.counts.get("http_507", 0) - refused_before
                filler.unlink()
                freed_at = time.monotonic()
            submitted = time.monotonic() - began
            sender.submit(large, began + 300)
            settle(cluster, sink, soak(180))
            took = time.monotonic() - began
            client = dict(sender.counts)
            sample = sender.samples.get("http_507")
            slowest = {k: round(v, 2) for k, v in sender.slowest_s.items()}
            accepted_after = sum(1 for s in submissions if s.accepted
                                 and s.statuses.count(507) > 0)
        result = audit(cluster, sink, [*submissions, large])
        database = cluster.settings.data_dir / "lgsp.db"
        with contextlib.closing(sqlite3.connect(database)) as conn:
            integrity = conn.execute("PRAGMA integrity_check").fetchall()
            digests = [d for (d,) in conn.execute("SELECT payload_sha256 FROM documents")]
        # Large payloads are files under the data directory: read each as the bus does.
        engine = create_engine(f"sqlite:///{database}")
        store = Store(engine, payload_store(cluster.settings, engine))
        bad_payloads = [digest for digest in digests
                        if hashlib.sha256(store.payload(digest)).hexdigest() != digest]
        engine.dispose()
        readyz = httpx.get(bus.url + "/readyz", timeout=5).status_code
        report("disk full (embedded)", result, seconds=took, kills=0,
               filler_mb=round(filled / 2**20, 1), full_s=FULL_S,
               refused_507_while_full=refused_full, client=client,
               accepted_after_a_507=accepted_after,
               large_while_full=large_answer.status_code, large_after=large.status,
               submitted_after_space_returned_s=round(began + submitted - freed_at, 1),
               integrity=integrity, bad_payloads=len(bad_payloads),
               slowest_answer_s=slowest, starts=bus.starts)
        print(f"  507 body: {sample}")
        assert result.problems == []
        assert result.lost == 0 and result.documents == DOCUMENTS + 1
        assert refused_full > 0 and sample is not None
        assert sample["code"] == "StorageFull" and "disk" in sample["message"]
        assert large_answer.status_code == 507
        assert large_answer.json()["code"] == "StorageFull"
        assert large.status == 202
        assert set(client) <= {"http_200", "http_202", "http_507"}, client
        assert accepted_after > 0
        assert integrity == [("ok",)] and bad_payloads == []
        assert bus.starts == 1 and bus.alive() and readyz == 200

"""Large documents collected FROM HCM Egov's outbox, in the bounded memory of issue 16.

A real ``lgsp serve`` polls the HCM Egov simulator (in this process) for a commune's
scanned document and delivers it to the Department on eOffice (the sink). Before the
outbox item was streamed, the poller read the answer whole and handed the bus bytes;
now the serve process's resident size must rise by at most 256 MB and must not grow
with the packet, and the bus must store exactly the platform's bytes.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Final

import sqlalchemy as sa

from adapters.hcm_egov.simulator import HcmEgovSimulator
from bus.store.tables import documents
from tests.adapters.hcm_egov_support import (
    ACCESS,
    ACCESS_ENV,
    SECRET,
    SECRET_ENV,
    SO_TTTT,
    XA_31,
    options,
    simulator,
)
from tests.cluster import Cluster, routes_document
from tests.http_sink import HttpSink
from tests.large_packet import write_large_packet
from tests.memory_probe import BOUND, MB, PeakRss, resident

SIZES: Final = (16 * MB, 48 * MB)


def collect(sim: HcmEgovSimulator, sink: HttpSink, path: Path, count: int,
            timeout_s: float = 300.0) -> None:
    """Queues the packet at ``path`` in the outbox; waits until it is acknowledged done
    and the sink has its ``count``-th request."""
    item = sim.put_outbox(path.read_bytes())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ack = sim.ack_of(item)
        assert ack is None or ack["Result"] == "done", f"the bus refused the packet: {ack}"
        if ack is not None and len(sink.requests) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"outbox item {item} was not collected and delivered in time")


def test_large_documents_collected_from_hcm_egov_take_bounded_memory(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(simulator())
        sink = stack.enter_context(HttpSink())
        routes = routes_document(sink)
        routes["destinations"]["hcm_egov"] = {
            "adapter": "hcm_egov",
            "options": options(sim, poll_interval_s=0.3, timeout_s=120.0)}
        cluster = stack.enter_context(Cluster(
            tmp_path, routes=routes, max_body_bytes=1024 * MB,
            max_attachment_bytes=1024 * MB))
        bus = cluster.add("embedded")
        bus.extra_env.update({ACCESS_ENV: ACCESS, SECRET_ENV: SECRET})
        bus.start()
        bus.wait_ready(60)
        assert bus.pid is not None
        warm = tmp_path / "warm.xml"
        write_large_packet(warm, 9 * MB, sender=XA_31, recipient=SO_TTTT)
        collect(sim, sink, warm, 1)
        time.sleep(1.0)
        rises = []
        for number, content in enumerate(SIZES, start=2):
            packet = tmp_path / f"p{number}.xml"
            _, digest = write_large_packet(packet, content, sender=XA_31, recipient=SO_TTTT)
            base = resident(bus.pid)
            with PeakRss(bus.pid) as rss:
                collect(sim, sink, packet, number)
            rises.append(rss.peak - base)
            with cluster.engine.connect() as conn:
                stored = conn.execute(sa.select(documents.c.sha256).where(
                    documents.c.sha256 == digest)).scalars().all()
            assert stored == [digest], "the stored packet is not the platform's packet"
        assert not list((tmp_path / "var" / "payloads" / "tmp").glob("*"))
    small, large = rises
    print(f"\n[large] HCM Egov inbound: RSS rise {small // MB} MB at {SIZES[0] // MB} MB, "
          f"{large // MB} MB at {SIZES[1] // MB} MB")
    assert small <= BOUND and large <= BOUND
    assert large - small < (SIZES[1] - SIZES[0]) // 2, rises

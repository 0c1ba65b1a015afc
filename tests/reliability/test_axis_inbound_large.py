"""Large documents fetched FROM the national axis, in the bounded memory of issue 16.

A real ``lgsp serve`` polls the axis simulator (in this process, serving the packets
from files with their base64 encoded as it writes, so it holds none of them), takes
each document with getEdoc, stores it and delivers it to its local recipient. Before
getEdoc was streamed the serve process read the answer whole, parsed its JSON and
decoded ``data`` in memory: about three times the packet. Now its resident size must
rise by at most 256 MB and must not grow with the packet (the larger is three times the
smaller); what the bus stored must hash to what the axis held, and the recipient must
get those bytes with the bus's TraceHeader. tests/bench/bench_large.py --inbound-axis
runs the same path at 500 MB.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Final

import pytest
import sqlalchemy as sa

from adapters.national_axis.simulator import AxisSimulator
from bus.store.tables import documents
from tests.cluster import Cluster, fresh_database, routes_document
from tests.http_sink import HttpSink
from tests.large_packet import write_large_packet
from tests.memory_probe import BOUND, MB, PeakRss, resident

AXIS_SYSTEM: Final = "LGSP-LS"
AXIS_SECRET: Final = "axis-secret-for-inbound"
AXIS_ENV: Final = "LGSP_TEST_INBOUND_AXIS_SECRET"
OUTSIDE: Final = "000.00.00.G22"   # another province's agency, behind the axis
LOCAL: Final = "000.00.12.H37"     # hosted by eoffice: delivered to the sink's /eoffice
SIZES: Final = (16 * MB, 48 * MB)


def axis_routes(sink: HttpSink, axis: AxisSimulator) -> dict[str, object]:
    routes = routes_document(sink)
    routes["destinations"]["national_axis"] = {  # type: ignore[index]
        "adapter": "national_axis",
        "options": {"endpoint": axis.endpoint, "system_id": AXIS_SYSTEM,
                    "secret_env": AXIS_ENV, "timeout_s": 300, "poll_interval_s": 0.3}}
    return routes


def receive(axis: AxisSimulator, sink: HttpSink, path: Path, count: int,
            timeout_s: float = 300.0) -> str:
    """Queues the packet at ``path`` on the axis; waits until the axis item is
    acknowledged done and the sink has its ``count``-th request. The axis docId."""
    doc_id = axis.inject_file(AXIS_SYSTEM, path, sender=OUTSIDE, to=[LOCAL])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = axis.item(AXIS_SYSTEM, doc_id)
        assert item is not None and item.status != "fail", "the bus refused the packet"
        if item.status == "done" and len(sink.requests) >= count:
            return doc_id
        time.sleep(0.05)
    raise AssertionError(f"axis item {doc_id} was not taken and delivered in time")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_large_documents_polled_from_the_axis_take_bounded_memory(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    database_url = ("" if backend == "sqlite"
                    else fresh_database(request.getfixturevalue("postgres")))
    with contextlib.ExitStack() as stack:
        axis = stack.enter_context(AxisSimulator({AXIS_SYSTEM: AXIS_SECRET}))
        sink = stack.enter_context(HttpSink())
        cluster = stack.enter_context(Cluster(
            tmp_path, routes=axis_routes(sink, axis), database_url=database_url,
            max_body_bytes=1024 * MB, max_attachment_bytes=1024 * MB))
        bus = cluster.add("embedded")
        bus.extra_env[AXIS_ENV] = AXIS_SECRET
        bus.start()
        bus.wait_ready(60)
        assert bus.pid is not None
        warm = tmp_path / "warm.xml"
        write_large_packet(warm, 9 * MB, sender=OUTSIDE, recipient=LOCAL)
        receive(axis, sink, warm, 1)
        time.sleep(1.0)
        rises = []
        for number, content in enumerate(SIZES, start=2):
            packet = tmp_path / f"p{number}.xml"
            size, digest = write_large_packet(packet, content, sender=OUTSIDE,
                                              recipient=LOCAL)
            base = resident(bus.pid)
            with PeakRss(bus.pid) as rss:
                receive(axis, sink, packet, number)
            rises.append(rss.peak - base)
            with cluster.engine.connect() as conn:
                stored = conn.execute(sa.select(documents.c.sha256).where(
                    documents.c.sha256 == digest)).scalars().all()
            assert stored == [digest], "the stored packet is not the axis' packet"
            delivered = sink.requests[number - 1].body
            original = packet.read_bytes()
            # The axis' bytes with the bus's TraceHeader spliced in.
            assert len(delivered) > size and delivered[-1000:] == original[-1000:]
            assert delivered[len(delivered) - size + 40_000:][:1000] == \
                original[40_000:41_000]
            del delivered, original
        assert not list((tmp_path / "var" / "payloads" / "tmp").glob("*"))
    small, large = rises
    print(f"\n[large] axis inbound ({backend}): RSS rise {small // MB} MB at "
          f"{SIZES[0] // MB} MB, {large // MB} MB at {SIZES[1] // MB} MB")
    assert small <= BOUND and large <= BOUND
    # Half the difference: reading getEdoc whole grew by ~4x the difference here.
    assert large - small < (SIZES[1] - SIZES[0]) // 2, rises

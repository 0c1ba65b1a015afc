"""getEdoc streamed: the axis' answer scanned as it arrives, its base64 decoded in pieces.

The scanner is fed the same answers cut at every kind of place; then the adapter polls
the simulator, which serves packets from files and spoils its answers on demand, into a
real Bus on SQLite. A spoilt answer must leave the item pending on the axis (never
acknowledged, nothing stored, no spool left behind); a packet over the bus's
``max_body_bytes`` must be refused and acknowledged as failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.national_axis import NationalAxisAdapter
from adapters.national_axis.getedoc import SKELETON_CAP, AnswerScanner, Base64Pieces
from adapters.national_axis.ledger import NationalAxisLedger
from adapters.national_axis.sim_records import GARBLES
from adapters.national_axis.simulator import AxisSimulator
from bus import errors, vxp
from bus.adapter import Retry
from bus.app import Bus
from bus.delivery.pollers import BusInbox
from bus.edxml import packet_bytes
from bus.settings import load_settings
from bus.store.tables import documents
from bus.testing import InMemoryBus
from tests.adapters.test_in_memory_bus import ROUTES as KIT_ROUTES
from tests.adapters.test_national_axis import ENV, LOCAL, OUTSIDE, SECRET, SYSTEM, edoc
from tests.large_packet import write_large_packet

MB = 1024 * 1024


def scan(raw: bytes, size: int) -> tuple[bytes, vxp.Answer, bool]:
    scanner = AnswerScanner()
    pieces: list[bytes] = []
    for start in range(0, len(raw), size):
        pieces.extend(scanner.feed(raw[start:start + size]))
    answer = scanner.finish()
    return b"".join(pieces), answer, scanner.streamed


PACKET = os.urandom(10_000) + b"\xff\xfe" * 700  # many '/' and '+' in its base64
TEXT = base64.b64encode(PACKET).decode("ascii")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 4096, 1 << 20])
@pytest.mark.parametrize("raw", [
    json.dumps({"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "data": TEXT}),
    json.dumps({"data": TEXT, "ErrorDesc": "tên \"trích\" {x}", "status": "OK",
                "nested": {"data": [1, {"data": "x"}]}, "ErrorCode": "0"}),
    '{ "status" : "OK" ,\n "data" :\t"' + TEXT.replace("/", "\\/") + '" }',
    '{"status":"OK","data":"' + "\\n".join(TEXT[i:i + 76] for i in range(0, len(TEXT), 76))
    + '","ErrorCode":"0"}',
    '{"status":"OK","data":"' + TEXT.replace("+", "\\u002B").replace("/", "\\u002f") + '"}',
], ids=["sdk-order", "data-first-nested", "escaped-slashes", "mime-lines", "unicode-escapes"])
def test_the_packet_is_decoded_wherever_the_answer_is_cut(raw: str, size: int) -> None:
    packet, answer, streamed = scan(raw.encode(), size)
    assert packet == PACKET and streamed
    assert answer.ok and answer.data == ""


@pytest.mark.parametrize(("raw", "why"), [
    ('{"status":"OK","data":"' + TEXT[:5000] + "*" + TEXT[5001:] + '"}', "not valid base64"),
    ('{"status":"OK","data":"' + TEXT[:5000] + "!#$%" + TEXT[5004:] + '"}', "not valid base64"),
    ('{"status":"OK","data":"' + TEXT[:-2] + '"}', "whole number of quartets"),
    ('{"status":"OK","data":"QQ==' + TEXT + '"}', "padding"),
    ('{"status":"OK","data":"' + TEXT[:6000], "ends before its JSON does"),
    ('{"status":"OK","data":"' + TEXT + '","data":"QUFB"}', "two data members"),
    ('{"status":"OK","data":"QUF\\u00c1"}', "escape \\u00c1"),
    ('{"status":"OK","data":"QUF\\tB"}', "escape \\t"),
    ('{"status":"OK","Data":"' + "A" * (SKELETON_CAP + 8) + '"}', "outside a data string"),
    ('<html><body>502 Bad Gateway</body></html>', "not JSON"),
    ("", "ends before its JSON does"),
], ids=["bad-character", "bad-quartet", "no-padding", "after-padding", "cut-short", "two-data",
        "non-ascii-escape", "tab-escape", "no-data-key", "html", "empty"])
def test_a_malformed_answer_is_named(raw: str, why: str) -> None:
    with pytest.raises(vxp.MalformedAnswer, match=re.escape(why)):
        scan(raw.encode(), 4096)


def test_padding_cannot_end_one_piece_and_data_go_on_in_the_next() -> None:
    pieces = Base64Pieces()
    assert pieces.feed(b"QQ==") == b"A"
    with pytest.raises(vxp.MalformedAnswer, match="after its '=' padding"):
        pieces.feed(b"QUFB")


def test_a_fail_answer_and_a_data_that_is_not_a_string_are_read_as_answers() -> None:
    _, failed, streamed = scan(b'{"status":"FAIL","ErrorCode":"404","ErrorDesc":"no"}', 3)
    assert not failed.ok and failed.code == "404" and not streamed
    _, nulled, streamed = scan(b'{"status":"OK","ErrorCode":"0","data":null}', 3)
    assert nulled.ok and nulled.data is None and not streamed


# ---- through the adapter, into a real bus ----------------------------------------------

@pytest.fixture
def axis() -> Iterator[AxisSimulator]:
    with AxisSimulator({SYSTEM: SECRET}) as sim:
        yield sim


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SECRET)


def make_adapter(axis: AxisSimulator) -> NationalAxisAdapter:
    adapter = NationalAxisAdapter.from_options("national_axis", {
        "endpoint": axis.endpoint, "system_id": SYSTEM, "secret_env": ENV, "timeout_s": 10.0})
    assert isinstance(adapter, NationalAxisAdapter)
    return adapter


@pytest.fixture
def adapter(axis: AxisSimulator) -> Iterator[NationalAxisAdapter]:
    built = make_adapter(axis)
    yield built
    built.close()


def make_bus(tmp_path: Path, **overrides: int) -> Bus:
    return Bus(load_settings(environ={}, data_dir=tmp_path / "var", **overrides))


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    built = make_bus(tmp_path)
    yield built
    built.close()


def stored_sha256(bus: Bus) -> list[str]:
    with bus.store.engine.connect() as conn:
        return list(conn.execute(sa.select(documents.c.sha256)).scalars())


def spooled(bus: Bus) -> list[Path]:
    assert bus.store.files is not None
    return list(bus.store.files.tmp.iterdir())


def large_item(axis: AxisSimulator, tmp_path: Path, size: int) -> tuple[str, str]:
    """An item whose packet (``size`` bytes of attachment) stays in a file; its docId and
    the packet's SHA-256."""
    path = tmp_path / f"incoming-{size}.xml"
    _, digest = write_large_packet(path, size, sender=OUTSIDE, recipient=LOCAL)
    return axis.inject_file(SYSTEM, path, sender=OUTSIDE, to=[LOCAL]), digest


def test_a_large_item_is_spooled_to_disk_and_stored_intact(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus, tmp_path: Path) -> None:
    """12 MB is past the inbox's 8 MB spool threshold: the Spool path, hashed on the way."""
    doc_id, digest = large_item(axis, tmp_path, 12 * MB)
    assert adapter.poll(BusInbox(bus, "national_axis")) == 1
    assert stored_sha256(bus) == [digest]
    assert axis.item(SYSTEM, doc_id).status == "done"  # type: ignore[union-attr]
    assert spooled(bus) == []


@pytest.mark.parametrize("garble", [g for g in GARBLES if g != "escaped_slashes"])
def test_a_spoilt_get_edoc_answer_leaves_the_item_pending(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus, tmp_path: Path,
        garble: str) -> None:
    doc_id, digest = large_item(axis, tmp_path, 9 * MB)
    axis.garble_get_edoc(garble)
    assert adapter.poll(BusInbox(bus, "national_axis")) == 0
    assert axis.item(SYSTEM, doc_id).status == "initial"  # type: ignore[union-attr]
    assert axis.calls_to("updateStatus") == []
    assert stored_sha256(bus) == [] and spooled(bus) == []
    axis.garble_get_edoc(None)
    assert adapter.poll(BusInbox(bus, "national_axis")) == 1
    assert stored_sha256(bus) == [digest]


def test_escaped_slashes_are_the_same_packet(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus, tmp_path: Path) -> None:
    _, digest = large_item(axis, tmp_path, 2 * MB)
    axis.garble_get_edoc("escaped_slashes")
    assert adapter.poll(BusInbox(bus, "national_axis")) == 1
    assert stored_sha256(bus) == [digest]


@pytest.mark.parametrize(("garble", "reason"), [
    ("bad_base64", "unusable, left pending for the next poll: data is not valid base64"),
    ("no_data", "answered OK without the packet \\(data is missing\\)"),
    ("cut_short", "ends before its JSON does"),
    ("broken", "the answer broke off after \\d+ characters of data: RemoteProtocolError"),
    ("fail_after_data", "FAIL .*simulated: FAIL after the data"),
])
def test_the_reason_a_spoilt_answer_is_left_pending_names_it(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus, garble: str,
        reason: str) -> None:
    from adapters.national_axis.getedoc import EdocFetch

    doc_id = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    axis.garble_get_edoc(garble)
    with pytest.raises(Retry, match=reason):
        BusInbox(bus, "national_axis").submit(EdocFetch(adapter, doc_id), source_id=doc_id)
    assert stored_sha256(bus) == []


def test_a_packet_over_the_cap_is_refused_while_it_arrives_and_acknowledged_fail(
        axis: AxisSimulator, adapter: NationalAxisAdapter, tmp_path: Path) -> None:
    """max_body_bytes 10 MB, a 40 MB packet: refused once past the cap, not at its end."""
    from adapters.national_axis.getedoc import EdocFetch

    bus = make_bus(tmp_path, max_body_bytes=10 * MB)
    try:
        doc_id, _ = large_item(axis, tmp_path, 40 * MB)
        fetch = EdocFetch(adapter, doc_id)
        with pytest.raises(errors.PayloadTooLarge, match=f"the packet {doc_id} polled"):
            BusInbox(bus, "national_axis").submit(fetch, source_id=doc_id)
        assert fetch.size < 12 * MB
        assert adapter.poll(BusInbox(bus, "national_axis")) == 0
        assert axis.item(SYSTEM, doc_id).status == "fail"  # type: ignore[union-attr]
        assert stored_sha256(bus) == [] and spooled(bus) == []
    finally:
        bus.close()


def test_the_ledger_fetches_a_large_item_streamed_and_refuses_a_spoilt_one(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus, tmp_path: Path) -> None:
    ledger = NationalAxisLedger(adapter)
    doc_id, digest = large_item(axis, tmp_path, 9 * MB)
    axis.garble_get_edoc("cut_short")
    with pytest.raises(Retry, match="ends before its JSON does"):
        ledger.fetch(BusInbox(bus, "national_axis"), doc_id)
    assert axis.item(SYSTEM, doc_id).status == "initial"  # type: ignore[union-attr]
    axis.garble_get_edoc(None)
    document = ledger.fetch(BusInbox(bus, "national_axis"), doc_id)
    assert document and stored_sha256(bus) == [digest]
    assert axis.item(SYSTEM, doc_id).status == "done"  # type: ignore[union-attr]


def test_the_inbox_takes_a_file_or_pieces_and_drops_them_when_the_pieces_fail(
        bus: Bus, tmp_path: Path) -> None:
    path = tmp_path / "p.xml"
    _, digest = write_large_packet(path, 9 * MB, sender=OUTSIDE, recipient=LOCAL)
    inbox = BusInbox(bus, "national_axis")

    def broken() -> Iterator[bytes]:
        with path.open("rb") as source:
            yield source.read(9 * MB)
        raise Retry("the system hung up")

    with pytest.raises(Retry, match="hung up"):
        inbox.submit(broken(), source_id="x-1")
    assert stored_sha256(bus) == [] and spooled(bus) == []
    with path.open("rb") as source:
        receipt = inbox.submit(source, source_id="x-1")
    assert stored_sha256(bus) == [digest]
    assert inbox.submit(iter([path.read_bytes()]), source_id="x-1")["id"] == receipt["id"]


def test_the_test_kit_polls_a_large_axis_item(axis: AxisSimulator, tmp_path: Path) -> None:
    axis_line = 'national_axis: {adapter: http, options: {url: "URL/axis", timeout_s: 2}}'
    assert axis_line in KIT_ROUTES
    routes = KIT_ROUTES.replace(axis_line, (
        f'national_axis: {{adapter: national_axis, options: {{endpoint: "{axis.endpoint}", '
        f'system_id: "{SYSTEM}", secret_env: {ENV}}}}}')).replace("URL", "http://127.0.0.1:9")
    doc_id, digest = large_item(axis, tmp_path, 9 * MB)
    with InMemoryBus(routes, data_dir=tmp_path / "kit") as kit:
        assert kit.poll("national_axis") == 1
        with kit.bus.store.engine.connect() as conn:
            assert list(conn.execute(sa.select(documents.c.sha256)).scalars()) == [digest]
    assert axis.item(SYSTEM, doc_id).status == "done"  # type: ignore[union-attr]
    assert hashlib.sha256((tmp_path / "incoming-9437184.xml").read_bytes()).hexdigest() \
        == digest


def test_an_axis_that_is_down_is_said_unreachable_not_broken_off(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus) -> None:
    from adapters.national_axis.getedoc import EdocFetch

    doc_id = axis.inject(SYSTEM, packet_bytes(edoc(OUTSIDE, LOCAL)), sender=OUTSIDE)
    axis.stop()
    with pytest.raises(Retry, match=f"getEdoc {doc_id}: axis unreachable: ConnectError"):
        BusInbox(bus, "national_axis").submit(EdocFetch(adapter, doc_id), source_id=doc_id)


def test_an_item_the_axis_keeps_spoiling_is_fetched_less_and_less_often(
        axis: AxisSimulator, adapter: NationalAxisAdapter, bus: Bus, tmp_path: Path) -> None:
    """A broken 500 MB item must not be downloaded again at every poll forever: its first
    failure is retried at the next poll, then it waits 2, 4, … poll intervals."""
    now = [1000.0]
    adapter._backoff.clock = lambda: now[0]
    interval = adapter.config.poll_interval_s
    _, digest = large_item(axis, tmp_path, 1 * MB)
    axis.garble_get_edoc("cut_short")
    inbox = BusInbox(bus, "national_axis")

    def fetches() -> int:
        return len(axis.calls_to("getEdoc"))

    adapter.poll(inbox)
    adapter.poll(inbox)
    assert fetches() == 2  # the first failure costs no wait
    adapter.poll(inbox)
    now[0] += interval * 2 - 1
    adapter.poll(inbox)
    assert fetches() == 2, "fetched again before its back-off ended"
    now[0] += 1
    adapter.poll(inbox)
    assert fetches() == 3
    now[0] += interval * 4 - 1
    adapter.poll(inbox)
    assert fetches() == 3

    axis.garble_get_edoc(None)
    now[0] += 1
    assert adapter.poll(inbox) == 1
    assert stored_sha256(bus) == [digest]
    assert adapter._backoff.waiting() == 0 and spooled(bus) == []

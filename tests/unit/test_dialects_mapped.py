"""A dialect packet read from a spooled file is translated into a file, not into memory."""

from __future__ import annotations

import os
from pathlib import Path

from bus.edxml.dialects import read_from, translate
from bus.edxml.mapped import Mapped
from tests.field import producers as field

HUB = "vendor-hub-2019"


def test_a_mapped_dialect_packet_translates_to_a_map_with_the_same_bytes(
        tmp_path: Path) -> None:
    data = field.sample_data(attachments=[{"id": "1", "name": "scan.pdf",
                                           "type": "application/pdf",
                                           "content": os.urandom(9 * 1024 * 1024)}])
    sent = field.vendor_hub_2019(data)
    path = tmp_path / "sent.xml"
    path.write_bytes(sent)
    mapped = Mapped.of(path)
    in_memory, notices = translate(sent, HUB)
    from_file, file_notices = translate(mapped.as_bytes(), HUB)
    assert isinstance(from_file, Mapped)
    assert from_file[:] == in_memory != sent
    assert [n.message for n in file_notices] == [n.message for n in notices]
    door = read_from(mapped.as_bytes(), dialect=HUB)
    assert door.translated and isinstance(door.standard, Mapped)
    assert door.result.packet.subject == read_from(sent, dialect=HUB).result.packet.subject

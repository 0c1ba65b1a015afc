"""``lgsp validate``: what an agency's IT officer runs before connecting a system.

The output is read by people and grepped by scripts, so its shape is fixed: one line per
file, ``FILE: OK (…)`` or ``FILE: CODE: message (line N, /path)``, and an exit status
that is 0 only when every file would be accepted at the bus's door.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from bus.cli import main
from bus.edxml import packet_bytes
from tests.edxml_factory import (
    JMETER_PLACEHOLDER,
    MINIMAL_EDOC,
    builder,
    line_of,
    replace_once,
    samples_dir,
)
from tests.field import producers


@pytest.fixture(autouse=True)
def _clean_lxml_error_log() -> None:
    """Isolates each test from lxml's per-thread error log (see test_reader's leak test)."""
    etree.clear_error_log()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["validate", *args])
    return code, capsys.readouterr().out.splitlines()


def sample(name: str) -> str:
    return str(samples_dir() / name)


def write(folder: Path, name: str, data: str | bytes) -> str:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


def test_valid_edoc_with_three_recipients(capsys: pytest.CaptureFixture[str]) -> None:
    path = sample("edoc_update.edxml")
    code, lines = run(capsys, path)
    assert lines == [f"{path}: OK (edoc, 3 recipients, 1 attachment)"]
    assert code == 0


def test_singular_and_no_attachment_wording(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    bare = write(tmp_path, "bare.edxml", packet_bytes(builder().build()))
    code, lines = run(capsys, sample("edoc_new.edxml"), bare)
    assert lines == [
        f"{sample('edoc_new.edxml')}: OK (edoc, 1 recipient, 1 attachment)",
        f"{bare}: OK (edoc, 1 recipient)",
    ]
    assert code == 0


def test_several_attachments_are_counted(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    edoc = builder("000.00.00.G22", "000.00.00.H37", "000.00.00.H41")
    edoc.attach("a.pdf", b"%PDF-1.4").attach("b.pdf", b"%PDF-1.4")
    path = write(tmp_path, "two.edxml", packet_bytes(edoc.build()))
    code, lines = run(capsys, path)
    assert lines == [f"{path}: OK (edoc, 2 recipients, 2 attachments)"]
    assert code == 0


def test_status_packet_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = sample("status_acceptance_03.edxml")
    code, lines = run(capsys, path)
    assert lines == [f"{path}: OK (status 03 (accepted))"]
    assert code == 0


def test_refused_packet_gives_code_message_line_and_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = sample("edoc.edxml")
    line = line_of((samples_dir() / "edoc.edxml").read_bytes(), JMETER_PLACEHOLDER)
    code, lines = run(capsys, path)
    assert len(lines) == 1
    assert re.fullmatch(
        rf"{re.escape(path)}: AttachmentInvalid: .*base64.* \(line {line}, "
        r"/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded\)",
        lines[0],
    ), lines[0]
    assert code == 1


def test_schema_error_points_at_line_and_path(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    text = replace_once(MINIMAL_EDOC, "<edXML:PromulgationDate>2019/01/17",
                        "<edXML:PromulgationDate>2019/02/30")
    path = write(tmp_path, "bad-date.edxml", text)
    code, lines = run(capsys, path)
    assert lines == [
        f"{path}: SchemaInvalid: PromulgationDate '2019/02/30' is not a real date: February "
        "2019 has 28 days. Expected an existing date as yyyy/MM/dd. (line "
        f"{line_of(text, '<edXML:PromulgationDate>')}, /edXML/edXMLEnvelope/edXMLHeader/"
        "MessageHeader/PromulgationInfo/PromulgationDate)"
    ]
    assert code == 1


def test_exit_status_is_1_when_any_file_is_bad(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    bad = write(tmp_path, "not-xml.edxml", "không phải XML")
    good = sample("status.edxml")
    code, lines = run(capsys, good, bad, sample("edoc_new.edxml"))
    assert [line.split(": ")[1] for line in lines] == ["OK (status 01 (arrived))",
                                                        "MalformedXml", "OK (edoc, 1 recipient,"
                                                        " 1 attachment)"]
    assert lines[1].startswith(f"{bad}: MalformedXml: ") and lines[1].endswith("(line 1)")
    assert code == 1


def test_every_official_sample_but_the_placeholder_one_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = sorted(str(p) for p in samples_dir().glob("*.edxml") if p.name != "edoc.edxml")
    assert len(paths) == 14
    code, lines = run(capsys, *paths)
    assert [line.split(": ", 1)[0] for line in lines] == paths
    assert all(": OK (" in line for line in lines)
    assert code == 0


def test_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.edxml")
    code, lines = run(capsys, missing)
    assert lines == [f"{missing}: cannot read: No such file or directory"]
    assert code == 1


def test_size_cap_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "p.edxml", MINIMAL_EDOC)
    size = len(MINIMAL_EDOC.encode())
    code, lines = run(capsys, "--max-bytes", str(size - 1), path)
    assert lines == [f"{path}: PayloadTooLarge: the packet is {size} bytes; this bus accepts "
                     f"at most {size - 1}"]
    assert code == 1
    assert run(capsys, "--max-bytes", str(size), path)[0] == 0


def test_doctype_is_reported_as_dtd_forbidden(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    text = MINIMAL_EDOC.replace("?>\n", '?>\n<!DOCTYPE edXML [<!ENTITY x "y">]>\n', 1)
    path = write(tmp_path, "dtd.edxml", text)
    code, lines = run(capsys, path)
    assert lines[0].startswith(f"{path}: DtdForbidden: ")
    assert lines[0].endswith("(line 2)")
    assert code == 1


def test_warnings_flag_prints_notices_with_location(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    path = sample("edoc_new.edxml")
    code, lines = run(capsys, "--warnings", path)
    assert lines[0] == f"{path}: OK (edoc, 1 recipient, 1 attachment)"
    assert lines[1].startswith("  warning NonStandardIdentifier: To/OrganId '28.22.H17'")
    assert lines[1].endswith(
        "(line 18, /edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId)"
    )
    assert code == 0
    # Without the flag the same file prints only its verdict.
    assert run(capsys, path)[1] == [lines[0]]


def test_no_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["validate"])
    assert exited.value.code == 2
    capsys.readouterr()


def test_a_dialect_packet_is_checked_as_its_configured_system_sends_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    packet = tmp_path / "hub.edxml"
    packet.write_bytes(producers.vendor_hub_2019(producers.sample_data()))
    code, lines = run(capsys, str(packet))
    assert code == 1 and "UnsupportedPacket" in lines[0] and "vendor-hub-2019" in lines[0]
    code, lines = run(capsys, "--dialect", "vendor-hub-2019", "-w", str(packet))
    assert code == 0 and lines[0].endswith("OK (edoc, 1 recipient, 1 attachment)"), lines
    assert any("DialectTranslated" in line for line in lines[1:]), lines

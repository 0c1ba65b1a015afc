"""contract.md's bad-input table, row by row, at the reader: the documented code, line and
path, in under a second; and the size caps."""

from __future__ import annotations

import time

import pytest

from bus.edxml import DEFAULT_LIMITS, Limits, read_packet
from bus.errors import (
    AttachmentInvalid,
    PayloadTooLarge,
)
from tests.edxml_factory import (
    MB,
    MINIMAL_EDOC,
    MINIMAL_STATUS,
    sized_edoc_bytes,
)
from tests.security.bad_input_kit import (
    CASES,
    CTE,
    Bad,
    _clean_lxml_error_log,  # noqa: F401 - autouse: each case starts with a clean error log
    _identifier,
    refuse,
    utf16,
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_with_the_documented_code(case: Bad) -> None:
    refused = refuse(case.data, case.error, case.limits)
    if case.line is not None:
        assert refused.line == case.line, refused
    if case.path is not None:
        assert refused.path == case.path, refused


def test_the_table_is_exercised_against_a_packet_that_reads() -> None:
    """Each case is a small edit of these templates; if they were refused, every case
    would pass for the wrong reason."""
    read_packet(MINIMAL_EDOC.encode())
    read_packet(MINIMAL_STATUS.encode())
    read_packet(utf16(MINIMAL_EDOC))
    read_packet(_identifier("A" * 35).encode())  # 35 characters is still allowed


# ---------------------------------------------------------------- size caps


def test_size_cap_boundary() -> None:
    data = MINIMAL_EDOC.encode()
    read_packet(data, limits=Limits(max_bytes=len(data)))
    refused = refuse(data, PayloadTooLarge, Limits(max_bytes=len(data) - 1))
    assert str(len(data)) in refused.message


@pytest.mark.parametrize("limits", [Limits(max_bytes=MB), DEFAULT_LIMITS],
                         ids=["configured-1MB", "default"])
def test_size_cap_is_checked_before_parsing(limits: Limits) -> None:
    """A 256 MB body of NUL bytes is not XML: PayloadTooLarge rather than MalformedXml
    proves the cap came first, and the time (far below one pass over the bytes) proves
    nothing scanned them."""
    body = bytes(256 * MB)
    start = time.perf_counter()
    with pytest.raises(PayloadTooLarge):
        read_packet(body, limits=limits)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.01, f"{elapsed:.4f} s: the body was looked at before the size check"


def test_oversized_attachment_is_refused_without_decoding_it_all() -> None:
    data = sized_edoc_bytes(20 * MB)
    refused = refuse(data, AttachmentInvalid, Limits(max_attachment_bytes=MB))
    assert refused.path == CTE
    assert "cap" in refused.message

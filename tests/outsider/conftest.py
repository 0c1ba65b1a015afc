"""Fixtures of the outsider tests: one ``lgsp serve`` per module, started as a user would."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.outsider.doors_kit import bus  # noqa: F401 - the new doors tests' bus, one per module
from tests.outsider.harness import IOFFICE_SECRET, IOFFICE_SYSTEM_ID, Server, start_server
from tests.outsider.sdk_client import SdkService

MAILBOX_WAIT_S = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("lgsp"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def ioffice(server: Server, tmp_path: Path) -> SdkService:
    """A fresh SDK service object of VNPT-iOffice (fresh timestamp, empty sticky map)."""
    return SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET,
                      store_dir=str(tmp_path / "store"))


def mailbox_ids(svc: SdkService) -> set[str]:
    res = svc.get_received_edoc_list()
    assert res is not None and res.ErrorCode == "0", res
    return {str(item["docId"]) for item in res.data or []}


def wait_new_item(server: Server, before: set[str], marker: str) -> tuple[str, bytes]:
    """Poll the iOffice mailbox until an item whose packet contains ``marker`` appears;
    a new service object per poll, as a poller that rebuilds it would."""
    deadline = time.monotonic() + MAILBOX_WAIT_S
    seen: set[str] = set(before)
    while time.monotonic() < deadline:
        svc = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
        for doc_id in sorted(mailbox_ids(svc) - seen):
            got = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET).get_edoc(doc_id)
            assert got is not None and got.ErrorCode == "0", got
            packet = base64.b64decode(got.data)
            if marker.encode("utf-8") in packet:
                return doc_id, packet
            seen.add(doc_id)
        time.sleep(0.3)
    raise AssertionError(f"no mailbox item carrying {marker!r} within {MAILBOX_WAIT_S}s:\n"
                         + server.log_tail())

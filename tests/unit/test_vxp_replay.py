"""The replay memory of the axis facade: refuses a second use, forgets with the window,
stays bounded, and gives back a signature whose request was not carried out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus import errors, vxp
from bus.api.vxp.replay import ReplayGuard
from bus.cli import main
from bus.directory import requests as agency_requests
from bus.store.tables import create_engine, metadata


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_signature_counts_once_until_its_window_ends() -> None:
    clock = Clock()
    guard = ReplayGuard(clock=clock)
    key = ("000.00.00.H37", "sendEdoc", "ab12")
    guard.claim(key, clock.now + 300)
    with pytest.raises(vxp.Replayed, match="being carried out"):
        guard.claim(key, clock.now + 300)
    guard.done(key)
    clock.now += 120
    with pytest.raises(vxp.Replayed, match="120s ago"):
        guard.claim(key, clock.now + 300)
    guard.claim(("000.00.00.H37", "updateStatus", "ab12"), clock.now + 300)   # other operation
    clock.now += 181
    assert len(guard) == 1
    guard.claim(key, clock.now + 300)            # the timestamp left the window: forgotten


def test_a_released_signature_can_be_used_again() -> None:
    guard = ReplayGuard(clock=Clock())
    key = ("s", "sendEdoc", "cd")
    guard.claim(key, 2e9)
    guard.release(key)
    guard.claim(key, 2e9)


def test_memory_is_bounded_and_full_means_refused_not_forgotten() -> None:
    clock = Clock()
    guard = ReplayGuard(max_entries=3, clock=clock)
    for n in range(3):
        guard.claim(("s", "sendEdoc", str(n)), clock.now + 10)
    with pytest.raises(errors.TooManyRequests):
        guard.claim(("s", "sendEdoc", "3"), clock.now + 10)
    with pytest.raises(vxp.Replayed):
        guard.claim(("s", "sendEdoc", "0"), clock.now + 10)
    clock.now += 11
    guard.claim(("s", "sendEdoc", "3"), clock.now + 10)
    assert len(guard) == 1


def test_the_cli_lists_approves_and_rejects_requests(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'lgsp.db'}")
    metadata.create_all(engine)
    first, _ = agency_requests.submit(engine, action="register", code="000.00.40.H37",
                                      name="Ban Quản lý", system="vnpt_ioffice",
                                      requested_by="vxp:000.00.00.H37", parent="000.00.00.H37")
    second, _ = agency_requests.submit(engine, action="delete", code="000.00.12.H37",
                                       name="Sở", system="eoffice", requested_by="vxp:x")
    data = ["--data-dir", str(tmp_path)]
    assert main(["directory", "requests", "list", *data]) == 0
    out = capsys.readouterr().out
    assert "#1" in out and "000.00.40.H37" in out and "[not in the directory]" in out
    assert "2 request(s)" in out
    assert main(["directory", "requests", "approve", str(first.id), *data]) == 0
    out = capsys.readouterr().out
    assert '"000.00.40.H37":' in out and "system: vnpt_ioffice" in out
    assert main(["directory", "requests", "reject", str(second.id), "--note", "typo",
                 *data]) == 0
    assert main(["directory", "requests", "approve", str(second.id), *data]) == 1
    assert "already rejected" in capsys.readouterr().out
    assert main(["directory", "requests", "list", "--all", *data]) == 0
    out = capsys.readouterr().out
    assert "approved" in out and "rejected" in out and "typo" in out

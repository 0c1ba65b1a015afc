"""`lgsp directory sync` against the simulated national axis: a large list that changes."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.national_axis.sim_units import national_agencies
from adapters.national_axis.simulator import AxisSimulator
from bus import errors, vxp
from bus.app import Bus
from bus.cli import main
from bus.directory import load_directory
from bus.directory.layer import axis_layer_path, read_units
from bus.directory.sync import ChangeSet, ChangeSets
from bus.directory.sync_cli import SyncSchedule, apply, prepare
from bus.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
SYSTEM, SECRET, ENV = "00.37.W00", "axis-secret", "LGSP_NATIONAL_AXIS_SECRET"
NATIONAL = 3000
SO_TTTT = "000.00.12.H37"          # the province's own agency, named here in directory.yaml
NOW = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def axis() -> Iterator[AxisSimulator]:
    listed = national_agencies(NATIONAL)
    listed.append(vxp.Agency(SO_TTTT, "Sở Khoa học và Công nghệ tỉnh Lạng Sơn", "so12", "", ""))
    with AxisSimulator({SYSTEM: SECRET}, agencies=listed) as sim:
        for agency in listed[:100]:
            sim.set_center(agency.code, "00.37.W00")
        yield sim


@pytest.fixture
def settings(axis: AxisSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(ENV, SECRET)
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(REPO / "config" / "directory.yaml", config / "directory.yaml")
    routes = (REPO / "routes.yaml").read_text(encoding="utf-8")
    routes = routes.replace("endpoint: http://127.0.0.1:8084/vdxp", f"endpoint: {axis.endpoint}")
    (config / "routes.yaml").write_text(routes, encoding="utf-8")
    file = tmp_path / "settings.yaml"
    file.write_text(f"data_dir: {tmp_path / 'var'}\nroutes: {config / 'routes.yaml'}\n"
                    f"directory: {config / 'directory.yaml'}\n", encoding="utf-8")
    return load_settings(file, environ={})


def codes(kind: str, change_set: ChangeSet) -> list[str]:
    return [c.code for c in change_set.changes if c.kind == kind]


def test_a_first_sync_fills_the_layer_and_province_entries_win(settings: Settings) -> None:
    province_file = settings.directory.read_bytes()
    change_set = prepare(settings)
    assert change_set is not None and change_set.state == "pending"
    assert change_set.counts()["new"] == NATIONAL + 1
    assert not axis_layer_path(settings.directory).exists(), "prepared is not applied"
    [conflict] = change_set.conflicts
    assert conflict.code == SO_TTTT and "directory.yaml is kept" in conflict.text
    assert any(n.startswith("getSynchronizeUnit:") for n in change_set.notes)

    apply(settings, change_set.id, "operator:test")
    loaded = load_directory(settings.directory)
    assert len(loaded) >= NATIONAL
    outside = national_agencies(NATIONAL)[1234]
    assert loaded.agencies[outside.code].name == outside.name
    assert loaded.host_of(outside.code) is None, "axis agencies are known, not hosted"
    assert loaded.agencies[SO_TTTT].system == "eoffice"
    assert loaded.agencies[SO_TTTT].name == "Sở Thông tin và Truyền thông tỉnh Lạng Sơn"
    assert settings.directory.read_bytes() == province_file
    units = {u.code: u for u, _ in read_units(axis_layer_path(settings.directory))[0]}
    assert units[national_agencies(NATIONAL)[60].code].parent == \
        national_agencies(NATIONAL)[1].code
    assert units[national_agencies(NATIONAL)[5].code].center == "00.37.W00"
    with pytest.raises(errors.InvalidRequest, match="applied, not pending"):
        apply(settings, change_set.id, "operator:test")


def test_the_diff_names_each_change_the_axis_made(settings: Settings,
                                                  axis: AxisSimulator) -> None:
    first = prepare(settings)
    assert first is not None
    apply(settings, first.id, "operator:test")
    assert prepare(settings) is None, "nothing changed on the axis"

    listed = national_agencies(NATIONAL)
    axis.rename(listed[10].code, "Ủy ban nhân dân phường Đông Kinh", now=NOW)
    axis.move(listed[11].code, parent_code=listed[2].code, now=NOW)
    axis.move(listed[12].code, center="00.41.W00", now=NOW)
    axis.remove(listed[13].code, now=NOW)
    axis.add(vxp.Agency("000.00.99.H37", "Ủy ban nhân dân xã Tân Thành", "new1", "", ""),
             now=NOW, center="00.37.W00")
    axis.remove(SO_TTTT, now=NOW)

    second = prepare(settings)
    assert second is not None
    assert codes("renamed", second) == [listed[10].code]
    assert sorted(codes("moved", second)) == sorted([listed[11].code, listed[12].code])
    assert codes("removed", second) == sorted([listed[13].code, SO_TTTT])
    assert codes("new", second) == ["000.00.99.H37"]
    assert [c.code for c in second.conflicts] == [SO_TTTT]
    assert "the axis deleted it" in second.conflicts[0].text

    apply(settings, second.id, "operator:test")
    loaded = load_directory(settings.directory)
    assert listed[13].code not in loaded.agencies
    assert loaded.agencies["000.00.99.H37"].system is None
    assert loaded.agencies[SO_TTTT].system == "eoffice", "the province's entry stays"


def test_a_change_set_prepared_against_another_layer_is_refused(settings: Settings,
                                                                axis: AxisSimulator) -> None:
    one = prepare(settings)
    two = prepare(settings)
    assert one is not None and two is not None
    apply(settings, one.id, "operator:test")
    with pytest.raises(errors.InvalidRequest, match="changed since"):
        apply(settings, two.id, "operator:test")


def test_the_other_two_operations_are_optional(settings: Settings,
                                               axis: AxisSimulator) -> None:
    axis.fail(vxp.ErrorCode.UNKNOWN_OPERATION, "no such operation",
              operation="getSynchronizeUnit")
    change_set = prepare(settings)
    assert change_set is not None
    assert any(n.startswith("getSynchronizeUnit not used") for n in change_set.notes)
    assert change_set.counts()["new"] == NATIONAL + 1


def test_a_running_bus_picks_up_an_applied_set(settings: Settings) -> None:
    bus = Bus(settings)
    try:
        outside = national_agencies(NATIONAL)[77].code
        assert outside not in bus.reloader.current().directory.agencies
        change_set = prepare(settings)
        assert change_set is not None
        apply(settings, change_set.id, "operator:test")
        assert bus.reload_if_changed()
        assert outside in bus.reloader.current().directory.agencies
    finally:
        bus.close()


def test_the_schedule_prepares_once_and_never_applies(settings: Settings,
                                                      axis: AxisSimulator) -> None:
    bus = Bus(settings)
    try:
        schedule = SyncSchedule(bus)
        first = schedule.run_once()
        again = schedule.run_once()
        assert first is not None and again is not None and again.id == first.id
        assert not axis_layer_path(settings.directory).exists()
        assert [c.id for c in ChangeSets(settings.data_dir, settings.directory).list()] == \
            [first.id]
    finally:
        bus.close()


def test_the_command_line(settings: Settings, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    config = ["--config", str(tmp_path / "settings.yaml")]
    assert main(["directory", "sync", "--from-axis", *config]) == 0
    out = capsys.readouterr().out
    set_id = out.split("lgsp directory sync show ")[1].split()[0]
    assert f"new {NATIONAL + 1}" in out
    assert main(["directory", "sync", "show", set_id, *config]) == 0
    shown = capsys.readouterr().out
    assert "conflicts (directory.yaml wins" in shown and f"… {NATIONAL + 1 - 40} more" in shown
    assert main(["directory", "sync", "--apply", set_id, *config]) == 0
    assert "applied:" in capsys.readouterr().out
    assert main(["directory", "sync", "--apply", set_id, *config]) == 1
    assert "InvalidRequest" in capsys.readouterr().out
    assert main(["directory", "sync", "--from-axis", *config]) == 0
    assert "already matches" in capsys.readouterr().out
    assert main(["directory", "sync", "list", *config]) == 0
    assert "1 change set(s)" in capsys.readouterr().out


def test_a_rejected_set_cannot_be_applied(settings: Settings, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    change_set = prepare(settings)
    assert change_set is not None
    config = ["--config", str(tmp_path / "settings.yaml")]
    assert main(["directory", "sync", "reject", change_set.id, "--note", "wait for the"
                 " Government Office's corrected list", *config]) == 0
    assert "rejected" in capsys.readouterr().out
    with pytest.raises(errors.InvalidRequest, match="rejected, not pending"):
        apply(settings, change_set.id, "operator:test")
    assert not axis_layer_path(settings.directory).exists()
    assert main(["directory", "sync", "show", change_set.id, *config]) == 0
    assert "rejected: wait for the Government Office" in capsys.readouterr().out


def test_a_saved_answer_or_a_layer_file_can_be_the_source(settings: Settings,
                                                          axis: AxisSimulator,
                                                          tmp_path: Path) -> None:
    answer = tmp_path / "getAgenciesList.json"
    answer.write_text(json.dumps(vxp.ok_answer(data=[a.to_json() for a in axis.agencies]),
                                 ensure_ascii=False), encoding="utf-8")
    from_file = prepare(settings, file=answer)
    assert from_file is not None and from_file.source == f"file:{answer}"
    assert from_file.counts()["new"] == NATIONAL + 1
    apply(settings, from_file.id, "operator:test")
    copy = tmp_path / "copy.csv"
    shutil.copy(axis_layer_path(settings.directory), copy)
    assert prepare(settings, file=copy) is None, "the layer read back changes nothing"
    (tmp_path / "bad.json").write_text('{"data": 3}', encoding="utf-8")
    with pytest.raises(errors.InvalidRequest, match="list of agencies"):
        prepare(settings, file=tmp_path / "bad.json")


def test_the_scheduled_loop_prepares_while_the_bus_runs(settings: Settings) -> None:
    bus = Bus(settings.model_copy(update={"directory_sync_interval_s": 0.2}))
    schedule = SyncSchedule(bus)
    schedule.start()
    try:
        sets = ChangeSets(settings.data_dir, settings.directory)
        deadline = time.monotonic() + 30
        while not sets.list() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sets.list(), "no change set prepared within 30 s"
    finally:
        assert schedule.stop(30)
        bus.close()
    assert [c.state for c in sets.list()] == ["pending"], "one set, however many runs"
    assert not axis_layer_path(settings.directory).exists()

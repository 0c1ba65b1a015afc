"""A third-party adapter, installed as its own distribution, works like a built-in one.

``tests/external_adapter`` is a separate package (``lgsp-example-adapter``) that the bus
never names: it is found only through its ``lgsp.adapters`` entry point, exactly as a
vendor's would be. These tests fail — not skip — when it is not installed, because a
skipped test would hide that the discovery path was never exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bus.adapter import Adapter, Refuse
from bus.cli import main
from bus.edxml import EdocBuilder, packet_bytes, read_packet
from bus.registry import adapter_class, available
from bus.settings import REPO_ROOT
from bus.testing import AdapterConformance, ConformanceTarget, InMemoryBus, sample_delivery

NAME = "example_file"
DISTRIBUTION = "lgsp-example-adapter"
INSTALL = "pip install -e tests/external_adapter"
DIRECTORY = REPO_ROOT / "config" / "directory.yaml"


def installed_class() -> type[Adapter[Any]]:
    """The adapter as the bus finds it, or a failure saying how to install it."""
    if NAME not in available():
        pytest.fail(f"the example third-party adapter is not installed: run `{INSTALL}` "
                    "(from the repository root) before the tests", pytrace=False)
    return adapter_class(NAME)


def file_name(key: str) -> str:
    import lgsp_example_adapter

    return lgsp_example_adapter.file_name(key)


def routes(drops: Path, adapter: str = NAME) -> str:
    """Every destination of the sample province is a directory under ``drops``."""
    lines = ["version: 1", "destinations:"]
    for name in ("eoffice", "vnpt_ioffice", "hcm_egov", "national_axis", "archive"):
        (drops / name).mkdir(parents=True, exist_ok=True)
        lines += [f"  {name}:", f"    adapter: {adapter}",
                  f"    options: {{directory: \"{drops / name}\"}}"]
    lines += ["defaults:", "  outside: national_axis", "rules:",
              "  - name: everything-to-archive", "    copy_to: [archive]", ""]
    return "\n".join(lines)


def test_it_is_discovered_through_the_entry_point() -> None:
    cls = installed_class()
    ep = available()[NAME]
    print(f"\n[external] {NAME} = {ep.value} from {ep.dist.name if ep.dist else '?'} "
          f"{ep.dist.version if ep.dist else ''}")
    assert ep.dist is not None and ep.dist.name == DISTRIBUTION
    assert ep.value == "lgsp_example_adapter:ExampleFileAdapter"
    assert cls.kind == NAME and cls.__module__ == "lgsp_example_adapter"


def test_routes_check_accepts_it_and_suggests_it_for_a_typo(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    installed_class()
    good = tmp_path / "routes.yaml"
    good.write_text(routes(tmp_path / "drops"), encoding="utf-8")
    code = main(["routes", "check", "--routes", str(good), "--directory", str(DIRECTORY)])
    out = capsys.readouterr().out
    print(f"\n[external] {out.strip()}")
    assert code == 0, out
    bad = tmp_path / "typo.yaml"
    bad.write_text(routes(tmp_path / "drops", adapter="example_fle"), encoding="utf-8")
    code = main(["routes", "check", "--routes", str(bad), "--directory", str(DIRECTORY)])
    out = capsys.readouterr().out
    print(f"[external] {out.splitlines()[0]}")
    assert code == 1
    assert "did you mean 'example_file'?" in out


def test_in_memory_bus_delivers_through_it(tmp_path: Path) -> None:
    installed_class()
    drops = tmp_path / "drops"
    packet = (EdocBuilder("000.00.12.H37").to("000.00.31.H37", "000.00.00.H37")
              .subject("Giấy mời họp").signer("Lê Văn C").build())
    with InMemoryBus(routes(drops)) as bus:
        receipt = bus.submit(packet_bytes(packet))
        outcomes = bus.deliver_all()
        rows = bus.deliveries(receipt["id"])
    written = {p.parent.name: p for p in drops.glob("*/*.edxml")}
    print(f"\n[external] outcomes={dict(outcomes)} files={sorted(written)}")
    assert outcomes == {"delivered": 4}
    assert sorted(written) == ["archive", "hcm_egov", "vnpt_ioffice"]
    archived = sorted(p.name for p in (drops / "archive").iterdir())
    assert len(archived) == 2, "one copy per recipient"
    for row in rows:
        key = f"{receipt['id']}:{row.effective_recipient}:{row.destination}"
        path = drops / row.destination / file_name(key)
        assert row.state == "delivered" and row.reference == path.name
        assert read_packet(path.read_bytes()).packet.document_id == packet.document_id


def test_an_oversized_packet_is_refused(tmp_path: Path) -> None:
    cls = installed_class()
    adapter = cls.from_options("drop", {"directory": str(tmp_path), "max_bytes": 10})
    with pytest.raises(Refuse) as refused:
        adapter.deliver(sample_delivery("drop"))
    assert refused.value.code == "TooLarge" and not list(tmp_path.iterdir())


class TestExampleFileConformance(AdapterConformance):
    @pytest.fixture
    def conformance_target(self, tmp_path: Path) -> Iterator[ConformanceTarget]:
        cls = installed_class()
        drop = tmp_path / "drop"
        offline = tmp_path / "drop.offline"
        drop.mkdir()

        def unmount() -> None:
            os.rename(drop, offline)

        def mount() -> None:
            if offline.exists():
                os.rename(offline, drop)
            drop.mkdir(exist_ok=True)

        yield ConformanceTarget(
            adapter_class=cls,
            options={"directory": str(drop)},
            invalid_options=[{}, {"directory": ""}, {"directory": str(drop), "max_bytes": 0}],
            make_unavailable=unmount,
            restore=mount,
            effects=lambda key: int((drop / file_name(key)).exists()),
            destination="drop",
        )

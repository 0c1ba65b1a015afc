"""The README's "send a document" steps, run as written: ``lgsp serve --with-simulators``
as a real process, then the README's own curl commands, ending with the document
delivered to both recipients' (simulated) systems.

The commands are read out of README.md, so an edit that breaks them breaks this test.
Two substitutions only, so that the test cannot collide with anything else on the
machine: the bus's port 8080 and the simulators' fixed ports in routes.yaml become free
ports (a copy of routes.yaml, given with ``--config``); ``lgsp`` is this interpreter's
``python -m bus.cli``; ``<id>`` is the id of the receipt, as the reader is told to do.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bus.settings import REPO_ROOT
from tests.servers import free_port

README = REPO_ROOT / "README.md"
MARKER = "<!-- walkthrough: send a document"
SIMULATED_PORTS = (8081, 8083, 8084, 8085)


def walkthrough() -> tuple[str, list[str]]:
    """The serve command shown before the marker, and the commands of the block after it."""
    text = README.read_text(encoding="utf-8")
    before, marker, after = text.partition(MARKER)
    assert marker, "README.md lost its walkthrough marker"
    serve = re.findall(r"^(lgsp serve --with-simulators[^\n]*)$", before, re.MULTILINE)
    assert serve, "README.md no longer shows `lgsp serve --with-simulators`"
    block = re.search(r"```\n(.*?)```", after, re.DOTALL)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    commands = [" ".join(line.split()) for line in joined.splitlines() if line.strip()]
    return serve[-1], commands


def _routes_on_free_ports(folder: Path) -> tuple[Path, dict[int, int]]:
    ports = {port: free_port() for port in SIMULATED_PORTS}
    text = (REPO_ROOT / "routes.yaml").read_text(encoding="utf-8")
    for fixed, free in ports.items():
        text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{free}")
    path = folder / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return path, ports


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[int]:
    serve, _ = walkthrough()
    routes, _ = _routes_on_free_ports(tmp_path)
    port = free_port()
    config = tmp_path / "bus.yaml"
    config.write_text(yaml.safe_dump({"routes": str(routes), "log_json": True}), "utf-8")
    argv = [sys.executable, "-m", "bus.cli", *shlex.split(serve)[1:],
            "--port", str(port), "--data-dir", str(tmp_path / "var"), "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the bus did not become ready in 60 s"
            time.sleep(0.3)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def _sh(command: str, port: int) -> str:
    command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    done = subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_walkthrough_ends_with_a_delivered_document(serving: int) -> None:
    _, commands = walkthrough()
    send, look = commands
    assert "@config/examples/packet.edxml" in send and "dev-eoffice-key" in send
    receipt = json.loads(_sh(send, serving))
    assert receipt["existing"] is False
    assert {r["destination"] for r in receipt["recipients"]} == {"hcm_egov", "vnpt_ioffice"}
    assert "<id>" in look
    deadline = time.monotonic() + 60
    while True:
        detail = json.loads(_sh(look.replace("<id>", receipt["id"]), serving))
        states = {d["destination"]: d["state"] for d in detail["deliveries"]}
        if set(states.values()) == {"delivered"}:
            break
        assert time.monotonic() < deadline, f"not delivered in 60 s: {states}"
        time.sleep(0.5)
    assert set(states) == {"hcm_egov", "vnpt_ioffice"}
    again = json.loads(_sh(send, serving))
    assert again["existing"] is True and again["id"] == receipt["id"]
    ready = httpx.get(f"http://127.0.0.1:{serving}/readyz", timeout=10).json()
    assert ready["degraded"] == [], ready


def test_the_sample_packet_is_valid_and_from_the_sample_province() -> None:
    """From an agency the eOffice key may speak for, to agencies of the province."""
    from bus.directory import load_directory
    from bus.edxml import Edoc, read_packet

    packet = read_packet((REPO_ROOT / "config" / "examples" / "packet.edxml").read_bytes()).packet
    assert isinstance(packet, Edoc)
    directory = load_directory(REPO_ROOT / "config" / "directory.yaml")
    assert directory.host_of(packet.from_.organ_id) == "eoffice"
    assert all(directory.host_of(o.organ_id) is not None for o in packet.to)

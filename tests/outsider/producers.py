"""Run each field producer on the same data; each returns the packet bytes it wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.outsider import packets
from tests.outsider.packets import DocData

HERE = Path(__file__).resolve().parent
JAVA_SRC = HERE / "java" / "EdxmlProducers.java"
NODE_SRC = HERE / "node" / "producer.js"
TOOL_TIMEOUT_S = 120.0


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed; ops/install-services.sh installs it")
    return path


def compile_java(out_dir: Path) -> Path:
    """javac into a temporary folder, bounded in time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([need("javac"), "-encoding", "UTF-8", "-d", str(out_dir), str(JAVA_SRC)],
                   check=True, capture_output=True, timeout=TOOL_TIMEOUT_S)
    return out_dir


def _properties(d: DocData, path: Path) -> None:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")
    path.write_text("".join(f"{k}={esc(v)}\n" for k, v in d.as_properties().items()),
                    encoding="utf-8")


def java_producer(mode: str, classes: Path, d: DocData, work: Path) -> bytes:
    props = work / f"java-{mode}.properties"
    out = work / f"java-{mode}.edxml"
    _properties(d, props)
    subprocess.run([need("java"), "-Dfile.encoding=UTF-8", "-cp", str(classes),
                    "EdxmlProducers", mode, str(props), str(out)],
                   check=True, capture_output=True, timeout=TOOL_TIMEOUT_S)
    return out.read_bytes()


def node_producer(d: DocData, work: Path) -> bytes:
    data = work / "node-data.json"
    out = work / "node.edxml"
    data.write_text(json.dumps(d.as_properties(), ensure_ascii=False), encoding="utf-8")
    subprocess.run([need("node"), str(NODE_SRC), str(data), str(out)],
                   check=True, capture_output=True, timeout=TOOL_TIMEOUT_S)
    return out.read_bytes()


PYTHON_PRODUCERS: dict[str, Callable[[DocData], bytes]] = {
    "dotnet_xmlserializer": packets.dotnet_xmlserializer,
    "go_encoding_xml": packets.go_encoding_xml,
    "axis_2025": packets.axis_2025,
    "trace_with_bookkeeping": packets.trace_with_bookkeeping,
}

REFUSED_PRODUCERS: dict[str, Callable[[DocData], bytes]] = {
    "pre_qcvn_godoc": packets.pre_qcvn_godoc,
    "soap_envelope": packets.soap_envelope,
    "no_namespace": packets.no_namespace,
    "status_without_messageheader": packets.status_without_messageheader,
    "attachment_data_block": packets.attachment_data_block,
    "unclosed_from": packets.unclosed_from,
}

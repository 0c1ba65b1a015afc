"""Evidence through the real doors: refusals at REST, SOAP and the axis facade become
sealed events; a document's bundle comes from GET /api/v1/edocs/{id}/evidence to whom
may read the document only, holds the sender's exact bytes, and passes the offline
check until a file in it is edited; ``lgsp audit verify`` and ``lgsp evidence`` exit
codes and messages."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bus.cli import main
from bus.edxml import EdocBuilder, packet_bytes, status_for
from bus.evidence.bundle import FORWARDED, ORIGINAL, check
from bus.runtime import running
from bus.store.tables import deliveries, events
from tests.api_server import ApiServer, api_key, running_bus
from tests.cluster import fresh_database
from tests.fixtures_services import postgres  # noqa: F401 - fixture

EOFFICE = api_key("eoffice")
IOFFICE = api_key("vnpt_ioffice")
OPERATOR = api_key("operator")
OUTSIDER = api_key("hcm_egov")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with running_bus(tmp_path / "bus") as running_server:
        yield running_server


def refusal_rows(server: ApiServer) -> list[dict[str, object]]:
    server.bus.evidence.tick()
    with server.bus.store.engine.connect() as conn:
        rows = conn.execute(sa.select(events).where(events.c.action == "door.refused")
                            .order_by(events.c.id)).mappings().all()
    return [{**dict(r), **json.loads(r["detail"])} for r in rows]


def test_refusals_at_every_door_are_recorded_and_sealed(server: ApiServer) -> None:
    assert httpx.post(server.url + "/api/v1/edocs", content=b"<x/>").status_code == 401
    broken = b"<edXMLEnvelope><unclosed>"
    answer = httpx.post(server.url + "/api/v1/edocs", content=broken, headers=EOFFICE)
    assert answer.json()["code"] == "MalformedXml"
    envelope = (b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org'
                b'/soap/envelope/" xmlns:lgsp="urn:lgsp-bus:soap:v1"><soap:Header><lgsp:ApiKey>'
                b'wrong</lgsp:ApiKey></soap:Header><soap:Body/></soap:Envelope>')
    assert httpx.post(server.url + "/soap", content=envelope,
                      headers={"Content-Type": "text/xml"}).status_code == 500
    packet = base64.b64encode(broken).decode()
    soap_packet = envelope.replace(b"wrong", b"dev-eoffice-key").replace(
        b"<soap:Body/>", f"<soap:Body><lgsp:SendEdoc><lgsp:packet>{packet}</lgsp:packet>"
        "</lgsp:SendEdoc></soap:Body>".encode())
    assert httpx.post(server.url + "/soap", content=soap_packet,
                      headers={"Content-Type": "text/xml"}).status_code == 500
    vxp = httpx.post(server.url + "/vxp/sendEdoc", content=b"{}",
                     headers={"Content-Type": "application/json"})
    assert vxp.json()["ErrorCode"] == "MalformedRequest"

    rows = refusal_rows(server)
    seen = [(r["channel"], r["code"], r["actor"]) for r in rows]
    assert seen == [("rest", "Unauthenticated", "-"), ("rest", "MalformedXml", "eoffice"),
                    ("soap", "Unauthenticated", "-"), ("soap", "MalformedXml", "eoffice"),
                    ("vxp", "MalformedRequest", "-")]
    digest = hashlib.sha256(broken).hexdigest()
    assert rows[1]["digest"] == digest and rows[3]["digest"] == digest
    assert rows[1]["size"] == len(broken)
    code = main(["audit", "verify", "--data-dir", str(server.bus.settings.data_dir)])
    assert code == 0


def test_a_refusal_flood_is_capped_per_minute(server: ApiServer) -> None:
    minute = time.time() // 60 * 60 + 1.0  # the flood within one minute whatever the clock
    server.bus.evidence.refusals.clock = lambda: minute
    for _ in range(30):
        httpx.post(server.url + "/api/v1/edocs", content=b"<x/>")
    rows = refusal_rows(server)
    assert len(rows) == 10
    server.bus.evidence.tick(final=True)
    with server.bus.store.engine.connect() as conn:
        more = conn.execute(sa.select(events.c.detail).where(
            events.c.action == "door.refused.more")).scalars().all()
    assert [json.loads(m)["count"] for m in more] == [20]


def wait_for(predicate: object, seconds: float = 20.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    """A bus on SQLite, or on PostgreSQL (the commands then find it through
    LGSP_DATABASE_URL, as an operator's shell would)."""
    settings: dict[str, str] = {}
    if request.param == "postgresql":
        settings["database_url"] = fresh_database(request.getfixturevalue("postgres"))
        monkeypatch.setenv("LGSP_DATABASE_URL", settings["database_url"])
    with running_bus(tmp_path / "bus", **settings) as running_server:
        yield running_server


def test_the_bundle_round_trip(backend: ApiServer, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    server = backend
    packet = (EdocBuilder("000.00.12.H37").to("000.00.00.H37")
              .subject("Kế hoạch chuyển đổi số năm 2026 – Lạng Sơn")
              .signer("Nguyễn Văn A", "Giám đốc").code("12", "KH-STTTT").build())
    sent = packet_bytes(packet)
    with running(server.bus, deliver=True):
        receipt = httpx.post(server.url + "/api/v1/edocs", content=sent, headers=EOFFICE)
        doc = receipt.json()["id"]

        def awaiting() -> bool:
            with server.bus.store.engine.connect() as conn:
                return conn.execute(sa.select(deliveries.c.state).where(
                    deliveries.c.document == doc)).scalar() == "awaiting"
        wait_for(awaiting)
        status = packet_bytes(status_for(packet, "03"))
        assert httpx.post(server.url + "/api/v1/statuses", content=status,
                          headers=IOFFICE).status_code == 202

        def sealed() -> bool:
            got = httpx.get(f"{server.url}/api/v1/edocs/{doc}/evidence", headers=EOFFICE)
            manifest = json.loads(zipfile.ZipFile(io.BytesIO(got.content)).read(
                "manifest.json"))
            return not manifest["unsealed_events"]
        wait_for(sealed)
    url = f"{server.url}/api/v1/edocs/{doc}/evidence"
    assert httpx.get(url, headers=OUTSIDER).json()["code"] == "NotFound"
    assert httpx.get(url, headers=IOFFICE).status_code == 200
    answer = httpx.get(url, headers=OPERATOR)
    assert answer.headers["content-type"] == "application/zip"
    bundle = answer.content
    files = zipfile.ZipFile(io.BytesIO(bundle))
    assert files.read(ORIGINAL) == sent
    forwarded = files.read(FORWARDED)
    assert forwarded != sent and b"TraceHeader" in forwarded
    summary = files.read("summary.html").decode()
    for text in ("Hồ sơ chứng cứ văn bản điện tử", packet.document_id or "",
                 "Chờ đơn vị nhận lấy về", "03 – Đã tiếp nhận",
                 "000.00.12.H37 – Sở Thông tin và Truyền thông tỉnh Lạng Sơn",
                 "Kế hoạch chuyển đổi số năm 2026 – Lạng Sơn"):
        assert text in summary
    report = check(bundle)
    assert report.ok, report.problems
    actions = [r["action"] for r in json.loads(files.read("events.json"))]
    assert actions[:3] == ["accepted", "routed", "attempt"] and "awaiting" in actions
    assert report.events == len(actions)

    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle)
    assert main(["evidence", "verify", str(path)]) == 0
    exported = tmp_path / "exported.zip"
    data_dir = str(server.bus.settings.data_dir)
    assert main(["evidence", "export", doc, "-o", str(exported), "--data-dir", data_dir]) == 0
    assert check(exported.read_bytes()).ok
    capsys.readouterr()
    assert main(["evidence", "export", "nope", "-o", str(exported),
                 "--data-dir", data_dir]) == 1
    assert capsys.readouterr().err.startswith("lgsp: NotFound: no document 'nope'")

    edited = rewrite(bundle, "summary.html", lambda b: b.replace(b"03", b"06"))
    assert check(edited).problems == [
        "summary.html: was changed (its SHA-256 is not the manifest's)"]
    forged = rewrite(bundle, FORWARDED, lambda b: b.replace("Lạng".encode(), b"Lang"),
                     manifest=True)
    assert check(forged).problems == [
        f"{FORWARDED}: its SHA-256 is not the one the sealed accepted event "
        f"{json.loads(files.read('events.json'))[0]['id']} records"]

    def later(raw: bytes) -> bytes:
        rows = json.loads(raw)
        rows[2]["at"] += 3600
        return json.dumps(rows).encode()
    moved = rewrite(bundle, "events.json", later, manifest=True)
    problems = check(moved).problems
    assert len(problems) == 1 and problems[0].endswith("(the event was changed)")
    (tmp_path / "moved.zip").write_bytes(moved)
    assert main(["evidence", "verify", str(tmp_path / "moved.zip")]) == 1

    with server.bus.store.engine.begin() as conn:
        conn.execute(events.update().where(events.c.document == doc,
                                           events.c.action == "awaiting")
                     .values(actor="someone-else"))
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", data_dir]) == 1
    out = capsys.readouterr().out
    assert "changed: event" in out and "TAMPERED: 1 findings" in out


def rewrite(bundle: bytes, name: str, change: object, *, manifest: bool = False) -> bytes:
    """``bundle`` with one file changed; with ``manifest``, its hash updated as a forger
    who knows the format would do."""
    assert callable(change)
    source = zipfile.ZipFile(io.BytesIO(bundle))
    files = {n: source.read(n) for n in source.namelist()}
    files[name] = change(files[name])
    if manifest:
        listed = json.loads(files["manifest.json"])
        listed["files"][name] = hashlib.sha256(files[name]).hexdigest()
        files["manifest.json"] = json.dumps(listed).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for n, data in files.items():
            target.writestr(n, data)
    return out.getvalue()


def gauge(server: ApiServer, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    return float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith(name + " ")))


def test_metrics_show_how_far_the_sealer_is_behind(server: ApiServer) -> None:
    for _ in range(3):
        httpx.post(server.url + "/api/v1/edocs", content=b"<x/>")
    server.bus.evidence.refusals.flush(server.bus.store.engine)
    assert gauge(server, "lgsp_audit_unsealed_events") == 3
    assert gauge(server, "lgsp_audit_oldest_unsealed_age_seconds") > 0
    server.bus.evidence.tick()
    assert gauge(server, "lgsp_audit_unsealed_events") == 0
    assert gauge(server, "lgsp_audit_oldest_unsealed_age_seconds") == 0
    assert gauge(server, "lgsp_audit_head_seal") == 1

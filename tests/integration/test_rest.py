"""The REST door through a real server: receipts, status queries, every refusal code.

Each refusal is checked for its HTTP status, its stable code and, where contract.md
promises it, its line and path; and for leaving nothing behind in the database.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bus.app import Bus
from bus.edxml import NS, Edoc, EdocBuilder, packet_bytes, status_for
from bus.store import Store
from bus.store.tables import create_engine, deliveries, documents
from tests.api_server import ApiServer, api_key, raw_http, routes_without_outside, running_bus

CAP = 256 * 1024
EOFFICE = api_key("eoffice")
IOFFICE = api_key("vnpt_ioffice")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_bus(tmp_path_factory.mktemp("rest"), max_body_bytes=CAP) as running:
        yield running


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ApiServer]:
    with running_bus(tmp_path / "bus", max_body_bytes=CAP) as running:
        yield running


def edoc(*to: str, sender: str = "000.00.12.H37", subject: str = "Kế hoạch chuyển đổi số",
         document_id: str | None = None, attachment: bytes | None = None) -> Edoc:
    builder = (EdocBuilder(sender).to(*(to or ("000.00.00.H37",))).subject(subject)
               .signer("Nguyễn Văn A", "Giám đốc").code("12", "KH-STTTT"))
    if document_id:
        builder.document_id(document_id)
    if attachment is not None:
        builder.attach("ke-hoach.pdf", attachment)
    return builder.build()


def post(server: ApiServer, path: str, data: bytes | Iterator[bytes],
         headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + path, content=data, headers=headers, timeout=30)


def count_documents(bus: Bus) -> int:
    with bus.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar_one())


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


# ------------------------------------------------------------------ accepting


def test_edoc_is_accepted_with_a_receipt(server: ApiServer) -> None:
    packet = edoc("000.00.00.H37", "000.00.31.H37")
    response = post(server, "/api/v1/edocs", packet_bytes(packet), EOFFICE)
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["document_id"] == packet.document_id
    assert receipt["kind"] == "edoc" and receipt["existing"] is False
    assert re.fullmatch(r"[0-9a-f]{32}", receipt["id"])
    assert response.headers["location"] == f"/api/v1/edocs/{receipt['id']}"
    routed = {(r["recipient"], r["destination"]) for r in receipt["recipients"]}
    assert routed == {("000.00.00.H37", "vnpt_ioffice"), ("000.00.31.H37", "hcm_egov")}
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["delivery"]) for r in receipt["recipients"])


def test_detail_shows_deliveries_history_and_business_statuses(server: ApiServer) -> None:
    packet = edoc("000.00.00.H37")
    receipt = post(server, "/api/v1/edocs", packet_bytes(packet), EOFFICE).json()
    arrived = status_for(packet, "01", at=datetime(2025, 7, 1, 8, 0, 0))
    first = post(server, "/api/v1/statuses", packet_bytes(arrived), IOFFICE)
    assert first.status_code == 202, first.text
    assert first.json()["kind"] == "status"
    assert first.json()["recipients"][0]["destination"] == "eoffice"
    done = status_for(packet, "06", at=datetime(2025, 7, 2, 9, 30, 0))
    assert post(server, "/api/v1/statuses", packet_bytes(done), IOFFICE).status_code == 202

    response = httpx.get(f"{server.url}/api/v1/edocs/{receipt['id']}", headers=EOFFICE)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["id"] == receipt["id"] and detail["kind"] == "edoc"
    assert detail["sender"] == "000.00.12.H37" and detail["system"] == "eoffice"
    assert detail["document_id"] == packet.document_id
    assert detail["code"] == "12/KH-STTTT" and detail["subject"] == "Kế hoạch chuyển đổi số"
    assert datetime.fromisoformat(detail["received_at"]).tzinfo is not None
    assert [e["action"] for e in detail["history"]] == [
        "accepted", "business_status", "business_status"]  # the two statuses, as received
    assert detail["history"][0]["actor"] == "eoffice"
    (delivery,) = detail["deliveries"]
    assert delivery["recipient"] == delivery["effective_recipient"] == "000.00.00.H37"
    assert delivery["destination"] == "vnpt_ioffice" and delivery["rule"]
    assert delivery["state"] == "pending" and delivery["attempts"] == 0
    assert delivery["last_error"] is None and delivery["delivered_at"] is None
    assert delivery["id"] == receipt["recipients"][0]["delivery"]
    assert [e["action"] for e in delivery["history"]] == ["routed"]
    assert delivery["history"][0]["detail"]["destination"] == "vnpt_ioffice"
    codes = [(s["code"], s["meaning"], s["organ_id"]) for s in detail["business_statuses"]]
    assert codes == [("01", "arrived", "000.00.00.H37"), ("06", "completed", "000.00.00.H37")]
    assert detail["business_statuses"][0]["reported_at"] == "2025-07-01T08:00:00"
    assert [s["code"] for s in detail["latest_statuses"]] == ["06"]


def test_resubmission_returns_the_original_receipt(server: ApiServer) -> None:
    data = packet_bytes(edoc("000.00.00.H37"))
    first = post(server, "/api/v1/edocs", data, EOFFICE)
    before = count_documents(server.bus)
    again = post(server, "/api/v1/edocs", data, EOFFICE)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == {**first.json(), "existing": True}
    assert count_documents(server.bus) == before


def test_same_document_id_with_other_content_is_409(server: ApiServer) -> None:
    original = edoc("000.00.00.H37", document_id="000.00.12.H37,2025/07/01,77/KH")
    first = post(server, "/api/v1/edocs", packet_bytes(original), EOFFICE).json()
    changed = edoc("000.00.00.H37", document_id=original.document_id or "",
                   subject="Nội dung khác")
    body = refused(post(server, "/api/v1/edocs", packet_bytes(changed), EOFFICE), 409,
                   "DuplicateDocumentId")
    assert body["original"] == first["id"]


# ------------------------------------------------------------------ reading


def _ids(server: ApiServer, headers: dict[str, str], **params: Any) -> list[str]:
    response = httpx.get(server.url + "/api/v1/edocs", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_listing_filters_and_paging(fresh: ApiServer) -> None:
    to_office = edoc("000.00.00.H37")
    a = post(fresh, "/api/v1/edocs", packet_bytes(to_office), EOFFICE).json()["id"]
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    b = post(fresh, "/api/v1/edocs", packet_bytes(edoc("000.00.31.H37")), EOFFICE).json()["id"]
    s = post(fresh, "/api/v1/statuses", packet_bytes(status_for(to_office, "03")),
             IOFFICE).json()["id"]

    assert _ids(fresh, EOFFICE) == [s, b, a]
    assert _ids(fresh, EOFFICE, sender="000.00.12.H37") == [b, a]
    assert _ids(fresh, EOFFICE, sender="000.00.00.H37") == [s]
    assert _ids(fresh, EOFFICE, recipient="000.00.31.H37") == [b]
    assert _ids(fresh, EOFFICE, recipient="000.00.12.H37") == [s]
    assert _ids(fresh, EOFFICE, kind="status") == [s]
    assert _ids(fresh, EOFFICE, kind="edoc") == [b, a]
    assert _ids(fresh, EOFFICE, state="pending") == [s, b, a]
    assert _ids(fresh, EOFFICE, state="delivered") == []
    with fresh.bus.store.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.document == b)
                     .values(state="delivered", delivered_at=time.time()))
    assert _ids(fresh, EOFFICE, state="delivered") == [b]
    assert _ids(fresh, EOFFICE, state="pending") == [s, a]
    since = datetime.fromtimestamp(middle, UTC).isoformat()
    assert _ids(fresh, EOFFICE, since=since) == [s, b]
    assert _ids(fresh, EOFFICE, until=str(middle)) == [a]
    assert _ids(fresh, EOFFICE, since=since.replace("+00:00", "Z"), kind="edoc") == [b]

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(fresh.url + "/api/v1/edocs", headers=EOFFICE, params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [s, b, a]
    page = httpx.get(fresh.url + "/api/v1/edocs", headers=EOFFICE, params={"limit": 2}).json()
    assert [i["id"] for i in page["items"]] == [s, b] and page["next_cursor"]
    item = page["items"][1]
    assert item["deliveries"] == [{"recipient": "000.00.31.H37",
                                   "effective_recipient": "000.00.31.H37",
                                   "destination": "hcm_egov", "state": "delivered"}]


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 501}, {"limit": "many"}, {"state": "lost"}, {"kind": "memo"},
    {"since": "yesterday"}, {"since": "2025-07-01T08:00:00"}, {"until": "nan"},
    {"cursor": "not-a-cursor"}, {"since": "2025-07-02T00:00:00Z", "until": "2025-07-01T00:00Z"},
])
def test_bad_listing_parameters_are_400(server: ApiServer, params: dict[str, Any]) -> None:
    response = httpx.get(server.url + "/api/v1/edocs", headers=EOFFICE, params=params)
    body = refused(response, 400, "InvalidRequest")
    assert next(iter(params)) in body["message"]


def test_unknown_document_is_404(server: ApiServer) -> None:
    response = httpx.get(server.url + "/api/v1/edocs/" + "0" * 32, headers=EOFFICE)
    refused(response, 404, "NotFound")


# ------------------------------------------------------------------ refusals

GOOD = packet_bytes(edoc("000.00.00.H37", attachment=b"%PDF-1.4 scanned"))
_ENCODED = re.search(rb"ContentTransferEncoded[^>]*>([^<]+)<", GOOD)
assert _ENCODED is not None
DEEP = (f'<edXML xmlns="{NS}">'.encode() + b"<a>" * 200 + b"</a>" * 200 + b"</edXML>")

BAD_INPUTS: dict[str, tuple[str, bytes, int, str]] = {
    "not xml": ("/api/v1/edocs", b"this is not XML at all", 400, "MalformedXml"),
    "truncated": ("/api/v1/edocs", GOOD[: len(GOOD) // 2], 400, "MalformedXml"),
    "mismatched": ("/api/v1/edocs", GOOD.replace(b"</edXML:Subject>", b"</Subject>"), 400,
                   "MalformedXml"),
    "doctype": ("/api/v1/edocs", GOOD.replace(
        b"?>\n", b'?>\n<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n', 1),
        400, "DtdForbidden"),
    "too deep": ("/api/v1/edocs", DEEP, 400, "TooDeep"),
    "other namespace": ("/api/v1/edocs", GOOD.replace(NS.encode(), b"urn:other"), 422,
                        "UnsupportedPacket"),
    "status to edocs": ("/api/v1/edocs", packet_bytes(status_for(edoc("000.00.12.H37",
                        sender="000.00.00.H37"), "01")), 422, "UnsupportedPacket"),
    "edoc to statuses": ("/api/v1/statuses", GOOD, 422, "UnsupportedPacket"),
    "bad attachment": ("/api/v1/edocs", GOOD.replace(_ENCODED.group(1), b"@@@@not-base64"),
                       422, "AttachmentInvalid"),
    "identifier with space": ("/api/v1/edocs", GOOD.replace(
        b"<edXML:OrganId>000.00.00.H37<", b"<edXML:OrganId>000 00 00 H37<"), 422,
        "InvalidIdentifier"),
    "identifier too long": ("/api/v1/edocs", GOOD.replace(
        b"<edXML:OrganId>000.00.00.H37<", b"<edXML:OrganId>" + b"1" * 36 + b"<"), 422,
        "InvalidIdentifier"),
    "sent as another organisation": ("/api/v1/edocs", packet_bytes(
        edoc("000.00.12.H37", sender="000.00.00.H37")), 403, "SenderMismatch"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_with_its_code(server: ApiServer, case: str) -> None:
    path, data, status, code = BAD_INPUTS[case]
    before = count_documents(server.bus)
    started = time.monotonic()
    body = refused(post(server, path, data, EOFFICE), status, code)
    assert time.monotonic() - started < 1.0
    assert count_documents(server.bus) == before
    if code in ("InvalidIdentifier", "AttachmentInvalid"):
        assert body["line"] > 0 and body["path"].startswith("/edXML/")


def test_schema_invalid_names_line_and_path(server: ApiServer) -> None:
    data = re.sub(rb"<edXML:Subject>[^<]*</edXML:Subject>", b"", GOOD)
    body = refused(post(server, "/api/v1/edocs", data, EOFFICE), 422, "SchemaInvalid")
    assert body["line"] == 5
    assert body["path"] == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def test_schema_invalid_bad_date_names_line_and_path(server: ApiServer) -> None:
    bad_date = re.sub(rb"<edXML:PromulgationDate>[^<]*<", b"<edXML:PromulgationDate>2025-13-45<",
                      GOOD)
    body = refused(post(server, "/api/v1/edocs", bad_date, EOFFICE), 422, "SchemaInvalid")
    assert body["line"] > 5 and "PromulgationDate" in body["path"]


def test_unknown_recipient_without_a_default_route(tmp_path: Path) -> None:
    routes = routes_without_outside(tmp_path)
    with running_bus(tmp_path / "bus", routes=routes) as strict:
        data = packet_bytes(edoc("000.00.99.H99"))
        refused(post(strict, "/api/v1/edocs", data, EOFFICE), 422, "UnknownRecipient")
        assert count_documents(strict.bus) == 0
        hosted = post(strict, "/api/v1/edocs", packet_bytes(edoc("000.00.00.H37")), EOFFICE)
        assert hosted.status_code == 202


# ------------------------------------------------------------------ the size cap


def _head(path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: bus\r\nX-API-Key: dev-eoffice-key\r\n"
            f"Content-Type: application/xml\r\n{extra}\r\n").encode()


def test_declared_length_over_the_cap_is_refused_before_the_body(server: ApiServer) -> None:
    answer = raw_http(server.url, _head("/api/v1/edocs", f"Content-Length: {CAP + 1}\r\n"))
    assert answer.status == 413 and answer.seconds < 1.0
    assert b'"code":"PayloadTooLarge"' in answer.body


def test_chunked_body_stops_being_read_past_the_cap(server: ApiServer) -> None:
    chunk = b"%x\r\n%s\r\n" % (32 * 1024, b"<" * 32 * 1024)
    never_ending = _head("/api/v1/edocs", "Transfer-Encoding: chunked\r\n") + chunk * 9
    answer = raw_http(server.url, never_ending)
    assert answer.status == 413 and b'"code":"PayloadTooLarge"' in answer.body


def test_oversized_bodies_from_a_client(server: ApiServer) -> None:
    def pieces() -> Iterator[bytes]:
        for _ in range(CAP // 10_000 + 2):
            yield b" " * 10_000

    refused(post(server, "/api/v1/edocs", pieces(), EOFFICE), 413, "PayloadTooLarge")
    refused(post(server, "/api/v1/statuses", b" " * (CAP + 1), EOFFICE), 413, "PayloadTooLarge")
    assert post(server, "/api/v1/edocs", b" " * CAP, EOFFICE).json()["code"] == "MalformedXml"


# ------------------------------------------------------------------ operations


def test_openapi_documents_the_interface(server: ApiServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/api/v1/edocs", "/api/v1/edocs/{id}", "/api/v1/statuses", "/healthz", "/readyz",
            "/metrics", "/soap"} <= set(spec["paths"])
    post_edoc = spec["paths"]["/api/v1/edocs"]["post"]
    assert "application/xml" in post_edoc["requestBody"]["content"]
    assert {"202", "200", "400", "401", "403", "409", "413", "422"} <= set(post_edoc["responses"])
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"]}
    assert {"Receipt", "Refusal", "DocumentDetail", "DocumentPage"} <= set(
        spec["components"]["schemas"])
    assert {"get"} <= set(spec["paths"]["/api/v1/edocs"])


def test_health_and_readiness(server: ApiServer, monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert {k: body[k] for k in ("status", "checks", "development")} == {
        "status": "ready", "checks": {"database": "ok", "routing": "ok", "schemas": "ok",
                                      "vxp_systems": "ok"},
        "development": True}
    # the sample routes' systems are not running here: named, but the bus stays ready
    assert set(body["destinations"]) == set(server.bus.reloader.current().table.destinations)
    assert body["destinations"]["vnpt_ioffice"] == "ok" and "eoffice" in body["degraded"]

    def broker() -> str | None:
        return "broker unreachable"

    monkeypatch.setattr(server.bus, "readiness_checks", [broker, lambda: None], raising=False)
    failing = httpx.get(server.url + "/readyz")
    assert failing.status_code == 503
    assert failing.json()["checks"]["broker"] == "broker unreachable"
    assert failing.json()["checks"]["check_2"] == "ok"
    monkeypatch.setattr(server.bus, "readiness_checks", [], raising=False)

    gone = tmp_path / "gone"
    gone.mkdir()
    lost = Store(create_engine(f"sqlite:///{gone / 'lgsp.db'}"))
    gone.rmdir()
    monkeypatch.setattr(server.bus, "store", lost)
    failing = httpx.get(server.url + "/readyz")
    assert failing.status_code == 503
    assert failing.json()["checks"]["database"] != "ok"
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_metrics_count_receipts_and_refusals(server: ApiServer) -> None:
    post(server, "/api/v1/edocs", packet_bytes(edoc("000.00.00.H37")), EOFFICE)
    post(server, "/api/v1/edocs", b"<broken", EOFFICE)
    post(server, "/api/v1/edocs", b"<broken", {"X-API-Key": "nope"})
    text = httpx.get(server.url + "/metrics").text
    assert re.search(r'lgsp_documents_received_total\{channel="rest",kind="edoc"\} [1-9]', text)
    assert 'lgsp_documents_refused_total{channel="rest",code="MalformedXml"}' in text
    assert 'lgsp_documents_refused_total{channel="rest",code="Unauthenticated"}' in text


def test_unexpected_failure_is_500_without_details(server: ApiServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(server.bus, "submit", explode)
    response = post(server, "/api/v1/edocs", GOOD, {**EOFFICE, "X-Request-Id": "req-4242"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "InternalError" and body["request_id"] == "req-4242"
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-4242"
    logged = [line for line in server.log_text().splitlines() if "req-4242" in line]
    assert any("hunter2" in line and "Traceback" in line for line in logged)


def test_slow_submission_does_not_block_the_event_loop(server: ApiServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = server.bus.submit

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(server.bus, "submit", slow)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(post(
        server, "/api/v1/edocs", packet_bytes(edoc("000.00.00.H37")), EOFFICE).status_code))
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert time.monotonic() - started < 1.0
    worker.join(10)
    assert results == [202]

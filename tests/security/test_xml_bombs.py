"""Issue 11's hostile-input battery, at every XML door of a running bus.

Doors: REST ``POST /api/v1/edocs``, SOAP ``/soap`` (the packet inside ``SendEdoc``, and
the envelope itself), and the axis facade's ``sendEdoc`` (a signed raw edXML body).
Each case asserts the code and that the refusal came back in under a second; the
file-system probes also assert that the probed file and directory were not opened
(inotify and an audit hook, see xml_attacks.py) and that the answer is byte-for-byte the
same whether the named path is a file, a directory or missing.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from lxml import etree

from bus import vxp
from bus.edxml import EdocBuilder, packet_bytes
from bus.store.tables import documents
from tests.api_server import ApiServer, api_key, running_bus
from tests.edxml_factory import MINIMAL_EDOC
from tests.memory_probe import own_mb as rss_mb
from tests.security.xml_attacks import (
    SECURITY_BOUND,
    WIDE_ENCODINGS,
    billion_laughs,
    empty_elements,
    encode,
    nested,
    parameter_entity,
    probe_targets,
    watch,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_NS = "urn:lgsp-bus:soap:v1"
VXP_CREDS = vxp.Credentials("000.00.00.H37", "dev-vnpt_ioffice-vxp-secret")
MB = 1024 * 1024
# The 10M-element bomb is 40 MB on the wire (53 MB as SOAP base64): loopback transfer and
# the bus reading the body are part of the round trip, the refusal itself is not.
BIG_BOUND = 4.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_bus(tmp_path_factory.mktemp("bombs")) as running:
        yield running


@dataclass(frozen=True)
class Answer:
    code: str
    body: bytes
    seconds: float


def _timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = send()
    return response, time.perf_counter() - start


def rest(server: ApiServer, packet: bytes) -> Answer:
    response, seconds = _timed(lambda: httpx.post(
        server.url + "/api/v1/edocs", content=packet, headers=api_key("eoffice"), timeout=30))
    assert 400 <= response.status_code < 500, response.text
    return Answer(response.json()["code"], response.content, seconds)


def _soap_code(response: httpx.Response) -> str:
    assert response.status_code == 500, response.text
    root = etree.fromstring(response.content)
    return str(root.findtext(f".//{{{SOAP_NS}}}code"))


def envelope(body: str, *, key: str | None = "dev-eoffice-key",
             declaration: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> str:
    header = (f"<soap:Header><lgsp:ApiKey>{key}</lgsp:ApiKey></soap:Header>"
              if key else "")
    return (f'{declaration}<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:lgsp="{SOAP_NS}">'
            f"{header}<soap:Body>{body}</soap:Body></soap:Envelope>")


def send_edoc(packet: bytes) -> str:
    return (f"<lgsp:SendEdoc><lgsp:packet>{base64.b64encode(packet).decode()}"
            "</lgsp:packet></lgsp:SendEdoc>")


def soap_raw(server: ApiServer, data: bytes, headers: dict[str, str] | None = None) -> Answer:
    response, seconds = _timed(lambda: httpx.post(
        server.url + "/soap", content=data, timeout=30,
        headers={"Content-Type": "text/xml; charset=utf-8", **(headers or {})}))
    return Answer(_soap_code(response), response.content, seconds)


def soap(server: ApiServer, packet: bytes) -> Answer:
    return soap_raw(server, envelope(send_edoc(packet)).encode())


def axis(server: ApiServer, packet: bytes) -> Answer:
    signed = vxp.send_edoc(VXP_CREDS, packet, sender="000.00.00.H37",
                           recipients=["000.00.12.H37"])
    response, seconds = _timed(lambda: httpx.post(
        signed.url(server.url + "/vxp"), content=signed.body, headers=signed.headers,
        timeout=30))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "FAIL", answer
    return Answer(str(answer["ErrorCode"]), response.content, seconds)


DOORS: dict[str, Callable[[ApiServer, bytes], Answer]] = {
    "rest": rest, "soap": soap, "vxp": axis}


def stored(server: ApiServer) -> int:
    with server.bus.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar_one())


# ---------------------------------------------------------------- packets, at every door


@pytest.mark.parametrize("door", list(DOORS))
def test_the_doors_read_the_template(server: ApiServer, door: str) -> None:
    """Every case is a hostile edit of this packet (in every encoding); the reader must
    accept it, so that each refusal below is about the attack. Its sender is hosted by
    no caller, so it stops at the sender check, past every XML guard."""
    for encoding in ("utf-8", *WIDE_ENCODINGS):
        assert DOORS[door](server, encode(MINIMAL_EDOC, encoding)).code == "SenderMismatch"


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("count", [1_000_000, 10_000_000], ids=["1M", "10M"])
def test_element_bomb_is_too_many_elements(server: ApiServer, door: str, count: int) -> None:
    bomb = empty_elements(count)
    before_docs, before_mb = stored(server), rss_mb()
    answer = DOORS[door](server, bomb)
    assert answer.code == "TooManyElements"
    assert answer.seconds < (SECURITY_BOUND if count == 1_000_000 else BIG_BOUND)
    assert stored(server) == before_docs
    grown = rss_mb() - before_mb
    assert grown < 4 * len(bomb) / MB + 50, f"resident set grew {grown:.0f} MB"


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("encoding", ["utf-16", "utf-32-be"])
def test_wide_element_bomb_is_too_many_elements(server: ApiServer, door: str,
                                                encoding: str) -> None:
    answer = DOORS[door](server, encode(empty_elements(1_000_000).decode(), encoding))
    assert (answer.code, answer.seconds < SECURITY_BOUND) == ("TooManyElements", True)


@pytest.mark.parametrize("door", list(DOORS))
def test_nesting_past_256_levels_is_too_deep(server: ApiServer, door: str) -> None:
    answer = DOORS[door](server, nested(300))
    assert (answer.code, answer.seconds < SECURITY_BOUND) == ("TooDeep", True)


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("encoding", WIDE_ENCODINGS)
def test_billion_laughs_in_wide_encodings_is_dtd_forbidden(server: ApiServer, door: str,
                                                           encoding: str) -> None:
    answer = DOORS[door](server, encode(billion_laughs(), encoding))
    assert (answer.code, answer.seconds < SECURITY_BOUND) == ("DtdForbidden", True)


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("encoding", ["utf-8", *WIDE_ENCODINGS])
def test_file_probe_reads_nothing_and_answers_alike(server: ApiServer, tmp_path: Path,
                                                    door: str, encoding: str) -> None:
    with probe_targets(tmp_path) as targets:
        answers: dict[str, bytes] = {}
        for name, path in targets.items():
            packet = encode(parameter_entity(str(path)), encoding)
            with watch([targets["file"], targets["directory"]]) as seen:
                answer = DOORS[door](server, packet)
            assert seen == [], f"{name}: {seen}"
            assert (answer.code, answer.seconds < SECURITY_BOUND) == ("DtdForbidden", True)
            answers[name] = answer.body
        assert answers["file"] == answers["directory"] == answers["missing"]


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-32-le"])
def test_endless_device_is_refused_at_once(server: ApiServer, door: str, device: str,
                                           encoding: str) -> None:
    answer = DOORS[door](server, encode(parameter_entity(device), encoding))
    assert (answer.code, answer.seconds < SECURITY_BOUND) == ("DtdForbidden", True)
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


# ---------------------------------------------------------------- the SOAP envelope itself


def wide_envelope(encoding: str, doctype: str, *, key: str | None) -> bytes:
    text = envelope("<lgsp:GetEdocStatus><lgsp:id>x</lgsp:id></lgsp:GetEdocStatus>", key=key)
    text = text.replace("?>\n", "?>\n" + doctype + "\n", 1)
    return encode(text, encoding)


@pytest.mark.parametrize("key", ["dev-eoffice-key", None], ids=["with-key", "no-key"])
@pytest.mark.parametrize("encoding", WIDE_ENCODINGS)
def test_envelope_file_probe_reads_nothing_and_answers_alike(
        server: ApiServer, tmp_path: Path, encoding: str, key: str | None) -> None:
    with probe_targets(tmp_path) as targets:
        answers: dict[str, bytes] = {}
        for name, path in [*targets.items(), ("zero", Path("/dev/zero")),
                           ("urandom", Path("/dev/urandom"))]:
            doctype = f'<!DOCTYPE x [<!ENTITY % p SYSTEM "file://{path}"> %p;]>'
            with watch([targets["file"], targets["directory"]]) as seen:
                answer = soap_raw(server, wide_envelope(encoding, doctype, key=key))
            assert seen == [], f"{name}: {seen}"
            assert (answer.code, answer.seconds < SECURITY_BOUND) == ("DtdForbidden", True)
            answers[name] = answer.body
        assert len(set(answers.values())) == 1, answers


def test_forty_dev_zero_probes_at_once_stall_nothing(server: ApiServer) -> None:
    """Issue 11 item 1: 40 envelopes naming /dev/zero kept 40 worker threads reading
    forever; every REST call stalled and SIGTERM no longer stopped the process."""
    data = wide_envelope("utf-16", '<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]>',
                         key=None)
    codes: list[str] = []

    def probe() -> None:
        codes.append(soap_raw(server, data).code)

    senders = [threading.Thread(target=probe) for _ in range(40)]
    start = time.perf_counter()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    assert codes == ["DtdForbidden"] * 40
    assert time.perf_counter() - start < 10 * SECURITY_BOUND
    listed, seconds = _timed(lambda: httpx.get(server.url + "/api/v1/edocs",
                                               headers=api_key("eoffice"), timeout=10))
    assert listed.status_code == 200 and seconds < SECURITY_BOUND


@pytest.mark.parametrize("key", ["dev-eoffice-key", None], ids=["with-key", "no-key"])
@pytest.mark.parametrize("encoding", WIDE_ENCODINGS)
def test_envelope_billion_laughs_is_dtd_forbidden(server: ApiServer, encoding: str,
                                                  key: str | None) -> None:
    doctype = billion_laughs().split("\n")[1]
    answer = soap_raw(server, wide_envelope(encoding, doctype, key=key))
    assert (answer.code, answer.seconds < SECURITY_BOUND) == ("DtdForbidden", True)


def test_envelope_nesting_past_256_levels_is_too_deep(server: ApiServer) -> None:
    answer = soap_raw(server, envelope("<a>" * 300 + "</a>" * 300).encode())
    assert (answer.code, answer.seconds < SECURITY_BOUND) == ("TooDeep", True)


@pytest.mark.parametrize("count", [1_000_000, 10_000_000], ids=["1M", "10M"])
def test_envelope_element_bomb_is_too_many_elements(server: ApiServer, count: int) -> None:
    data = envelope("<a/>" * count).encode()
    before = rss_mb()
    answer = soap_raw(server, data)
    assert answer.code == "TooManyElements"
    assert answer.seconds < (SECURITY_BOUND if count == 1_000_000 else BIG_BOUND)
    assert rss_mb() - before < 4 * len(data) / MB + 50


# ---------------------------------------------------------------- SOAP: credential first


def _post_partially(server: ApiServer, declared: int, sent: bytes,
                    timeout_s: float = 5.0) -> tuple[bytes, float]:
    """Declares ``declared`` bytes, sends only ``sent``, and reads the answer: a server
    that waited for the rest of the body would time out here."""
    host, port = server.url.removeprefix("http://").split(":")
    head = (f"POST /soap HTTP/1.1\r\nHost: bus\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    start = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
        conn.sendall(head + sent)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            match = re.search(rb"content-length: (\d+)\r\n", data, re.IGNORECASE)
            end = data.find(b"\r\n\r\n")
            if match and end >= 0 and len(data) >= end + 4 + int(match.group(1)):
                break
    return data, time.perf_counter() - start


def test_no_credential_is_refused_after_a_prefix_only(server: ApiServer) -> None:
    bomb = envelope("<a/>" * 10_000_000, key=None).encode()
    answer, seconds = _post_partially(server, len(bomb), bomb[:256 * 1024])
    assert b" 500 " in answer.split(b"\r\n", 1)[0]
    assert b"<lgsp:code>Unauthenticated</lgsp:code>" in answer
    assert seconds < SECURITY_BOUND


def test_credential_must_come_within_the_prefix(server: ApiServer) -> None:
    late = envelope("", key=None).replace(
        "<soap:Body>", "<soap:Header>" + "<pad/>" * 20_000 + "<lgsp:ApiKey>dev-eoffice-key"
        "</lgsp:ApiKey></soap:Header><soap:Body>")
    data = late.encode()
    answer, seconds = _post_partially(server, len(data), data[:80 * 1024])
    assert b"<lgsp:code>Unauthenticated</lgsp:code>" in answer and seconds < SECURITY_BOUND


def test_unauthenticated_bombs_do_not_grow_the_bus(server: ApiServer) -> None:
    """Issue 11 item 2: a 38 MB envelope of empty elements without a credential kept
    ~1.3 GB each, and took 11 s. Whole bodies are sent here (in a thread, as a client
    would); the client's own buffers make the resident set swing by tens of MB."""
    bomb = envelope("<a/>" * 10_000_000, key=None).encode()
    before = rss_mb()
    for _ in range(3):
        answer: dict[str, str] = {}

        def post(answer: dict[str, str] = answer) -> None:
            try:
                response = httpx.post(server.url + "/soap", content=bomb, timeout=30)
                answer["code"] = _soap_code(response)
            except httpx.HTTPError as exc:  # the bus may answer and close before all is sent
                answer["error"] = type(exc).__name__

        sender = threading.Thread(target=post)
        sender.start()
        sender.join(30)
        assert answer.get("code", "Unauthenticated") == "Unauthenticated", answer
    grown = rss_mb() - before
    assert grown < 300, f"resident set grew {grown:.0f} MB for 3 unauthenticated bombs"


def test_a_valid_key_in_the_prefix_still_sends(server: ApiServer) -> None:
    packet = packet_bytes(EdocBuilder("000.00.12.H37").to("000.00.00.H37").subject("S")
                          .signer("D").build())
    for encoding in ("utf-8", "utf-16", "utf-16-be"):
        data = encode(envelope(send_edoc(packet)), encoding)
        response = httpx.post(server.url + "/soap", content=data, timeout=30)
        assert response.status_code == 200, (encoding, response.text)
        assert b"<lgsp:kind>edoc</lgsp:kind>" in response.content


def test_a_probe_fault_names_no_path(server: ApiServer) -> None:
    """The fault of a probe names no path and no libxml2 detail a prober could use."""
    answer = soap_raw(server, wide_envelope(
        "utf-16", '<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>', key=None))
    assert answer.code == "DtdForbidden" and b"passwd" not in answer.body

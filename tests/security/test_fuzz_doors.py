"""Issue 11's door fuzz: mutated packets, SOAP envelopes and signed axis requests, sent
over real sockets to a running bus, each answered with a code, fast, and harmlessly.

Hypothesis draws each request from a valid one (fuzz_inputs.py for the XML mutations;
here the SOAP- and VXP-level ones: base64 damage, keys moved or wrong, headers dropped,
duplicated or altered, bodies re-signed after mutation so that they reach the parser,
odd Content-Types, Content-Lengths that lie). The keys are mostly valid, so requests go
past authentication into the reader, the schema, routing and storage. For every answer:

* it is coded: REST JSON with a ``code`` of the contract's table (or a 2xx receipt);
  SOAP a response or a Fault whose detail/Error/code is such a code (HTTP 500 is what
  SOAP 1.1 requires for a fault, so there the code must not be InternalError); /vxp the
  SDK's JSON with non-null status/ErrorCode/ErrorDesc, or for downloadEdoc bytes or an
  empty body with X-Lgsp-Error-Code; never a bare 500;
* it came back in under :data:`BOUND` seconds, measured per request around the socket
  round trip (megabyte bodies included): the contract's "under 1 s, bombs included";
* nothing was opened and nothing connected (fuzz_watch.py: audit hook, inotify on bait
  paths written into the attacks, a bait listener for URLs), and no answer quotes
  /etc/passwd;
* the resident set is back within :data:`RSS_MARGIN_MB` of where it started.

Bounded for CI: ``derandomize=True`` (the same examples on every run, so a failure
reproduces), no example database, :data:`EXAMPLES` per door (about 20-30 s a door on a
loaded two-core machine). A longer local run::

    LGSP_FUZZ_EXAMPLES=2000 python -m pytest tests/security/test_fuzz_doors.py -q -s

``LGSP_FUZZ_SEED=<n>`` replaces derandomisation with that seed, to explore new ground.
The figures (examples per door, slowest answer, codes seen, RSS before/after) are
printed at the end of each door's test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.configuration import storage_directory
from lxml import etree

from bus import errors, vxp
from bus.api.vxp import ERROR_CODE_HEADER, operation_of
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.tables import deliveries
from tests.api_server import ApiServer, running_bus
from tests.edxml_factory import MINIMAL_EDOC, MINIMAL_STATUS, small_pdf
from tests.security.fuzz_inputs import HOSTILE_TEXT, mutated
from tests.security.fuzz_watch import Bait, rss_mb, sentinel
from tests.security.xml_attacks import SECURITY_BOUND

EXAMPLES: Final = int(os.environ.get("LGSP_FUZZ_EXAMPLES", "300"))
SEED: Final = os.environ.get("LGSP_FUZZ_SEED")
BOUND: Final = SECURITY_BOUND
RSS_MARGIN_MB: Final = 64.0
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
SOAP_NS: Final = "urn:lgsp-bus:soap:v1"
EOFFICE_ORG: Final = "000.00.12.H37"
IOFFICE_ORG: Final = "000.00.00.H37"
CREDS: Final = vxp.Credentials(IOFFICE_ORG, "dev-vnpt_ioffice-vxp-secret")
KNOWN_CODES: Final = frozenset({c.code for c in errors.ALL_CODES} | set(vxp.ErrorCode)
                               ) - {"InternalError", "ConfigInvalid"}
_ANSWER_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True,
                                        load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class Call:
    """One request: sent with httpx, or as ``raw`` bytes when its framing lies."""

    method: str
    path: str
    headers: list[tuple[str, bytes]]
    body: bytes
    raw: bytes | None = None
    note: str = ""


@dataclass
class Figures:
    examples: int = 0
    slowest: float = 0.0
    slowest_note: str = ""
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


@dataclass
class Fuzz:
    server: ApiServer
    folder: Path
    documents: list[str]
    mailbox: list[str]
    edocs: list[bytes]
    statuses: list[bytes]
    axis_edocs: list[bytes]
    axis_statuses: list[bytes]


# ---------------------------------------------------------------- the bus under fuzz


def _edoc(sender: str, recipient: str, n: int, *, attach: bool = False) -> Edoc:
    builder = (EdocBuilder(sender).to(recipient).code(str(100 + n), "UBND-VP")
               .subject(f"V/v thử nghiệm số {n}").signer("Nguyễn Văn A", "Chánh văn phòng"))
    if attach:
        builder = builder.attach("congvan.pdf", small_pdf())
    return builder.build()


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    """A bus with documents and a mailbox to aim at: eoffice sends to VNPT-iOffice, whose
    deliveries are put ``awaiting`` as the worker would leave them for a mailbox. The
    bases are packets each door's caller may send (and two it may not: the templates'
    sender is hosted by nobody), so unmutated ones are accepted."""
    root = tmp_path_factory.mktemp("fuzz")
    with running_bus(root / "bus") as server:
        to_ioffice = [_edoc(EOFFICE_ORG, IOFFICE_ORG, n, attach=n == 0) for n in range(3)]
        documents = [server.bus.submit(packet_bytes(e), system="eoffice",
                                       channel="rest").document for e in to_ioffice]
        with server.bus.store.engine.begin() as conn:
            conn.execute(sa.update(deliveries).where(deliveries.c.document.in_(documents))
                         .values(state="awaiting"))
            mailbox = list(conn.execute(sa.select(deliveries.c.id).where(
                deliveries.c.document.in_(documents))).scalars())
        assert mailbox, "the seeded documents have no deliveries"
        to_eoffice = _edoc(IOFFICE_ORG, EOFFICE_ORG, 7)
        yield Fuzz(
            server, root, documents=documents, mailbox=mailbox,
            edocs=[packet_bytes(to_ioffice[1]), packet_bytes(_edoc(EOFFICE_ORG, IOFFICE_ORG, 8,
                                                                   attach=True)),
                   MINIMAL_EDOC.encode()],
            statuses=[packet_bytes(status_for(to_eoffice, "03")), MINIMAL_STATUS.encode()],
            axis_edocs=[packet_bytes(to_eoffice), packet_bytes(_edoc(IOFFICE_ORG, EOFFICE_ORG, 9))],
            axis_statuses=[packet_bytes(status_for(to_ioffice[2], "03"))])


def _raw_exchange(server: ApiServer, data: bytes) -> tuple[int, dict[str, str], bytes, float]:
    """Like tests.api_server.raw_http, but a server that refuses before the whole body is
    sent (its lingering close reads the rest) must still be heard: a failed send is
    followed by reading the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    start = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(data)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                received += chunk
    seconds = time.perf_counter() - start
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"no answer: {received[:200]!r}"
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body[:int(headers.get("content-length", "0"))], \
        seconds


def _send(client: httpx.Client, server: ApiServer, call: Call) -> tuple[int, dict[str, str],
                                                                        bytes, float]:
    if call.raw is not None:
        return _raw_exchange(server, call.raw)
    start = time.perf_counter()
    try:
        response = client.request(call.method, server.url + call.path,
                                  headers=[(k.encode("latin-1"), v) for k, v in call.headers],
                                  content=call.body or None)
    except httpx.LocalProtocolError:  # a header value httpx will not send: send it as is
        return _raw_exchange(server, _framed(call, f"Content-Length: {len(call.body)}"))
    seconds = time.perf_counter() - start
    return response.status_code, {k.lower(): v for k, v in response.headers.items()}, \
        response.content, seconds


def _raw(call: Call, draw: st.DrawFn) -> Call:
    """The same request with framing that lies: a short, non-numeric, negative or
    doubled Content-Length, or one beside chunked encoding."""
    length = len(call.body)
    framing = draw(st.sampled_from([
        f"Content-Length: {draw(st.integers(0, max(0, length - 1)))}",
        "Content-Length: 12abc", "Content-Length: -5", "Content-Length: 0x10",
        f"Content-Length: {length}\r\nContent-Length: {length + 7}",
        f"Content-Length: {length}\r\nTransfer-Encoding: chunked",
    ]))
    return Call(call.method, call.path, call.headers, call.body, _framed(call, framing),
                call.note + " raw")


def _framed(call: Call, framing: str) -> bytes:
    head = "".join(f"{k}: {v.decode('latin-1')}\r\n" for k, v in call.headers
                   if k.lower() not in ("content-length", "transfer-encoding", "connection"))
    return (f"{call.method} {call.path} HTTP/1.1\r\nHost: bus\r\n{head}{framing}\r\n"
            "Connection: close\r\n\r\n").encode("latin-1") + call.body


ODD_CONTENT_TYPES: Final = ("application/json", "text/xml; charset=utf-16", "text/plain",
                            "multipart/related; boundary=x", "text/xml; charset=bogus", "",
                            "application/soap+xml", "application/xml; charset=utf-32be")


def _maybe_framing(draw: st.DrawFn, call: Call) -> Call:
    choice = draw(st.sampled_from(["as-is"] * 8 + ["framing", "content-type"]))
    if choice == "framing":
        return _raw(call, draw)
    if choice == "content-type":
        odd = draw(st.sampled_from(ODD_CONTENT_TYPES)).encode()
        headers = [(k, v) for k, v in call.headers if k.lower() != "content-type"]
        return Call(call.method, call.path, [*headers, ("Content-Type", odd)], call.body,
                    note=call.note + " content-type")
    return call


# ---------------------------------------------------------------- REST


@st.composite
def rest_calls(draw: st.DrawFn, fuzz: Fuzz, bait: Bait) -> Call:
    status = draw(st.booleans())
    base = draw(st.sampled_from(fuzz.statuses if status else fuzz.edocs))
    body = draw(st.one_of(mutated(base, bait), st.just(base)))
    key = draw(st.sampled_from(["dev-eoffice-key"] * 6 + ["dev-vnpt_ioffice-key", "", "wrong"]))
    headers = [("Content-Type", b"application/xml")]
    if key:
        headers.append(("X-API-Key", key.encode()))
    if draw(st.sampled_from([False] * 5 + [True])):
        status = not status  # a packet of the other kind at each door
    path = "/api/v1/statuses" if status else "/api/v1/edocs"
    return _maybe_framing(draw, Call("POST", path, headers, body, note=f"rest {path}"))


def check_rest(status: int, headers: dict[str, str], body: bytes) -> str:
    answer = json.loads(body)
    if 200 <= status < 300:
        assert isinstance(answer.get("id"), str), answer
        return str(status)
    assert status < 500 or status in (503, 507), (status, answer)
    assert answer.get("code") in KNOWN_CODES, answer
    return str(answer["code"])


# ---------------------------------------------------------------- SOAP


def envelope(operation: str, content: str, *, key: str | None, env: str = SOAP_ENV) -> bytes:
    header = f"<soap:Header><lgsp:ApiKey>{key}</lgsp:ApiKey></soap:Header>" if key else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="{env}" '
            f'xmlns:lgsp="{SOAP_NS}">{header}<soap:Body><lgsp:{operation}>{content}'
            f"</lgsp:{operation}></soap:Body></soap:Envelope>").encode()


@st.composite
def _base64_damage(draw: st.DrawFn, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    junk = draw(st.sampled_from(["!", "=", "==", "-_", "\x00", "é", "&#65;", "<a/>", "\n" * 50,
                                 " ", "A", "====", "%3D", "\ufeff", "]]>"]))
    return draw(st.sampled_from([text[:at] + junk + text[at:], text[:at], text.rstrip("="),
                                 "\n".join(text[i:i + 76] for i in range(0, len(text), 76)),
                                 text.replace("+", "-").replace("/", "_")]))


@st.composite
def soap_calls(draw: st.DrawFn, fuzz: Fuzz, bait: Bait) -> Call:
    operation = draw(st.sampled_from(["SendEdoc", "SendEdoc", "SendStatus", "GetEdocStatus"]))
    site = draw(st.sampled_from(["packet", "packet", "envelope", "base64", "none"]))
    if operation == "GetEdocStatus":
        document = draw(st.one_of(st.sampled_from(fuzz.documents), st.sampled_from(HOSTILE_TEXT),
                                  st.text(max_size=60)))
        content = "<lgsp:id>" + document.replace("&", "&amp;").replace("<", "&lt;") + "</lgsp:id>"
    else:
        base = draw(st.sampled_from(fuzz.edocs if operation == "SendEdoc" else fuzz.statuses))
        packet = draw(mutated(base, bait)) if site == "packet" else base
        encoded = base64.b64encode(packet).decode()
        if site == "base64":
            encoded = draw(_base64_damage(encoded))
        content = f"<lgsp:packet>{encoded}</lgsp:packet>"
    where = draw(st.sampled_from(["soap"] * 5 + ["http", "none", "wrong", "late"]))
    key = "dev-eoffice-key" if where in ("soap", "http", "late") else "wrong-key"
    env = draw(st.sampled_from([SOAP_ENV] * 9 + [SOAP12_ENV]))
    data = envelope(operation, content, key=key if where in ("soap", "wrong") else None, env=env)
    if where == "late":
        data = data.replace(b"</soap:Body>", b"</soap:Body><soap:Header><lgsp:ApiKey>"
                            b"dev-eoffice-key</lgsp:ApiKey></soap:Header>")
    if site == "envelope":
        data = draw(mutated(data, bait))
    headers = [("Content-Type", b"text/xml; charset=utf-8"),
               ("SOAPAction", f'"{SOAP_NS}/{operation}"'.encode())]
    if where == "http":
        headers.append(("X-API-Key", key.encode()))
    return _maybe_framing(draw, Call("POST", "/soap", headers, data,
                                     note=f"soap {operation} {site} key:{where}"))


def check_soap(status: int, headers: dict[str, str], body: bytes) -> str:
    if status not in (200, 500):
        return check_rest(status, headers, body)  # refused by the server before the door
    root = etree.fromstring(body, _ANSWER_PARSER)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope", body[:300]
    content = root.find(f"{{{SOAP_ENV}}}Body")[0]  # type: ignore[index]
    if status == 200:
        assert str(content.tag).endswith("Response"), body[:300]
        return "200"
    assert content.tag == f"{{{SOAP_ENV}}}Fault", body[:300]
    code = content.findtext(f"detail/{{{SOAP_NS}}}Error/{{{SOAP_NS}}}code")
    assert code in KNOWN_CODES, body[:500]
    return str(code)


# ---------------------------------------------------------------- the axis facade (/vxp)


def _agency(draw: st.DrawFn) -> bytes:
    agency = {"id": "", "pid": IOFFICE_ORG, "code": draw(st.sampled_from(
        ["000.00.40.H37", "000.00.41.H37", IOFFICE_ORG, "x" * 40, ""])),
              "name": "Sở thử nghiệm", "mail": "vt@example.gov.vn"}
    return json.dumps(agency, ensure_ascii=False).encode()


_JSON_DAMAGE: Final = (b"[" * 40_000, b'{"a":' * 20_000, b"null", b"[]", b'"x"', b"1e999999",
                       b'{"code": {"x": 1}, "name": []}', b"\xff\xfe{", b'{"code": "\\ud800"}',
                       b"{" + b'"k":1,' * 5000 + b'"z":1}')
_SIGNABLE: Final = [t for t in HOSTILE_TEXT if t.isascii() and not any(c in t for c in "\r\n\0")]
_HOSTILE_TO: Final = ("[" * 5000, '"' * 3000, "null", '{"a": 1}', "[1, [2]]", "", ",,,",
                      '"[\\"000.00.12.H37\\"' , "A" * 2000, '["' + "x" * 40 + '"]')
_PRINTABLE: Final = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


def _signed(draw: st.DrawFn, fuzz: Fuzz, bait: Bait, creds: vxp.Credentials
            ) -> tuple[vxp.SignedRequest, str]:
    operation = draw(st.sampled_from(["sendEdoc"] * 4 + [
        "getEdoc", "updateStatus", "countReceiveEdoc", "downloadEdoc", "registerAgency",
        "getReceivedEdocList", "getSentEdocList", "deleteAgency"]))
    hostile = draw(st.sampled_from(["valid"] * 3 + ["body", "params"]))
    doc = draw(st.sampled_from(fuzz.mailbox + fuzz.documents)) if hostile != "params" \
        else draw(st.one_of(st.sampled_from(_SIGNABLE), _PRINTABLE))
    if operation == "sendEdoc":
        base = draw(st.sampled_from(fuzz.axis_edocs + fuzz.axis_statuses))
        packet = draw(mutated(base, bait)) if hostile == "body" else base
        kind = vxp.MessageType.STATUS if base in fuzz.axis_statuses else vxp.MessageType.EDOC
        if hostile == "params" and draw(st.booleans()):
            to = draw(st.sampled_from(_HOSTILE_TO))
            return vxp.sign(vxp.Operation.SEND_EDOC, creds, [
                ("messagetype", kind.value), ("hash-file", vxp.hash_file(packet)),
                ("from", IOFFICE_ORG), ("to", to)], body=vxp.edoc_body(packet),
                content_type=vxp.CONTENT_TYPE_EDOC), operation
        recipients = [EOFFICE_ORG] if hostile != "params" else [doc, EOFFICE_ORG]
        return vxp.send_edoc(creds, packet, sender=IOFFICE_ORG if hostile != "params" else doc,
                             recipients=recipients, message_type=kind), operation
    if operation == "registerAgency":
        request = vxp.register_agency(creds, vxp.Agency(code="000.00.40.H37", name="Sở X"))
        body = draw(st.sampled_from(_JSON_DAMAGE)) if hostile == "body" else _agency(draw)
        return vxp.sign(vxp.Operation.REGISTER_AGENCY, creds, [], body=body), operation
    params: dict[str, list[tuple[str, str]]] = {
        "getEdoc": [("docId", doc)], "downloadEdoc": [("docId", doc), ("filePath", "/tmp")],
        "updateStatus": [("docId", doc), ("status", draw(st.sampled_from(
            ["done", "fail", "processing"] if hostile != "params" else ["DONE", "x", ""])))],
        "countReceiveEdoc": [("messagetype", "edoc" if hostile != "params" else doc)],
        "getReceivedEdocList": [("messagetype", "status")], "getSentEdocList": [("docId", doc)],
        "deleteAgency": [("code", doc)]}
    body = draw(mutated(b"{}", bait)) if hostile == "body" else b"{}"
    request = vxp.sign(vxp.Operation(operation), creds, params[operation], body=body)
    return request, operation


def _resign(headers: dict[str, str], sign_header: str) -> dict[str, str]:
    """A sign-header of the fuzz's choice with a valid HMAC, so it reaches the JSON reader."""
    return {**headers, "XroadVnpt-sign-header": sign_header,
            "XroadVnpt-hash-header": vxp.hash_header(CREDS.secret, sign_header)}


@st.composite
def vxp_calls(draw: st.DrawFn, fuzz: Fuzz, bait: Bait) -> Call:
    who = draw(st.sampled_from(["valid"] * 8 + ["wrong-secret", "unknown"]))
    creds = {"valid": CREDS, "wrong-secret": vxp.Credentials(IOFFICE_ORG, "not-it"),
             "unknown": vxp.Credentials("000.00.99.H37", "x")}[who]
    request, operation = _signed(draw, fuzz, bait, creds)
    headers = dict(request.headers)
    body = request.body
    names = sorted(headers)
    tamper = draw(st.sampled_from(["none"] * 4 + ["drop", "dup", "alter", "8bit", "sign-header",
                                                  "body", "path", "method"]))
    pairs: list[tuple[str, bytes]]
    path = "/vxp/" + operation
    method = request.method
    if tamper == "sign-header":
        headers = _resign(headers, draw(st.one_of(st.sampled_from(
            [s.decode("latin-1") for s in _JSON_DAMAGE[:3]] + ["[1,2]", "{}", '{"a":1}',
                                                               "[" * 5000, "]"]), _PRINTABLE)))
    if tamper == "body":
        body = draw(mutated(body or b"{}", bait))
    pairs = [(k, v.encode("latin-1")) for k, v in headers.items()]
    if tamper in ("drop", "dup", "alter", "8bit"):
        index = draw(st.integers(0, len(names) - 1))
        name = names[index]
        value = headers[name].encode("latin-1")
        if tamper == "drop":
            pairs = [(k, v) for k, v in pairs if k != name]
        elif tamper == "dup":
            pairs.append((name, value[::-1] or b"x"))
        elif tamper == "alter":
            pairs = [(k, (v[:-1] + b"0" if v else b"1") if k == name else v) for k, v in pairs]
        else:
            pairs = [(k, v + "\u00e9".encode() if k == name else v) for k, v in pairs]
    if tamper == "path":
        path = draw(st.sampled_from([f"/vxp//{operation}/", f"/vxp/{operation.upper()}",
                                     "/vxp/", "/vxp", "/vxp/nope", f"/vxp/{operation}%00",
                                     f"/vxp/../vxp/{operation}", "/vxp/" + "a" * 3000]))
    if tamper == "method":
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    call = Call(method, path, pairs, body, note=f"vxp {operation} {who} {tamper}")
    return _maybe_framing(draw, call) if method in ("GET", "POST") else call


def check_vxp(call: Call, status: int, headers: dict[str, str], body: bytes) -> str:
    if call.method == "HEAD":
        assert status < 500, status
        return str(status)
    assert status < 500 or status in (503, 507), (status, body[:300])
    download = operation_of(unquote(call.path.removeprefix("/vxp"))) == "downloadEdoc"
    if download and status != 200:
        assert body == b"" and headers.get(ERROR_CODE_HEADER.lower()), (status, headers)
        assert headers[ERROR_CODE_HEADER.lower()] in KNOWN_CODES, headers
        return headers[ERROR_CODE_HEADER.lower()]
    if download:
        assert headers.get("content-type") == vxp.CONTENT_TYPE_EDOC and body, headers
        return "bytes"
    answer = json.loads(body)
    for key in ("status", "ErrorCode", "ErrorDesc"):
        assert isinstance(answer.get(key), str), (key, answer)
    assert answer["ErrorCode"] in KNOWN_CODES | {"0"}, answer
    return str(answer["ErrorCode"])


# ---------------------------------------------------------------- the run


Strategy = Callable[[Fuzz, Bait], st.SearchStrategy[Call]]
Check = Callable[[Call, int, dict[str, str], bytes], str]


def fuzz_door(fuzz: Fuzz, door: str, strategy: Strategy, check: Check,
              capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Figures:
    """One door's run: every example checked as it is answered, then what no single
    answer shows (files, connections, errors in the logs, memory)."""
    figures = Figures()
    port = int(fuzz.server.url.rsplit(":", 1)[1])
    storage: Any = storage_directory()  # hypothesis's own cache; a Path in older versions
    hypothesis_dir = os.fspath(getattr(storage, "home_directory", storage))
    with sentinel(fuzz.folder / door, fuzz.server.bus.settings.data_dir, port,
                  also_allowed=(hypothesis_dir,)) as (bait, seen), \
            httpx.Client(timeout=10) as client:
        before = rss_mb()
        logged = fuzz.server.log_path.stat().st_size

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None,
                  database=None, print_blob=False,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            call = data.draw(strategy(fuzz, bait), label="call")
            status, headers, body, seconds = _send(client, fuzz.server, call)
            code = check(call, status, headers, body)
            assert b"root:x:0:0" not in body and b"BAIT-FILE-CONTENT" not in body
            assert seconds < BOUND, f"{call.note}: answered in {seconds:.3f} s"
            figures.examples += 1
            figures.codes[code] += 1
            if seconds > figures.slowest:
                figures.slowest, figures.slowest_note = seconds, call.note

        if SEED is not None:
            one = seed(int(SEED))(one)
        one()
        after = rss_mb()
    with fuzz.server.log_path.open("rb") as log:
        log.seek(logged)
        errors_logged = [line for line in log.read().decode("utf-8", "replace").splitlines()
                         if '"level": "error"' in line or '"level": "critical"' in line]
    with capsys.disabled():
        print(f"\n[fuzz {door}] {figures.examples} examples; slowest answer "
              f"{figures.slowest * 1000:.0f} ms ({figures.slowest_note}); RSS {before:.0f} -> "
              f"{after:.0f} MB; codes {dict(figures.codes.most_common())}")
    assert seen == [], sorted(set(seen))
    assert errors_logged == [], errors_logged[:3]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:3000]
    assert after - before < RSS_MARGIN_MB, f"resident set grew {after - before:.0f} MB"
    return figures


def test_fuzz_rest(fuzz: Fuzz, capsys: pytest.CaptureFixture[str],
                  caplog: pytest.LogCaptureFixture) -> None:
    fuzz_door(fuzz, "rest", rest_calls, lambda c, s, h, b: check_rest(s, h, b), capsys, caplog)


def test_fuzz_soap(fuzz: Fuzz, capsys: pytest.CaptureFixture[str],
                  caplog: pytest.LogCaptureFixture) -> None:
    fuzz_door(fuzz, "soap", soap_calls, lambda c, s, h, b: check_soap(s, h, b), capsys, caplog)


def test_fuzz_vxp(fuzz: Fuzz, capsys: pytest.CaptureFixture[str],
                 caplog: pytest.LogCaptureFixture) -> None:
    fuzz_door(fuzz, "vxp", vxp_calls, check_vxp, capsys, caplog)


def test_the_watch_sees_what_it_must(fuzz: Fuzz, tmp_path: Path) -> None:
    """The detectors fire when access does happen, so that a silent run means something:
    libxml2 loading the bait in C (inotify alone sees it), then a Python open of the bait
    and of another file, a connection to the bait URL."""
    port = int(fuzz.server.url.rsplit(":", 1)[1])
    data_dir = fuzz.server.bus.settings.data_dir
    with sentinel(tmp_path / "c", data_dir, port) as (bait, in_c):
        loader = etree.XMLParser(load_dtd=True, no_network=True)
        etree.fromstring(f'<!DOCTYPE x SYSTEM "file://{bait.file}"><x/>'.encode(), loader)
    assert in_c == [f"inotify {bait.file}"] * len(in_c) and in_c, in_c
    with sentinel(tmp_path / "py", data_dir, port) as (bait, in_python):
        bait.file.read_bytes()
        Path("/etc/hostname").read_bytes()
        host, _, rest = bait.url.removeprefix("http://").partition(":")
        with socket.create_connection((host, int(rest.split("/")[0])), timeout=2):
            pass
    text = "\n".join(in_python)
    assert f"audit open {bait.file}" in text and "open /etc/hostname" in text, text
    assert "connect ('127.0.0.1'" in text and "bait listener got a connection" in text, text

"""The requests of the door fuzz (test_fuzz_doors.py), as hypothesis strategies: each a
valid REST, SOAP or signed /vxp request, then damaged at its own level.

* REST: a packet (mutated by fuzz_inputs.py or not), the key valid, another system's,
  wrong or missing, a packet of the other kind at each door.
* SOAP: the packet mutated inside valid base64, the envelope itself mutated, the
  base64 damaged; the key in the SOAP header, the HTTP header, after the Body, wrong or
  missing; SOAP 1.2's namespace.
* /vxp: every operation signed as the SDK signs it; bodies mutated and re-signed (so
  sendEdoc's hash matches and the packet reaches the reader) or not; parameters hostile
  but signed; headers dropped, duplicated, altered or given 8-bit bytes; a sign-header
  of the fuzz's choosing with a valid HMAC (so that it reaches the JSON reader); wrong
  secret, unknown system, odd paths and methods.
* All: sometimes an odd Content-Type, or framing that lies (a short, non-numeric,
  negative or doubled Content-Length, or one beside chunked), sent on a raw socket.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Final

from hypothesis import strategies as st

from bus import vxp
from tests.security.fuzz_inputs import HOSTILE_TEXT, mutated
from tests.security.fuzz_watch import Bait

SOAP12_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_NS: Final = "urn:lgsp-bus:soap:v1"
EOFFICE_ORG: Final = "000.00.12.H37"
IOFFICE_ORG: Final = "000.00.00.H37"
CREDS: Final = vxp.Credentials(IOFFICE_ORG, "dev-vnpt_ioffice-vxp-secret")


@dataclass(frozen=True)
class Call:
    """One request: sent with httpx, or as ``raw`` bytes when its framing lies."""

    method: str
    path: str
    headers: list[tuple[str, bytes]]
    body: bytes
    raw: bytes | None = None
    note: str = ""


@dataclass(frozen=True)
class Targets:
    """What requests aim at: documents and mailbox items the bus holds, and valid packets
    for each caller (REST/SOAP as eoffice, /vxp as VNPT-iOffice)."""

    documents: list[str]
    mailbox: list[str]
    edocs: list[bytes]
    statuses: list[bytes]
    axis_edocs: list[bytes]
    axis_statuses: list[bytes]


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
    return Call(call.method, call.path, call.headers, call.body, framed(call, framing),
                call.note + " raw")


def framed(call: Call, framing: str) -> bytes:
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


@st.composite
def rest_calls(draw: st.DrawFn, targets: Targets, bait: Bait) -> Call:
    status = draw(st.booleans())
    base = draw(st.sampled_from(targets.statuses if status else targets.edocs))
    body = draw(st.one_of(mutated(base, bait), st.just(base)))
    key = draw(st.sampled_from(["dev-eoffice-key"] * 6 + ["dev-vnpt_ioffice-key", "", "wrong"]))
    headers = [("Content-Type", b"application/xml")]
    if key:
        headers.append(("X-API-Key", key.encode()))
    if draw(st.sampled_from([False] * 5 + [True])):
        status = not status  # a packet of the other kind at each door
    path = "/api/v1/statuses" if status else "/api/v1/edocs"
    return _maybe_framing(draw, Call("POST", path, headers, body, note=f"rest {path}"))


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
def soap_calls(draw: st.DrawFn, targets: Targets, bait: Bait) -> Call:
    operation = draw(st.sampled_from(["SendEdoc", "SendEdoc", "SendStatus", "GetEdocStatus"]))
    site = draw(st.sampled_from(["packet", "packet", "envelope", "base64", "none"]))
    if operation == "GetEdocStatus":
        document = draw(st.one_of(st.sampled_from(targets.documents), st.sampled_from(HOSTILE_TEXT),
                                  st.text(max_size=60)))
        content = "<lgsp:id>" + document.replace("&", "&amp;").replace("<", "&lt;") + "</lgsp:id>"
    else:
        base = draw(st.sampled_from(targets.edocs if operation == "SendEdoc" else targets.statuses))
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


def _signed(draw: st.DrawFn, targets: Targets, bait: Bait, creds: vxp.Credentials
            ) -> tuple[vxp.SignedRequest, str]:
    operation = draw(st.sampled_from(["sendEdoc"] * 4 + [
        "getEdoc", "updateStatus", "countReceiveEdoc", "downloadEdoc", "registerAgency",
        "getReceivedEdocList", "getSentEdocList", "deleteAgency"]))
    hostile = draw(st.sampled_from(["valid"] * 3 + ["body", "params"]))
    doc = draw(st.sampled_from(targets.mailbox + targets.documents)) if hostile != "params" \
        else draw(st.one_of(st.sampled_from(_SIGNABLE), _PRINTABLE))
    if operation == "sendEdoc":
        base = draw(st.sampled_from(targets.axis_edocs + targets.axis_statuses))
        packet = draw(mutated(base, bait)) if hostile == "body" else base
        kind = vxp.MessageType.STATUS if base in targets.axis_statuses else vxp.MessageType.EDOC
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
def vxp_calls(draw: st.DrawFn, targets: Targets, bait: Bait) -> Call:
    who = draw(st.sampled_from(["valid"] * 8 + ["wrong-secret", "unknown"]))
    creds = {"valid": CREDS, "wrong-secret": vxp.Credentials(IOFFICE_ORG, "not-it"),
             "unknown": vxp.Credentials("000.00.99.H37", "x")}[who]
    request, operation = _signed(draw, targets, bait, creds)
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


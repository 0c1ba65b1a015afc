"""Packets written the way real producers write them (edxml.md §9), posted to the bus.

Java (DOM + Transformer, StAX), Node (template strings) run in their own toolchains;
.NET XmlSerializer and Go encoding/xml output are emulated in Python. Each writes the
same data. The verdicts are §9's: accepted, normalised (dd/MM/yyyy dates reach the
receiver as yyyy/MM/dd), or refused with a code and a message naming the real problem.
The receiver's copy is fetched as the receiver fetches it: VNPT-iOffice's /vxp mailbox.
"""

from __future__ import annotations

import base64
import io
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from tests.outsider import packets, producers
from tests.outsider.conftest import mailbox_ids, wait_new_item
from tests.outsider.harness import (
    IOFFICE_SECRET,
    IOFFICE_SYSTEM_ID,
    Server,
    lgsp_validate,
    post_edoc,
)
from tests.outsider.packets import NS, DocData
from tests.outsider.sdk_client import SdkService

Q = "{" + NS + "}"


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return producers.compile_java(tmp_path_factory.mktemp("javac"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("produced")


Producer = Callable[[DocData, Path, Path], bytes]

ACCEPTED: dict[str, Producer] = {
    "java_dom_transformer": lambda d, cls, w: producers.java_producer("dom", cls, d, w),
    "java_stax": lambda d, cls, w: producers.java_producer("stax", cls, d, w),
    "node_template_strings": lambda d, cls, w: producers.node_producer(d, w),
    **{name: (lambda f: (lambda d, cls, w: f(d)))(fn)
       for name, fn in producers.PYTHON_PRODUCERS.items()},
}

# Producers whose dates are dd/MM/yyyy: the bus must normalise them for the receiver.
DMY_PRODUCERS = {"dotnet_xmlserializer"}


def _parse(packet: bytes) -> etree._Element:
    """The receiver's copy, read with entities and network off (it came over the wire)."""
    return etree.fromstring(packet, etree.XMLParser(resolve_entities=False, no_network=True))


def _find(root: etree._Element, local: str) -> list[etree._Element]:
    return [el for el in root.iter() if el.tag == Q + local]


def _attachment_bytes(root: etree._Element) -> bytes:
    encoded = _find(root, "ContentTransferEncoded")
    assert len(encoded) == 1, "the receiver's packet lost its attachment"
    raw = base64.b64decode("".join((encoded[0].text or "").split()), validate=True)
    if raw[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            return z.read(z.namelist()[0])
    return raw


def _produce(name: str, d: DocData, classes: Path, work: Path) -> Path:
    data = ACCEPTED[name](d, classes, work)
    out = work / f"{name}.edxml"
    out.write_bytes(data)
    return out


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_lgsp_validate_accepts_the_producer(name: str, java_classes: Path,
                                            work: Path) -> None:
    (work / "validate").mkdir(exist_ok=True)
    path = _produce(name, DocData(), java_classes, work / "validate")
    res = lgsp_validate(path)
    assert res.returncode == 0 and ": OK (edoc" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_bus_accepts_and_the_receiver_reads_it(name: str, server: Server, java_classes: Path,
                                               work: Path) -> None:
    d = DocData()
    (work / name).mkdir(exist_ok=True)
    path = _produce(name, d, java_classes, work / name)
    before = mailbox_ids(SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET))
    resp = post_edoc(server, path.read_bytes())
    assert resp.status_code == 202, resp.text
    receipt = resp.json()
    assert packets.RECIPIENT in str(receipt.get("recipients")), receipt

    doc_id, packet = wait_new_item(server, before, d.document_id)
    root = _parse(packet)
    assert root.tag == Q + "edXML"
    dates = {el.tag.split("}")[1]: (el.text or "").strip()
             for el in root.iter() if el.tag in (Q + "PromulgationDate", Q + "DueDate")}
    assert dates.get("PromulgationDate") == d.ymd(d.promulgation), dates
    if b"DueDate>" in path.read_bytes():      # not every producer writes one
        assert dates.get("DueDate") == d.ymd(d.due), dates
    else:
        assert "DueDate" not in dates, dates
    assert _attachment_bytes(root) == d.attachment
    svc = SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET)
    done = svc.update_status(doc_id, "done")
    assert done is not None and done.ErrorCode == "0", done


def test_dd_mm_yyyy_dates_are_normalised_for_the_receiver(server: Server, work: Path) -> None:
    """The .NET vendor's dd/MM/yyyy: the receiver gets yyyy/MM/dd, and no dd/MM/yyyy."""
    d = DocData(promulgation=(2026, 3, 4), due=(2026, 4, 3))
    body = packets.dotnet_xmlserializer(d)
    assert b"04/03/2026" in body and b"03/04/2026" in body
    before = mailbox_ids(SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET))
    resp = post_edoc(server, body)
    assert resp.status_code == 202, resp.text
    doc_id, packet = wait_new_item(server, before, d.document_id)
    root = _parse(packet)
    assert [e.text for e in _find(root, "PromulgationDate")] == ["2026/03/04"]
    assert [e.text for e in _find(root, "DueDate")] == ["2026/04/03"]
    assert not re.search(rb">\s*\d{2}/\d{2}/\d{4}\s*<", packet), "a dd/MM/yyyy date was kept"
    SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET).update_status(doc_id, "done")


# ------------------------------------------------------------------------ refused forms

# code: the one contract.md's table gives; where two codes fit the description equally
# (the docs do not say which), either is taken. keywords: what the message must name.
REFUSED: dict[str, tuple[set[str], list[str]]] = {
    "pre_qcvn_godoc": ({"UnsupportedPacket"}, [r"go\.vn/eDoc|namespace"]),
    "soap_envelope": ({"UnsupportedPacket"}, [r"SOAP|Envelope"]),
    "no_namespace": ({"UnsupportedPacket"}, [r"namespace"]),
    "status_without_messageheader": ({"UnsupportedPacket", "SchemaInvalid"},
                                     [r"MessageHeader"]),
    "attachment_data_block": ({"UnsupportedPacket", "SchemaInvalid", "AttachmentInvalid"},
                              [r"AttachmentEncoded", r"AttachmentData|edXMLAttachments"]),
    "unclosed_from": ({"MalformedXml"}, [r"From"]),
}
HTTP_FOR = {"UnsupportedPacket": 422, "SchemaInvalid": 422, "AttachmentInvalid": 422,
            "MalformedXml": 400}


@pytest.mark.parametrize("name", list(REFUSED))
def test_bus_refuses_with_a_code_that_names_the_problem(name: str, server: Server,
                                                        work: Path) -> None:
    codes, keywords = REFUSED[name]
    body = producers.REFUSED_PRODUCERS[name](DocData())
    started = time.monotonic()
    resp = post_edoc(server, body)
    assert time.monotonic() - started < 1.0, "contract.md: a refusal comes back under 1 s"
    assert resp.status_code in {HTTP_FOR[c] for c in codes}, (resp.status_code, resp.text)
    answer = resp.json()
    assert answer.get("code") in codes, answer
    for pattern in keywords:
        assert re.search(pattern, str(answer.get("message", ""))), (pattern, answer)


@pytest.mark.parametrize("name", list(REFUSED))
def test_lgsp_validate_refuses_with_the_same_code(name: str, work: Path) -> None:
    codes, keywords = REFUSED[name]
    path = work / f"refused-{name}.edxml"
    path.write_bytes(producers.REFUSED_PRODUCERS[name](DocData()))
    res = lgsp_validate(path)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert any(f": {code}:" in out for code in codes), out
    for pattern in keywords:
        assert re.search(pattern, out), (pattern, out)


# ------------------------------------------------------------------------ one variant each
# The producers above combine several §9 variants; these isolate one each on the
# canonical packet, so that a refusal names the variant the bus does not take yet.

THL = "<edXML:TraceHeaderList>"
SENDER_TRACE = "<edXML:TraceHeader><edXML:OrganId>000.00.12.H37</edXML:OrganId>"


def _variant(name: str, d: DocData) -> bytes:
    text = packets.canonical(d).decode("utf-8")
    ymd_p, dmy_p = d.ymd(d.promulgation), d.dmy(d.promulgation)
    edits: dict[str, list[tuple[str, str]]] = {
        "dmy_promulgation_date": [(f">{ymd_p}<", f">{dmy_p}<")],
        "tracelist_soap_attributes": [(THL, '<edXML:TraceHeaderList id="TraceHeaderList" '
                                       'version="1.0" mustUnderstand="0" '
                                       'actor="http://schemas.xmlsoap.org/soap/actor/next">')],
        "xsi_xsd_declarations": [(f'<edXML xmlns="{NS}">',
                                  '<edXML xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
                                  ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
                                  f' xmlns="{NS}">')],
        "empty_signature": [("</edXML:TraceHeaderList>",
                             "</edXML:TraceHeaderList>\n      <edXML:Signature/>")],
        "empty_digital_signature": [("</edXML:TraceHeaderList>",
                                     "</edXML:TraceHeaderList>\n      <DigitalSignature/>")],
        "manifest_cid_attachment_bare": [
            (f"<ContentId>cid:{d.content_id}</ContentId>",
             f"<ContentId>{d.content_id}</ContentId>")],
        "manifest_bare_attachment_cid": [
            (f"<edXML:ContentId>cid:{d.content_id}</edXML:ContentId>",
             f"<edXML:ContentId>{d.content_id}</edXML:ContentId>")],
        "trace_timestamp_only": [(THL, THL + "<edXML:TraceHeader><edXML:Timestamp>"
                                  "2026/11/21 09:15:02</edXML:Timestamp></edXML:TraceHeader>")],
        "trace_organid_null_and_empty": [(THL, THL + "<edXML:TraceHeader><edXML:OrganId>null"
                                          "</edXML:OrganId><edXML:Timestamp>2026/11/21 09:15:02"
                                          "</edXML:Timestamp></edXML:TraceHeader>"
                                          "<edXML:TraceHeader><edXML:OrganId></edXML:OrganId>"
                                          "<edXML:Timestamp>2026/11/21 09:15:03"
                                          "</edXML:Timestamp></edXML:TraceHeader>")],
        "trace_bookkeeping_children": [(SENDER_TRACE, SENDER_TRACE
                                        + "<edXML:Business><edXML:BusinessName>QLVB"
                                        "</edXML:BusinessName><edXML:BusinessCode>01"
                                        "</edXML:BusinessCode></edXML:Business>"
                                        "<edXML:StaffInfo><edXML:StaffName>B</edXML:StaffName>"
                                        "<edXML:StaffCode>VT01</edXML:StaffCode>"
                                        "</edXML:StaffInfo>")],
        "raw_pdf_labelled_zip": [("<edXML:ContentType>application/pdf</edXML:ContentType>",
                                  "<edXML:ContentType>application/zip</edXML:ContentType>"),
                                 ("<ContentType>application/pdf</ContentType>",
                                  "<ContentType>application/zip</ContentType>")],
        "crlf_and_tabs": [("\n", "\r\n"), ("  ", "\t")],
    }
    for old, new in edits[name]:
        assert old in text, (name, old)
        text = text.replace(old, new)
    return text.encode("utf-8")


VARIANTS = ["dmy_promulgation_date", "tracelist_soap_attributes", "xsi_xsd_declarations",
            "empty_signature", "empty_digital_signature", "manifest_cid_attachment_bare",
            "manifest_bare_attachment_cid", "trace_timestamp_only",
            "trace_organid_null_and_empty", "trace_bookkeeping_children",
            "raw_pdf_labelled_zip", "crlf_and_tabs"]


@pytest.mark.parametrize("name", VARIANTS)
def test_single_variant_is_accepted_and_delivered_sound(name: str, server: Server,
                                                        work: Path) -> None:
    d = DocData()
    body = _variant(name, d)
    path = work / f"variant-{name}.edxml"
    path.write_bytes(body)
    res = lgsp_validate(path)
    assert res.returncode == 0 and ": OK (edoc" in res.stdout, res.stdout + res.stderr
    before = mailbox_ids(SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET))
    resp = post_edoc(server, body)
    assert resp.status_code == 202, resp.text
    doc_id, packet = wait_new_item(server, before, d.document_id)
    root = _parse(packet)
    assert [e.text for e in _find(root, "PromulgationDate")] == [d.ymd(d.promulgation)]
    assert _attachment_bytes(root) == d.attachment
    SdkService(server.vxp, IOFFICE_SYSTEM_ID, IOFFICE_SECRET).update_status(doc_id, "done")

"""bus.xmlsafe, the one way the bus reads XML: its parser, its scans, and that nothing
else in bus/ or adapters/ parses XML on its own.

The parser tests bypass the byte scan on purpose: they prove the second line holds by
itself (a DOCTYPE that reached libxml2 still makes it open nothing), whatever
``collect_ids`` says. The control shows why that matters: lxml's ordinary parser with
``collect_ids=False`` opens a file named by a parameter entity even with ``load_dtd`` off,
which is how the SOAP door read local files (issue 11, item 1).
"""

from __future__ import annotations

import ast
import threading
import time
import timeit
from pathlib import Path

import pytest
from lxml import etree

from bus import errors, xmlsafe
from bus.settings import REPO_ROOT
from tests.edxml_factory import MINIMAL_EDOC
from tests.security.xml_attacks import (
    SECURITY_BOUND,
    WIDE_ENCODINGS,
    billion_laughs,
    empty_elements,
    encode,
    external_dtd,
    external_entity,
    nested,
    parameter_entity,
    probe_targets,
    watch,
)

ATTACKS = {"parameter-entity": parameter_entity, "external-entity": external_entity,
           "external-dtd": external_dtd}
LIMITS = xmlsafe.Limits(max_bytes=200 * 1024 * 1024)


def _bounded(call: object) -> tuple[float, BaseException | None]:
    """Runs ``call`` in a thread; (seconds, exception). A thread still reading after the
    bound is left behind (daemon) and reported as taking forever."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()  # type: ignore[operator]
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    start = time.perf_counter()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(SECURITY_BOUND * 3)
    elapsed = time.perf_counter() - start if not worker.is_alive() else float("inf")
    return elapsed, outcome[0] if outcome else None


# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize("collect_ids", [True, False], ids=["collect_ids", "no-collect_ids"])
@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32-le"])
def test_parser_opens_no_file_whatever_collect_ids_says(
        tmp_path: Path, collect_ids: bool, attack: str, encoding: str) -> None:
    with probe_targets(tmp_path) as targets:
        for target in ("file", "directory"):
            data = encode(ATTACKS[attack](str(targets[target])), encoding)
            parser = xmlsafe.hardened_parser(collect_ids=collect_ids)
            with watch([targets["file"], targets["directory"]]) as seen:
                elapsed, _ = _bounded(lambda: etree.fromstring(data, parser))  # noqa: B023
            assert seen == [], f"{target}: {seen}"
            assert elapsed < SECURITY_BOUND


def test_control_plain_lxml_without_collect_ids_opens_the_file(tmp_path: Path) -> None:
    """The detector works, and the mechanism of the SOAP finding is what it was said to be."""
    with probe_targets(tmp_path) as targets:
        plain = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                collect_ids=False)
        data = encode(parameter_entity(str(targets["file"])), "utf-16")
        with watch([targets["file"]]) as seen:
            etree.fromstring(data, plain)
        assert seen, "the watch saw no open: the tests above would pass for nothing"


@pytest.mark.parametrize("collect_ids", [True, False], ids=["collect_ids", "no-collect_ids"])
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_parser_does_not_read_endless_devices(collect_ids: bool, device: str) -> None:
    data = encode(parameter_entity(device), "utf-16")
    parser = xmlsafe.hardened_parser(collect_ids=collect_ids)
    elapsed, _ = _bounded(lambda: etree.fromstring(data, parser))
    assert elapsed < SECURITY_BOUND


# ---------------------------------------------------------------- screening


@pytest.mark.parametrize("encoding", ["utf-8", *WIDE_ENCODINGS])
@pytest.mark.parametrize("attack", ["billion-laughs", *ATTACKS])
def test_a_doctype_is_refused_in_any_encoding(encoding: str, attack: str) -> None:
    text = billion_laughs() if attack == "billion-laughs" else ATTACKS[attack]("/etc/passwd")
    data = encode(text, encoding)
    assert b"<!DOCTYPE" not in data or encoding == "utf-8"
    start = time.perf_counter()
    with pytest.raises(errors.DtdForbidden):
        xmlsafe.parse(data, LIMITS, "packet")
    assert time.perf_counter() - start < SECURITY_BOUND


@pytest.mark.parametrize("encoding", WIDE_ENCODINGS)
def test_wide_documents_read_as_utf8(encoding: str) -> None:
    data = encode(MINIMAL_EDOC, encoding)
    root = xmlsafe.parse(data, LIMITS, "packet")
    assert etree.QName(root).localname == "edXML"
    utf8 = xmlsafe.as_utf8(data)
    assert utf8.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert utf8.count(b"\n") == MINIMAL_EDOC.count("\n")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-32-be"])
def test_a_prefix_may_end_inside_a_character(encoding: str) -> None:
    data = encode(MINIMAL_EDOC, encoding)
    for cut in (4, 5, 7, 101, 1001):
        head = xmlsafe.as_utf8(data[:cut], partial=True)
        assert MINIMAL_EDOC.encode().startswith(head)
    with pytest.raises(errors.MalformedXml):
        xmlsafe.as_utf8(data[:101])


def test_element_count_boundary_and_chunk_edges() -> None:
    limit = 70_000  # over one counting chunk of <a></a>
    exactly = empty_elements(limit - 1)  # plus the root
    assert not xmlsafe.count_exceeds(exactly, limit)
    assert xmlsafe.count_exceeds(empty_elements(limit), limit)
    pairs = b"<r>" + b"<a></a>" * (limit - 1) + b"</r>"
    assert not xmlsafe.count_exceeds(pairs, limit)
    assert xmlsafe.count_exceeds(pairs.replace(b"</r>", b"<a/></r>"), limit)
    commented = b"<r>" + b"<!-- c --><?pi x?><![CDATA[x]]>" * limit + b"</r>"
    assert not xmlsafe.count_exceeds(commented, 10)


@pytest.mark.parametrize("count", [1_000_000, 10_000_000], ids=["1M", "10M"])
def test_element_bomb_is_refused_in_milliseconds(count: int) -> None:
    bomb = empty_elements(count)
    start = time.perf_counter()
    with pytest.raises(errors.TooManyElements):
        xmlsafe.parse(bomb, LIMITS, "packet")
    assert time.perf_counter() - start < 0.1


def test_element_count_costs_nothing_on_a_5kb_packet() -> None:
    packet = MINIMAL_EDOC.encode()[:5 * 1024]
    per_call = min(timeit.repeat(
        lambda: xmlsafe.check_elements(packet, xmlsafe.DEFAULT_MAX_ELEMENTS),
        number=10_000, repeat=5)) / 10_000
    assert per_call < 2e-6, f"{per_call * 1e9:.0f} ns per 5 KB packet"


def test_nesting_past_libxml2s_guard_is_too_deep_not_too_large() -> None:
    with pytest.raises(errors.TooDeep):
        xmlsafe.parse(nested(300), LIMITS, "SOAP request")
    with pytest.raises(errors.TooDeep):
        xmlsafe.parse(nested(40), LIMITS, "SOAP request")
    xmlsafe.parse(nested(20), LIMITS, "SOAP request")


def test_depth_check_never_raises_when_xpath_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(levels: int) -> object:
        def probe(root: object) -> object:
            raise etree.XPathEvalError("XPath node set too large")
        return probe

    root = etree.fromstring(nested(40))
    monkeypatch.setattr(xmlsafe, "_depth_probe", failing)
    found = xmlsafe.too_deep(root, 32)
    assert found is not None and len(list(found.iterancestors())) == 32
    assert xmlsafe.too_deep(etree.fromstring(nested(10)), 32) is None


# ---------------------------------------------------------------- one entry point

_PARSING_CALLS = frozenset({"XMLParser", "XMLPullParser", "HTMLParser", "ETCompatXMLParser",
                            "fromstring", "fromstringlist", "XML", "XMLID", "XMLDTDID",
                            "parse", "iterparse", "HTML", "DTD", "XInclude", "Settings"})
_PARSING_MODULES = ("xml.dom", "xml.sax", "xml.etree", "xml.parsers", "lxml.html",
                    "lxml.objectify", "lxml.sax", "defusedxml", "xmltodict")
_ALLOWED = ("xml.sax.saxutils",)


def parse_sites(source: str, name: str) -> list[str]:
    """Every place in ``source`` that parses XML or builds a parser (or zeep client)
    other than through :mod:`bus.xmlsafe` and the eOffice protocol's zeep settings."""
    tree = ast.parse(source)
    modules = {"etree", "lxml", "zeep", "_zeep", "ET", "ElementTree"}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("lxml.etree", "zeep"):
                    modules.add(alias.asname or alias.name)
                if alias.name.startswith(_PARSING_MODULES) and alias.name not in _ALLOWED:
                    found.append(f"{name}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith(_PARSING_MODULES) and module not in _ALLOWED:
                found.append(f"{name}:{node.lineno}: from {module} import")
            for alias in node.names:
                if module in ("lxml.etree", "zeep") and alias.name in _PARSING_CALLS | {"Client"}:
                    found.append(f"{name}:{node.lineno}: from {module} import {alias.name}")
                if module == "lxml" and alias.name == "etree":
                    modules.add(alias.asname or "etree")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else (
                owner.attr if isinstance(owner, ast.Attribute) else "")
            if owner_name not in modules:
                continue
            if node.func.attr in _PARSING_CALLS:
                found.append(f"{name}:{node.lineno}: {owner_name}.{node.func.attr}(...)")
            if node.func.attr == "Client" and not any(
                    k.arg == "settings" and isinstance(k.value, ast.Call)
                    and isinstance(k.value.func, ast.Name) and k.value.func.id == "zeep_settings"
                    for k in node.keywords):
                found.append(f"{name}:{node.lineno}: zeep client without zeep_settings()")
    if "XMLParser(" in source or "XMLPullParser(" in source:
        found.append(f"{name}: constructs a parser")
    return found


def _own_code() -> list[Path]:
    return sorted(p for folder in ("bus", "adapters") for p in (REPO_ROOT / folder).rglob("*.py"))


def test_no_xml_is_parsed_outside_the_entry_point() -> None:
    exempt = set((REPO_ROOT / "bus" / "xmlsafe").glob("*.py"))
    zeep_settings_home = REPO_ROOT / "adapters" / "eoffice" / "protocol.py"
    sites: list[str] = []
    for path in _own_code():
        if path in exempt:
            continue
        found = parse_sites(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))
        if path == zeep_settings_home:  # zeep_settings() itself builds the one Settings
            found = [f for f in found if not f.endswith("_zeep.Settings(...)")]
        sites.extend(found)
    assert sites == [], "XML parsed outside bus/xmlsafe/:\n" + "\n".join(sites)
    assert len(_own_code()) > 50


@pytest.mark.parametrize("snippet", [
    "from lxml import etree\netree.fromstring(b'<a/>')",
    "import lxml.etree as ET\nET.XMLParser()",
    "from lxml import etree as x\nx.parse('f.xml')",
    "from xml.dom import minidom",
    "import zeep\nzeep.Client('u')",
    "import zeep\nzeep.Client('u', settings=zeep.Settings())",
    "from lxml.etree import fromstring",
])
def test_the_guard_sees_each_kind_of_parse(snippet: str) -> None:
    assert parse_sites(snippet, "snippet")


# ---------------------------------------------------------------- answers zeep will parse


def _response(body: bytes) -> object:
    import requests  # type: ignore[import-untyped, unused-ignore]

    response = requests.Response()
    response._content = body
    response.status_code = 200
    response.url = "http://eoffice.example/ws"
    return response


@pytest.mark.parametrize("encoding", ["utf-8", *WIDE_ENCODINGS])
def test_answers_are_screened_before_zeep_parses_them(encoding: str) -> None:
    import zeep.exceptions

    from adapters.eoffice.protocol import screen_answer, zeep_settings

    probe = encode(parameter_entity("/dev/zero"), encoding)
    with pytest.raises(zeep.exceptions.XMLSyntaxError, match="DtdForbidden"):
        screen_answer(_response(probe))
    with pytest.raises(zeep.exceptions.XMLSyntaxError, match="TooManyElements"):
        screen_answer(_response(empty_elements(1_000_000)))
    screen_answer(_response(encode(MINIMAL_EDOC, encoding)))
    settings = zeep_settings()
    assert (settings.forbid_dtd, settings.forbid_entities, settings.forbid_external,
            settings.xml_huge_tree, settings.strict) == (True, True, True, False, True)


@pytest.mark.parametrize("encoding", WIDE_ENCODINGS)
def test_wide_element_bomb_is_refused_before_decoding(encoding: str) -> None:
    """Decoding 80 MB of UTF-16 costs most of a second; counting its first elements, not."""
    bomb = encode(empty_elements(10_000_000).decode(), encoding)
    start = time.perf_counter()
    with pytest.raises(errors.TooManyElements):
        xmlsafe.as_utf8(bomb, max_elements=xmlsafe.DEFAULT_MAX_ELEMENTS)
    assert time.perf_counter() - start < 0.1
    limit = 1000
    exactly = encode(empty_elements(limit - 1).decode(), encoding)
    assert xmlsafe.as_utf8(exactly, max_elements=limit).count(b"<a/>") == limit - 1
    with pytest.raises(errors.TooManyElements):
        xmlsafe.as_utf8(encode(empty_elements(limit).decode(), encoding), max_elements=limit)

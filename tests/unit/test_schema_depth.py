"""The XSDs bound a valid packet's depth everywhere but inside a Signature.

bus/edxml/reader.py relies on this to skip the full depth probe for packets the XSD
accepted: if a schema change ever adds a wildcard or a recursive type elsewhere, this
test fails before a nesting bomb could slip through as a valid packet.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from bus.schemas import default_schemas_dir

XS = "{http://www.w3.org/2001/XMLSchema}"
OPAQUE = {"OpaqueType", "SignatureGroup"}


def _schemas() -> Iterator[etree._Element]:
    for path in sorted(default_schemas_dir().glob("*.xsd")):
        yield etree.parse(str(path)).getroot()


def _owner(element: etree._Element) -> str | None:
    for ancestor in element.iterancestors():
        if ancestor.getparent() is not None and ancestor.getparent().tag == XS + "schema":
            return ancestor.get("name")
    return None


def test_wildcards_only_in_the_signature() -> None:
    owners = {_owner(any_) for root in _schemas() for any_ in root.iter(XS + "any")}
    assert owners <= OPAQUE, owners


def test_opaque_content_only_under_signature() -> None:
    users = {el.get("name") for root in _schemas() for el in root.iter(XS + "element")
             if el.get("type") == "OpaqueType"}
    assert users == {"Signature"}


def test_no_type_refers_to_itself_through_its_content() -> None:
    graph: dict[str, set[str]] = {}
    for root in _schemas():
        for top in root:
            name = top.get("name")
            if name is None or top.tag not in (XS + "complexType", XS + "group", XS + "element"):
                continue
            refs = graph.setdefault(name, set())
            for el in top.iter(XS + "element", XS + "group", XS + "extension"):
                for attr in ("type", "ref", "base"):
                    if (target := el.get(attr)) and ":" not in target:
                        refs.add(target)

    def cyclic(node: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if node in path:
            return (*path, node)
        for nxt in graph.get(node, ()):
            if (found := cyclic(nxt, (*path, node))) is not None:
                return found
        return None

    for start in graph:
        assert cyclic(start, ()) is None, f"recursive content model: {cyclic(start, ())}"

"""The edXML XSDs: where they load from, their version, and a broken folder refused."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from lxml import etree

from bus.errors import ConfigInvalid
from bus.schemas import (
    EdxmlSchemas,
    default_schemas,
    default_schemas_dir,
    load_edxml_schemas,
)
from tests.unit.schemas_kit import (
    NS,
    SCHEMA_DIR,
    assert_valid,
    edoc,
    parse,
)

# ------------------------------------------------------------------ loading


def test_default_schemas_compile_once_and_carry_the_version() -> None:
    first = default_schemas()
    assert first is default_schemas()
    assert isinstance(first.edoc, etree.XMLSchema)
    assert isinstance(first.status, etree.XMLSchema)
    assert re.fullmatch(r"\d+\.\d+\.\d+", first.version)
    for name in ("common.xsd", "edoc.xsd", "status.xsd"):
        root = etree.parse(str(SCHEMA_DIR / name)).getroot()
        assert root.get("version") == first.version, name


def test_readme_changelog_mentions_the_current_version(schemas: EdxmlSchemas) -> None:
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    assert schemas.version in readme


def test_default_directory_is_the_repository_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LGSP_SCHEMAS_DIR", raising=False)
    assert default_schemas_dir() == SCHEMA_DIR


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "edxml"
    target.mkdir()
    for name in ("common.xsd", "edoc.xsd", "status.xsd"):
        shutil.copy(SCHEMA_DIR / name, target / name)
    return target


def test_environment_overrides_the_directory(
    monkeypatch: pytest.MonkeyPatch, schema_copy: Path
) -> None:
    monkeypatch.setenv("LGSP_SCHEMAS_DIR", str(schema_copy))
    assert default_schemas_dir() == schema_copy
    loaded = load_edxml_schemas()
    assert loaded.edoc.validate(parse(edoc()))


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="not found"):
        load_edxml_schemas(tmp_path / "nowhere")


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_versions_must_agree(schema_copy: Path) -> None:
    common = schema_copy / "common.xsd"
    text = common.read_text(encoding="utf-8")
    bumped = re.sub(r'(<xs:schema[^>]*\sversion=")[^"]*"', r'\g<1>999.0.0"', text, count=1)
    assert bumped != text
    common.write_text(bumped, encoding="utf-8")
    with pytest.raises(ConfigInvalid, match="same non-empty version"):
        load_edxml_schemas(schema_copy)


@pytest.mark.parametrize(
    "location",
    [
        "../outside.xsd",
        "http://example.invalid/edxml.xsd",
        "file:///etc/passwd",
        "/etc/passwd",
        "linked.xsd",
    ],
)
def test_includes_outside_the_folder_are_refused(schema_copy: Path, location: str) -> None:
    outside = schema_copy.parent / "outside.xsd"
    shutil.copy(schema_copy / "common.xsd", outside)
    (schema_copy / "linked.xsd").symlink_to(outside)
    _replace_in(
        schema_copy / "edoc.xsd", 'schemaLocation="common.xsd"', f'schemaLocation="{location}"'
    )
    with pytest.raises(ConfigInvalid) as caught:
        load_edxml_schemas(schema_copy)
    assert "refused" in str(caught.value)
    assert location.rsplit("/", 1)[-1] in str(caught.value)


def test_entry_schema_linked_from_outside_is_refused(schema_copy: Path) -> None:
    outside = schema_copy.parent / "edoc.xsd"
    (schema_copy / "edoc.xsd").rename(outside)
    (schema_copy / "edoc.xsd").symlink_to(outside)
    with pytest.raises(ConfigInvalid, match="inside"):
        load_edxml_schemas(schema_copy)


def test_a_broken_schema_is_a_config_error_with_its_file(schema_copy: Path) -> None:
    _replace_in(schema_copy / "status.xsd", 'type="StatusCodeType"', 'type="NoSuchType"')
    with pytest.raises(ConfigInvalid) as caught:
        load_edxml_schemas(schema_copy)
    assert "status.xsd" in str(caught.value)


def test_instance_schema_location_hints_are_ignored(schemas: EdxmlSchemas, tmp_path: Path) -> None:
    trap = tmp_path / "trap.xsd"
    trap.write_text("not a schema", encoding="utf-8")
    text = edoc(
        root_extra=' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsi:schemaLocation="{NS} {trap.as_uri()}"'
    )
    assert_valid(schemas.edoc, text)

"""Fixtures of the unit tests: a store on both backends, and the embedded default's file (the
console's CLI opens it with --data-dir). A module's own `store` fixture overrides these."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.store import Store
from bus.store.tables import create_engine
from tests.cluster import fresh_database
from tests.unit.checks_kit import schemas  # noqa: F401 - the edXML schemas fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lgsp.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres"))
    result = Store(create_engine(url))
    result.create_schema()
    yield result
    result.engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """The store ``lgsp --data-dir`` opens: the embedded default's database file."""
    result = Store(create_engine(f"sqlite:///{tmp_path / 'lgsp.db'}"))
    result.create_schema()
    yield result
    result.engine.dispose()

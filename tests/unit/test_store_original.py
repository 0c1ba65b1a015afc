"""The sender's original bytes beside the corrected ones the bus forwards (tolerance policy).

Both backends: a database created before ``documents.original_sha256`` existed gets the
column at start, and a document accepted with an original keeps both payloads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.store import NewDelivery, Store
from bus.store.schema import upgrade
from bus.store.tables import create_engine, documents
from tests.cluster import fresh_database
from tests.fixtures_services import postgres  # noqa: F401 - fixture
from tests.old_schema import strip_to_pre_migration

TARGET = [NewDelivery("000.00.00.H37", "000.00.00.H37", "vnpt", "default:hosted")]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (f"sqlite:///{tmp_path / 'bus.db'}" if request.param == "sqlite"
           else fresh_database(request.getfixturevalue("postgres")))
    store = Store(create_engine(url))
    store.create_schema()
    yield store
    store.engine.dispose()


def _accept(store: Store, key: str, payload: bytes, original: bytes | None) -> str:
    sent = original or payload
    return store.accept(
        kind="edoc", sender="000.00.12.H37", document_id=key, dedup_key=key,
        content_sha256=hashlib.sha256(sent).hexdigest(), payload=payload, system="eoffice",
        targets=TARGET, summary={}, original=original,
        notices=[{"rule": "day-first-dates", "code": "DayFirstDate"}]).document


def test_an_older_database_gets_the_column(store: Store) -> None:
    """As a release before migrations left it: no column, no alembic_version. The
    embedded default upgrades at start; PostgreSQL by ``lgsp db upgrade``."""
    with store.engine.begin() as conn:
        strip_to_pre_migration(conn)
        conn.execute(sa.text("ALTER TABLE documents DROP COLUMN original_sha256"))
    if store.engine.dialect.name == "sqlite":
        store.create_schema()
    else:
        upgrade(store.engine)
    store.create_schema()  # idempotent
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("documents")}
    assert "original_sha256" in columns
    assert store.original(_accept(store, "a", b"<fixed/>", b"<sent/>")) == b"<sent/>"


def test_original_is_kept_only_when_given(store: Store) -> None:
    corrected = _accept(store, "b", b"<edXML>2025/03/14</edXML>", b"<edXML>14/03/2025</edXML>")
    plain = _accept(store, "c", b"<edXML/>", None)
    assert store.original(corrected) == b"<edXML>14/03/2025</edXML>"
    assert store.original(plain) is None
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(documents.c.sha256, documents.c.original_sha256)
                           .where(documents.c.id == corrected)).one()
    assert row.sha256 == row.original_sha256

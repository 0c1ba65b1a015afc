"""The operator commands on PostgreSQL: an empty database is named as such (and left
empty), an initialised one is read, an unknown id is one line."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from bus.app import Bus
from bus.settings import load_settings
from tests.cluster import fresh_database
from tests.servers import PostgresServer
from tests.unit.test_cli_mistakes import _lgsp, _one_line


def test_read_commands_on_an_empty_then_an_initialised_database(
        postgres: PostgresServer, tmp_path: Path) -> None:
    url = fresh_database(postgres)
    empty = _lgsp(["deliveries", "list"], tmp_path, LGSP_DATABASE_URL=url)
    _one_line(empty)
    assert "has no bus tables" in empty.err and empty.code == 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == [], "a read command created tables"
    engine.dispose()

    Bus(load_settings(environ={}, database_url=url, data_dir=tmp_path / "var")).close()
    listed = _lgsp(["deliveries", "list"], tmp_path, LGSP_DATABASE_URL=url)
    assert listed.code == 0 and listed.out.strip() == "0 deliveries", str(listed)
    unknown = _lgsp(["deliveries", "requeue", "no-such-delivery", "--reason", "test"], tmp_path,
                    LGSP_DATABASE_URL=url)
    assert unknown.code == 1 and "Traceback" not in unknown.out + unknown.err
    assert unknown.err.strip().splitlines() == [
        "lgsp: NotFound: no delivery 'no-such-delivery'; `lgsp deliveries list` shows the ids"
    ], str(unknown)

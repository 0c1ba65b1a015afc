"""Alembic's entry point for the bus's schema: run by ``lgsp db upgrade`` and at start-up.

The bus hands in its own connection (``config.attributes["connection"]``) so a migration
runs with the engine settings and the PostgreSQL advisory lock of the process that runs
it; the ``alembic`` command line, for a maintainer writing a revision, gives a URL
instead (``-x url=...`` or ``LGSP_DATABASE_URL``).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from bus.store.tables import metadata
from bus.store.text_index import include_name

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=True, compare_type=True,
                      include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") \
        or os.environ.get("LGSP_DATABASE_URL", "")
    if not url:
        raise SystemExit("give the database: alembic -x url=postgresql+psycopg://... "
                         "or LGSP_DATABASE_URL")
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()

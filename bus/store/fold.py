"""The one case fold of subject and code searches, shared by the query and the text index.

SQLite's LIKE and lower() fold ASCII only ("CHUYỂN" would not find "chuyển"), so on the
embedded default both a search's words and the searched column go through Python's
``str.casefold``, registered on every connection as ``lgsp_fold``: the text index's
triggers (bus.store.text_index) fold the subjects they index with the same function the
console folds its words with, so an indexed search finds exactly what a folded ``LIKE``
finds.
"""

from __future__ import annotations

from typing import Any, Final

SQL_NAME: Final = "lgsp_fold"


def fold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def register(dbapi_connection: Any) -> None:
    """Makes ``lgsp_fold`` callable from SQL (and from triggers) on an sqlite3 connection."""
    dbapi_connection.create_function(SQL_NAME, 1, fold, deterministic=True)

"""The console's search for words of the subject through the text index
(bus.store.text_index, revision 0013), on SQLite (FTS5 trigrams) and PostgreSQL (pg_trgm).

The reference is Python over every row of a fill_db history: the same fold, visibility
and filters written out once more. Every form is searched with the index forced (any
word of three characters drives the search from it) and with it never used (the windows,
as before), and both must give the reference's pages.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from bus.console.views import Search, search
from bus.edxml import EdocBuilder, packet_bytes
from bus.runtime import running
from bus.store import NewDelivery, Store, text_index, text_indexer, window
from bus.store.fold import register
from bus.store.queries import Viewer
from bus.store.schema import alembic_config
from bus.store.tables import create_engine, deliveries, documents, events
from tests.api_server import api_key, running_bus
from tests.bench import fill_db
from tests.cluster import fresh_database

DOCUMENTS = 6_000
AGENCIES = fill_db.agencies()
OPERATOR = Viewer(system="ops", operator=True)
CLERK = Viewer(system="qlvb-h05", hosted=frozenset(AGENCIES[5:8]))
HEIR = Viewer(system="qlvb-h29", hosted=frozenset([AGENCIES[285]]))
VIEWERS = {"operator": OPERATOR, "system": CLERK, "successor": HEIR}
ZONE = ZoneInfo("UTC")


def _database(request: pytest.FixtureRequest, tmp: Path) -> str:
    if request.param.startswith("sqlite"):
        return f"sqlite:///{tmp / 'bus.db'}"
    return fresh_database(request.getfixturevalue("postgres"), "lgsp_text")


PENDING = 1_500


def _unindex_newest(engine: sa.Engine, count: int) -> None:
    """As accepts leave it while the indexer has stopped: the newest ``count`` documents
    after the mark, not in the index."""
    with engine.begin() as conn:
        mark = conn.exec_driver_sql("SELECT max(rowid) FROM documents").scalar_one() - count
        conn.exec_driver_sql("DELETE FROM document_subjects WHERE document IN"
                             " (SELECT id FROM documents WHERE rowid > ?)", (mark,))
        conn.exec_driver_sql("UPDATE document_subjects_mark SET mark = ?, newest ="
                             " (SELECT max(received_at) FROM document_subjects)", (mark,))


@pytest.fixture(scope="module", params=["sqlite", "sqlite-pending", "postgresql"])
def filled(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """``sqlite-pending``: the newest 1,500 documents are not indexed yet (the indexer
    stopped), so a search folds them itself and merges the index's."""
    url = _database(request, tmp_path_factory.mktemp("text"))
    fill_db.fill(url, DOCUMENTS, log=lambda _m: None)
    engine = create_engine(url)
    if request.param == "sqlite-pending":
        _unindex_newest(engine, PENDING)
    yield engine
    engine.dispose()


@pytest.fixture(params=["index", "capped", "windows"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The index walked as far as needed (common words too), walked 100 candidates then
    the windows (and a system's common words through the windows), or the windows only
    (as before the index)."""
    if request.param == "windows":
        monkeypatch.setattr(text_index, "newest", lambda *_a, **_k: None)
    else:
        monkeypatch.setattr(text_index, "WALK", 10**9 if request.param == "index" else 100)
        monkeypatch.setattr(text_index, "COMMON", 2.0 if request.param == "index" else 0.03)
    monkeypatch.setattr(window, "FEW_VISIBLE", 0)
    return str(request.param)


def _folded(engine: sa.Engine, text: str) -> str:
    return text.casefold() if engine.dialect.name == "sqlite" else text.lower()


def reference(engine: sa.Engine, viewer: Viewer, words: str, *, sender: str | None = None,
              recipient: str | None = None, state: str | None = None) -> list[str]:
    d, dl = documents.c, deliveries.c
    with engine.connect() as conn:
        docs = conn.execute(sa.select(d.id, d.sender, d.system, d.subject,
                                      d.received_at)).all()
        targets: dict[str, list[Any]] = defaultdict(list)
        for row in conn.execute(sa.select(dl.document, dl.recipient, dl.effective_recipient,
                                          dl.state)):
            targets[row.document].append(row)
    wanted = [_folded(engine, w) for w in words.split()[:8]]

    def keep(doc: Any) -> bool:
        mine = targets[doc.id]
        subject = _folded(engine, doc.subject) if doc.subject is not None else None
        return ((viewer.operator or doc.system == viewer.system
                 or any({t.recipient, t.effective_recipient} & viewer.hosted for t in mine))
                and all(subject is not None and w in subject for w in wanted)
                and (sender is None or doc.sender == sender)
                and (recipient is None
                     or any(recipient in (t.recipient, t.effective_recipient) for t in mine))
                and (state is None or any(t.state == state for t in mine)))

    found = sorted((doc for doc in docs if keep(doc)), key=lambda doc: (doc.received_at, doc.id),
                   reverse=True)
    return [doc.id for doc in found]


def pages(engine: sa.Engine, viewer: Viewer, count: int = 4, **form: str) -> list[str]:
    got: list[str] = []
    cursor = ""
    for _ in range(count):
        page = search(engine, Search(**form, cursor=cursor), viewer, ZONE)
        got += [row.id for row in page.rows]
        cursor = page.next_cursor or ""
        if not cursor:
            break
    return got


FORMS: list[dict[str, str]] = [
    {"words": "Quỳnh Lưu 2021"}, {"words": "CHUYỂN"}, {"words": "quyết định"},
    {"words": "về"}, {"words": "về Quỳnh"}, {"words": "HUẾ năm 2022"},
    {"words": "không-có-chữ-này"}, {"words": "100%_"},
    {"words": "Quỳnh", "state": "parked"}, {"words": "2021", "sender": AGENCIES[3]},
    {"words": "Lưu", "recipient": AGENCIES[42]},
]


@pytest.mark.parametrize("form", FORMS, ids=lambda form: "-".join(form.values()))
@pytest.mark.parametrize("who", list(VIEWERS))
def test_word_pages_are_every_rows_answer(filled: sa.Engine, who: str, form: dict[str, str],
                                          path: str) -> None:
    viewer = VIEWERS[who]
    expected = reference(filled, viewer, form["words"], sender=form.get("sender"),
                         recipient=form.get("recipient"), state=form.get("state"))
    got = pages(filled, viewer, **form)
    assert got == expected[:len(got)]
    assert len(got) == min(len(expected), 100)


def test_the_forms_find_something(filled: sa.Engine) -> None:
    """Else the equivalence above would compare empty pages."""
    for words in ("Quỳnh Lưu 2021", "CHUYỂN", "về Quỳnh"):
        assert len(reference(filled, OPERATOR, words)) >= 10 and reference(filled, CLERK, words)


def test_upper_case_vietnamese_finds_lower_case_through_the_index(filled: sa.Engine) -> None:
    if filled.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no text index (bus.store.text_index)")
    with filled.connect() as conn:
        register(conn.connection.driver_connection)
        found = text_index.newest(conn, [documents.c.id, documents.c.received_at],
                                  ["CHUYỂN"], [], limit=10**6, everyone=True)
    assert found is not None
    assert [f.id for f in found] == reference(filled, OPERATOR, "chuyển")
    assert len(found) > 10


def test_short_words_are_not_looked_up() -> None:
    """Under three characters no trigram exists: the search goes on as before."""
    for sqlite in (True, False):
        assert text_index.indexed_words(["về", "Lư", "Đ"], sqlite) == []
        assert text_index.indexed_words(["về", "HUẾ"], sqlite) == ["huế"]


def _statements(engine: sa.Engine, run: Any) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _many: bool) -> None:
        if statement.lstrip().startswith("SELECT"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return seen


def _plans(engine: sa.Engine, seen: list[tuple[str, Any]]) -> list[str]:
    postgres = engine.dialect.name == "postgresql"
    explain = "EXPLAIN (COSTS OFF) " if postgres else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        return [" / ".join(str(row[0] if postgres else row[3]) for row in conn.exec_driver_sql(
            explain + statement, parameters)) for statement, parameters in seen]


@pytest.mark.parametrize("who", ["operator", "system"])
def test_a_rare_word_is_found_through_the_text_index(filled: sa.Engine, who: str) -> None:
    seen = _statements(filled, lambda: search(filled, Search(words="Quỳnh Lưu 2021"),
                                              VIEWERS[who], ZONE))
    if filled.dialect.name != "sqlite":
        # no text index: the windows, as before (bus.store.text_index says why)
        assert any("max(documents.received_at)" in s for s, _p in seen), seen
        return
    # no windows: the bounds of the history are not even read
    assert not any("max(documents.received_at)" in s for s, _p in seen), seen
    plans = _plans(filled, seen)
    walks = [p for p in plans if "document_subjects_fts VIRTUAL TABLE INDEX" in p]
    pages = [p for p in plans if p.startswith("SEARCH documents USING INDEX "
                                              "sqlite_autoindex_documents_1 (id=?)")]
    # the mark, and the documents after it by a rowid range (their matches then by id)
    tail = ["SCAN document_subjects_mark", "SEARCH documents USING INTEGER PRIMARY KEY (rowid>?)"]
    assert plans[:2] == tail, plans
    assert walks and pages and len(walks) + len(pages) + 3 == len(plans), plans
    assert all("SEARCH document_subjects USING INTEGER PRIMARY KEY" in p for p in walks)
    assert not any("SCAN documents" in p for p in plans), plans


def test_an_operators_common_word_reads_one_chunk(filled: sa.Engine) -> None:
    """The newest 64 candidates hold the page of a word most subjects have."""
    if filled.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no text index (bus.store.text_index)")
    seen = _statements(filled, lambda: search(filled, Search(words="quyết định"), OPERATOR,
                                              ZONE))
    assert sum("MATCH" in s for s, _p in seen) == 1, seen


def test_a_page_that_needs_too_many_candidates_goes_through_the_windows(
        filled: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    if filled.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no text index (bus.store.text_index)")
    monkeypatch.setattr(text_index, "WALK", 10)
    seen = _statements(filled, lambda: search(filled, Search(words="quyết"), CLERK, ZONE))
    assert any("max(documents.received_at)" in s for s, _p in seen), seen


def test_a_systems_common_word_goes_through_the_windows(filled: sa.Engine) -> None:
    """In 8% of the subjects: one chunk of the index tells, then the windows."""
    if filled.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no text index (bus.store.text_index)")
    seen = _statements(filled, lambda: search(filled, Search(words="quyết"), CLERK, ZONE))
    assert sum("MATCH" in s for s, _p in seen) == 1, seen
    assert any("max(documents.received_at)" in s for s, _p in seen), seen


@pytest.mark.parametrize("when", ["updated-after-indexing", "indexed-after-update"])
def test_documents_indexed_out_of_their_order_are_in_their_place(tmp_path: Path,
                                                                 when: str) -> None:
    """A document whose received_at is older than one indexed before it (n is not in
    received_at order there) neither hides newer ones nor comes out of order: whether
    the update trigger re-indexed it, or the indexer met it in batches of 50."""
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    store = Store(engine)
    store.create_schema()
    ids = [_accept(store, n, f"Đề án CHUYỂN đổi {n}" if n % 3 else f"Công văn {n}")
           for n in range(300)]
    if when == "updated-after-indexing":
        assert text_indexer.index_pending(engine) == 300
    with engine.begin() as conn:
        for n, doc in enumerate(ids[-100:]):  # the newest, now old: indexed again, last
            conn.execute(documents.update().where(documents.c.id == doc)
                         .values(received_at=1_000_000 + n))
        for n, doc in enumerate(ids[:10]):  # old ones, now the newest
            conn.execute(documents.update().where(documents.c.id == doc)
                         .values(received_at=4_000_000_000 + n))
    while text_indexer.index_pending(engine, batch=50):
        pass
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM document_subjects").scalar() == 300
    expected = reference(engine, OPERATOR, "chuyển")
    assert len(pages(engine, OPERATOR, 20, words="Chuyển")) == len(expected) == 200
    assert pages(engine, OPERATOR, 20, words="Chuyển") == expected
    engine.dispose()


def test_the_pending_documents_hold_matches(filled: sa.Engine) -> None:
    """Else the pending variant's equivalence would not reach the search's own fold."""
    if not _pending(filled):
        pytest.skip("everything is indexed here")
    for words in ("Quỳnh Lưu 2021", "CHUYỂN", "về Quỳnh"):
        assert set(reference(filled, OPERATOR, words)[:20]) & _pending(filled)


def _pending(engine: sa.Engine) -> set[str]:
    if engine.dialect.name != "sqlite":
        return set()
    with engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql(
            "SELECT id FROM documents WHERE rowid > (SELECT mark FROM document_subjects_mark)")}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(_database(request, tmp_path))
    yield engine
    engine.dispose()


def _accept(store: Store, n: int, subject: str) -> str:
    organ = AGENCIES[1]
    return store.accept(
        kind="edoc", sender=AGENCIES[0], document_id=f"t-{n}", dedup_key=f"edoc|t|{n}",
        content_sha256=f"{n:064d}", payload=b"<edXML/>", system="qlvb",
        summary={"subject": subject},
        targets=[NewDelivery(organ, organ, "ioffice", "default")]).document


def _found(engine: sa.Engine, words: str) -> list[str]:
    return [row.id for row in search(engine, Search(words=words), OPERATOR, ZONE).rows]


def _fts_intact(engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO document_subjects_fts (document_subjects_fts) "
                                 "VALUES ('integrity-check')")


def _indexed(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM document_subjects").scalar_one())


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "pending"])
def test_the_index_follows_what_is_accepted_and_deleted(empty: sa.Engine,
                                                        indexed: bool) -> None:
    store = Store(empty)
    store.create_schema()
    sqlite = empty.dialect.name == "sqlite"
    kept = _accept(store, 1, "Công văn CHUYỂN giao Đề án Quỳnh Lưu")
    gone = _accept(store, 2, "Quyết định chuyển giao đề án khác")
    _accept(store, 3, "Báo cáo tổng kết")
    if sqlite:
        assert _indexed(empty) == 0  # an accept does not index
    if indexed:
        assert text_indexer.index_pending(empty) == (3 if sqlite else 0)
    assert _found(empty, "chuyển ĐỀ ÁN") == [gone, kept]
    with empty.begin() as conn:
        conn.execute(events.delete().where(events.c.document == gone))
        conn.execute(deliveries.delete().where(deliveries.c.document == gone))
        conn.execute(documents.delete().where(documents.c.id == gone))
        conn.execute(documents.update().where(documents.c.id == kept)
                     .values(subject="Thông báo lịch họp"))
    _fts_intact(empty)
    assert _found(empty, "chuyển đề án") == []
    assert _found(empty, "LỊCH HỌP") == [kept]
    if sqlite:
        assert _indexed(empty) == (2 if indexed else 0)
        text_indexer.index_pending(empty)
        assert _indexed(empty) == 2
        _fts_intact(empty)
        assert _found(empty, "chuyển đề án") == []
        assert _found(empty, "LỊCH HỌP") == [kept]


def _drop(engine: sa.Engine, doc: str) -> None:
    with engine.begin() as conn:
        conn.execute(events.delete().where(events.c.document == doc))
        conn.execute(deliveries.delete().where(deliveries.c.document == doc))
        conn.execute(documents.delete().where(documents.c.id == doc))


def test_a_document_taking_a_deleted_newest_ones_rowid_is_indexed(tmp_path: Path) -> None:
    """SQLite gives a new row max(rowid) + 1: after the newest document is deleted, the
    next one takes a rowid the mark has passed; the mark comes back for it."""
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    store = Store(engine)
    store.create_schema()
    first = _accept(store, 1, "Công văn chuyển giao một")
    newest = _accept(store, 2, "Công văn chuyển giao hai")
    assert text_indexer.index_pending(engine) == 2
    _drop(engine, newest)
    again = _accept(store, 3, "Công văn chuyển giao ba")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT rowid FROM documents WHERE id = ?",
                                    (again,)).scalar() == 2  # the deleted one's rowid
    assert _found(engine, "chuyển giao") == [again, first]  # folded: after the mark
    assert text_indexer.index_pending(engine) == 1
    assert _indexed(engine) == 2
    assert _found(engine, "chuyển giao") == [again, first]
    engine.dispose()


def test_too_many_pending_documents_go_through_the_windows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    store = Store(engine)
    store.create_schema()
    ids = [_accept(store, n, f"Kế hoạch chuyển đổi số {n}") for n in range(5)]
    monkeypatch.setattr(text_index, "TAIL", 4)
    seen = _statements(engine, lambda: _found(engine, "chuyển đổi"))
    assert any("max(documents.received_at)" in s for s, _p in seen), seen
    assert _found(engine, "chuyển đổi") == ids[::-1]
    monkeypatch.setattr(text_index, "TAIL", 5)
    seen = _statements(engine, lambda: _found(engine, "chuyển đổi"))
    assert not any("max(documents.received_at)" in s for s, _p in seen), seen
    engine.dispose()


def test_the_indexer_thread_keeps_up_and_a_stopped_one_loses_nothing(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    store = Store(engine)
    store.create_schema()
    indexer = text_indexer.Indexer(engine, interval_s=0.05)
    indexer.start()
    try:
        early = [_accept(store, n, f"Tờ trình CHUYỂN đổi {n}") for n in range(40)]
        deadline = time.monotonic() + 20
        while _indexed(engine) < 40:
            assert time.monotonic() < deadline, "the indexer did not index 40 documents"
            time.sleep(0.05)
    finally:
        assert indexer.stop(10)
    late = [_accept(store, 40 + n, f"Tờ trình chuyển ĐỔI {n}") for n in range(15)]
    assert _indexed(engine) == 40
    assert pages(engine, OPERATOR, 10, words="chuyển đổi") == (early + late)[::-1] \
        == reference(engine, OPERATOR, "chuyển đổi")
    assert text_indexer.Indexer(engine).tick() == 15
    assert _indexed(engine) == 55
    _fts_intact(engine)
    assert pages(engine, OPERATOR, 10, words="chuyển đổi") == (early + late)[::-1]
    engine.dispose()


def test_a_serving_bus_indexes_what_its_rest_door_accepts(tmp_path: Path) -> None:
    """End to end: a document POSTed to a running bus is in the index within seconds,
    by the indexer that ``lgsp serve`` runs (bus.runtime.running), and found by the
    console's search before and after."""
    with running_bus(tmp_path / "bus") as server, running(server.bus, deliver=False):
        packet = (EdocBuilder("000.00.12.H37").to("000.00.00.H37")
                  .subject("Kế hoạch CHUYỂN đổi số năm 2026 – Lạng Sơn")
                  .signer("Nguyễn Văn A", "Giám đốc").code("12", "KH-STTTT").build())
        response = httpx.post(server.url + "/api/v1/edocs", content=packet_bytes(packet),
                              headers=api_key("eoffice"))
        assert response.status_code == 202, response.text
        doc = response.json()["id"]
        engine = server.bus.store.engine
        assert _found(engine, "chuyển đổi số") == [doc]
        deadline = time.monotonic() + 20
        while _indexed(engine) < 1:
            assert time.monotonic() < deadline, "serve's indexer did not index the document"
            time.sleep(0.1)
        assert _found(engine, "chuyển đổi số") == [doc]


def test_serve_and_worker_run_an_indexer_on_sqlite_only(tmp_path: Path) -> None:
    sqlite = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    assert [type(loop) for loop in text_indexer.loops(sqlite)] == [text_indexer.Indexer]
    assert text_indexer.loops(sa.create_engine("postgresql://u@localhost/x")) == []
    sqlite.dispose()


def _objects(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return {r[0] for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE name LIKE '%subject%'")}
        return {r[0] for r in conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE strpos(indexname, 'subject') > 0")}


def test_revision_0013_builds_the_index_over_existing_documents_and_drops_it(
        empty: sa.Engine) -> None:
    with empty.begin() as conn:
        command.upgrade(alembic_config(conn), "0012_document_index")
    store = Store(empty)
    old = _accept(store, 1, "Tờ trình về việc CHUYỂN đổi số")
    assert not _objects(empty)
    with empty.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert (len(_objects(empty)) > 5) is (empty.dialect.name == "sqlite")  # none on PG
    assert _found(empty, "chuyển đổi") == [old]
    if empty.dialect.name == "sqlite":  # built over the old one, the mark after it
        assert _indexed(empty) == 1 and text_indexer.index_pending(empty) == 0
    new = _accept(store, 2, "Kế hoạch chuyển đổi số năm 2026")
    assert _found(empty, "CHUYỂN ĐỔI") == [new, old]
    with empty.begin() as conn:
        command.downgrade(alembic_config(conn), "0012_document_index")
    assert not _objects(empty)
    _accept(store, 3, "chuyển đổi số: lần ba")  # no trigger left behind
    with empty.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert len(_found(empty, "chuyển đổi")) == 3
    _fts_intact(empty)

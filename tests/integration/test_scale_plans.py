"""The searches, the metrics scrape and the purge use indexes on a database with history.

The suite's small version of tests/bench/bench_scale.py: 20,000 documents (60,000
deliveries, 200,000 events) filled by tests/bench/fill_db.py, then the query PLAN of each
statement the bus runs is checked — which index it searches, and that it never walks a
whole table or probes every document against every matching delivery. Plans, not
timings: a plan that is right at 20,000 rows stays right at a million (the benchmark
shows the figures), while a timing on a shared machine proves nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from bus.console import views
from bus.console.views import Search, search
from bus.lifecycle.overdue import DeadlineBook, OverdueCollector
from bus.maintenance.retention import Policy, purge
from bus.metrics import Metrics
from bus.store import NewDelivery, Store, window
from bus.store.queries import Viewer, list_documents, list_query
from bus.store.tables import create_engine, deliveries, documents
from tests.bench import fill_db

DOCUMENTS = 20_000
OPERATOR = Viewer(system="ops", operator=True)
CLERK = Viewer(system="qlvb-h05", hosted=frozenset(fill_db.agencies()[5:7]))


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path: Path = tmp_path_factory.mktemp("scale") / "filled.db"
    fill_db.fill(f"sqlite:///{path}", DOCUMENTS, log=lambda _m: None)
    engine = create_engine(f"sqlite:///{path}")
    Store(engine).create_schema()
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def busy_system(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 20,000 documents CLERK may see about 1,200, few enough for its searches to walk
    them (window.newest_visible, tested in test_search_drive.py); here it searches as a
    busy system of the million-document database does."""
    monkeypatch.setattr(window, "FEW_VISIBLE", 0)


def plans(engine: sa.Engine, run: Callable[[], Any], prefix: str = "SELECT") -> list[str]:
    """The EXPLAIN QUERY PLAN of every statement starting with ``prefix`` that ``run``
    executes, one string each."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _many: bool) -> None:
        if statement.lstrip().startswith(prefix):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert seen, "nothing was queried"
    with engine.connect() as conn:
        return [" / ".join(str(row[3]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters)) for statement, parameters in seen]


def full_scans(plan: str) -> list[str]:
    """Steps that read a whole table (SQLite says SCAN without an index, or one that
    does not narrow by a leading column)."""
    return [step for step in plan.split(" / ")
            if step.startswith("SCAN ") and "USING" not in step and "CONSTANT" not in step]


def first_page(engine: sa.Engine, viewer: Viewer, **params: str) -> list[str]:
    """The plans of the page's statements on documents (one per window it opened)."""
    return plans(engine, lambda: list_documents(engine, list_query(**params), viewer),
                 prefix="SELECT documents.id, documents.kind")


def console_page(engine: sa.Engine, viewer: Viewer, **params: str) -> list[str]:
    """The plans of the console's statements on documents for its first page."""
    return plans(engine, lambda: search(engine, Search(**params), viewer, ZoneInfo("UTC")),
                 prefix="SELECT documents.id, documents.kind")


def walked_from(plan: str, index: str) -> bool:
    """The statement goes down ``index`` of the deliveries newest first, one document per
    entry by its primary key, and stops at its page: nothing is sorted but the ties of one
    instant (RIGHT PART), and no list of documents is collected first."""
    steps = plan.split(" / ")
    return (steps[0].startswith("SEARCH drive USING ") and f"INDEX {index} (" in steps[0]
            and "SEARCH documents USING INDEX sqlite_autoindex_documents_1 (id=?)" in plan
            and "LIST SUBQUERY" not in plan and not full_scans(plan)
            and "TEMP B-TREE FOR ORDER BY" not in plan)


def probed_per_document(plan: str) -> bool:
    """A connected system's visibility is tested per document from one index (its
    deliveries' recipients), not by collecting every document the system may see."""
    return ("CORRELATED SCALAR SUBQUERY" in plan and "LIST SUBQUERY" not in plan
            and "COVERING INDEX ix_deliveries_document_recipients (document=?)" in plan)


@pytest.mark.parametrize("viewer", [OPERATOR, CLERK], ids=["operator", "system"])
def test_a_recipients_documents_are_walked_from_the_recipient_indexes(
        filled: sa.Engine, viewer: Viewer) -> None:
    """One statement per index whatever the history: before, a system's search widened
    its windows to five years when it rarely saw the recipient (up to eight statements,
    each collecting the window's documents addressed to the recipient and to the
    system's organisations)."""
    for found in (first_page(filled, viewer, recipient=fill_db.agencies()[42]),
                  console_page(filled, viewer, recipient=fill_db.agencies()[42])):
        assert len(found) == 2, found
        assert walked_from(found[0], "ix_deliveries_recipient"), found[0]
        assert "COVERING INDEX ix_deliveries_recipient" in found[0], found[0]
        assert walked_from(found[1], "ix_deliveries_resolved"), found[1]
        for plan in found:
            assert probed_per_document(plan) is (viewer is CLERK), plan


@pytest.mark.parametrize("state", ["parked", "pending"])
def test_a_system_searching_a_rare_state_walks_its_deliveries(filled: sa.Engine,
                                                              state: str) -> None:
    for found in (first_page(filled, CLERK, state=state), console_page(filled, CLERK,
                                                                      state=state)):
        assert len(found) == 1, found
        assert walked_from(found[0], "ix_deliveries_state"), found[0]
        assert probed_per_document(found[0]), found[0]


def test_a_system_searching_a_common_state_goes_through_windows(
        filled: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """More deliveries in the state than FEW_IN_STATE (parked, at a million documents):
    testing each one's visibility cost more than the windows' page (44 against 24 ms)."""
    monkeypatch.setattr(window, "FEW_IN_STATE", 50)
    for found in (first_page(filled, CLERK, state="parked"), console_page(filled, CLERK,
                                                                         state="parked")):
        assert found and not any("SEARCH drive" in plan for plan in found), found
        assert "ix_deliveries_state (state=?" in found[0], found[0]
    for plan in first_page(filled, OPERATOR, state="parked"):
        assert walked_from(plan, "ix_deliveries_state"), plan


def test_a_system_searching_a_sender_walks_its_index_once(filled: sa.Engine) -> None:
    """A sender the system rarely sees: one statement down the sender's index."""
    for found in (first_page(filled, CLERK, sender=fill_db.agencies()[42]),
                  console_page(filled, CLERK, sender=fill_db.agencies()[42])):
        assert len(found) == 1, found
        assert "ix_documents_sender_received (sender=?)" in found[0], found[0]
        assert "TEMP B-TREE FOR ORDER BY" not in found[0], found[0]
        assert probed_per_document(found[0]), found[0]


@pytest.mark.parametrize("state", ["parked", "pending", "refused", "awaiting"])
def test_a_rare_state_is_found_through_the_state_index(filled: sa.Engine, state: str) -> None:
    for main in first_page(filled, OPERATOR, state=state):
        assert walked_from(main, "ix_deliveries_state"), main
        # The plan this replaced: every document probed against every delivery in the state.
        assert "ix_deliveries_due" not in main, main
        assert not full_scans(main), main


def test_a_senders_documents_come_newest_first_from_its_index(filled: sa.Engine) -> None:
    for main in first_page(filled, OPERATOR, sender=fill_db.agencies()[3]):
        assert "ix_documents_sender_received (sender=?" in main, main
        # A sort of all of them says "FOR ORDER BY"; the right part is the id tie-break.
        assert "USE TEMP B-TREE FOR ORDER BY" not in main, main


def test_a_system_sees_its_documents_without_walking_everyone_elses(
        filled: sa.Engine) -> None:
    for main in first_page(filled, CLERK):
        assert "ix_documents_system_received" in main, main
        assert "ix_deliveries_recipient (recipient=?" in main, main
        assert not full_scans(main), main


def test_every_list_form_avoids_full_scans(filled: sa.Engine) -> None:
    forms: list[dict[str, str]] = [
        {}, {"kind": "status"}, {"since": "1700000000", "until": "1700600000"},
        {"sender": fill_db.agencies()[1], "since": "1700000000"},
        {"state": "delivered"}]
    for viewer in (OPERATOR, CLERK):
        for form in forms:
            for plan in first_page(filled, viewer, **form):
                assert not full_scans(plan), (form, plan)


def test_the_metrics_scrape_reads_only_open_deliveries(filled: sa.Engine) -> None:
    store = Store(filled)
    metrics = Metrics()
    metrics.watch(store.depth)
    metrics.registry.register(OverdueCollector(DeadlineBook(filled, lambda: None)))
    found = plans(filled, lambda: generate_latest(metrics.registry))
    assert len(found) == 2
    for plan in found:
        assert not full_scans(plan), plan
    # covering: the open deliveries' rows are never fetched (every parked one of the
    # history was, on each scrape)
    assert "COVERING INDEX ix_deliveries_state (state=?)" in found[0], found[0]
    assert "ix_delivery_deadlines_open (settled_at=?)" in found[1], found[1]


def test_the_purge_checks_shared_payloads_through_an_index(filled: sa.Engine) -> None:
    policy = Policy.from_settings({"edoc": "1765d", "status": "1765d"})
    found = plans(filled, lambda: purge(filled, policy, actor="test", batch=20, pause_s=0,
                                        batch_bytes=1 << 40))
    for plan in found:
        assert not full_scans(plan), plan
    assert any("ix_documents_payload_sha256" in p for p in found), found
    assert any("ix_documents_original_sha256" in p for p in found), found


@pytest.mark.parametrize("form", [
    {}, {"recipient": "000.00.04.H42"}, {"state": "parked"}, {"state": "delivered"},
    {"sender": "000.00.00.H03"}, {"kind": "status"},
    {"sender": "000.00.00.H01", "since": "1700000000", "until": "1760000000"}],
    ids=lambda form: "-".join(form) or "all")
@pytest.mark.parametrize("viewer", [OPERATOR, CLERK], ids=["operator", "system"])
def test_windowed_pages_are_the_pages_of_the_whole_table(
        filled: sa.Engine, viewer: Viewer, form: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Page after page, the windows give exactly what one query over every document gives
    (a first window of a thousand years is that query)."""
    def pages() -> list[list[str]]:
        out, cursor = [], None
        for _ in range(4):
            page = list_documents(filled, list_query(**form, limit=40, cursor=cursor), viewer)
            out.append([item.id for item in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break
        return out

    windowed = pages()
    monkeypatch.setattr(window, "FIRST_WINDOW_S", 1000 * 365 * 86400.0)
    assert windowed == pages()
    assert windowed[0], "the form should find documents in the filled database"


def test_a_delivery_is_created_when_its_document_is_received(tmp_path: Path) -> None:
    """The windows search deliveries by created_at from the window's start: a delivery
    created before its document was received would be missed."""
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    store = Store(engine)
    store.create_schema()
    accepted = store.accept(
        kind="edoc", sender="000.00.00.H01", document_id="d-1", dedup_key="edoc|a|d-1",
        content_sha256="0" * 64, payload=b"<edXML/>", system="qlvb", summary={},
        targets=[NewDelivery("000.00.00.H02", "000.00.00.H02", "ioffice", "default"),
                 NewDelivery("000.00.00.H03", "000.00.00.H04", "axis", "default")])
    with engine.connect() as conn:
        received = conn.execute(sa.select(documents.c.received_at).where(
            documents.c.id == accepted.document)).scalar_one()
        created = conn.execute(sa.select(deliveries.c.created_at).where(
            deliveries.c.document == accepted.document)).scalars().all()
    assert len(created) == 2 and all(at == received for at in created)
    engine.dispose()


@pytest.mark.parametrize("form", [
    {"recipient": "000.00.04.H42"}, {"state": "parked"}, {"words": "chuyển đổi số"},
    {"sender": "000.00.00.H03", "since": "2023-01-01", "until": "2024-06-30"},
    {"code": "UBND-VX"}], ids=lambda form: "-".join(form))
@pytest.mark.parametrize("viewer", [OPERATOR, CLERK], ids=["operator", "system"])
def test_the_consoles_windowed_pages_are_its_whole_table_pages(
        filled: sa.Engine, viewer: Viewer, form: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    zone = ZoneInfo("Asia/Ho_Chi_Minh")

    def pages() -> list[list[str]]:
        out, cursor = [], ""
        for _ in range(3):
            page = search(filled, Search(**form, cursor=cursor), viewer, zone)
            out.append([row.id for row in page.rows])
            cursor = page.next_cursor or ""
            if not cursor:
                break
        return out

    windowed = pages()
    monkeypatch.setattr(window, "FIRST_WINDOW_S", 1000 * 365 * 86400.0)
    assert windowed == pages()
    assert windowed[0], "the form should find documents in the filled database"


def test_a_search_does_not_wait_for_a_writer(filled: sa.Engine) -> None:
    """A purge batch (any writer) holds SQLite's write lock for its transaction; searches
    and the depth gauge read their WAL snapshot meanwhile instead of queueing behind it."""
    writer = create_engine(str(filled.url))
    store = Store(filled)
    with writer.begin() as conn:
        conn.execute(sa.text("UPDATE documents SET code = code WHERE id = '0'"))
        began = time.monotonic()
        page = list_documents(filled, list_query(recipient="000.00.04.H42"), OPERATOR)
        found = search(filled, Search(state="parked"), OPERATOR, ZoneInfo("UTC"))
        depth = store.depth()
        overdue = DeadlineBook(filled, lambda: None).counts()
        spent = time.monotonic() - began
    writer.dispose()
    assert page.items and found.rows and depth and overdue
    assert spent < 5, f"the reads waited {spent:.1f} s for the writer"


def test_a_document_id_is_found_in_one_statement_through_its_index(filled: sa.Engine) -> None:
    with filled.connect() as conn:
        wanted = conn.execute(sa.text("SELECT document_id FROM documents "
                                      "ORDER BY received_at LIMIT 1")).scalar_one()
    found = plans(filled, lambda: search(filled, Search(document_id=wanted), CLERK,
                                         ZoneInfo("UTC")),
                  prefix="SELECT documents.id, documents.kind")
    assert len(found) == 1, found
    assert "ix_documents_document_id (document_id=?)" in found[0], found[0]
    # visibility probed per document, not a list of everything the system may see
    assert "LIST SUBQUERY" not in found[0], found[0]


@pytest.mark.parametrize("viewer", [OPERATOR, CLERK], ids=["operator", "system"])
def test_a_full_code_is_found_in_one_statement_through_its_index(
        filled: sa.Engine, viewer: Viewer) -> None:
    """Typed in lower case too: Vietnamese codes are written in capitals ("QĐ-UBND")."""
    with filled.connect() as conn:
        wanted = conn.execute(sa.text(
            "SELECT code FROM documents WHERE code IS NOT NULL AND system = :s "
            "ORDER BY received_at LIMIT 1"), {"s": CLERK.system}).scalar_one()
    zone = ZoneInfo("UTC")
    found = plans(filled, lambda: search(filled, Search(code=wanted.lower()), viewer, zone),
                  prefix="SELECT documents.id, documents.kind")
    assert len(found) == 1, found
    assert "ix_documents_code_received (code=?)" in found[0], found[0]
    assert "LIST SUBQUERY" not in found[0], found[0]
    page = search(filled, Search(code=wanted.lower()), viewer, zone)
    assert page.rows and {row.code for row in page.rows} == {wanted}
    assert page.searched_to is None


def _fold_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]

    def counting(value: str | None) -> str | None:
        calls[0] += 1
        return None if value is None else value.casefold()

    monkeypatch.setattr(views, "_fold", counting)
    return calls


@pytest.mark.parametrize("viewer", [OPERATOR, CLERK], ids=["operator", "system"])
def test_a_partial_code_folds_a_bounded_number_of_codes_per_page(
        filled: sa.Engine, viewer: Viewer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A code nobody has: before, every code of the history went through the fold."""
    monkeypatch.setattr(views, "CODE_SCAN", 2_000)
    calls = _fold_calls(monkeypatch)
    page = search(filled, Search(code="zz/không-có"), viewer, ZoneInfo("UTC"))
    assert 0 < calls[0] <= 2_001, calls[0]
    assert not page.rows
    assert page.searched_to is not None and page.next_cursor


def test_a_partial_codes_pages_are_its_whole_table_answer(
        filled: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paged through "next page", a bounded search finds every document, in order."""
    zone = ZoneInfo("UTC")

    def walk() -> tuple[list[str], int]:
        ids, cursor = [], ""
        for pages in range(1, 60):
            page = search(filled, Search(code="12/", cursor=cursor), OPERATOR, zone)
            ids += [row.id for row in page.rows]
            assert all("12/" in (row.code or "") for row in page.rows)
            cursor = page.next_cursor or ""
            if not cursor:
                return ids, pages
        raise AssertionError("more than 60 pages")

    whole, whole_pages = walk()
    monkeypatch.setattr(views, "CODE_SCAN", 1_500)
    bounded, bounded_pages = walk()
    assert len(whole) > 50 and bounded == whole
    assert bounded_pages > whole_pages


def test_the_unsealed_events_gauge_stops_counting_at_its_cap(filled: sa.Engine) -> None:
    """The filled history was never sealed (200,000 events): the scrape counted them all
    (10 million, 3 s, in the benchmark's database)."""
    from bus.evidence import gauges

    with filled.connect() as conn:
        events, first = conn.execute(sa.text("SELECT count(*), min(at) FROM events")).one()
    assert events > gauges.COUNTED
    metrics = {m.name: m.samples[0].value for m in gauges.ChainCollector(filled).collect()}
    assert metrics["lgsp_audit_unsealed_events"] == gauges.COUNTED
    assert metrics["lgsp_audit_oldest_unsealed_age_seconds"] == pytest.approx(
        time.time() - first, abs=60)

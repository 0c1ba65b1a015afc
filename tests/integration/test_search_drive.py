"""Searches driven by a sender, a recipient or a rare state (bus.store.window.newest_delivered)
give exactly the pages a plain reading of every row gives, on SQLite and PostgreSQL, and
PostgreSQL walks the same indexes as SQLite (tests/integration/test_scale_plans.py checks
SQLite's plans).

The reference here is Python over every row of a 20,000-document history (fill_db), not
the bus's SQL: visibility, the filters and the newest-first order written out once more.
The history includes successor resolution (ten agencies merged a year ago), so a
recipient's documents come from both of its walks.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from bus.console import views
from bus.console.views import Search, search
from bus.store import NewDelivery, Store, queries, window
from bus.store.queries import Viewer, list_documents, list_query
from bus.store.tables import create_engine, deliveries, documents
from tests.bench import fill_db
from tests.servers import PostgresServer

DOCUMENTS = 20_000
AGENCIES = fill_db.agencies()
MERGED, SUCCESSOR = AGENCIES[295], AGENCIES[285]
OPERATOR = Viewer(system="ops", operator=True)
CLERK = Viewer(system="qlvb-h05", hosted=frozenset(AGENCIES[5:8]))
HEIR = Viewer(system="qlvb-h29", hosted=frozenset([SUCCESSOR]))
VIEWERS = {"operator": OPERATOR, "system": CLERK, "successor": HEIR}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('drive') / 'filled.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        name = f"lgsp_drive_{secrets.token_hex(4)}"
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = server.url.rsplit("/", 1)[0] + "/" + name
    fill_db.fill(url, DOCUMENTS, log=lambda _m: None)
    engine = create_engine(url)
    yield engine
    engine.dispose()


def reference(engine: sa.Engine, viewer: Viewer, *, sender: str | None = None,
              recipient: str | None = None, state: str | None = None,
              since: float | None = None, until: float | None = None) -> list[str]:
    d, dl = documents.c, deliveries.c
    with engine.connect() as conn:
        docs = conn.execute(sa.select(d.id, d.sender, d.system, d.received_at)).all()
        targets: dict[str, list[Any]] = defaultdict(list)
        for row in conn.execute(sa.select(dl.document, dl.recipient, dl.effective_recipient,
                                          dl.state)):
            targets[row.document].append(row)

    def keep(doc: Any) -> bool:
        mine = targets[doc.id]
        return ((viewer.operator or doc.system == viewer.system
                 or any({t.recipient, t.effective_recipient} & viewer.hosted for t in mine))
                and (sender is None or doc.sender == sender)
                and (recipient is None
                     or any(recipient in (t.recipient, t.effective_recipient) for t in mine))
                and (state is None or any(t.state == state for t in mine))
                and (since is None or doc.received_at >= since)
                and (until is None or doc.received_at < until))

    found = sorted((doc for doc in docs if keep(doc)), key=lambda doc: (doc.received_at, doc.id),
                   reverse=True)
    return [doc.id for doc in found]


def api_pages(engine: sa.Engine, viewer: Viewer, pages: int = 4, **form: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(pages):
        page = list_documents(engine, list_query(**form, limit=40, cursor=cursor), viewer)
        ids += [item.id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    return ids


FORMS: list[dict[str, str]] = [
    {"recipient": AGENCIES[42]}, {"recipient": MERGED}, {"recipient": SUCCESSOR},
    {"sender": AGENCIES[42]}, {"sender": AGENCIES[3]}, {"sender": AGENCIES[290]},
    {"state": "parked"}, {"state": "pending"}, {"state": "refused"},
    {"recipient": AGENCIES[7], "state": "delivered"},
    {"recipient": SUCCESSOR, "since": "1700000000", "until": "1790000000"},
    {"sender": AGENCIES[1], "state": "parked"}, {},
]


@pytest.fixture(params=["busy", "few"])
def visible_cap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A busy system walks the filter's index; one that may see few documents walks
    those (window.newest_visible): each way forced here, whatever walk_visible would
    choose at 20,000 documents."""
    if request.param == "busy":
        monkeypatch.setattr(window, "FEW_VISIBLE", 0)
    else:
        for module in (queries, views):
            monkeypatch.setattr(module, "walk_visible", lambda *_a, **_k: True)
    return str(request.param)


@pytest.mark.parametrize("form", FORMS, ids=lambda form: "-".join(form.values()) or "all")
@pytest.mark.parametrize("who", list(VIEWERS))
def test_driven_pages_are_every_rows_answer(filled: sa.Engine, who: str,
                                            form: dict[str, str], visible_cap: str) -> None:
    viewer = VIEWERS[who]
    expected = reference(filled, viewer, sender=form.get("sender"),
                         recipient=form.get("recipient"), state=form.get("state"),
                         since=float(form["since"]) if "since" in form else None,
                         until=float(form["until"]) if "until" in form else None)
    got = api_pages(filled, viewer, **form)
    assert got == expected[:len(got)]
    assert len(got) == min(len(expected), 160)


@pytest.mark.parametrize("form", [{"recipient": SUCCESSOR}, {"sender": AGENCIES[42]},
                                  {"state": "parked"}, {}],
                         ids=lambda form: "-".join(form) or "all")
@pytest.mark.parametrize("who", ["system", "successor"])
def test_the_consoles_driven_pages_are_every_rows_answer(
        filled: sa.Engine, who: str, form: dict[str, str], visible_cap: str) -> None:
    viewer = VIEWERS[who]
    expected = reference(filled, viewer, **form)
    got: list[str] = []
    cursor = ""
    for _ in range(3):
        page = search(filled, Search(**form, cursor=cursor), viewer, ZoneInfo("UTC"))
        got += [row.id for row in page.rows]
        cursor = page.next_cursor or ""
        if not cursor:
            break
    assert got and got == expected[:len(got)]


def test_the_history_has_resolved_deliveries(filled: sa.Engine) -> None:
    """Else the second walk of a recipient's documents would go untested."""
    with filled.connect() as conn:
        resolved = conn.execute(sa.select(sa.func.count()).where(
            deliveries.c.effective_recipient != deliveries.c.recipient)).scalar_one()
    assert resolved > 100


def test_a_document_delivered_twice_to_a_recipient_comes_once(tmp_path: Path) -> None:
    """Two destinations of one organisation (and, for every other document, a delivery
    resolved to it): the walks find a document two or three times; each page has it
    once, and the pages go on."""
    engine = create_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    store = Store(engine)
    store.create_schema()
    organ = "000.00.00.H02"
    made = []
    for n in range(6):
        made.append(store.accept(
            kind="edoc", sender="000.00.00.H01", document_id=f"d-{n}",
            dedup_key=f"edoc|a|d-{n}", content_sha256=f"{n:064d}", payload=b"<edXML/>",
            system="qlvb", summary={},
            targets=[NewDelivery(organ, organ, "ioffice", "default"),
                     NewDelivery(organ, organ, "archive", "default"),
                     *[NewDelivery("000.00.00.H09", organ, "axis", "default")] * (n % 2)]
        ).document)
    viewer = Viewer(system="other", hosted=frozenset([organ]))
    for limit in (1, 2, 4):
        ids, cursor = [], None
        for _ in range(10):
            page = list_documents(engine, list_query(recipient=organ, limit=limit,
                                                     cursor=cursor), viewer)
            ids += [item.id for item in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert ids == list(reversed(made)), limit
    engine.dispose()


def pg_plans(engine: sa.Engine, run: Any) -> list[str]:
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _many: bool) -> None:
        if statement.lstrip().startswith("SELECT documents.id, documents.kind"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        return ["\n".join(row[0] for row in conn.exec_driver_sql(
            "EXPLAIN (COSTS OFF) " + statement, parameters)) for statement, parameters in seen]


def walks(plan: str, index: str) -> bool:
    """Down ``index`` newest first, each document by its key, stopped by the LIMIT: no
    sort of the matches (an Incremental Sort of one instant's ties at most), no hash of
    everything the system may see, no sequential scan."""
    lines = plan.splitlines()
    return (lines[0].startswith("Limit") and "Nested Loop" in lines[1]
            and f"Scan Backward using {index} on deliveries drive" in plan
            and "documents_pkey" in plan and "Seq Scan" not in plan
            and "hashed SubPlan" not in plan and "\n  ->  Sort" not in plan)


@pytest.mark.parametrize("who", ["operator", "system"])
@pytest.mark.parametrize("visible_cap", ["busy"], indirect=True)
def test_postgresql_walks_a_recipients_deliveries(filled: sa.Engine, who: str,
                                                  visible_cap: str) -> None:
    if filled.dialect.name != "postgresql":
        pytest.skip("SQLite's plans: tests/integration/test_scale_plans.py")
    viewer = VIEWERS[who]
    found = pg_plans(filled, lambda: list_documents(
        filled, list_query(recipient=AGENCIES[42]), viewer))
    assert len(found) == 2, found
    assert walks(found[0], "ix_deliveries_recipient"), found[0]
    assert walks(found[1], "ix_deliveries_resolved"), found[1]
    for plan in found:
        assert ("Index Only Scan using ix_deliveries_document_recipients" in plan) \
            is (viewer is CLERK), plan


@pytest.mark.parametrize("visible_cap", ["busy"], indirect=True)
def test_postgresql_walks_a_rare_state_and_a_senders_documents(filled: sa.Engine,
                                                               visible_cap: str) -> None:
    if filled.dialect.name != "postgresql":
        pytest.skip("SQLite's plans: tests/integration/test_scale_plans.py")
    [state] = pg_plans(filled, lambda: list_documents(filled, list_query(state="parked"),
                                                      CLERK))
    assert walks(state, "ix_deliveries_state"), state
    # The sender of a tenth of the mail: an EXISTS was run as a hash of every delivery to
    # the system's organisations, built before the walk began.
    [sender] = pg_plans(filled, lambda: list_documents(
        filled, list_query(sender=AGENCIES[0]), CLERK))
    assert "Index Scan Backward using ix_documents_sender_received" in sender, sender
    assert "Index Only Scan using ix_deliveries_document_recipients" in sender, sender
    assert "hashed SubPlan" not in sender and "Seq Scan" not in sender, sender


def test_a_system_that_sees_few_documents_walks_those(filled: sa.Engine) -> None:
    """The biggest sender, searched by a system hosting one agency: its own documents
    and its agency's deliveries are walked (about 500), not the tenth of the history
    that organisation sent (about 1,900)."""
    form = {"sender": AGENCIES[0]}
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _many: bool) -> None:
        if statement.lstrip().startswith("SELECT documents.id, documents.kind"):
            seen.append((statement, parameters))

    sa.event.listen(filled, "before_cursor_execute", capture)
    try:
        list_documents(filled, list_query(**form), HEIR)
    finally:
        sa.event.remove(filled, "before_cursor_execute", capture)
    postgres = filled.dialect.name == "postgresql"
    explain = "EXPLAIN (COSTS OFF) " if postgres else "EXPLAIN QUERY PLAN "
    with filled.connect() as conn:
        found = [" / ".join(str(row[0] if postgres else row[3]) for row in conn.exec_driver_sql(
            explain + statement, parameters)) for statement, parameters in seen]
    assert len(found) == 3, found
    if postgres:
        # A bitmap of the system's few documents, or its index newest first
        assert "ix_documents_system_received" in found[0] and " own" in found[0], found[0]
        assert "using ix_deliveries_recipient on deliveries drive" in found[1], found[1]
        assert "using ix_deliveries_resolved on deliveries drive" in found[2], found[2]
    else:
        assert found[0].startswith("SEARCH own USING INDEX ix_documents_system_received"), found
        assert found[1].startswith("SEARCH drive USING COVERING INDEX ix_deliveries_recipient")
        assert found[2].startswith("SEARCH drive USING INDEX ix_deliveries_resolved"), found
    for plan in found:
        assert "sender_received" not in plan and "Seq Scan" not in plan, plan
        assert "LIST SUBQUERY" not in plan and "hashed SubPlan" not in plan, plan

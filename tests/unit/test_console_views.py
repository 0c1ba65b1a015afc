"""The console's read side on SQLite and PostgreSQL: search, scope, journey, queues."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bus import errors
from bus.console import actions, views
from bus.edxml import EdocBuilder, packet_bytes
from bus.store import NewDelivery, Store
from bus.store.queries import Viewer
from bus.store.tables import create_engine
from tests.cluster import fresh_database
from tests.fixtures_services import postgres  # noqa: F401 - fixture

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ALL = Viewer("console", operator=True)
COMMUNE = Viewer("hcm_egov", hosted=frozenset({"000.00.31.H37"}))


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


def _accept(store: Store, subject: str, code: tuple[str, str] = ("1", "UBND"),
            to: str = "000.00.31.H37", destination: str = "hcm_egov",
            attach: bool = False) -> tuple[str, str]:
    builder = EdocBuilder("000.00.12.H37").to(to).subject(subject).signer("A").code(*code)
    if attach:
        builder = builder.attach("Quyết định số 12.pdf", b"%PDF-1.4\n" + b"x" * 2991,
                                 content_type="application/pdf")
    edoc = builder.build()
    data = packet_bytes(edoc)
    doc_id = edoc.document_id or str(uuid.uuid4())
    accepted = store.accept(kind="edoc", sender="000.00.12.H37", document_id=doc_id,
                            dedup_key=f"edoc|000.00.12.H37|{doc_id}",
                            content_sha256=hashlib.sha256(data).hexdigest(), payload=data,
                            system="eoffice",
                            targets=[NewDelivery(to, to, destination, "default:hosted")],
                            summary={"subject": subject, "code": f"{code[0]}/{code[1]}"})
    return accepted.document, accepted.deliveries[0][0]


def _found(store: Store, viewer: Viewer = ALL, **search: str) -> list[str]:
    return [r.id for r in views.search(store.engine, views.Search(**search), viewer,
                                       ZONE).rows]


def test_search_fields_wildcards_and_scope(store: Store) -> None:
    plan, _ = _accept(store, "Kế hoạch chuyển đổi số 100% năm 2027", ("345", "KH-UBND"))
    other, _ = _accept(store, "Giấy mời họp", ("7", "GM_VP"), to="000.00.00.H37",
                       destination="vnpt_ioffice")
    assert _found(store, code="345/kh") == [plan]
    assert _found(store, words="CHUYỂN đổi 2027") == [plan]
    assert _found(store, words="100%") == [plan]
    assert _found(store, words="%") == [plan]        # a literal percent sign, not "any"
    assert _found(store, code="GM_VP") == [other]
    assert _found(store, code="_") == [other]        # a literal underscore, not "any one"
    assert _found(store, recipient="000.00.00.H37") == [other]
    assert set(_found(store, sender="000.00.12.H37")) == {plan, other}
    assert _found(store, COMMUNE) == [plan]
    assert _found(store, COMMUNE, code="GM") == []
    assert set(_found(store, since="2020-01-01", until="2099-12-31")) == {plan, other}
    assert _found(store, until="2020-01-01") == []
    with pytest.raises(errors.InvalidRequest):
        _found(store, state="lost")


def test_paging_never_repeats_or_skips(store: Store) -> None:
    ids = {_accept(store, f"Trang {n}")[0] for n in range(7)}
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = views.search(store.engine, views.Search(cursor=cursor), ALL, ZONE, limit=3)
        seen += [r.id for r in page.rows]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids)


def test_journey_orders_events_and_lists_attachments(store: Store) -> None:
    document, delivery = _accept(store, "Có đính kèm", attach=True)
    actions.act(store, "park", delivery, actor="console:lan", reason="bảo trì")
    journey = views.journey(store, document, ALL)
    assert [s.action for s in journey.steps] == ["accepted", "routed", "park"]
    assert journey.steps[-1].detail["reason"] == "bảo trì"
    assert journey.steps[-1].recipient == "000.00.31.H37"
    assert [(a.name, a.size) for a in journey.attachments] == [("Quyết định số 12.pdf", 3000)]
    with pytest.raises(errors.NotFound):
        views.journey(store, document, Viewer("vnpt_ioffice",
                                              hosted=frozenset({"000.00.00.H37"})))


def test_queues_count_states_and_group_failures_by_code(store: Store) -> None:
    _, first = _accept(store, "một")
    _, second = _accept(store, "hai")
    _, third = _accept(store, "ba", to="000.00.00.H37", destination="vnpt_ioffice")
    with store.begin() as conn:
        from bus.store.tables import deliveries

        for delivery, state, error in (
                (first, "parked", "gave up after 8 attempt(s): HTTP 503: {\"e\": 1}"),
                (second, "pending", "HTTP 503: {\"e\": 2}"),
                (third, "refused", "[SenderUnknown] not in our list")):
            conn.execute(deliveries.update().where(deliveries.c.id == delivery)
                         .values(state=state, last_error=error))
    by_name = {q.destination: q for q in views.queues(store)}
    assert by_name["hcm_egov"].counts == {"parked": 1, "pending": 1}
    assert by_name["hcm_egov"].failures == [("HTTP 503", 2)]
    assert by_name["hcm_egov"].oldest_age_s is not None
    assert by_name["vnpt_ioffice"].failures == [("SenderUnknown", 1)]

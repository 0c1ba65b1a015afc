"""Recall, update, replace and the recall request (13), through :meth:`Bus.submit` on the
embedded store with the sample province's directory and routes.

No delivery worker runs here, so the original's deliveries are still pending when the
recall arrives: exactly the case the issue found ("its still-pending deliveries go out
after the recall"). The worker side (claim, finish, RabbitMQ) is in
``tests/integration/test_lifecycle_e2e.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from bus import errors
from bus.app import Bus
from bus.delivery.worker import DeliveryWorker
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.edxml.model import ReplacementInfo
from bus.settings import load_settings
from bus.store import Claim
from bus.store.queries import Viewer, document_detail
from bus.store.tables import business_statuses, deliveries, document_links, events

SO_TTTT = "000.00.12.H37"     # eoffice
VP_UBND = "000.00.00.H37"     # vnpt_ioffice
XA_31, XA_32 = "000.00.31.H37", "000.00.32.H37"  # hcm_egov
OPERATOR = Viewer("operator", operator=True)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    running = Bus(load_settings(environ={}, data_dir=tmp_path / "bus"))
    try:
        yield running
    finally:
        running.close()


def original(*to: str, document_id: str = "000.00.12.H37,2026/12/01,101/STTTT") -> Edoc:
    return (EdocBuilder(SO_TTTT).to(*(to or (VP_UBND, XA_31))).subject("Kế hoạch chuyển đổi số")
            .signer("Nguyễn Văn A", "Giám đốc").code("101", "STTTT-KH")
            .document_id(document_id).build())


def superseding(kind: str, target: Edoc, *to: str, via: str = "response_for") -> Edoc:
    builder = (EdocBuilder(SO_TTTT).to(*(to or tuple(target.recipients)))
               .subject(f"{kind}: Kế hoạch chuyển đổi số").signer("Nguyễn Văn A", "Giám đốc")
               .code("102", "STTTT-KH"))
    assert target.document_id
    if via == "response_for":
        builder.responding_to(SO_TTTT, str(target.code), target.document_id)
        builder.business(kind, "Ban hành nhầm")
    elif via == "replacement":
        builder.business(kind, "Thay thế", replaces=[
            ReplacementInfo(target.document_id, list(target.recipients))])
    else:
        builder.business(kind, "Cập nhật", document_id=target.document_id)
    return builder.build()


def send(bus: Bus, edoc: Edoc, system: str = "eoffice") -> str:
    return bus.submit(packet_bytes(edoc), system=system, channel="rest").document


def states(bus: Bus, doc: str) -> dict[str, str]:
    dl = deliveries.c
    with bus.store.engine.connect() as conn:
        return {r.effective_recipient: r.state for r in conn.execute(
            sa.select(dl.effective_recipient, dl.state)
            .where(dl.document == doc, dl.is_copy.is_(False)))}


def statuses(bus: Bus, doc: str) -> list[tuple[str, str]]:
    bs = business_statuses.c
    with bus.store.engine.connect() as conn:
        return [(r.code, r.organ_id) for r in conn.execute(
            sa.select(bs.code, bs.organ_id).where(bs.document == doc).order_by(bs.id))]


@pytest.mark.parametrize("via", ["response_for", "replacement", "business"])
def test_a_revoke_links_and_withdraws_in_the_same_transaction(bus: Bus, via: str) -> None:
    first = original()
    doc = send(bus, first)
    assert set(states(bus, doc).values()) == {"pending"}
    recall = send(bus, superseding("revoke", first, via=via))
    assert states(bus, doc) == {VP_UBND: "withdrawn", XA_31: "withdrawn"}
    assert set(states(bus, recall).values()) == {"pending"}
    with bus.store.engine.connect() as conn:
        link = conn.execute(sa.select(document_links)).one()
        withdrawn_events = conn.execute(sa.select(events.c.at).where(
            events.c.document == doc, events.c.action == "withdrawn")).scalars().all()
        accepted_at = conn.execute(sa.select(events.c.at).where(
            events.c.document == recall, events.c.action == "accepted")).scalar_one()
    assert (link.original, link.superseding, link.kind, link.withdrawn) == \
        (doc, recall, "revoke", 2)
    assert withdrawn_events == [accepted_at, accepted_at]   # one transaction, one clock
    view = document_detail(bus.store.engine, doc, OPERATOR)
    [by] = view.superseded_by
    assert (by.kind, by.document, by.withdrawn, by.unnamed_recipients) == \
        ("revoke", recall, 2, [])
    assert {d.state for d in view.deliveries if not d.is_copy} == {"withdrawn"}
    assert [s.document for s in document_detail(bus.store.engine, recall,
                                                OPERATOR).supersedes] == [doc]
    scrape = generate_latest(bus.metrics.registry).decode()
    assert 'lgsp_recalls_total{kind="revoke"} 1.0' in scrape
    assert "lgsp_deliveries_withdrawn_total 2.0" in scrape


def test_a_withdrawn_delivery_is_never_claimed(bus: Bus) -> None:
    first = original(VP_UBND)
    doc = send(bus, first)
    [(delivery, _)] = [p for p in bus.submit(packet_bytes(first), system="eoffice",
                                             channel="rest").deliveries]
    send(bus, superseding("revoke", first))
    assert bus.store.claim(delivery, lease_s=60, worker="w") is None
    worker = DeliveryWorker.from_bus(bus, name="w")
    assert worker.handle(delivery) == "skipped"
    assert states(bus, doc) == {VP_UBND: "withdrawn"}


def test_an_attempt_under_way_finishes_and_a_failed_one_is_not_retried(bus: Bus) -> None:
    first = original(VP_UBND, XA_31)
    sent = bus.submit(packet_bytes(first), system="eoffice", channel="rest")
    ids = dict((dest, d) for d, dest in sent.deliveries)
    busy = bus.store.claim(ids["vnpt_ioffice"], lease_s=60, worker="w1")
    failing = bus.store.claim(ids["hcm_egov"], lease_s=60, worker="w2")
    assert isinstance(busy, Claim) and isinstance(failing, Claim)
    recall = send(bus, superseding("revoke", first))
    assert states(bus, sent.document) == {VP_UBND: "delivering", XA_31: "delivering"}
    assert bus.store.finish(busy, "delivered", worker="w1")
    assert bus.store.finish(failing, "pending", worker="w2", reason="timeout", retry_at=0)
    assert states(bus, sent.document) == {VP_UBND: "delivered", XA_31: "withdrawn"}
    detail = document_detail(bus.store.engine, sent.document, OPERATOR)
    superseded = [h for h in detail.history if h.action == "superseded"]
    assert superseded[0].detail and sorted(superseded[0].detail["in_flight"]) == \
        [VP_UBND, XA_31]
    assert recall


def test_an_update_links_but_withdraws_nothing(bus: Bus) -> None:
    first = original()
    doc = send(bus, first)
    send(bus, superseding("update", first, via="business"))
    assert set(states(bus, doc).values()) == {"pending"}
    [by] = document_detail(bus.store.engine, doc, OPERATOR).superseded_by
    assert (by.kind, by.withdrawn) == ("update", 0)


def test_recipients_left_out_are_flagged_and_not_added_by_default(bus: Bus) -> None:
    first = original(VP_UBND, XA_31)
    doc = send(bus, first)
    recall = send(bus, superseding("revoke", first, VP_UBND))
    assert set(states(bus, recall)) == {VP_UBND}
    [by] = document_detail(bus.store.engine, doc, OPERATOR).superseded_by
    assert by.unnamed_recipients == [XA_31] and by.added_recipients == []
    flags = {r.effective_recipient: r.recall
             for r in document_detail(bus.store.engine, doc, OPERATOR).recipients}
    assert flags == {VP_UBND: None, XA_31: "flagged"}
    commune = Viewer("hcm_egov", frozenset({XA_31, XA_32}))
    [hidden] = document_detail(bus.store.engine, doc, commune).superseded_by
    assert (hidden.kind, hidden.document) == ("revoke", None)   # it may not read the recall
    shown = document_detail(bus.store.engine, doc, commune).model_dump_json()
    assert recall not in shown


def test_a_route_makes_the_recall_follow_the_original(tmp_path: Path) -> None:
    routes = (Path(__file__).parents[2] / "routes.yaml").read_text(encoding="utf-8")
    path = tmp_path / "routes.yaml"
    path.write_text(routes.replace("defaults:\n", "defaults:\n  recall_follows_original: true\n",
                                   1), encoding="utf-8")
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "bus", routes=path))
    try:
        first = original(VP_UBND, XA_31)
        doc = send(bus, first)
        recall = send(bus, superseding("revoke", first, VP_UBND))
        assert states(bus, recall) == {VP_UBND: "pending", XA_31: "pending"}
        [by] = document_detail(bus.store.engine, doc, OPERATOR).superseded_by
        assert by.unnamed_recipients == [XA_31] and by.added_recipients == [XA_31]
    finally:
        bus.close()


def test_an_unknown_original_is_accepted_with_a_notice(bus: Bus) -> None:
    never = original(document_id="000.00.12.H37,2026/01/01,never-sent")
    recall = send(bus, superseding("revoke", never))
    assert set(states(bus, recall).values()) == {"pending"}
    view = document_detail(bus.store.engine, recall, OPERATOR)
    assert view.supersedes == []
    [notice] = [h for h in view.history if h.action == "unlinked"]
    assert notice.detail and notice.detail["notices"][0]["code"] == "lifecycle.unknown_original"


def test_only_the_sender_may_revoke_its_document(bus: Bus) -> None:
    first = original(XA_31)
    doc = send(bus, first)
    foreign = (EdocBuilder(VP_UBND).to(XA_31).subject("Thu hồi").signer("B")
               .responding_to(SO_TTTT, str(first.code), first.document_id or "")
               .business("revoke", "Không phải của mình").build())
    recall = send(bus, foreign, system="vnpt_ioffice")
    assert states(bus, doc) == {XA_31: "pending"}
    [notice] = [h for h in document_detail(bus.store.engine, recall, OPERATOR).history
                if h.action == "unlinked"]
    assert notice.detail and SO_TTTT in notice.detail["notices"][0]["message"]


def test_a_recall_request_fans_out_and_is_recorded_per_recipient(bus: Bus) -> None:
    first = original(VP_UBND, XA_31, XA_32)
    doc = send(bus, first)
    request = bus.submit(packet_bytes(status_for(first, "13")), system="eoffice",
                         channel="rest")
    assert sorted(r["delivered_to"] for r in request.receipt["recipients"]) == \
        [VP_UBND, XA_31, XA_32]
    assert statuses(bus, doc) == [("13", VP_UBND), ("13", XA_31), ("13", XA_32)]
    bus.submit(packet_bytes(status_for(first, "15", sender=XA_31)), system="hcm_egov",
               channel="rest")
    bus.submit(packet_bytes(status_for(first, "16", sender=VP_UBND)), system="vnpt_ioffice",
               channel="rest")
    recall = {r.effective_recipient: r.recall
              for r in document_detail(bus.store.engine, doc, OPERATOR).recipients}
    assert recall == {VP_UBND: "refused", XA_31: "accepted", XA_32: "requested"}
    with pytest.raises(errors.StatusNotAllowed):
        bus.submit(packet_bytes(status_for(first, "13", sender=XA_31)),
                   system="hcm_egov", channel="rest")


def test_an_acknowledgement_of_the_recall_is_recorded_against_the_original(bus: Bus) -> None:
    first = original(VP_UBND, XA_31)
    doc = send(bus, first)
    recall_edoc = superseding("revoke", first)
    recall = send(bus, recall_edoc)
    bus.submit(packet_bytes(status_for(recall_edoc, "15", sender=XA_31)), system="hcm_egov",
               channel="rest")
    assert statuses(bus, doc) == [("15", XA_31)]
    assert statuses(bus, recall) == [("15", XA_31)]
    view = document_detail(bus.store.engine, doc, OPERATOR)
    assert {r.effective_recipient: r.recall for r in view.recipients} == \
        {VP_UBND: None, XA_31: "accepted"}


def test_business_status_per_recipient_and_never_answered(bus: Bus) -> None:
    first = original(VP_UBND, XA_31)
    doc = send(bus, first)
    for code in ("01", "03", "06"):
        bus.submit(packet_bytes(status_for(first, code)), system="vnpt_ioffice",
                   channel="rest")
    mine = Viewer("vnpt_ioffice", frozenset({VP_UBND}))
    view = {r.effective_recipient: r for r in document_detail(bus.store.engine, doc,
                                                               mine).recipients}
    assert [s.code for s in view[VP_UBND].timeline] == ["01", "03", "06"]
    assert (view[VP_UBND].business_status, view[VP_UBND].never_answered) == ("06", False)
    assert (view[XA_31].business_status, view[XA_31].never_answered) == (None, True)
    history = [(h.action, h.detail) for h in document_detail(bus.store.engine, doc,
                                                             mine).history]
    assert [d for a, d in history if a == "business_status"] == [
        {"organ_id": VP_UBND, "code": c} for c in ("01", "03", "06")]


def test_a_recipient_the_fan_out_cannot_reach_does_not_cost_the_others(tmp_path: Path) -> None:
    routes = (Path(__file__).parents[2] / "routes.yaml").read_text(encoding="utf-8")
    path = tmp_path / "routes.yaml"
    path.write_text(routes.replace("rules:\n", (
        "rules:\n  - name: no-recalls-to-32\n"
        f"    match: {{kind: status, status_code: '13', recipient: '{XA_32}'}}\n"
        "    refuse: {code: RouteNotAllowed, message: closed for recalls}\n"), 1),
        encoding="utf-8")
    bus = Bus(load_settings(environ={}, data_dir=tmp_path / "bus", routes=path))
    try:
        first = original(VP_UBND, XA_31, XA_32)
        send(bus, first)
        request = bus.submit(packet_bytes(status_for(first, "13")), system="eoffice",
                             channel="rest")
        assert sorted(r["delivered_to"] for r in request.receipt["recipients"]) == \
            [VP_UBND, XA_31]
    finally:
        bus.close()

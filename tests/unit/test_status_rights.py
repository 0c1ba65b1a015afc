"""Who may report a business status on a document (contract.md, "Security posture").

The decision (:func:`bus.ingress.match_status`) is tested on its own first, then through
:class:`bus.ingress.Ingress` on a real SQLite store with the sample directory, where the
outside battery's case (HCM Egov's key reporting "06 completed" on a document eOffice
sent only to 000.00.00.H37) must be refused and leave nothing behind. The read side must
not hand out the internal id of a document the caller may not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus import errors
from bus.app import Bus
from bus.directory import Agency, Directory, Successor, System
from bus.edxml import Edoc, EdocBuilder, packet_bytes, status_for
from bus.ingress import Original, match_status
from bus.settings import load_settings
from bus.store import Store
from bus.store.queries import Viewer, document_detail, list_documents, list_query
from bus.store.tables import business_statuses, create_engine, documents
from tests.old_schema import strip_to_pre_migration

SO_TTTT = "000.00.12.H37"     # eoffice
VP_UBND = "000.00.00.H37"     # vnpt_ioffice
XA_31, XA_32, XA_33 = "000.00.31.H37", "000.00.32.H37", "000.00.33.H37"  # hcm_egov
OUTSIDE = "000.00.00.G22"     # not hosted: the national axis

MERGER = date(2025, 7, 1)


def edoc(sender: str = SO_TTTT, *to: str, document_id: str | None = None) -> Edoc:
    builder = (EdocBuilder(sender).to(*(to or (VP_UBND,))).subject("Kế hoạch")
               .signer("Nguyễn Văn A", "Giám đốc").code("12", "KH"))
    if document_id:
        builder.document_id(document_id)
    return builder.build()


def _canon_on(day: date) -> Directory:
    return Directory(
        [System("eoffice", "eoffice"), System("hcm_egov", "hcm_egov")],
        [Agency(SO_TTTT, "Sở", "eoffice"), Agency(XA_31, "Xã 31", "hcm_egov"),
         Agency(XA_33, "Xã 33", "hcm_egov")],
        [Successor(XA_33, XA_31, MERGER)])


def canon_after_merger(code: str) -> str:
    return _canon_on(MERGER).resolve(code, MERGER)[0]


def canon_before_merger(code: str) -> str:
    return _canon_on(MERGER).resolve(code, date(2025, 6, 30))[0]


def same(code: str) -> str:
    return code


# ------------------------------------------------------------------ the decision alone


def test_a_recipient_may_report_and_the_status_is_matched() -> None:
    original = edoc(SO_TTTT, VP_UBND, XA_31)
    held = [Original("doc", SO_TTTT, {VP_UBND, XA_31})]
    assert match_status(status_for(original, "03"), held, same) == "doc"
    assert match_status(status_for(original, "06", sender=XA_31), held, same) == "doc"


def test_an_organisation_that_did_not_receive_it_is_refused() -> None:
    original = edoc(SO_TTTT, VP_UBND)
    held = [Original("f00d" * 8, SO_TTTT, {VP_UBND})]
    with pytest.raises(errors.StatusNotAllowed) as caught:
        match_status(status_for(original, "06", sender=XA_31), held, same)
    assert caught.value.http_status == 403
    assert XA_31 in caught.value.message and "f00d" not in caught.value.message
    assert caught.value.details == {"sender": XA_31, "document_id": original.document_id}


def test_a_status_about_a_document_never_seen_is_unmatched_not_refused() -> None:
    original = edoc(SO_TTTT, VP_UBND)
    assert match_status(status_for(original, "06", sender=XA_31), [], same) is None
    from_someone_else = [Original("other", XA_32, {XA_31})]
    assert match_status(status_for(original, "06", sender=XA_31), from_someone_else,
                        same) is None


def test_recall_only_from_the_sender() -> None:
    original = edoc(SO_TTTT, XA_31)
    held = [Original("doc", SO_TTTT, {XA_31})]
    assert match_status(status_for(original, "13"), held, same) == "doc"
    forged = status_for(original, "13", sender=VP_UBND)
    with pytest.raises(errors.StatusNotAllowed) as caught:
        match_status(forged, held, same)
    assert "recall" in caught.value.message
    # the recipient itself may not recall what it was sent either
    with pytest.raises(errors.StatusNotAllowed):
        match_status(status_for(original, "13", sender=XA_32),
                     [Original("doc", SO_TTTT, {XA_31, XA_32})], same)


def test_recall_about_nothing_held_for_that_addressee_is_unmatched() -> None:
    original = edoc(SO_TTTT, XA_31)
    assert match_status(status_for(original, "13", sender=VP_UBND), [], same) is None
    elsewhere = [Original("doc", SO_TTTT, {XA_32})]
    assert match_status(status_for(original, "13", sender=VP_UBND), elsewhere, same) is None


def test_successor_codes_answer_for_what_their_predecessor_received() -> None:
    before = edoc(SO_TTTT, XA_33)   # sent before the merger: effective recipient still 33
    held = [Original("doc", SO_TTTT, {XA_33})]
    status = status_for(before, "03", sender=XA_31)
    assert match_status(status, held, canon_after_merger) == "doc"
    with pytest.raises(errors.StatusNotAllowed):
        match_status(status, held, canon_before_merger)
    # after the merger the old code may still speak for the new one
    after = edoc(SO_TTTT, XA_31)
    held = [Original("doc2", SO_TTTT, {XA_31})]
    assert match_status(status_for(after, "03", sender=XA_33), held,
                        canon_after_merger) == "doc2"


def test_the_newest_entitled_document_is_chosen() -> None:
    original = edoc(SO_TTTT, VP_UBND)
    held = [Original("newest", SO_TTTT, {XA_31}), Original("older", SO_TTTT, {VP_UBND})]
    assert match_status(status_for(original, "03"), held, same) == "older"


# ------------------------------------------------------------------ through Ingress


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    running = Bus(load_settings(environ={}, data_dir=tmp_path / "bus"))
    try:
        yield running
    finally:
        running.close()


def _count(bus: Bus) -> int:
    with bus.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(documents))
                   .scalar_one())


def _statuses_of(bus: Bus, doc: str) -> list[tuple[str, str]]:
    bs = business_statuses.c
    with bus.store.engine.connect() as conn:
        return [(r.code, r.organ_id) for r in conn.execute(
            sa.select(bs.code, bs.organ_id).where(bs.document == doc).order_by(bs.id))]


def test_the_battery_case_is_refused_and_leaves_nothing(bus: Bus) -> None:
    original = edoc(SO_TTTT, VP_UBND)
    sent = bus.submit(packet_bytes(original), system="eoffice", channel="rest")
    before = _count(bus)
    forged = status_for(original, "06", sender=XA_31, at=datetime(2025, 7, 2, 9, 0))
    with pytest.raises(errors.StatusNotAllowed) as caught:
        bus.submit(packet_bytes(forged), system="hcm_egov", channel="rest")
    assert sent.document not in caught.value.message
    assert sent.document not in str(caught.value.details)
    assert _count(bus) == before and _statuses_of(bus, sent.document) == []
    assert bus.metrics.refused.labels("StatusNotAllowed", "rest")._value.get() == 1

    real = bus.submit(packet_bytes(status_for(original, "06")), system="vnpt_ioffice",
                      channel="rest")
    assert _statuses_of(bus, sent.document) == [("06", VP_UBND)]
    assert sent.document not in str(real.receipt)


def test_a_forged_recall_is_refused_and_the_real_one_attached(bus: Bus) -> None:
    original = edoc(SO_TTTT, XA_31)
    sent = bus.submit(packet_bytes(original), system="eoffice", channel="rest")
    forged = status_for(original, "13", sender=VP_UBND)
    with pytest.raises(errors.StatusNotAllowed):
        bus.submit(packet_bytes(forged), system="vnpt_ioffice", channel="rest")
    bus.submit(packet_bytes(status_for(original, "13")), system="eoffice", channel="rest")
    # recorded under the recipient asked to give the document back, not the requester
    assert _statuses_of(bus, sent.document) == [("13", XA_31)]


def test_a_route_copy_grants_nothing_beyond_the_addressee(bus: Bus) -> None:
    """routes.yaml copies revocations to the archive: that delivery carries the
    addressee's own code to another destination, so it entitles no other organisation."""
    revocation = (EdocBuilder(SO_TTTT).to(VP_UBND).subject("Thu hồi").signer("A")
                  .business("revoke", "Gửi nhầm").build())
    sent = bus.submit(packet_bytes(revocation), system="eoffice", channel="rest")
    assert sorted(d for _, d in sent.deliveries) == ["archive", "vnpt_ioffice"]
    with pytest.raises(errors.StatusNotAllowed):
        bus.submit(packet_bytes(status_for(revocation, "03", sender=XA_31)),
                   system="hcm_egov", channel="rest")
    bus.submit(packet_bytes(status_for(revocation, "03")), system="vnpt_ioffice",
               channel="rest")
    assert _statuses_of(bus, sent.document) == [("03", VP_UBND)]


def test_an_unmatched_status_is_routed_and_shown_unmatched(bus: Bus) -> None:
    never_sent = edoc(SO_TTTT, VP_UBND, document_id=f"{SO_TTTT},2025/07/01,never")
    accepted = bus.submit(packet_bytes(status_for(never_sent, "03")), system="vnpt_ioffice",
                          channel="rest")
    assert [d for _, d in accepted.deliveries] == ["eoffice"]
    view = document_detail(bus.store.engine, accepted.document,
                           Viewer("vnpt_ioffice", frozenset({VP_UBND})))
    assert view.kind == "status" and view.refers_to is None


def test_the_merged_commune_and_its_successor_may_both_answer(bus: Bus) -> None:
    """The sample directory merges 000.00.33 into 000.00.31 from 2025-07-01."""
    original = edoc(SO_TTTT, XA_33)
    sent = bus.submit(packet_bytes(original), system="eoffice", channel="rest")
    bus.submit(packet_bytes(status_for(original, "01", sender=XA_33)), system="hcm_egov",
               channel="rest")
    bus.submit(packet_bytes(status_for(original, "03", sender=XA_31)), system="hcm_egov",
               channel="rest")
    with pytest.raises(errors.StatusNotAllowed):
        bus.submit(packet_bytes(status_for(original, "06", sender=XA_32)),
                   system="hcm_egov", channel="rest")
    assert _statuses_of(bus, sent.document) == [("01", XA_33), ("03", XA_31)]


def test_a_status_from_outside_through_the_axis_answers_what_went_out(bus: Bus) -> None:
    original = edoc(SO_TTTT, OUTSIDE)
    sent = bus.submit(packet_bytes(original), system="eoffice", channel="rest")
    bus.submit(packet_bytes(status_for(original, "03")), system="national_axis",
               channel="poll")
    with pytest.raises(errors.StatusNotAllowed):
        bus.submit(packet_bytes(status_for(original, "06", sender="000.00.00.G01")),
                   system="national_axis", channel="poll")
    assert _statuses_of(bus, sent.document) == [("03", OUTSIDE)]


# ------------------------------------------------------------------ what the read side shows


def test_ids_linking_to_unreadable_documents_are_not_shown(bus: Bus) -> None:
    """A row recorded before the check (a status attached to a victim's document) and a
    legitimate one on a shared document: each system sees only ids it may read."""
    victim = edoc(SO_TTTT, VP_UBND)
    sent = bus.submit(packet_bytes(victim), system="eoffice", channel="rest")
    old_forgery = status_for(victim, "06", sender=XA_31)
    stored = bus.store.accept(
        kind="status", sender=XA_31, document_id=victim.document_id or "",
        dedup_key="status|legacy", content_sha256="0" * 64, payload=packet_bytes(old_forgery),
        system="hcm_egov", targets=[], summary={"status_code": "06"},
        refers_to=sent.document, status=(XA_31, "06", None))
    egov = Viewer("hcm_egov", frozenset({XA_31, XA_32, XA_33}))
    ioffice = Viewer("vnpt_ioffice", frozenset({VP_UBND}))
    eoffice = Viewer("eoffice", frozenset({SO_TTTT}))
    assert document_detail(bus.store.engine, stored.document, egov).refers_to is None
    page = list_documents(bus.store.engine, list_query(kind="status"), egov)
    assert [(i.id, i.refers_to) for i in page.items] == [(stored.document, None)]
    operator = Viewer("operator", operator=True)
    assert document_detail(bus.store.engine, stored.document,
                           operator).refers_to == sent.document
    # the victim's recipient sees the status but not the id of a record it may not read
    [seen] = document_detail(bus.store.engine, sent.document, ioffice).business_statuses
    assert (seen.code, seen.status_document) == ("06", None)
    [seen] = document_detail(bus.store.engine, sent.document, eoffice).business_statuses
    assert seen.status_document is None   # the legacy row was addressed to nobody

    shared = edoc(SO_TTTT, VP_UBND, XA_31)
    doc = bus.submit(packet_bytes(shared), system="eoffice", channel="rest").document
    answer = bus.submit(packet_bytes(status_for(shared, "03")), system="vnpt_ioffice",
                        channel="rest").document
    [seen] = document_detail(bus.store.engine, doc, egov).business_statuses
    assert (seen.code, seen.organ_id, seen.status_document) == ("03", VP_UBND, None)
    [seen] = document_detail(bus.store.engine, doc, eoffice).business_statuses
    assert seen.status_document == answer
    assert document_detail(bus.store.engine, answer, eoffice).refers_to == doc
    assert document_detail(bus.store.engine, answer, ioffice).refers_to == doc


def test_a_database_made_before_the_document_id_index_gets_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    Store(engine).create_schema()
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_documents_document_id")
        # and the rest of what a release before migrations lacked
        strip_to_pre_migration(conn)
    Store(engine).create_schema()
    names = {i["name"] for i in sa.inspect(engine).get_indexes("documents")}
    assert "ix_documents_document_id" in names
    engine.dispose()

"""The national axis' books, read for reconciliation (:mod:`bus.reconcile`).

Three reads and one fetch, next to (not inside) the adapter's delivery and polling code:

* ``confirmations(docId)`` — getSentEdocList for one docId: per recipient, sendStatus and
  receiveStatus (edxml.md §7). NotFound means the axis does not know the docId.
* ``sent_on(day)`` — getSentEdocList *without* a docId and with a signed ``date`` header
  (``yyyy-MM-dd``, the axis' zone): every recipient row of every document this system sent
  that day, each with its ``docId``. *(Assumed: the SDK has no such call; an axis that
  answers FAIL, or lists nothing with docIds, makes it None and only the bus's own sends
  are checked.)*
* ``received_on(day)`` — getReceivedEdocList for both message types with the same
  ``date`` header: the items created for this system that day, acknowledged or not
  *(assumed; an axis that ignores the header lists the pending items, which still finds
  everything never fetched)*.
* ``fetch(inbox, docId)`` — getEdoc, streamed into the bus (:mod:`.getedoc`) with the
  docId as source key, then updateStatus: the poller's own order, so a status fetched
  here and by the poller at the same time is recorded once.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

import httpx
import structlog

from adapters.national_axis.adapter import NationalAxisAdapter
from adapters.national_axis.getedoc import EdocFetch
from bus import vxp
from bus.adapter import Inbox, Retry
from bus.errors import LgspError
from bus.reconcile.model import AxisReceived, AxisSent

log = structlog.get_logger("lgsp.adapters.national_axis.ledger")

DATE_KEY: Final = "date"
_UNSUPPORTED: Final = frozenset({vxp.ErrorCode.NOT_FOUND, vxp.ErrorCode.UNKNOWN_OPERATION,
                                 vxp.ErrorCode.MALFORMED_REQUEST})


class NationalAxisLedger:
    """Reads for one ``national_axis`` destination; owns no connection of its own."""

    def __init__(self, adapter: NationalAxisAdapter) -> None:
        self.adapter = adapter

    def _call(self, request: vxp.SignedRequest) -> vxp.Answer:
        """An OK answer, or a FAIL whose code means "no such thing here"; else Retry/Refuse."""
        adapter = self.adapter
        adapter.open()
        assert adapter._client is not None
        op = request.operation.value
        try:
            response = adapter._client.post(request.url(adapter.config.endpoint),
                                            headers=request.headers, content=request.body)
        except httpx.HTTPError as exc:
            raise Retry(f"{op}: axis unreachable: {type(exc).__name__}: {exc}") from exc
        try:
            answer = vxp.parse_answer(response.content)
        except vxp.MalformedAnswer as exc:
            raise adapter._http_outcome(op, response, str(exc)) from None
        if answer.ok or answer.code in _UNSUPPORTED:
            return answer
        raise adapter._fail_outcome(op, answer, response)

    def _sign(self, operation: vxp.Operation, params: list[tuple[str, str]],
              body: bytes = b"") -> vxp.SignedRequest:
        return vxp.sign(operation, self.adapter._credentials(), params, body=body,
                        tz=self.adapter._zone)

    def confirmations(self, doc_id: str) -> list[AxisSent] | None:
        answer = self._call(vxp.get_sent_edoc_list(self.adapter._credentials(), doc_id,
                                                   tz=self.adapter._zone))
        if not answer.ok:
            return None
        return [_sent(doc_id, item) for item in _items(answer, "getSentEdocList")]

    def sent_on(self, day: date) -> list[AxisSent] | None:
        answer = self._call(self._sign(vxp.Operation.GET_SENT_EDOC_LIST,
                                       [(DATE_KEY, day.isoformat())]))
        if not answer.ok:
            return None
        rows = []
        for item in _items(answer, "getSentEdocList"):
            doc_id = str(item.get("docId") or item.get("DocId") or "")
            if not doc_id:
                return None
            rows.append(_sent(doc_id, item))
        return rows

    def received_on(self, day: date) -> list[AxisReceived]:
        found: list[AxisReceived] = []
        for message_type in vxp.MessageType:
            answer = self._call(self._sign(vxp.Operation.GET_RECEIVED_EDOC_LIST,
                                           [("messagetype", message_type.value),
                                            (DATE_KEY, day.isoformat())]))
            if not answer.ok:
                raise Retry(f"getReceivedEdocList: FAIL {answer.code}: {answer.desc[:300]}")
            for item in _items(answer, "getReceivedEdocList"):
                try:
                    got = vxp.ReceivedItem.from_json(item)
                except vxp.MalformedAnswer as exc:
                    raise Retry(f"getReceivedEdocList: {exc}") from None
                found.append(AxisReceived(got.doc_id, got.message_type or message_type.value,
                                          got.sender, got.status,
                                          self._epoch(got.created_time)))
        return found

    def _epoch(self, text: str) -> float | None:
        try:
            moment = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        return moment.replace(tzinfo=self.adapter._zone).timestamp()

    def fetch(self, inbox: Inbox, doc_id: str) -> str:
        creds = self.adapter._credentials()
        try:
            receipt = inbox.submit(EdocFetch(self.adapter, doc_id), source_id=doc_id)
        except LgspError:
            self.adapter._acknowledge(creds, doc_id, vxp.AckStatus.FAIL)
            raise
        self.adapter._acknowledge(creds, doc_id, vxp.AckStatus.DONE)
        log.info("axis.item.refetched", destination=self.adapter.name, doc_id=doc_id,
                 document=receipt.get("id"))
        return str(receipt["id"])

    def close(self) -> None:
        self.adapter.close()


def _items(answer: vxp.Answer, op: str) -> list[dict[str, object]]:
    try:
        return answer.items()
    except vxp.MalformedAnswer as exc:
        raise Retry(f"{op}: {exc}") from None


def _sent(doc_id: str, item: dict[str, object]) -> AxisSent:
    row = vxp.SentStatus.from_json(item)
    return AxisSent(doc_id, row.to, row.send_status, row.send_status_desc, row.receive_status)

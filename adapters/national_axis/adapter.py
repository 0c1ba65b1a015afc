"""The national document axis (VDXP): send with sendEdoc, receive by polling.

The axis is a JSON-over-HTTP API with HMAC-signed headers (:mod:`bus.vxp`). Outbound
this adapter only has to map the axis' answers onto the bus's three decisions;
inbound it runs the axis' receive loop — list, fetch, hand to the bus, acknowledge —
in the one order that never loses an item: an item is acknowledged (``done``) only
after the bus committed it, so a crash anywhere leaves it pending on the axis, and the
bus's source dedup on the axis docId turns the second fetch into the same receipt.

The axis itself is not idempotent. Duplicates of one delivery (a worker that died
after the axis answered) are absorbed, in this order, by: an in-process map from
idempotency key to DocId; the ``XroadVnpt-idempotency-key`` header, signed, which an
axis that honours it (the simulator, our own facade) uses to answer the first DocId
again; and finally the receiving province's bus, which accepts the same sender and
DocumentId with the same content once (contract.md, rule 4). See README.md.
"""

from __future__ import annotations

import collections
import hashlib
import os
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final
from zoneinfo import ZoneInfo

import httpx
import structlog
import yaml

from adapters._backoff import ItemBackoff
from adapters._http import HttpClientLifecycle, SizedStream, new_client
from adapters.http import retry_after_s
from adapters.national_axis.config import NationalAxisConfig
from adapters.national_axis.getedoc import EdocFetch
from bus import vxp
from bus.adapter import Adapter, Delivery, Inbox, Receipt, Refuse, Retry
from bus.errors import LgspError
from bus.store.blobs import PayloadBody

if TYPE_CHECKING:
    from adapters.national_axis.ledger import NationalAxisLedger

log = structlog.get_logger("lgsp.adapters.national_axis")

_REMEMBERED: Final = 4096
_DETAIL: Final = 300
_RETRIED_HTTP: Final = frozenset({404, 405, 408, 425, 429})
_AUTH_HTTP: Final = frozenset({401, 403})


class NationalAxisAdapter(HttpClientLifecycle, Adapter[NationalAxisConfig]):
    """Delivers to and polls the national axis; also confirms sends and lists agencies."""

    kind = "national_axis"
    Config = NationalAxisConfig
    capabilities = frozenset({"deliver", "poll", "confirm", "directory"})
    retryable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        httpx.TimeoutException, httpx.TransportError,
    )
    poll_interval_s = 60.0

    def __init__(self, name: str, config: NationalAxisConfig) -> None:
        super().__init__(name, config)
        self._sent: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._zone = ZoneInfo(config.timezone)
        self._backoff = ItemBackoff(config.poll_interval_s)

    # ---- lifecycle -----------------------------------------------------------------------

    def _new_client(self) -> httpx.Client:
        return new_client(self.config.timeout_s)

    def missing_secrets(self) -> str | None:
        try:
            self._credentials()
        except Retry as exc:
            return exc.reason
        return None

    def check(self) -> str | None:
        """Reachability, the secret, and the clock — the three things operators get wrong."""
        try:
            self._credentials()
        except Retry as exc:
            return exc.reason
        self.open()
        assert self._client is not None
        try:
            response = self._client.head(self.config.endpoint)
        except httpx.HTTPError as exc:
            return f"{self.config.endpoint} unreachable: {type(exc).__name__}: {exc}"
        return self._clock_problem(response)

    def _clock_problem(self, response: httpx.Response) -> str | None:
        try:
            theirs = parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError):
            return None
        offset = (datetime.now(UTC) - theirs).total_seconds()
        if abs(offset) > self.config.clock_skew_s:
            return (f"this host's clock is {offset:+.0f}s off the axis' (allowed "
                    f"±{self.config.clock_skew_s:.0f}s): fix NTP on the bus hosts")
        return None

    # ---- plumbing ------------------------------------------------------------------------

    def _credentials(self) -> vxp.Credentials:
        secret = os.environ.get(self.config.secret_env)
        if not secret:
            raise Retry(f"environment variable {self.config.secret_env} (secret_env of "
                        f"destination {self.name!r}) is not set: the axis secret is missing")
        return vxp.Credentials(self.config.system_id, secret)

    def _exchange(self, request: vxp.SignedRequest,
                  stream: SizedStream | None = None) -> vxp.Answer:
        """One call; raises Retry/Refuse for anything but an answer with ErrorCode "0".

        ``stream`` replaces the request's body (a packet read from its file)."""
        self.open()
        assert self._client is not None
        op = request.operation.value
        headers = request.headers
        content: bytes | SizedStream = request.body
        if stream is not None:
            headers = {**headers, "Content-Length": str(len(stream))}
            content = stream
        try:
            response = self._client.post(request.url(self.config.endpoint),
                                         headers=headers, content=content)
        except httpx.TimeoutException as exc:
            raise Retry(f"{op}: no answer from the axis within {self.config.timeout_s}s "
                        f"({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Retry(f"{op}: axis unreachable: {type(exc).__name__}: {exc}") from exc
        try:
            answer = vxp.parse_answer(response.content)
        except vxp.MalformedAnswer as exc:
            raise self._http_outcome(op, response, str(exc)) from None
        if answer.ok:
            if response.status_code >= 300:
                raise Retry(f"{op}: HTTP {response.status_code} with an OK body")
            return answer
        raise self._fail_outcome(op, answer, response)

    def _http_outcome(self, op: str, response: httpx.Response, why: str) -> Retry | Refuse:
        status = response.status_code
        detail = f"{op}: HTTP {status}, not a VXP answer ({why[:_DETAIL]})"
        if status in _AUTH_HTTP:
            return Refuse(f"{detail}; {self._fix_credentials()}", code=f"HTTP{status}")
        if 400 <= status < 500 and status not in _RETRIED_HTTP:
            return Refuse(detail, code=f"HTTP{status}")
        return Retry(detail, delay_s=retry_after_s(response.headers.get("Retry-After")))

    def _fail_outcome(self, op: str, answer: vxp.Answer,
                      response: httpx.Response) -> Retry | Refuse:
        said = f"{op}: the axis answered FAIL {answer.code}: {answer.desc[:_DETAIL]}"
        if answer.code in vxp.AUTH_ERRORS or answer.code in self.config.auth_error_codes:
            return Refuse(f"{said}; {self._fix_credentials()}", code=answer.code)
        if answer.code == vxp.ErrorCode.CLOCK_SKEW:
            return Retry(f"{said}; this host's clock differs from the axis': fix NTP on the "
                         "bus hosts (not the credentials)")
        if answer.code == vxp.ErrorCode.REFUSED or answer.code in self.config.refuse_error_codes:
            return Refuse(said, code=answer.code)
        return Retry(said, delay_s=retry_after_s(response.headers.get("Retry-After")))

    def _fix_credentials(self) -> str:
        return (f"check options system_id ({self.config.system_id!r}) and secret_env "
                f"(${self.config.secret_env}) of destination {self.name!r}")

    # ---- outbound ------------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> Receipt:
        known = self._sent.get(delivery.idempotency_key)
        if known is not None:
            return Receipt(reference=known, detail="already sent by this process",
                           duplicate=True)
        creds = self._credentials()
        status = delivery.kind == "status"
        request = send_edoc_streamed(
            creds, delivery.body, sender=delivery.sender,
            recipients=[] if status else [delivery.recipient],
            message_type=vxp.MessageType.STATUS if status else vxp.MessageType.EDOC,
            idempotency_key=delivery.idempotency_key if self.config.send_idempotency_key
            else None, tz=self._zone)
        answer = self._exchange(request, edoc_stream(delivery.body))
        doc_id = answer.doc_id
        if doc_id is None:
            raise Retry("sendEdoc: the axis answered OK without a DocId")
        self._sent[delivery.idempotency_key] = doc_id
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        return Receipt(reference=doc_id, detail=f"sendEdoc OK: {answer.desc[:_DETAIL]}")

    def confirm(self, doc_id: str) -> list[vxp.SentStatus]:
        """Per-recipient send/receive state of a sent docId; raises Retry/Refuse."""
        answer = self._exchange(vxp.get_sent_edoc_list(self._credentials(), doc_id, tz=self._zone))
        try:
            return [vxp.SentStatus.from_json(item) for item in answer.items()]
        except vxp.MalformedAnswer as exc:
            raise Retry(f"getSentEdocList: {exc}") from None

    def agencies(self) -> list[vxp.Agency]:
        """The axis' agency list, for refreshing the outside-agency reference file."""
        answer = self._exchange(vxp.get_agencies_list(self._credentials(), tz=self._zone))
        try:
            return [vxp.Agency.from_json(item) for item in answer.items()]
        except vxp.MalformedAnswer as exc:
            raise Retry(f"getAgenciesList: {exc}") from None

    def agencies_qd20(self) -> list[dict[str, Any]]:
        """getAgenciesListQD20's rows (code, id, mail, name, code102), for the directory sync."""
        return self._rows("getAgenciesListQD20",
                          vxp.get_agencies_list_qd20(self._credentials(), tz=self._zone))

    def synchronize_units(self, since: str | None = None) -> list[dict[str, Any]]:
        """getSynchronizeUnit's rows (centerCode, deleted, version, …), for the directory sync."""
        return self._rows("getSynchronizeUnit", vxp.get_synchronize_unit(
            self._credentials(), since=since, tz=self._zone))

    def _rows(self, op: str, request: vxp.SignedRequest) -> list[dict[str, Any]]:
        answer = self._exchange(request)
        try:
            return answer.items()
        except vxp.MalformedAnswer as exc:
            raise Retry(f"{op}: {exc}") from None

    # ---- inbound -------------------------------------------------------------------------

    def poll(self, inbox: Inbox) -> int:
        """One round over both message types; never acknowledges what the bus lacks."""
        try:
            creds = self._credentials()
        except Retry as exc:
            log.warning("axis.poll.skipped", destination=self.name, reason=exc.reason)
            return 0
        submitted = 0
        listed: set[str] | None = set()
        for message_type in (vxp.MessageType.EDOC, vxp.MessageType.STATUS):
            try:
                answer = self._exchange(vxp.get_received_edoc_list(creds, message_type,
                                                                   tz=self._zone))
                items = [vxp.ReceivedItem.from_json(i) for i in answer.items()]
            except (Retry, Refuse, vxp.MalformedAnswer) as exc:
                log.warning("axis.list.failed", destination=self.name,
                            message_type=message_type.value, reason=str(exc))
                listed = None
                continue
            if listed is not None:
                listed.update(i.doc_id for i in items)
            for item in items[: self.config.max_items_per_poll]:
                if self._backoff.due(item.doc_id):
                    submitted += self._receive(inbox, creds, item)
        if listed is not None:
            self._backoff.listed(listed)
        return submitted

    def _receive(self, inbox: Inbox, creds: vxp.Credentials, item: vxp.ReceivedItem) -> int:
        """getEdoc streamed into the inbox (:mod:`.getedoc`); a bad answer stays pending."""
        try:
            receipt = inbox.submit(EdocFetch(self, item.doc_id), source_id=item.doc_id)
        except (Retry, Refuse) as exc:
            wait = self._backoff.failed(item.doc_id)
            log.warning("axis.fetch.failed", destination=self.name, doc_id=item.doc_id,
                        reason=str(exc), outcome="left pending", next_try_in_s=round(wait))
            return 0
        except LgspError as exc:
            self._backoff.settled(item.doc_id)
            log.warning("axis.item.refused", destination=self.name, doc_id=item.doc_id,
                        code=exc.code, reason=exc.message, outcome="acknowledged as fail")
            self._acknowledge(creds, item.doc_id, vxp.AckStatus.FAIL)
            return 0
        self._backoff.settled(item.doc_id)
        log.info("axis.item.accepted", destination=self.name, doc_id=item.doc_id,
                 document=receipt.get("id"))
        self._acknowledge(creds, item.doc_id, vxp.AckStatus.DONE)
        return 1

    def _acknowledge(self, creds: vxp.Credentials, doc_id: str,
                     status: vxp.AckStatus) -> None:
        """A lost acknowledgement is harmless: the item is listed again and deduplicated."""
        try:
            self._exchange(vxp.update_status(creds, doc_id, status, tz=self._zone))
        except (Retry, Refuse) as exc:
            log.warning("axis.ack.failed", destination=self.name, doc_id=doc_id,
                        status=status.value, reason=str(exc))

    # ---- reconciliation ------------------------------------------------------------------

    def ledger(self) -> NationalAxisLedger:
        """The axis' books for :mod:`bus.reconcile` (adapters/national_axis/ledger.py)."""
        from adapters.national_axis.ledger import NationalAxisLedger

        return NationalAxisLedger(self)


def file_hash(body: PayloadBody) -> str:
    """:func:`bus.vxp.hash_file` of a packet read in pieces (the SDK's unpadded hex)."""
    digest = hashlib.sha256()
    for chunk in body.chunks():
        digest.update(chunk)
    return "".join(format(byte, "x") for byte in digest.digest())


def send_edoc_streamed(creds: vxp.Credentials, body: PayloadBody, *, sender: str,
                       recipients: list[str], message_type: vxp.MessageType,
                       idempotency_key: str | None, tz: Any,
                       now: datetime | None = None) -> vxp.SignedRequest:
    """:func:`bus.vxp.send_edoc`'s signed headers, for a packet that is not in memory.

    The signature covers the headers only (``hash-file`` among them), so the packet is
    hashed in one streamed pass and the request carries no body: :func:`edoc_stream`
    sends it. The headers are the same as ``send_edoc``'s (a test holds the two equal).
    """
    params = [("messagetype", message_type.value), ("hash-file", file_hash(body)),
              ("from", sender)]
    if message_type is vxp.MessageType.EDOC:
        params.append(("to", vxp.encode_to(recipients)))
    if idempotency_key is not None:
        params.append((vxp.IDEMPOTENCY_KEY, idempotency_key))
    return vxp.sign(vxp.Operation.SEND_EDOC, creds, params, body=b"",
                    content_type=vxp.CONTENT_TYPE_EDOC, now=now, tz=tz)


def edoc_stream(body: PayloadBody) -> SizedStream:
    """The sendEdoc body as the SDK sends it (the file, then CRLF), read from the file."""
    return SizedStream(body.size + len(vxp.CRLF), lambda: chain(body.chunks(), (vxp.CRLF,)))


def agencies_document(agencies: list[vxp.Agency],
                      hosted: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Outside agencies in config/directory.yaml's ``agencies`` shape (name, parent).

    ``system`` is left out on purpose: an agency with a system is *hosted* by the
    province, whereas these live behind the axis. Codes in ``hosted`` are skipped.
    """
    code_of = {a.id: a.code for a in agencies if a.id}
    entries: dict[str, dict[str, str]] = {}
    for agency in sorted(agencies, key=lambda a: a.code):
        if agency.code in hosted:
            continue
        entry = {"name": agency.name or agency.code}
        parent = code_of.get(agency.pid)
        if parent and parent != agency.code:
            entry["parent"] = parent
        entries[agency.code] = entry
    return {"agencies": entries}


def write_agencies_yaml(path: Path, agencies: list[vxp.Agency],
                        hosted: frozenset[str] = frozenset()) -> int:
    """Writes the reference file atomically; returns how many agencies it lists."""
    document = agencies_document(agencies, hosted)
    header = ("# Outside agencies as listed by the national axis (getAgenciesList).\n"
              "# Reference only: do not merge into directory.yaml's agencies, which are the\n"
              "# agencies this province hosts. Regenerated; edits are lost.\n")
    text = header + yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return len(document["agencies"])

"""HCM Egov Framework 2.0: the communes' platform, reached over its REST interface.

The platform is a server only: it authenticates partners with its own header and has
them call in, so the bus both *delivers* to it (one POST per packet) and *polls* its
outbox for what the communes' clerks send, acknowledging each item once the bus has
committed it. Retries, back-off and parking stay with the bus; this adapter only maps
the platform's answers onto the bus's three decisions, and never sleeps by itself.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlsplit

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters._backoff import ItemBackoff
from adapters._http import HttpClientLifecycle, new_client
from adapters.hcm_egov.protocol import (
    ACK_PATH,
    DOCUMENTS_PATH,
    OUTBOX_PATH,
    STATUSES_PATH,
    Credentials,
    Envelope,
    parse_envelope,
    result_field,
)
from adapters.http import retry_after_s
from bus import errors
from bus.adapter import Adapter, Delivery, InboundPacket, Inbox, Receipt, Refuse, Retry

__all__ = ["HcmEgovAdapter", "HcmEgovConfig"]

log = structlog.get_logger("lgsp.adapters.hcm_egov")

RETRIED_STATUSES: Final = frozenset({408, 425, 429})
# Refused even without an envelope: a front proxy's 413 is as final as the platform's.
REFUSED_WITHOUT_ENVELOPE: Final = frozenset({401, 403, 413})
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DETAIL_CHARS: Final = 300
_LEADING: Final = b" \t\r\n\xef\xbb\xbf"  # whitespace and a UTF-8 byte-order mark
_HEAD_BYTES: Final = 64


class ItemUnusable(Retry):
    """The platform answered, but not with this item's packet: the item, not the platform,
    is what fails, so the round goes on with the other items."""


class HcmEgovConfig(BaseModel):
    """Options of an ``adapter: hcm_egov`` destination in routes.yaml."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    app_name: str = Field(min_length=1, max_length=200)
    partner_code: str = Field(min_length=1, max_length=200)
    partner_code_cus: str = Field(min_length=1, max_length=200)
    access_key_env: str = "LGSP_HCM_EGOV_ACCESS_KEY"
    secret_key_env: str = "LGSP_HCM_EGOV_SECRET_KEY"  # noqa: S105 - a variable's name
    timeout_s: float = Field(default=15.0, gt=0, le=600)
    max_retry_after_s: float = Field(default=900.0, ge=0, le=86_400)
    poll_interval_s: float = Field(default=30.0, gt=0, le=86_400)
    poll_batch: int = Field(default=50, ge=1, le=1000)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment; paths are appended to it")
        return value.rstrip("/")

    @field_validator("access_key_env", "secret_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the name of an environment variable, not the secret")
        return value


def _ascii(value: str) -> str:
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


class HcmEgovAdapter(HttpClientLifecycle, Adapter[HcmEgovConfig]):
    """Delivers edocs and statuses to HCM Egov and polls its outbox for the communes'."""

    kind = "hcm_egov"
    Config = HcmEgovConfig
    capabilities = frozenset({"deliver", "poll"})
    retryable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
    )
    permanent_errors: ClassVar[tuple[type[BaseException], ...]] = (
        httpx.UnsupportedProtocol, httpx.InvalidURL,
    )

    def __init__(self, name: str, config: HcmEgovConfig) -> None:
        super().__init__(name, config)
        self._backoff = ItemBackoff(config.poll_interval_s)

    # ---- lifecycle ---------------------------------------------------------------------

    def _new_client(self) -> httpx.Client:
        return new_client(self.config.timeout_s, base_url=self.config.base_url)

    def missing_secrets(self) -> str | None:
        try:
            self._credentials()
        except Retry as exc:
            return exc.reason
        return None

    def check(self) -> str | None:
        try:
            self._envelope(self._call("GET", OUTBOX_PATH, params={"limit": "1"}))
        except (Retry, Refuse) as signal:
            return signal.reason
        return None

    # ---- the wire ----------------------------------------------------------------------

    def _credentials(self) -> Credentials:
        """Read on every call, so a secret set after start-up is picked up without a
        restart and a missing one is reported on each attempt, naming the variable."""
        config = self.config
        values: dict[str, str] = {}
        for env in (config.access_key_env, config.secret_key_env):
            value = os.environ.get(env)
            if not value:
                raise Retry(f"environment variable {env} (of destination {self.name!r}) is "
                            "not set; HCM Egov cannot be called without it")
            values[env] = value
        return Credentials(app_name=config.app_name,
                           access_key=values[config.access_key_env],
                           secret_key=values[config.secret_key_env],
                           partner_code=config.partner_code,
                           partner_code_cus=config.partner_code_cus)

    def _call(self, method: str, path: str, *, content: bytes | Iterator[bytes] | None = None,
              json_body: dict[str, Any] | None = None, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
        """One request; transport failures become Retry, answers are left to the caller."""
        self.open()
        assert self._client is not None
        sent = {"Accept": "application/json", **(headers or {}),
                "Authorization": self._credentials().header()}
        try:
            return self._client.request(method, path, content=content, json=json_body,
                                        params=params, headers=sent)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.TransportError) -> Retry:
        """A request that got no answer: the platform is down, slow or out of reach."""
        if isinstance(exc, httpx.TimeoutException):
            return Retry(f"HCM Egov gave no answer within {self.config.timeout_s}s "
                         f"({type(exc).__name__})")
        return Retry(f"HCM Egov unreachable at {self.config.base_url}: "
                     f"{type(exc).__name__}: {exc}")

    def _envelope(self, response: httpx.Response) -> Envelope:
        """The successful envelope of an answer, or the decision its failure calls for."""
        envelope = parse_envelope(response.content)
        status = response.status_code
        if 200 <= status < 300:
            if envelope is None:
                raise Retry(f"HTTP {status} but the body is not an HCM Egov envelope: "
                            f"{_clip(response.text) or '(empty)'}")
            if envelope.ok:
                return envelope
            failure = envelope.status_code or status
        else:
            failure = status
        raise self._failure(failure, envelope, response)

    def _failure(self, status: int, envelope: Envelope | None,
                 response: httpx.Response) -> Retry | Refuse:
        said = _clip(envelope.description if envelope and envelope.description
                     else response.text)
        detail = f"HCM Egov answered {status}" + (f": {said}" if said else "")
        config = self.config
        if status in (401, 403):
            what = ("did not recognise the credentials" if status == 401
                    else "does not allow this partner")
            return Refuse(
                f"{detail} — the platform {what}; check the environment variables "
                f"{config.access_key_env} and {config.secret_key_env} and app_name "
                f"{config.app_name!r}, partner_code {config.partner_code!r}, partner_code_cus "
                f"{config.partner_code_cus!r} of destination {self.name!r}",
                code=f"HTTP{status}")
        if status in RETRIED_STATUSES or status >= 500:
            delay = retry_after_s(response.headers.get("Retry-After"))
            if delay is not None:
                delay = min(delay, config.max_retry_after_s)
            return Retry(detail, delay_s=delay)
        if 400 <= status < 500:
            if envelope is None and status not in REFUSED_WITHOUT_ENVELOPE:
                return Retry(f"{detail} (not an HCM Egov envelope: a proxy, or a wrong "
                             f"base_url {config.base_url!r}?)")
            return Refuse(detail, code=f"HTTP{status}")
        return Retry(f"unexpected answer: {detail}")

    # ---- outbound ----------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> Receipt:
        if delivery.kind not in ("edoc", "status"):
            raise Refuse(f"HCM Egov takes edoc and status packets, not {delivery.kind!r}")
        path = DOCUMENTS_PATH if delivery.kind == "edoc" else STATUSES_PATH
        headers = {_ascii(k): _ascii(v) for k, v in delivery.headers.items()}
        headers.update({
            "Content-Type": "application/xml",
            "Idempotency-Key": _ascii(delivery.idempotency_key),
            "X-LGSP-Document": _ascii(delivery.document_id),
            "X-LGSP-Recipient": _ascii(delivery.recipient),
        })
        body = delivery.body
        headers["Content-Length"] = str(body.size)
        response = self._call("POST", path, headers=headers,
                              content=body.read() if body.in_memory else body.chunks())
        envelope = self._envelope(response)
        reference = result_field(envelope.result, "DocumentId", "ReferenceId", "Id")
        duplicate = result_field(envelope.result, "Duplicate") is True
        return Receipt(reference=None if reference is None else str(reference)[:255],
                       detail=_clip(f"HTTP {response.status_code}: {envelope.description}"),
                       duplicate=duplicate)

    # ---- inbound -----------------------------------------------------------------------

    def poll(self, inbox: Inbox) -> int:
        """One batch of the outbox: fetch, submit, acknowledge, item by item.

        An item is acknowledged only after the bus committed it (``done``) or refused it
        for good (``fail``, with the refusal code, so the clerk sees why); anything else
        leaves it in the outbox for the next poll, and the item id as ``source_id`` makes
        that second submission a no-op. A failed call ends the round by raising.
        """
        listing = self._envelope(self._call("GET", OUTBOX_PATH,
                                            params={"limit": str(self.config.poll_batch)}))
        submitted = 0
        listed = _item_ids(listing.result)
        self._backoff.listed(listed)
        for item_id in listed[: self.config.poll_batch]:
            if not self._backoff.due(item_id):
                continue
            failed: str | None = None
            try:
                with self._fetch(item_id) as packet:
                    if packet is None:
                        continue
                    try:
                        receipt = inbox.submit(packet, source_id=item_id)
                    except errors.LgspError as exc:
                        if exc.http_status >= 500:
                            raise
                        failed = _clip(str(exc))
            except ItemUnusable as exc:
                wait = self._backoff.failed(item_id)
                log.warning("hcm.fetch.failed", destination=self.name, item=item_id,
                            reason=exc.reason, outcome="left in the outbox",
                            next_try_in_s=round(wait))
                continue
            self._backoff.settled(item_id)
            if failed is not None:
                self._ack(item_id, result="fail", description=failed)
                continue
            self._ack(item_id, result="done", reference=str(receipt.get("id") or ""),
                      description="accepted by the provincial bus")
            submitted += 1
        return submitted

    @contextlib.contextmanager
    def _fetch(self, item_id: str) -> Iterator[InboundPacket | None]:
        """The packet as it arrives, or None when the item vanished (taken back,
        acknowledged by another poller) between listing and fetching.

        A scanned document can be hundreds of megabytes, so a packet answered as bytes
        is handed to the inbox piece by piece while the answer is open; only an envelope
        (a failure, or the tolerated base64 in ``Data``) is read whole.
        """
        self.open()
        assert self._client is not None
        headers = {"Accept": "application/xml", "Authorization": self._credentials().header()}
        answering = False
        try:
            with self._client.stream("GET", f"{OUTBOX_PATH}/{quote(item_id, safe='')}",
                                     headers=headers) as response:
                answering = True
                if response.status_code == 404:
                    yield None
                    return
                pieces = response.iter_bytes()
                head = _head(pieces)
                if response.status_code == 200 and head.lstrip(_LEADING)[:1] != b"{":
                    yield _arriving(item_id, head, pieces)
                    return
                whole = httpx.Response(response.status_code, headers=response.headers,
                                       content=head + b"".join(pieces),
                                       request=response.request)
                yield self._unpacked(item_id, whole)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise
        except httpx.TransportError as exc:
            if answering and not isinstance(exc, httpx.TimeoutException):
                raise ItemUnusable(f"HCM Egov broke off outbox item {item_id}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            raise self._unreachable(exc) from exc

    def _unpacked(self, item_id: str, response: httpx.Response) -> bytes:
        """The packet of an answer read whole: its bytes, or base64 in an envelope."""
        if response.status_code == 200 and parse_envelope(response.content) is None:
            return response.content
        envelope = self._envelope(response)
        data = result_field(envelope.result, "Data")
        if isinstance(data, str):
            try:
                return base64.b64decode(data, validate=True)
            except binascii.Error:
                pass
        raise ItemUnusable(f"HCM Egov answered outbox item {item_id} without the packet")

    def _ack(self, item_id: str, *, result: str, description: str,
             reference: str | None = None) -> None:
        body: dict[str, Any] = {"Result": result, "Description": description}
        if reference:
            body["ReferenceId"] = reference
        response = self._call("POST", ACK_PATH.format(id=quote(item_id, safe="")),
                              json_body=body)
        if response.status_code == 404:
            return
        self._envelope(response)


def _item_ids(result: object) -> list[str]:
    """Ids of a listing: ResultObject is {Items: [...]} or the list itself."""
    items = result if isinstance(result, list) else result_field(result, "Items")
    if not isinstance(items, list):
        raise Retry("HCM Egov outbox listing has no Items list")
    ids: list[str] = []
    for item in items:
        item_id = result_field(item, "Id")
        if item_id is None or not str(item_id).strip():
            raise Retry(f"HCM Egov outbox listing has an item without Id: {_clip(str(item))}")
        ids.append(str(item_id))
    return ids


def _head(pieces: Iterator[bytes]) -> bytes:
    """The answer's first bytes: enough to see past leading blanks whether it is JSON."""
    head = b""
    for piece in pieces:
        head += piece
        if len(head.lstrip(_LEADING)) >= 1 or len(head) >= _HEAD_BYTES:
            break
    return head


def _arriving(item_id: str, head: bytes, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """The packet's pieces; a connection lost half-way becomes a Retry the poll round
    reports, and the inbox drops what it had gathered."""
    yield head
    try:
        yield from pieces
    except httpx.TransportError as exc:
        raise ItemUnusable(f"HCM Egov broke off outbox item {item_id} half-way: "
                    f"{type(exc).__name__}: {exc}") from exc

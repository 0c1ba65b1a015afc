"""The client side: signed requests for each SDK operation, as the vendor SDK builds them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from bus.vxp.answers import Agency
from bus.vxp.wire import (
    _HASH_HEADER,
    _SIGN_HEADER,
    _SIGN_KEYS,
    AXIS_TZ,
    CONTENT_TYPE_EDOC,
    CONTENT_TYPE_JSON,
    HEADER_PREFIX,
    IDEMPOTENCY_KEY,
    PROTOCOL_VERSION,
    SERVICE_TYPE,
    USER_AGENT,
    AckStatus,
    MessageType,
    Operation,
    _header_value,
    edoc_body,
    encode_to,
    format_timestamp,
    hash_file,
    hash_header,
)


@dataclass(frozen=True)
class Credentials:
    system_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SignedRequest:
    """One ready-to-send request; ``headers`` are in the order the SDK emits them."""

    operation: Operation
    headers: dict[str, str]
    body: bytes
    sign_header: str

    def url(self, endpoint: str) -> str:
        return f"{endpoint.rstrip('/')}/{self.operation.value}"

    @property
    def method(self) -> str:
        return self.operation.method


def sign(operation: Operation, creds: Credentials, params: Sequence[tuple[str, str]], *,
         body: bytes = b"", content_type: str = CONTENT_TYPE_JSON,
         now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """Signs ``systemid``, ``servicetype``, then ``params`` in order, ``timestamp`` and
    ``Content-Type``, which is the order the SDK adds them in (§7.1's example)."""
    moment = now or datetime.now(UTC)
    ordered: dict[str, str] = {"systemid": creds.system_id, "servicetype": SERVICE_TYPE}
    for key, value in params:
        ordered[key] = value
    ordered["timestamp"] = format_timestamp(moment, tz)
    ordered["Content-Type"] = content_type
    signed = {HEADER_PREFIX + key: _header_value(key, value) for key, value in ordered.items()}
    sign_header = json.dumps(signed, separators=(",", ":"))
    headers = {"User-Agent": USER_AGENT, f"{HEADER_PREFIX}version": PROTOCOL_VERSION}
    headers.update(signed)
    headers[HEADER_PREFIX + _SIGN_KEYS] = ";".join(ordered)
    headers[HEADER_PREFIX + _SIGN_HEADER] = sign_header
    headers[HEADER_PREFIX + _HASH_HEADER] = hash_header(creds.secret, sign_header)
    headers["Content-Type"] = content_type
    return SignedRequest(operation, headers, body, sign_header)


def send_edoc(creds: Credentials, packet: bytes, *, sender: str,
              recipients: Sequence[str] = (), message_type: MessageType = MessageType.EDOC,
              idempotency_key: str | None = None, now: datetime | None = None,
              tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """``to`` is sent for edocs only: a status travels to whom its ResponseFor names."""
    params = [("messagetype", message_type.value), ("hash-file", hash_file(packet)),
              ("from", sender)]
    if message_type is MessageType.EDOC:
        params.append(("to", encode_to(recipients)))
    if idempotency_key is not None:
        params.append((IDEMPOTENCY_KEY, idempotency_key))
    return sign(Operation.SEND_EDOC, creds, params, body=edoc_body(packet),
                content_type=CONTENT_TYPE_EDOC, now=now, tz=tz)


def get_received_edoc_list(creds: Credentials, message_type: MessageType, *,
                           now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_RECEIVED_EDOC_LIST, creds, [("messagetype", message_type.value)],
                now=now, tz=tz)


def get_edoc(creds: Credentials, doc_id: str, *, now: datetime | None = None,
             tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_EDOC, creds, [("docId", doc_id)], body=b"{}", now=now, tz=tz)


def update_status(creds: Credentials, doc_id: str, status: AckStatus, *,
                  now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.UPDATE_STATUS, creds, [("docId", doc_id), ("status", status.value)],
                body=b"{}", now=now, tz=tz)


def get_sent_edoc_list(creds: Credentials, doc_id: str, *, now: datetime | None = None,
                       tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_SENT_EDOC_LIST, creds, [("docId", doc_id)], now=now, tz=tz)


def get_agencies_list(creds: Credentials, *, now: datetime | None = None,
                      tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_AGENCIES_LIST, creds, [], now=now, tz=tz)


def download_edoc(creds: Credentials, doc_id: str, file_path: str = "", *,
                  now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """GET, no body; ``filePath`` is the caller's own folder, signed but meaningless here."""
    return sign(Operation.DOWNLOAD_EDOC, creds, [("docId", doc_id), ("filePath", file_path)],
                now=now, tz=tz)


def count_receive(creds: Credentials, message_type: MessageType, *,
                  now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """countReceiveEdoc or countReceiveStatus, by ``message_type``; body ``{}``."""
    operation = Operation.COUNT_RECEIVE_EDOC if message_type is MessageType.EDOC \
        else Operation.COUNT_RECEIVE_STATUS
    return sign(operation, creds, [("messagetype", message_type.value)], body=b"{}",
                now=now, tz=tz)


def get_agencies_list_qd20(creds: Credentials, *, now: datetime | None = None,
                           tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.GET_AGENCIES_LIST_QD20, creds, [], now=now, tz=tz)


def get_synchronize_unit(creds: Credentials, *, since: str | None = None,
                         now: datetime | None = None, tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """``since`` *(assumed name)*: only units changed at or after that moment."""
    params = [("since", since)] if since is not None else []
    return sign(Operation.GET_SYNCHRONIZE_UNIT, creds, params, now=now, tz=tz)


def register_agency(creds: Credentials, agency: Agency, *, now: datetime | None = None,
                    tz: tzinfo = AXIS_TZ) -> SignedRequest:
    """The agency travels as the (unsigned) JSON body, as the SDK sends it verbatim."""
    body = json.dumps(agency.to_json(), ensure_ascii=False, separators=(",", ":"))
    return sign(Operation.REGISTER_AGENCY, creds, [], body=body.encode("utf-8"), now=now,
                tz=tz)


def delete_agency(creds: Credentials, code: str, *, now: datetime | None = None,
                  tz: tzinfo = AXIS_TZ) -> SignedRequest:
    return sign(Operation.DELETE_AGENCY, creds, [("code", code)], body=b"{}", now=now, tz=tz)

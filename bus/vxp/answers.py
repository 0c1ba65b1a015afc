"""The JSON answers of the axis: building them (server) and reading them (client)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bus.vxp.wire import ErrorCode


def ok_answer(desc: str = "Success", **fields: Any) -> dict[str, Any]:
    return {"status": "OK", "ErrorCode": ErrorCode.OK.value, "ErrorDesc": desc, **fields}


def fail_answer(code: str, desc: str, **fields: Any) -> dict[str, Any]:
    return {"status": "FAIL", "ErrorCode": str(code), "ErrorDesc": desc, **fields}


def encode_answer(answer: Mapping[str, Any]) -> bytes:
    # ASCII only: the vendor SDK decodes some answers as US-ASCII.
    return json.dumps(answer, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class MalformedAnswer(ValueError):  # noqa: N818 - reads as the condition
    """The axis answered something that is not a VXP answer (proxy page, truncation)."""


@dataclass(frozen=True)
class Answer:
    ok: bool
    code: str
    desc: str
    fields: dict[str, Any]

    @property
    def doc_id(self) -> str | None:
        value = self.fields.get("DocId", self.fields.get("docId"))
        return None if value in (None, "") else str(value)

    @property
    def data(self) -> Any:
        return self.fields.get("data")

    def items(self) -> list[dict[str, Any]]:
        """``data`` as a list of objects; MalformedAnswer when it is anything else."""
        data = self.data if self.data is not None else []
        if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
            raise MalformedAnswer("data is not a list of objects")
        return data


def parse_answer(raw: bytes) -> Answer:
    """An answer is OK only when ``status`` is OK *and* ErrorCode is "0" (or absent)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedAnswer(f"not JSON: {raw[:120]!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise MalformedAnswer(f"no status field: {raw[:120]!r}")
    status = body["status"].strip().upper()
    if status not in ("OK", "FAIL"):
        raise MalformedAnswer(f"status {body['status']!r} is neither OK nor FAIL")
    code = str(body.get("ErrorCode", "0" if status == "OK" else "")).strip()
    desc = str(body.get("ErrorDesc") or "")
    fields = {k: v for k, v in body.items() if k not in ("status", "ErrorCode", "ErrorDesc")}
    return Answer(status == "OK" and code == "0", code, desc, fields)


def _text(item: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = item.get(name)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value)
    return ""


@dataclass(frozen=True)
class ReceivedItem:
    """One pending item of getReceivedEdocList."""

    doc_id: str
    service_type: str
    message_type: str
    created_time: str
    updated_time: str
    sender: str
    to: str
    status: str
    status_desc: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ReceivedItem:
        doc_id = _text(item, "docId", "DocId")
        if not doc_id:
            raise MalformedAnswer("a received item has no docId")
        return cls(doc_id, _text(item, "serviceType"), _text(item, "messageType"),
                   _text(item, "created_time"), _text(item, "updated_time"),
                   _text(item, "from"), _text(item, "to"), _text(item, "status"),
                   _text(item, "status_desc"))

    def to_json(self) -> dict[str, str]:
        return {"docId": self.doc_id, "serviceType": self.service_type,
                "messageType": self.message_type, "created_time": self.created_time,
                "updated_time": self.updated_time, "from": self.sender, "to": self.to,
                "status": self.status, "status_desc": self.status_desc}


@dataclass(frozen=True)
class SentStatus:
    """One recipient's row of getSentEdocList *(field names assumed)*."""

    to: str
    send_status: str
    send_status_desc: str
    receive_status: str
    receive_status_desc: str
    created_time: str
    updated_time: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> SentStatus:
        return cls(_text(item, "to", "receiver", "code"), _text(item, "sendStatus"),
                   _text(item, "sendStatusDesc"), _text(item, "receiveStatus"),
                   _text(item, "receiveStatusDesc"), _text(item, "created_time"),
                   _text(item, "updated_time"))

    def to_json(self) -> dict[str, str]:
        return {"to": self.to, "sendStatus": self.send_status,
                "sendStatusDesc": self.send_status_desc, "receiveStatus": self.receive_status,
                "receiveStatusDesc": self.receive_status_desc,
                "created_time": self.created_time, "updated_time": self.updated_time}


@dataclass(frozen=True)
class Agency:
    """One row of getAgenciesList."""

    code: str
    name: str
    id: str = ""
    pid: str = ""
    mail: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Agency:
        code = _text(item, "code")
        if not code:
            raise MalformedAnswer("an agency has no code")
        return cls(code, _text(item, "name"), _text(item, "id"), _text(item, "pid"),
                   _text(item, "mail"))

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "pid": self.pid, "code": self.code, "name": self.name,
                "mail": self.mail}

"""The generic HTTP destination: one POST of the packet per delivery.

Many provincial systems (archives, portals, small vendors) take an edXML packet as an
HTTP body and nothing more. This adapter is the smallest honest client for them: it
tells the destination how to deduplicate (``Idempotency-Key``), maps HTTP answers onto
the bus's three decisions, and leaves retries, back-off and parking to the bus, so it
never retries by itself.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from email.utils import parsedate_to_datetime
from typing import ClassVar, Final
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.http.transport import Answer, Transport
from bus import __version__
from bus.adapter import Adapter, Delivery, Receipt, Refuse, Retry

REFUSED_STATUSES: Final = frozenset({400, 401, 403, 404, 405, 413, 415, 422})
RETRIED_STATUSES: Final = frozenset({408, 425, 429})
_DETAIL_CHARS: Final = 300
_USER_AGENT: Final = f"lgsp-bus/{__version__}"
"""Sent as httpx sent its own: some gateways in front of destinations refuse a request
without one. A destination's ``headers`` in routes.yaml may replace it."""


class HttpConfig(BaseModel):
    """Options of an ``adapter: http`` destination in routes.yaml."""

    model_config = ConfigDict(extra="forbid")

    url: str
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    headers: dict[str, str] = Field(default_factory=dict)
    api_key_env: str | None = None
    api_key_header: str = "X-API-Key"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("headers")
    @classmethod
    def _header_values(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if any(ch in name + text for ch in "\r\n") or not name.isascii():
                raise ValueError(f"header {name!r} has a line break or non-ASCII name")
        return value


def _ascii(value: str) -> str:
    """Header values must be ASCII; identifiers normally are, but a bus must not crash."""
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now or time.time()))


def _reference(response: Answer) -> str | None:
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("id") is not None:
        return str(body["id"])[:255]
    return None


def _detail(response: Answer) -> str:
    text = response.text.strip().replace("\n", " ")
    return f"HTTP {response.status_code}" + (f": {text[:_DETAIL_CHARS]}" if text else "")


class HttpAdapter(Adapter[HttpConfig]):
    """POSTs the packet; 2xx/409 are receipts, client errors refusals, the rest retries.

    The request goes through :class:`~adapters.http.transport.Transport` (``http.client``
    with one kept-alive connection), a third of httpx's CPU per delivery."""

    kind = "http"
    Config = HttpConfig
    capabilities = frozenset({"deliver"})
    retryable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        OSError, http.client.HTTPException,
    )

    def __init__(self, name: str, config: HttpConfig) -> None:
        super().__init__(name, config)
        self._api_key: str | None = None
        self._client: Transport | None = None

    def open(self) -> None:
        if self._client is None:
            # Read again on each reopen, so a key set after start-up is picked up.
            if self.config.api_key_env:
                self._api_key = os.environ.get(self.config.api_key_env) or None
            self._client = Transport(self.config.url, self.config.timeout_s)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _missing_key(self) -> str | None:
        if self.config.api_key_env and not self._api_key:
            return (f"environment variable {self.config.api_key_env} (api_key_env of"
                    f" destination {self.name!r}) is not set")
        return None

    def missing_secrets(self) -> str | None:
        variable = self.config.api_key_env
        if variable and not os.environ.get(variable):
            return (f"environment variable {variable} (api_key_env of destination "
                    f"{self.name!r}) is not set")
        return None

    def check(self) -> str | None:
        self.open()
        assert self._client is not None
        missing = self._missing_key()
        if missing:
            return missing
        try:
            self._client.request("HEAD", {})
        except (OSError, http.client.HTTPException) as exc:
            return f"{self.config.url} unreachable: {type(exc).__name__}: {exc}"
        return None

    def headers_for(self, delivery: Delivery) -> dict[str, str]:
        headers = {"User-Agent": _USER_AGENT, "Accept": "*/*"}
        headers.update((_ascii(k), _ascii(v)) for k, v in delivery.headers.items())
        headers.update(self.config.headers)
        headers.update({
            "Content-Type": "application/xml",
            "Idempotency-Key": _ascii(delivery.idempotency_key),
            "X-LGSP-Document": _ascii(delivery.document_id),
            "X-LGSP-Recipient": _ascii(delivery.recipient),
        })
        if self._api_key:
            headers[self.config.api_key_header] = self._api_key
        return headers

    def deliver(self, delivery: Delivery) -> Receipt:
        self.open()
        assert self._client is not None
        missing = self._missing_key()
        if missing:
            raise Retry(missing)
        headers = self.headers_for(delivery)
        body = delivery.body
        # A payload kept as a file is streamed from it with its length: never read whole.
        content = body.read() if body.in_memory else body.chunks()
        headers["Content-Length"] = str(body.size)
        try:
            response = self._client.request("POST", headers, content)
        except TimeoutError as exc:
            raise Retry(f"no answer within {self.config.timeout_s}s: "
                        f"{type(exc).__name__}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Retry(f"{type(exc).__name__}: {exc}") from exc
        return self.decide(response)

    def decide(self, response: Answer) -> Receipt:
        """Maps one HTTP answer to a receipt, or raises Retry / Refuse."""
        status = response.status_code
        if 200 <= status < 300:
            return Receipt(reference=_reference(response), detail=f"HTTP {status}")
        if status == 409:
            return Receipt(reference=_reference(response), detail=_detail(response),
                           duplicate=True)
        if status in RETRIED_STATUSES or status >= 500:
            raise Retry(_detail(response),
                        delay_s=retry_after_s(response.headers.get("Retry-After")))
        if status in REFUSED_STATUSES or 400 <= status < 500:
            raise Refuse(_detail(response), code=f"HTTP{status}")
        raise Retry(f"unexpected answer {_detail(response)}")

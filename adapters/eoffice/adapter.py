"""The older eOffice, reached as a SOAP 1.1 web service (``eoffice.wsdl``).

eOffice predates REST in the province and has no published interface, so the bus defines
one (see README.md) and this adapter speaks it through zeep, driven by the WSDL: an
eOffice installation that publishes a compatible WSDL of its own can be pointed at with
``wsdl`` and nothing else changes.

The adapter's job is to turn every way a SOAP call can end into one of the bus's three
decisions. A SOAP fault is judged by its detail code first (specific, chosen by eOffice)
and its faultcode second (often a toolkit default); answers that never reach the SOAP
layer (a gateway's 401 page, a proxy's 502, a redirect) are caught on the HTTP response
itself, before zeep tries to read them as envelopes, so their status is not lost in a
parse error.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import secrets
import threading
from collections.abc import Iterator
from itertools import chain
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import requests  # type: ignore[import-untyped, unused-ignore]
import zeep
import zeep.exceptions
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from zeep.wsdl.utils import etree_to_string
from zeep.wsse.username import UsernameToken

from adapters._http import SizedStream, base64_length, packet_base64
from adapters.eoffice.protocol import (
    OPERATIONS,
    PERMANENT_CODES,
    TEMPORARY_CODES,
    screen_answer,
    wsdl_bytes,
    zeep_settings,
)
from adapters.http.adapter import retry_after_s
from bus.adapter import Adapter, Delivery, Receipt, Refuse, Retry
from bus.store.blobs import PayloadBody

# zeep ships py.typed without annotations; calls go through Any rather than a cast each.
_zeep: Any = zeep
_UsernameToken: Any = UsernameToken
_etree_to_string: Any = etree_to_string

_DETAIL_CHARS: Final = 300
_XML_TYPES: Final = frozenset({"text/xml", "application/xml", "application/soap+xml"})
_RETRIED_STATUSES: Final = frozenset({408, 425, 429})
_PERMANENT_FAULTCODES: Final = frozenset({"Client", "Sender", "VersionMismatch",
                                          "MustUnderstand"})


class EofficeConfig(BaseModel):
    """Options of an ``adapter: eoffice`` destination in routes.yaml."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = None
    wsdl: str | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    username: str | None = None
    password_env: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("wsdl")
    @classmethod
    def _wsdl_location(cls, value: str | None) -> str | None:
        if value is not None:
            scheme = urlsplit(value).scheme
            if scheme not in ("", "http", "https", "file") and len(scheme) > 1:
                raise ValueError("must be an http(s):// URL or a file path")
        return value

    @model_validator(mode="after")
    def _complete(self) -> EofficeConfig:
        if self.wsdl is None and self.endpoint is None:
            raise ValueError("endpoint is required when the packaged WSDL is used "
                             "(set endpoint, or wsdl to eOffice's own WSDL)")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        return self


class CredentialsRejected(Exception):  # noqa: N818 - named for the answer, like zeep's Fault
    """eOffice (or a gateway in front of it) answered HTTP 401/403."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status


class HttpStatusError(Exception):
    """A non-200 answer that is not SOAP XML, so it cannot carry a fault."""

    def __init__(self, status: int, url: str, detail: str, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status} from {url}" + (f": {detail}" if detail else ""))
        self.status = status
        self.retry_after = retry_after


def _media_type(response: requests.Response) -> str:
    return str(response.headers.get("Content-Type", "")).split(";")[0].strip().lower()


def _check_http(response: requests.Response, *args: object, **kwargs: object) -> None:
    """requests hook: judges the HTTP layer before zeep reads the body as an envelope."""
    status = int(response.status_code)
    if status in (401, 403):
        raise CredentialsRejected(status, str(response.url))
    if status != 200 and _media_type(response) not in _XML_TYPES:
        text = " ".join(response.text.split())[:_DETAIL_CHARS]
        if 300 <= status < 400:
            text = f"redirected to {response.headers.get('Location', '?')}"
        raise HttpStatusError(status, str(response.url), text, response.headers.get("Retry-After"))


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _fault_fields(detail: Any) -> dict[str, str]:
    """code/message/retryAfter of the fault's Error element, whatever its namespace."""
    if not isinstance(detail, etree._Element):
        return {}
    for error in detail.iter():
        if _local(error.tag) == "Error":
            return {_local(child.tag): (child.text or "").strip() for child in error}
    return {}


def _faultcode(code: object) -> str:
    """``soap:Client.Auth`` → ``Client``: prefixes vary by toolkit, subcodes are optional."""
    text = str(code or "")
    return text.rpartition(":")[2].split(".")[0]


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class _SplicingTransport(_zeep.Transport):  # type: ignore[misc]
    """zeep's transport, sending the packet of a delivery as a stream spliced into the
    envelope zeep built around a placeholder.

    zeep builds the whole envelope as an lxml tree and serialises it to bytes, so a
    500 MB packet given as ``packet=`` would be held three times (the bytes, their base64
    in the tree, the serialised envelope). Instead the operation is called with a short
    random placeholder; zeep does everything it normally does (WS-Security header,
    plugins, SOAPAction), and this transport — zeep's documented place to change how an
    envelope is posted — finds the placeholder's base64 in the serialised envelope and
    posts prefix, the packet's base64 read from its file, and suffix, with the exact
    Content-Length. The bytes on the wire are the ones zeep would have sent.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending = threading.local()

    @contextlib.contextmanager
    def splicing(self, body: PayloadBody) -> Iterator[bytes]:
        """The placeholder to pass as ``packet``; the call made inside sends ``body``."""
        placeholder = secrets.token_bytes(24)
        # As zeep writes a base64Binary value: standard alphabet, unwrapped.
        self._pending.value = (base64.b64encode(placeholder), body)
        try:
            yield placeholder
        finally:
            self._pending.value = None

    def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Any:
        pending = getattr(self._pending, "value", None)
        if pending is None:
            return super().post_xml(address, envelope, headers)
        marker, body = pending
        message: bytes = _etree_to_string(envelope)
        prefix, found, suffix = message.partition(marker)
        if not found or marker in suffix:
            raise RuntimeError("the packet placeholder is not once in zeep's envelope")
        size = len(prefix) + base64_length(body.size) + len(suffix)
        stream = SizedStream(size, lambda: chain((prefix,), packet_base64(body), (suffix,)))
        return self.post(address, stream, headers)


class EofficeAdapter(Adapter[EofficeConfig]):
    """ReceiveDocument / ReceiveStatus per delivery; faults become Refuse or Retry."""

    kind = "eoffice"
    Config = EofficeConfig
    capabilities = frozenset({"deliver"})
    retryable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        requests.exceptions.ConnectionError, requests.exceptions.Timeout,
        zeep.exceptions.TransportError, zeep.exceptions.XMLSyntaxError, HttpStatusError,
    )
    permanent_errors: ClassVar[tuple[type[BaseException], ...]] = (
        CredentialsRejected, requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
    )

    def __init__(self, name: str, config: EofficeConfig) -> None:
        super().__init__(name, config)
        self._lock = threading.Lock()
        self._client: Any = None
        self._service: Any = None
        self._address = config.endpoint or ""

    # ---- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            missing = self._missing_password()
            if missing:
                raise Retry(missing)
            session = requests.Session()
            session.trust_env = False
            session.hooks["response"].extend((_check_http, screen_answer))
            transport = _SplicingTransport(session=session, timeout=self.config.timeout_s,
                                           operation_timeout=self.config.timeout_s)
            password = os.environ.get(self.config.password_env or "")
            wsse = (_UsernameToken(self.config.username, password)
                    if self.config.username else None)
            source: Any = (self.config.wsdl if self.config.wsdl is not None
                           else io.BytesIO(wsdl_bytes(self.config.endpoint)))
            try:
                client = _zeep.Client(source, transport=transport, settings=zeep_settings(),
                                     wsse=wsse)
                binding, address = self._binding(client)
                self._address = self.config.endpoint or address
                self._service = client.create_service(binding, self._address)
            except BaseException:
                session.close()
                raise
            self._client = client

    def _binding(self, client: Any) -> tuple[str, str]:
        """The binding offering both operations, and the address its port declares."""
        for qname, binding in client.wsdl.bindings.items():
            if set(OPERATIONS.values()) <= set(binding.all()):
                address = ""
                for service in client.wsdl.services.values():
                    for port in service.ports.values():
                        if port.binding is binding:
                            address = address or str(port.binding_options.get("address"))
                return str(qname), address
        raise Retry(f"the WSDL {self.config.wsdl or '(packaged)'} of destination {self.name!r}"
                    f" has no binding with {' and '.join(OPERATIONS.values())}")

    def close(self) -> None:
        with self._lock:
            client, self._client, self._service = self._client, None, None
        if client is not None:
            client.transport.session.close()

    def _missing_password(self) -> str | None:
        variable = self.config.password_env
        if variable and not os.environ.get(variable):
            return (f"environment variable {variable} (password_env of destination "
                    f"{self.name!r}) is not set")
        return None

    def _credential_hint(self) -> str:
        if self.config.username:
            return (f"check username {self.config.username!r} and the password in "
                    f"{self.config.password_env} (destination {self.name!r})")
        return (f"destination {self.name!r} sends no credential; set username and "
                "password_env")

    def missing_secrets(self) -> str | None:
        return self._missing_password()

    def check(self) -> str | None:
        missing = self._missing_password()
        if missing:
            return missing
        try:
            self.open()
            self._client.transport.session.get(f"{self._address}?wsdl",
                                               timeout=self.config.timeout_s)
        except CredentialsRejected as exc:
            return f"eOffice refused the credential ({exc}): {self._credential_hint()}"
        except Exception as exc:
            return f"eOffice at {self._address or self.config.wsdl} unreachable: " \
                   f"{type(exc).__name__}: {exc}"
        return None

    # ---- delivery ----------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> Receipt:
        operation = OPERATIONS.get(delivery.kind)
        if operation is None:
            raise Refuse(f"eOffice takes edoc and status packets, not {delivery.kind!r}",
                         code="UnsupportedKind")
        try:
            self.open()
            with self._client.transport.splicing(delivery.body) as placeholder:
                answer = getattr(self._service, operation)(
                    idempotencyKey=delivery.idempotency_key,
                    documentId=delivery.document_id, recipient=delivery.recipient,
                    packet=placeholder)
        except zeep.exceptions.Fault as exc:
            raise self.decide_fault(exc) from exc
        except CredentialsRejected as exc:
            raise Refuse(f"eOffice refused the credential ({exc}): "
                         f"{self._credential_hint()}", code=f"HTTP{exc.status}") from exc
        except HttpStatusError as exc:
            raise self._decide_http(exc) from exc
        except requests.exceptions.Timeout as exc:
            raise Retry(f"no answer from eOffice within {self.config.timeout_s}s: "
                        f"{type(exc).__name__}") from exc
        except requests.exceptions.ConnectionError as exc:
            raise Retry(f"cannot reach eOffice at {self._address}: "
                        f"{type(exc).__name__}") from exc
        except (zeep.exceptions.TransportError, zeep.exceptions.XMLSyntaxError,
                zeep.exceptions.XMLParseError, zeep.exceptions.UnexpectedElementError) as exc:
            raise Retry(f"unreadable answer from eOffice to {operation}: "
                        f"{str(exc)[:_DETAIL_CHARS]}") from exc
        return self._receipt(operation, answer)

    def _receipt(self, operation: str, answer: Any) -> Receipt:
        reference = getattr(answer, "reference", None)
        duplicate = getattr(answer, "duplicate", None)
        if not isinstance(reference, str) or not reference.strip():
            raise Retry(f"eOffice answered {operation} without a reference; treating the "
                        "answer as unreadable")
        detail = f"{operation} acknowledged"
        received = getattr(answer, "receivedAt", None)
        if received is not None:
            detail += f" at {received.isoformat() if hasattr(received, 'isoformat') else received}"
        return Receipt(reference=reference.strip()[:255], detail=detail,
                       duplicate=duplicate is True)

    def decide_fault(self, fault: zeep.exceptions.Fault) -> Retry | Refuse:
        """A SOAP fault to the bus's decision: known detail codes first, then faultcode."""
        fields = _fault_fields(fault.detail)
        code = fields.get("code") or None
        message = (fields.get("message") or str(fault.message or "") or "no message")
        message = " ".join(message.split())[:_DETAIL_CHARS]
        side = _faultcode(fault.code)
        reason = f"eOffice fault {side or '?'}/{code or '-'}: {message}"
        if code == "Unauthorized":
            return Refuse(f"{reason}; {self._credential_hint()}", code=code)
        if code in PERMANENT_CODES:
            return Refuse(reason, code=code)
        if code in TEMPORARY_CODES:
            return Retry(reason, delay_s=_seconds(fields.get("retryAfter")))
        if side in _PERMANENT_FAULTCODES:
            return Refuse(reason, code=code or f"SOAP-{side}")
        return Retry(reason, delay_s=_seconds(fields.get("retryAfter")))

    def _decide_http(self, exc: HttpStatusError) -> Retry | Refuse:
        if exc.status >= 500 or exc.status in _RETRIED_STATUSES or exc.status < 400:
            return Retry(f"eOffice answered without a SOAP envelope: {exc}",
                         delay_s=retry_after_s(exc.retry_after))
        return Refuse(f"eOffice answered without a SOAP envelope: {exc}; check endpoint "
                      f"of destination {self.name!r}", code=f"HTTP{exc.status}")

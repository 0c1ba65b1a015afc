"""REST door: JSON receipts and status queries for agency systems, plus probes and metrics.

A 2xx answer to a POST keeps the delivery contract's promise: the document and one
delivery per recipient are committed. 202 says "accepted now, delivery follows"; a
re-submission of the same document (same sender OrganId and DocumentId, same bytes)
answers 200 with the original receipt and ``"existing": true``, so a sender that lost the
first answer can retry blindly without creating a second document. The same key with
other content is 409 DuplicateDocumentId.

Every refusal is ``{"code", "message", ...}`` with the HTTP status of its error class
(:mod:`bus.errors`), including FastAPI's own parameter validation (400 InvalidRequest).
Parsing and the database are synchronous, so the bus's work runs in the threadpool and
the event loop only moves bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Final, Literal

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus import errors, schemas
from bus.api import API_KEY_HEADER, RequestContext, admit, count_refusal, viewer_for
from bus.api.bodies import read_spooled
from bus.api.hot import HotPosts, in_thread
from bus.api.soap import soap_router
from bus.api.vxp import vxp_router
from bus.app import Bus
from bus.evidence.api import evidence_router
from bus.lifecycle.api import deadlines_router
from bus.lifecycle.feedback_api import feedback_router
from bus.store import Accepted, outage, queries
from bus.store.tables import documents

UNAVAILABLE_RETRY_AFTER_S: Final = 5
"""What a 503/507 asks a sender to wait: an outage is seconds to minutes, never a reason
to hammer the door."""

READYZ_WAIT_S: Final = 4.0
"""How long /readyz waits for the first round of destination checks on the routes in
force (each check cut off at 3 s; ``lgsp serve`` starts that round at once); afterwards
it answers from the cache at once, refreshed in the background every 30 s."""

log = structlog.get_logger("lgsp.api.rest")

api_key = APIKeyHeader(
    name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False,
    description="The connected system's own key (development: dev-<system>-key).")


class RecipientReceipt(BaseModel):
    recipient: str
    delivered_to: str
    destination: str
    delivery: str


class Receipt(BaseModel):
    id: str
    document_id: str
    kind: Literal["edoc", "status"]
    recipients: list[RecipientReceipt]
    existing: bool = False


class Refusal(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    line: int | None = None
    path: str | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    development: bool = False
    """True while credentials.yaml accepts the published keys dev-<system>-key."""
    destinations: dict[str, str] = {}
    """Each destination: "ok", or why it cannot work (secret missing, unreachable)."""
    degraded: list[str] = []
    """The destinations that cannot work; they do not make the bus not ready (bus/readiness.py)."""


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "MalformedXml, DtdForbidden, TooDeep or InvalidRequest",
        401: "Unauthenticated: no or wrong X-API-Key, or a client certificate required",
        403: "SenderMismatch or RouteNotAllowed",
        404: "NotFound: no such document visible to this system",
        409: "DuplicateDocumentId: same sender and DocumentId, different content",
        413: "PayloadTooLarge: over the body cap (checked before reading the body)",
        429: "TooManyRequests: over the system's request rate; Retry-After says when",
        422: "UnsupportedPacket, SchemaInvalid (with line and path), AttachmentInvalid, "
             "InvalidIdentifier or UnknownRecipient",
        500: "InternalError: quote the request id",
    }
    return {s: {"model": Refusal, "description": described[s]} for s in statuses}


_XML_BODY: Final[dict[str, Any]] = {"requestBody": {
    "required": True,
    "description": "The edXML packet (QCVN 102:2016) exactly as the document system wrote it.",
    "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
}}
_POST_REFUSALS = _refusals(400, 401, 403, 409, 413, 422, 429, 500)


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header"):
        return f"{parts[0]} parameter '{'.'.join(parts[1:])}'"
    return ".".join(parts) or "request"


async def _on_refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.LgspError)
    if exc.http_status >= 500 and not isinstance(exc, errors.Unavailable):
        log.error("request.error", code=exc.code, reason=str(exc))
        body = {"code": exc.code, "message": "the bus cannot serve this request now; "
                "an operator has to look at its configuration"}
    else:
        log.info("request.refused", code=exc.code, reason=exc.message)
        body = exc.to_dict()
    headers: dict[str, str] = {}
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = f'ApiKey header="{API_KEY_HEADER}"'
    if isinstance(exc, errors.TooManyRequests):
        headers["Retry-After"] = str(exc.details.get("retry_after", 1))
    elif isinstance(exc, errors.Unavailable):
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    return JSONResponse(body, status_code=exc.http_status, headers=headers or None)


async def _on_database(request: Request, exc: Exception) -> Response:
    """A read (or anything outside ``Bus.submit``) that met a database outage gets the
    same coded 503/507 as a submission; any other database error stays a 500."""
    refusal = outage(exc)
    if refusal is None:
        raise exc
    return await _on_refusal(request, refusal)


async def _on_invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    return await _on_refusal(request, errors.InvalidRequest("; ".join(problems) or "invalid"))


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return await _on_refusal(request, errors.NotFound(
            f"no endpoint {request.url.path}; see /openapi.json"))
    body = {"code": "InvalidRequest", "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _submit(bus: Bus, request: Request, key: str | None, expect: str) -> Response:
    try:
        system = admit(bus, request, key)
        data = await read_spooled(request, bus.settings.max_body_bytes, bus.store.files)
    except errors.LgspError as exc:
        count_refusal(bus, exc, "rest")
        raise
    try:
        accepted = await in_thread(bus.submit, data, system=system, channel="rest",
                                   expect=expect)
    finally:
        if not isinstance(data, bytes):
            data.discard()
    structlog.contextvars.bind_contextvars(document=accepted.document)
    return Response(receipt_body(accepted), status_code=200 if accepted.existing else 202,
                    headers={"Location": f"/api/v1/edocs/{accepted.document}"},
                    media_type="application/json")


def receipt_body(accepted: Accepted) -> bytes:
    """The receipt with ``existing``: the store's JSON text, extended, when it has it."""
    text = accepted.receipt_json.rstrip()
    if text.startswith("{") and text.endswith("}") and text != "{}":
        flag = "true" if accepted.existing else "false"
        return f'{text[:-1]},"existing":{flag}}}'.encode()
    return json.dumps({**accepted.receipt, "existing": accepted.existing},
                      ensure_ascii=False, separators=(",", ":")).encode()


def _check_database(bus: Bus) -> str | None:
    with bus.store.engine.connect() as conn:
        conn.execute(sa.select(documents.c.id).limit(1)).all()
    return None


def _check_routing(bus: Bus) -> str | None:
    config = bus.reloader.current()
    if not config.table.destinations:
        return "routes.yaml defines no destination"
    if not config.directory.systems:
        return "the directory lists no system"
    return None


def _check_schemas(bus: Bus) -> str | None:
    schemas.default_schemas()
    return None


def readiness(bus: Bus) -> tuple[bool, dict[str, str]]:
    """Each check's verdict; a check that raises is a failed check, not a failed probe."""
    checks: list[tuple[str, Callable[[], str | None]]] = [
        ("database", lambda: _check_database(bus)),
        ("routing", lambda: _check_routing(bus)),
        ("schemas", lambda: _check_schemas(bus)),
    ]
    for number, extra in enumerate(getattr(bus, "readiness_checks", []), 1):
        name = getattr(extra, "__name__", "")
        checks.append((name if name.isidentifier() else f"check_{number}", extra))
    results: dict[str, str] = {}
    for name, check in checks:
        try:
            verdict = check()
        except Exception as exc:
            log.warning("readiness.failed", check=name, error=repr(exc))
            verdict = f"{type(exc).__name__}: {str(exc)[:200]}"
        results[name] = "ok" if verdict is None else verdict
    return all(v == "ok" for v in results.values()), results


def rest_router(bus: Bus) -> APIRouter:
    router = APIRouter()

    def caller(request: Request, key: str | None) -> queries.Viewer:
        return viewer_for(bus, admit(bus, request, key))

    @router.post("/api/v1/edocs", tags=["documents"], status_code=202, response_model=Receipt,
                 responses={200: {"model": Receipt, "description": "Re-submission of an "
                                  "accepted document: the original receipt, existing=true"},
                            **_POST_REFUSALS},
                 openapi_extra=_XML_BODY, summary="Submit a document packet (edoc)")
    async def send_edoc(request: Request, key: str | None = Security(api_key)) -> Response:
        """202 once the document and its deliveries are committed; delivery follows."""
        return await _submit(bus, request, key, "edoc")

    @router.post("/api/v1/statuses", tags=["documents"], status_code=202,
                 response_model=Receipt,
                 responses={200: {"model": Receipt, "description": "Re-submission"},
                            **_POST_REFUSALS},
                 openapi_extra=_XML_BODY, summary="Submit a status packet (codes 01-16)")
    async def send_status(request: Request, key: str | None = Security(api_key)) -> Response:
        """Statuses travel like documents, to the organisation in ResponseFor/OrganId."""
        return await _submit(bus, request, key, "status")

    @router.get("/api/v1/edocs/{id}", tags=["documents"], response_model=queries.DocumentDetail,
                responses=_refusals(400, 401, 404, 429, 500),
                summary="A document, its deliveries with history, its business statuses")
    def get_edoc(request: Request, id: str,
                 key: str | None = Security(api_key)) -> queries.DocumentDetail:
        """404 also for documents that exist but are not the caller's: ids cannot be probed."""
        structlog.contextvars.bind_contextvars(document=id)
        return queries.document_detail(bus.store.engine, id, caller(request, key))

    @router.get("/api/v1/edocs", tags=["documents"], response_model=queries.DocumentPage,
                responses=_refusals(400, 401, 429, 500),
                summary="Documents visible to the caller, newest first")
    def list_edocs(
        request: Request,
        key: Annotated[str | None, Security(api_key)] = None,
        sender: Annotated[str | None, Query(max_length=64, description="From/OrganId")] = None,
        recipient: Annotated[str | None, Query(
            max_length=64, description="a recipient, as written or as resolved")] = None,
        state: Annotated[queries.TransportState | None, Query(
            description="transport state of any of the document's deliveries")] = None,
        kind: Annotated[queries.DocumentKind | None, Query()] = None,
        since: Annotated[str | None, Query(
            description="received at or after: ISO 8601 with offset, or epoch seconds")] = None,
        until: Annotated[str | None, Query(
            description="received before; same forms as since")] = None,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
        cursor: Annotated[str | None, Query(
            max_length=200, description="next_cursor of the previous page")] = None,
    ) -> queries.DocumentPage:
        viewer = caller(request, key)
        query = queries.list_query(sender=sender, recipient=recipient, state=state, kind=kind,
                                   since=since, until=until, limit=limit, cursor=cursor)
        return queries.list_documents(bus.store.engine, query, viewer)

    @router.get("/healthz", tags=["operations"], response_model=Health)
    async def healthz() -> Health:
        """The process answers; no I/O, so a slow database never gets a live bus killed."""
        return Health(status="ok")

    @router.get("/readyz", tags=["operations"], response_model=Readiness,
                responses={503: {"model": Readiness, "description": "a check failed"}})
    def readyz() -> Response:
        """Whether this process should get traffic: database, configuration, schemas.
        ``development`` is true while the published development keys are accepted: not a
        reason to take traffic away, but a deployment must not stay so. ``destinations``
        says which connected systems cannot work now (secret missing, unreachable): the
        bus still queues for them, so they do not make it not ready."""
        ok, results = readiness(bus)
        destinations = bus.destinations.results(wait_s=READYZ_WAIT_S)
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": results,
                             "development": bus.credentials.development,
                             "destinations": destinations,
                             "degraded": sorted(n for n, v in destinations.items()
                                                if v != "ok")},
                            status_code=200 if ok else 503)

    @router.get("/metrics", tags=["operations"], response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def metrics() -> Response:
        return Response(generate_latest(bus.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _version() -> str:
    try:
        return version("lgsp-bus")
    except PackageNotFoundError:
        return "0.0.0"


NO_OPENTELEMETRY: Final[TelemetryConfig] = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's own OpenTelemetry off. The bus reports through its Prometheus metrics and
JSON logs and ships no OpenTelemetry SDK, so FastAPI's check for a configured provider
found none on every request (three environment look-ups; 5 % of the event loop's CPU
per POST) and could never find one."""


def create_app(bus: Bus) -> FastAPI:
    """The whole HTTP surface of one bus process: REST, SOAP, probes and metrics."""
    app = FastAPI(
        title="LGSP bus", version=_version(), docs_url=None, redoc_url=None,
        description="Provincial integration bus for edXML (QCVN 102:2016) documents. "
                    "SOAP 1.1 clients: WSDL at /soap?wsdl.",
        telemetry=NO_OPENTELEMETRY)
    app.state.bus = bus

    async def hot_submit(request: Request, key: str | None, expect: str) -> Response:
        return await _submit(bus, request, key, expect)

    app.add_middleware(HotPosts, submit=hot_submit, handlers=app.exception_handlers)
    app.add_middleware(RequestContext)
    app.add_exception_handler(errors.LgspError, _on_refusal)
    app.add_exception_handler(sa.exc.DBAPIError, _on_database)
    app.add_exception_handler(sa.exc.TimeoutError, _on_database)
    app.add_exception_handler(OSError, _on_database)  # a full disk under a spooled body
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.include_router(rest_router(bus))
    app.include_router(deadlines_router(bus))
    app.include_router(soap_router(bus))
    app.include_router(vxp_router(bus, readiness=True))
    from bus.reconcile.api import reconcile_router

    app.include_router(reconcile_router(bus))
    app.include_router(evidence_router(bus, api_key))
    from bus.console import mount_console

    mount_console(app, bus)
    app.include_router(feedback_router(bus))
    from bus.migrate.api import migrate_router

    app.include_router(migrate_router(bus))
    return app

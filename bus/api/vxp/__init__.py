"""The provincial-axis facade: the national axis's API, so SDK-based systems can connect.

VNPT-iOffice and other systems that embed the vendor's axis SDK (SDKVXP 2.0.1) can speak
nothing else, so the bus answers ``<bus>/vxp/<operation>`` as the axis does (edxml.md
§7.1, §7.2); each registered ``systemId`` (config/vxp_systems.yaml) maps to a directory
system. The whole SDK surface is offered: sendEdoc, the mailbox (:mod:`.mailbox`:
getReceivedEdocList, countReceiveEdoc, countReceiveStatus, getEdoc, downloadEdoc,
updateStatus, getSentEdocList) and the directory (:mod:`.agencies`: getAgenciesList,
getAgenciesListQD20, getSynchronizeUnit, registerAgency, deleteAgency).

Shapes, because the SDK reads nothing else:

* every JSON answer, refusals, unknown paths and wrong methods included, carries
  ``status``, ``ErrorCode`` and ``ErrorDesc``, all three non-null (one missing and the SDK
  blanks the whole result). Refusals are HTTP 200 — the Java SDK never looks at the
  status, other SDKs throw on a 4xx before reading the code — except 405 for a method
  the facade does not take and 500 when the bus itself is at fault;
* downloadEdoc answers the packet's bytes, identical to what getEdoc's base64 decodes to.
  The SDK saves whatever body it gets as the document, so every refusal of downloadEdoc
  has an **empty** body (the SDK then reports FAIL/100 and writes no file), an HTTP 4xx
  (5xx for the bus's fault), and the code and reason in ``X-Lgsp-Error-Code`` and
  ``X-Lgsp-Error``;
* ``/vxp//getEdoc`` (an endpoint configured with a trailing ``/``) is ``/vxp/getEdoc``;
* JSON is ASCII-only because the SDK decodes sendEdoc answers as US-ASCII.

Order of a call: the operation, then authentication from the headers alone
(:mod:`.facade`), then the replay check for state-changing operations (:mod:`.replay`,
which explains what counts as a replay), and only then the body, under its cap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bus import vxp
from bus.api import check_rate, read_capped
from bus.api.bodies import read_spooled
from bus.api.vxp import agencies, mailbox
from bus.api.vxp.facade import (
    Action,
    Facade,
    Failure,
    MethodNotAllowed,
    StreamedAnswer,
    UnknownOperation,
)
from bus.api.vxp.replay import ReplayGuard
from bus.api.vxp.spooled import check_spooled
from bus.api.vxp_systems import RegistryFile
from bus.app import Bus
from bus.store.blobs import PayloadBody, Spool

__all__ = ["OFFERED", "Facade", "registry_path", "vxp_router"]

SMALL_BODY: Final = 64 * 1024
ERROR_CODE_HEADER: Final = "X-Lgsp-Error-Code"
ERROR_HEADER: Final = "X-Lgsp-Error"
OFFERED: Final = frozenset({**mailbox.OPERATIONS, **agencies.OPERATIONS})
_METHODS: Final = ("GET", "POST")
_OTHER_METHODS: Final = ["PUT", "DELETE", "PATCH", "OPTIONS"]
_UNSAFE_HEADER_TEXT: Final = re.compile(r"[^\x20-\x7e]")


def _render(answer: dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(answer, ensure_ascii=True, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _streamed(size: int, pieces: Iterator[bytes], media_type: str) -> Response:
    """A payload kept as a file, sent as it is read, with its length announced."""
    return StreamingResponse(pieces, media_type=media_type,
                             headers={"Content-Length": str(size)})


def _download_refusal(failure: Failure) -> Response:
    """Empty, so that the SDK writes no file; the reason travels in headers."""
    text = failure.desc.encode("ascii", "backslashreplace").decode("ascii")
    status = failure.error_status if failure.error_status >= 400 else 400
    return Response(b"", status_code=status, media_type="application/octet-stream", headers={
        ERROR_CODE_HEADER: _UNSAFE_HEADER_TEXT.sub("?", failure.code)[:100],
        ERROR_HEADER: _UNSAFE_HEADER_TEXT.sub("?", text)[:1000]})


def operation_of(path: str) -> str:
    """``getEdoc`` from ``getEdoc``, ``/getEdoc`` or ``getEdoc/``: slashes collapsed."""
    return re.sub(r"/+", "/", path).strip("/")


def _unknown(operation: str) -> vxp.VxpError:
    return UnknownOperation(
        f"operation {operation!r} is not offered by the provincial bus (it offers "
        f"{', '.join(sorted(OFFERED))}); registerAgency and deleteAgency record requests "
        "that the bus's administrator approves")


def registry_path(bus: Bus) -> Path:
    """``settings.vxp_systems`` when the setting exists, else next to directory.yaml."""
    configured = getattr(bus.settings, "vxp_systems", None)
    return Path(configured) if configured else bus.settings.directory.parent / "vxp_systems.yaml"


def vxp_router(bus: Bus, registry: RegistryFile | None = None, *, readiness: bool = False,
               replay: ReplayGuard | None = None) -> APIRouter:
    """The facade under ``/vxp``. ``readiness`` adds a ``vxp_systems`` check to /readyz
    (an invalid registry file, a registered system without its secret or missing from
    the directory)."""
    operations: dict[str, Action] = {**mailbox.OPERATIONS, **agencies.OPERATIONS}
    facade = Facade(bus, registry or RegistryFile(registry_path(bus)), operations, replay)
    router = APIRouter(prefix="/vxp", tags=["provincial axis (VXP)"])
    if readiness:
        def vxp_systems() -> str | None:
            return facade.registry.readiness(bus.reloader.current().directory)

        bus.readiness_checks.append(vxp_systems)

    async def call(request: Request, path: str = "") -> Response:
        """Signed with XroadVnpt-* headers as the axis SDK does (edxml.md §7.1, §7.2)."""
        operation = operation_of(path)
        claimed = None
        ran = False
        spooled: Spool | None = None
        try:
            if request.method not in (*_METHODS, "HEAD"):
                raise MethodNotAllowed(f"method {request.method} is not used by the axis API: "
                                       "POST every operation (GET downloadEdoc)")
            if operation not in operations:
                raise _unknown(operation)
            entry, verified = facade.authenticate(list(request.headers.items()))
            check_rate(bus, entry.system)
            body_first = operation == vxp.Operation.REGISTER_AGENCY
            if not body_first:
                claimed = facade.claim(operation, entry, verified)
            cap = bus.settings.max_body_bytes if operation == vxp.Operation.SEND_EDOC \
                else SMALL_BODY
            if operation == vxp.Operation.SEND_EDOC:
                body = await read_spooled(request, cap, bus.store.files)
            else:
                body = await read_capped(request, cap)
            if isinstance(body, bytes):
                verified = vxp.check_body(verified, body,
                                          require_hash=operation == vxp.Operation.SEND_EDOC)
            else:
                spooled = body
                verified = check_spooled(verified, body)
            if body_first:
                claimed = facade.claim(operation, entry, verified)
            ran = True
            result = await run_in_threadpool(facade.run, operation, entry, verified)
        except Exception as exc:
            if claimed is not None:
                facade.replay.release(claimed)
            counted = ran and operation == vxp.Operation.SEND_EDOC
            failure = facade.failure(operation, exc, counted=counted)
            if operation == vxp.Operation.DOWNLOAD_EDOC:
                return _download_refusal(failure)
            allow = {"Allow": ", ".join(_METHODS)} if failure.status == 405 else None
            return _render(failure.answer, failure.status, allow)
        except BaseException:
            if claimed is not None:
                facade.replay.release(claimed)
            raise
        finally:
            if spooled is not None:
                spooled.discard()
        if claimed is not None:
            facade.replay.done(claimed)
        if isinstance(result, bytes):
            return Response(result, media_type=vxp.CONTENT_TYPE_EDOC)
        if isinstance(result, PayloadBody):
            if result.in_memory:
                return Response(result.read(), media_type=vxp.CONTENT_TYPE_EDOC)
            return _streamed(result.size, result.chunks(), vxp.CONTENT_TYPE_EDOC)
        if isinstance(result, StreamedAnswer):
            return _streamed(*result.encoded(), "application/json")
        return _render(result)

    summary = ("National-axis API for SDK-based systems: " + ", ".join(sorted(OFFERED)))
    router.add_api_route("/{path:path}", call, methods=["POST"], response_class=Response,
                         summary=summary)
    router.add_api_route("/{path:path}", call, methods=["GET"], response_class=Response,
                         include_in_schema=False)
    router.add_api_route("/{path:path}", call, methods=_OTHER_METHODS,
                         response_class=Response, include_in_schema=False)
    router.add_api_route("", call, methods=[*_METHODS, *_OTHER_METHODS],
                         response_class=Response, include_in_schema=False)
    return router

"""``GET /api/v1/reports/feedback``: the status-feedback report over HTTP.

Visibility follows the read side (:mod:`bus.store.queries`): an operator system sees
every agency; any other system sees only the agencies the directory says it hosts, so a
commune's system can follow its own answers and nobody else's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Security
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader

from bus.api import API_KEY_HEADER, admit, viewer_for
from bus.lifecycle.feedback import agency_names, feedback, period, render

if TYPE_CHECKING:
    from bus.app import Bus


api_key = APIKeyHeader(name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False,
                       description="The connected system's own key.")
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "InvalidRequest: a period that is not a day, an ISO time or epoch"},
    401: {"description": "Unauthenticated"},
    429: {"description": "TooManyRequests"},
}


def feedback_router(bus: Bus) -> APIRouter:
    router = APIRouter()

    @router.get("/api/v1/reports/feedback", tags=["reports"], responses=_REFUSALS,
                summary="Status feedback per recipient agency: received, answered with "
                        "01/03/06, median times, never answered")
    def report_feedback(
        request: Request,
        key: Annotated[str | None, Security(api_key)] = None,
        start: Annotated[str | None, Query(
            alias="from", max_length=40,
            description="first day YYYY-MM-DD (province time), ISO 8601 or epoch")] = None,
        end: Annotated[str | None, Query(
            alias="to", max_length=40,
            description="last day YYYY-MM-DD (inclusive), ISO 8601 or epoch (exclusive)")
        ] = None,
        format: Annotated[Literal["json", "csv", "table"], Query()] = "json",
        agency: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=0, le=1000, description="never-answered documents "
                                    "listed per agency")] = 100,
    ) -> Response:
        viewer = viewer_for(bus, admit(bus, request, key))
        span = period(start, end, bus.settings.zone)
        directory = bus.reloader.current().directory
        report = feedback(bus.store.engine, span, viewer, agency=agency,
                          names=agency_names(directory.agencies), unanswered_limit=limit)
        if format == "json":
            return JSONResponse(report)
        media = "text/csv; charset=utf-8" if format == "csv" else "text/plain; charset=utf-8"
        return PlainTextResponse(render(report, format, bus.settings.zone),
                                 media_type=media)

    return router

"""GET /api/v1/reconciliations[/{id}]: kept runs, for the province's operator systems.

Any other system gets 404 NotFound, as for a document it may not see: the runs name
documents of every agency.
"""

from __future__ import annotations

import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Security

from bus import errors
from bus.api import admit, operators
from bus.api.rest import api_key
from bus.app import Bus
from bus.reconcile import metrics, runs
from bus.reconcile.model import RunDetail, RunPage


def reconcile_router(bus: Bus) -> APIRouter:
    """The endpoints, and the reconciliation gauges on this process's /metrics."""
    metrics.watch(bus.metrics, bus.store.engine)
    router = APIRouter(tags=["reconciliation"])

    def operator(request: Request, key: str | None) -> None:
        if admit(bus, request, key) not in operators(bus):
            raise errors.NotFound("no endpoint for this system: reconciliations are shown "
                                  "to the province's operator systems only")

    @router.get("/api/v1/reconciliations", response_model=RunPage,
                summary="Reconciliations with the national axis, newest first")
    def list_reconciliations(
        request: Request,
        key: Annotated[str | None, Security(api_key)] = None,
        date: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$",
                                          description="only runs for this day")] = None,
        limit: Annotated[int, Query(ge=1, le=runs.MAX_RUNS)] = 50,
    ) -> RunPage:
        operator(request, key)
        if date is not None:
            try:
                datetime.date.fromisoformat(date)
            except ValueError:
                raise errors.InvalidRequest(
                    f"date: {date!r} is not a day of the calendar (YYYY-MM-DD)") from None
        return RunPage(items=runs.list_runs(bus.store.engine, day=date, limit=limit))

    @router.get("/api/v1/reconciliations/{run}", response_model=RunDetail,
                summary="One reconciliation with every mismatch it found")
    def get_reconciliation(request: Request, run: str,
                           key: Annotated[str | None, Security(api_key)] = None) -> RunDetail:
        operator(request, key)
        return runs.get_run(bus.store.engine, run)

    return router

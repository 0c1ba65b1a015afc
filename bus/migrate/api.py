"""GET /api/v1/migrations[/{id}]: migration jobs and how far each went, for operators.

Any other system gets 404 NotFound, as for a document it may not see: a job names the
documents of a whole agency.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security
from pydantic import BaseModel

from bus import errors
from bus.api import admit, operators
from bus.api.rest import api_key
from bus.app import Bus
from bus.migrate import jobs

__all__ = ["MigrationJob", "migrate_router"]


class MigrationJob(BaseModel):
    id: str
    state: str
    source: str
    target: str
    owner: str
    created_at: float
    updated_at: float
    finished_at: float | None
    running: bool
    """A process is working on it now (its heartbeat is fresh)."""
    manifest: dict[str, Any] | None
    manifest_sha256: str | None
    records: dict[str, int]
    """Records by state: listed, submitted, rejected, mismatched, failed."""


class MigrationPage(BaseModel):
    items: list[MigrationJob]


def _view(bus: Bus, job: jobs.Job) -> MigrationJob:
    alive = job.heartbeat_at is not None and time.time() - job.heartbeat_at < 3.0
    return MigrationJob(
        id=job.id, state=job.state, source=str(job.source.get("label", "")),
        target=job.target, owner=job.owner, created_at=job.created_at,
        updated_at=job.updated_at, finished_at=job.finished_at,
        running=alive and job.state in ("running", "paused", "planning"),
        manifest=job.manifest, manifest_sha256=job.manifest_sha256,
        records=jobs.counts_by_state(bus.store.engine, job.id))


def migrate_router(bus: Bus) -> APIRouter:
    router = APIRouter(tags=["migration"])

    def operator(request: Request, key: str | None) -> None:
        if admit(bus, request, key) not in operators(bus):
            raise errors.NotFound("no endpoint for this system: migrations are shown to "
                                  "the province's operator systems only")

    @router.get("/api/v1/migrations", response_model=MigrationPage,
                summary="Legacy archive migrations, newest first")
    def list_migrations(request: Request,
                        key: Annotated[str | None, Security(api_key)] = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> MigrationPage:
        operator(request, key)
        return MigrationPage(items=[_view(bus, job)
                                    for job in jobs.list_jobs(bus.store.engine, limit)])

    @router.get("/api/v1/migrations/{job}", response_model=MigrationJob,
                summary="One migration job: manifest, records by state, whether it runs")
    def get_migration(request: Request, job: str,
                      key: Annotated[str | None, Security(api_key)] = None) -> MigrationJob:
        operator(request, key)
        return _view(bus, jobs.get_job(bus.store.engine, job))

    return router

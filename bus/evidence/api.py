"""``GET /api/v1/edocs/{id}/evidence``: one document's evidence bundle (a zip).

Visibility is the status API's (:mod:`bus.store.queries`): operators see every
document, a system sees what it sent and what was addressed to an organisation it hosts,
and anything else is 404 so that ids cannot be probed.
"""

from __future__ import annotations

import re

import structlog
from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader

from bus.api import admit, viewer_for
from bus.app import Bus
from bus.evidence import bundle


def evidence_router(bus: Bus, api_key: APIKeyHeader) -> APIRouter:
    """``api_key`` is the REST door's security scheme, so OpenAPI shows one."""
    router = APIRouter()

    @router.get("/api/v1/edocs/{id}/evidence", tags=["documents"], response_class=Response,
                summary="The document's evidence bundle (zip): bytes, hashes, journey, "
                        "receipts, statuses, the chain proof and a summary in Vietnamese",
                responses={200: {"content": {"application/zip": {}}},
                           404: {"description": "NotFound: no such document visible to "
                                                "this system"}})
    def evidence(request: Request, id: str, key: str | None = Security(api_key)) -> Response:
        """Check it offline with ``lgsp evidence verify FILE``."""
        structlog.contextvars.bind_contextvars(document=id)
        viewer = viewer_for(bus, admit(bus, request, key))
        agencies = bus.reloader.current().directory.agencies
        data = bundle.build(bus.store.engine, id, viewer, zone=bus.settings.timezone,
                            names={code: a.name for code, a in agencies.items()})
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", id)[:64]
        return Response(data, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="evidence-{name}.zip"'})

    return router

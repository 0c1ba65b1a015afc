"""``GET /api/v1/edocs/{id}/evidence``: one document's evidence bundle (a zip).

The zip is written to an unnamed temporary file beside the payload files (the data
dir, not a tmpfs /tmp) and answered from it with its Content-Length: a bundle holds the
document's payloads, which may be hundreds of megabytes.

Visibility is the status API's (:mod:`bus.store.queries`): operators see every
document, a system sees what it sent and what was addressed to an organisation it hosts,
and anything else is 404 so that ids cannot be probed.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import IO

import structlog
from fastapi import APIRouter, Request, Security
from fastapi.responses import Response, StreamingResponse
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
        files = bus.store.files
        spool = tempfile.TemporaryFile(dir=getattr(files, "tmp", None))  # noqa: SIM115 - _drain closes it
        try:
            size = bundle.write(spool, bus.store.engine, id, viewer,
                                zone=bus.settings.timezone,
                                names={code: a.name for code, a in agencies.items()},
                                payload_files=files)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", id)[:64]
        return StreamingResponse(_drain(spool), media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="evidence-{name}.zip"',
            "Content-Length": str(size)})

    return router


def _drain(spool: IO[bytes]) -> Iterator[bytes]:
    """The bundle's temporary file, piece by piece; closing it removes it (it has no
    name)."""
    with spool:
        while piece := spool.read(1 << 20):
            yield piece


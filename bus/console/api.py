"""REST endpoints for operators' actions: the console's buttons, for scripts.

``POST /api/v1/deliveries/{id}/resend|park|cancel`` with ``{"reason": ...}`` acts on one
delivery; ``POST /api/v1/deliveries/bulk/{action}`` with ``{"ids": [...], "reason": ...}``
on a selection, rate-limited; ``GET|PUT /api/v1/deliveries/bulk/stop`` reads or sets the
stop switch. Only systems with ``role: operator`` in credentials.yaml may call them
(403 NotPermitted otherwise); the actor recorded in the history is ``api:<system>``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Security
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bus import errors
from bus.api import admit, operators
from bus.api.rest import api_key
from bus.app import Bus
from bus.console import actions


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=actions.MAX_REASON)


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(max_length=actions.MAX_SELECTION)
    reason: str = Field(max_length=actions.MAX_REASON)


class SwitchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: bool


class ActionResult(BaseModel):
    delivery: str
    document: str
    action: str
    before: str
    after: str


def _operator(bus: Bus, request: Request, key: str | None) -> str:
    system = admit(bus, request, key)
    if system not in operators(bus):
        raise errors.NotPermitted(
            f"system '{system}' may not act on deliveries; only systems with role: "
            "operator in credentials.yaml may")
    return system


def actions_router(bus: Bus) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/api/v1/deliveries/bulk/stop", summary="Whether bulk actions are stopped")
    def get_stop(request: Request, key: str | None = Security(api_key)) -> SwitchBody:
        _operator(bus, request, key)
        return SwitchBody(on=actions.stop_switch(bus.store))

    @router.put("/api/v1/deliveries/bulk/stop",
                summary="Stop running bulk actions and refuse new ones (on), or allow them")
    def put_stop(body: SwitchBody, request: Request,
                 key: str | None = Security(api_key)) -> SwitchBody:
        system = _operator(bus, request, key)
        actions.set_stop_switch(bus.store, body.on, actor=f"api:{system}")
        return SwitchBody(on=body.on)

    @router.post("/api/v1/deliveries/bulk/{action}",
                 summary="Resend, park or cancel a selection of deliveries, rate-limited")
    async def bulk(action: str, body: BulkBody, request: Request,
                   key: str | None = Security(api_key)) -> dict[str, Any]:
        system = _operator(bus, request, key)
        result = await run_in_threadpool(
            actions.act_many, bus.store, action, body.ids, actor=f"api:{system}",
            reason=body.reason, via="api")
        return result.to_dict()

    @router.post("/api/v1/deliveries/{id}/{action}", response_model=ActionResult,
                 summary="Resend, park or cancel one delivery, with a reason")
    def one(id: str, action: str, body: ActionBody, request: Request,
            key: str | None = Security(api_key)) -> ActionResult:
        system = _operator(bus, request, key)
        outcome = actions.act(bus.store, action, id, actor=f"api:{system}",
                              reason=body.reason, via="api")
        return ActionResult(delivery=outcome.delivery, document=outcome.document,
                            action=outcome.action, before=outcome.before, after=outcome.after)

    return router

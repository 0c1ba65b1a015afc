"""REST endpoints for operators' actions: the console's buttons, for scripts.

``POST /api/v1/deliveries/{id}/resend|park|cancel`` with ``{"reason": ...}`` acts on one
delivery; ``POST /api/v1/deliveries/bulk/{action}`` with ``{"ids": [...], "reason": ...}``
on a selection, rate-limited; ``GET|PUT /api/v1/deliveries/bulk/stop`` reads or sets the
stop switch. Only systems with ``role: operator`` in credentials.yaml may call them
(403 NotPermitted otherwise); the actor recorded in the history is ``api:<system>``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request, Security
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from bus import errors
from bus.api import admit, operators, read_capped
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


_BODY_CAP = 256 * 1024
"""A selection of MAX_SELECTION ids and a reason fit in well under this."""

ModelT = TypeVar("ModelT", bound=BaseModel)


async def _body(request: Request, model: type[ModelT]) -> ModelT:
    """The JSON body, read only after the caller was admitted (FastAPI would read a
    declared body parameter before the handler could check the key)."""
    data = await read_capped(request, _BODY_CAP)
    try:
        return model.model_validate_json(data or b"{}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        raise errors.InvalidRequest(problems) from None


def _doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


def _operator(bus: Bus, request: Request, key: str | None) -> str:
    system = admit(bus, request, key)
    if system not in operators(bus):
        raise errors.NotPermitted(
            f"system '{system}' may not act on deliveries; only systems with role: "
            "operator in credentials.yaml may")
    return system


def actions_router(bus: Bus) -> APIRouter:
    tally = actions.tally_on(bus.metrics.registry)
    router = APIRouter(tags=["operations"])

    @router.get("/api/v1/deliveries/bulk/stop", summary="Whether bulk actions are stopped")
    def get_stop(request: Request, key: str | None = Security(api_key)) -> SwitchBody:
        _operator(bus, request, key)
        return SwitchBody(on=actions.stop_switch(bus.store))

    @router.put("/api/v1/deliveries/bulk/stop", openapi_extra=_doc(SwitchBody),
                summary="Stop running bulk actions and refuse new ones (on), or allow them")
    async def put_stop(request: Request, key: str | None = Security(api_key)) -> SwitchBody:
        system = _operator(bus, request, key)
        body = await _body(request, SwitchBody)
        await run_in_threadpool(actions.set_stop_switch, bus.store, body.on,
                                actor=f"api:{system}")
        return SwitchBody(on=body.on)

    @router.post("/api/v1/deliveries/bulk/{action}", openapi_extra=_doc(BulkBody),
                 summary="Resend, park or cancel a selection of deliveries, rate-limited")
    async def bulk(action: str, request: Request,
                   key: str | None = Security(api_key)) -> dict[str, Any]:
        system = _operator(bus, request, key)
        body = await _body(request, BulkBody)
        result = await run_in_threadpool(
            actions.act_many, bus.store, action, body.ids, actor=f"api:{system}",
            reason=body.reason, via="api", tally=tally)
        return result.to_dict()

    @router.post("/api/v1/deliveries/{id}/{action}", response_model=ActionResult,
                 openapi_extra=_doc(ActionBody),
                 summary="Resend, park or cancel one delivery, with a reason")
    async def one(id: str, action: str, request: Request,
                  key: str | None = Security(api_key)) -> ActionResult:
        system = _operator(bus, request, key)
        body = await _body(request, ActionBody)
        outcome = await run_in_threadpool(actions.act, bus.store, action, id,
                                          actor=f"api:{system}", reason=body.reason,
                                          via="api", tally=tally)
        return ActionResult(delivery=outcome.delivery, document=outcome.document,
                            action=outcome.action, before=outcome.before, after=outcome.after)

    return router

"""The flow buttons of the console: transfer (blind/attended, complete, cancel), three-way, linkage, spy.

Thin: parse the body with its model, call the flow service (``call_flows.flows``, wired in by
``hotline up``), audit who pressed it. Without a flow service (the API run alone) the answer is 503
``flows_unavailable``. A flow's refusal keeps its own status and ``error_id`` (``FlowError``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from app import keys
from app.auth import requires
from app.endpoint import endpoint
from app.errors import ApiError, FlowsUnavailable, PassedOn, UnknownHotline
from app.http_util import call_id, default_classify, json_response, parse_body
from app.schemas import Answer, Body, Empty
from call_flows.ami import AmiHeaderRefused
from call_flows.flows import FlowError
from call_flows.state import InvalidTransition
from hotline.contracts import CallEvent, CallEventType
from hotline.platforms import Service
from hotline.types import LinkageHotline, SeatId

# What a flow refuses with: its status and error_id are passed on (the OpenAPI lists their ids).
FLOW_REFUSALS: tuple[type[Exception], ...] = (FlowError, AmiHeaderRefused, InvalidTransition)

SpyMode = Literal["listen", "whisper", "barge"]


class TransferBody(Body):
    target: Service | None = Field(None, description="the other platform (default: the seat's other one)")
    mode: Literal["blind", "attended"] = "blind"


class ConferenceBody(Body):
    with_: Service | None = Field(None, alias="with", description="the platform to invite (default: other)")


class LinkageBody(Body):
    hotline: LinkageHotline


class SpyBody(Body):
    supervisor: SeatId = Field(description="the supervisor's seat (site.toml [supervisors])")
    mode: SpyMode = "listen"
    seat: SeatId | None = Field(None, description="the seat to watch (default: the call's seat)")


class FlowAnswer(Answer):
    """What the flow started (fields depend on the flow)."""

    linkedid: str


def _service(request: web.Request, key: Any) -> Any:
    flows = request.app.get(key)
    if flows is None:
        raise FlowsUnavailable()
    return flows


Run = Callable[[str, Any], Awaitable[dict[str, Any]]]


def _hotline_at_fault(errors: Any) -> type[ApiError]:
    """A hotline given, but not one of ours: ``unknown_hotline``, the id the linkage flow answers."""
    if errors and all(e["loc"] == ("hotline",) and e["type"] == "value_error" for e in errors):
        return UnknownHotline
    return default_classify(errors)


def refusal(exc: Exception) -> PassedOn:
    """A flow's refusal (:data:`FLOW_REFUSALS`) as the API's error, with the flow's status and id."""
    return PassedOn(getattr(exc, "status"), getattr(exc, "error_id"),  # noqa: B009 - each class has them
                    getattr(exc, "message", str(exc)))


async def _run(request: web.Request, action: str, model: type[BaseModel], run: Run) -> web.Response:
    """Check the call id and the body, run the flow, audit who asked and what came of it."""
    linkedid = call_id(request)
    classify = _hotline_at_fault if model is LinkageBody else default_classify
    body = await parse_body(request, model, optional=True, classify=classify)
    who = request[keys.PRINCIPAL]
    try:
        result = await run(linkedid, body)
    except FLOW_REFUSALS as exc:
        error_id = getattr(exc, "error_id")  # noqa: B009 - each refusal class has one
        asked = {"error_id": error_id, **body.model_dump(mode="json", by_alias=True)}
        await request.app[keys.CALLS].audit(who, f"{action}_refused", linkedid, asked)
        raise refusal(exc) from None
    except (TimeoutError, ConnectionError) as exc:  # Asterisk slow or reconnecting: nothing changed
        raise FlowsUnavailable(f"Asterisk did not answer: {exc!r}") from None
    await request.app[keys.CALLS].audit(who, action, linkedid, result)
    return json_response(result, status=202)


FLOW_ERRORS = (FlowsUnavailable,)


@endpoint("One-touch transfer of the caller to the other platform (blind, or attended: seat first)",
          body=TransferBody, body_optional=True, response=FlowAnswer, status=202, errors=FLOW_ERRORS,
          passes_on=("flows",))
@requires("operator", "supervisor", "admin")
async def post_transfer(request: web.Request) -> web.Response:
    flows = _service(request, keys.FLOWS)
    return await _run(request, "transfer", TransferBody,
                      lambda lid, b: flows.transfer(lid, b.target, b.mode))


@endpoint("Complete an attended transfer: the seat drops out", body=Empty, body_optional=True,
          response=FlowAnswer, status=202, errors=FLOW_ERRORS, passes_on=("flows",))
@requires("operator", "supervisor", "admin")
async def post_transfer_complete(request: web.Request) -> web.Response:
    flows = _service(request, keys.FLOWS)
    return await _run(request, "transfer_complete", Empty, lambda lid, _b: flows.complete_attended(lid))


@endpoint("Cancel an attended transfer: the caller is back with the seat", body=Empty, body_optional=True,
          response=FlowAnswer, status=202, errors=FLOW_ERRORS, passes_on=("flows",))
@requires("operator", "supervisor", "admin")
async def post_transfer_cancel(request: web.Request) -> web.Response:
    flows = _service(request, keys.FLOWS)

    async def run(lid: str, _body: Any) -> dict[str, Any]:
        result: dict[str, Any] = await flows.cancel_attended(lid)
        # The caller is back with its seat: the timeline says so (the app is the one writer).
        await request.app[keys.CALLS].record([CallEvent(
            event_id=f"{lid}:transfer_failed:cancel:{time.time():.3f}", linkedid=lid,
            type=CallEventType.TRANSFER_FAILED, at=time.time(), source="api",
            data={"kind": "attended", "status": "cancelled"})])
        return result

    return await _run(request, "transfer_cancel", Empty, run)


@endpoint("Three-way call: caller, this seat and the other platform in one bridge", body=ConferenceBody,
          body_optional=True, response=FlowAnswer, status=202, errors=FLOW_ERRORS, passes_on=("flows",))
@requires("operator", "supervisor", "admin")
async def post_conference(request: web.Request) -> web.Response:
    flows = _service(request, keys.CONFERENCE_FLOWS)
    return await _run(request, "three_way", ConferenceBody, lambda lid, b: flows.three_way(lid, b.with_))


@endpoint("Bring an emergency or utility hotline into the call's bridge", body=LinkageBody,
          response=FlowAnswer, status=202, errors=(*FLOW_ERRORS, UnknownHotline), passes_on=("flows",))
@requires("operator", "supervisor", "admin")
async def post_linkage(request: web.Request) -> web.Response:
    flows = _service(request, keys.CONFERENCE_FLOWS)
    return await _run(request, "linkage", LinkageBody, lambda lid, b: flows.linkage(lid, b.hotline))


@endpoint("Ring a supervisor's phone to listen to, whisper to or barge into the call's seat",
          body=SpyBody, response=FlowAnswer, status=202, errors=FLOW_ERRORS, passes_on=("flows",))
@requires("supervisor", "admin")
async def post_spy(request: web.Request) -> web.Response:
    flows = _service(request, keys.CONFERENCE_FLOWS)
    return await _run(request, "spy", SpyBody, lambda lid, b: flows.spy(lid, b.supervisor, b.mode, b.seat))


def setup_routes(app: web.Application, flows: Any = None, conference_flows: Any = None) -> None:
    if flows is not None:
        app[keys.FLOWS] = flows
    if conference_flows is not None:
        app[keys.CONFERENCE_FLOWS] = conference_flows
    app.router.add_post("/api/calls/{linkedid}/transfer", post_transfer)
    app.router.add_post("/api/calls/{linkedid}/transfer/complete", post_transfer_complete)
    app.router.add_post("/api/calls/{linkedid}/transfer/cancel", post_transfer_cancel)
    app.router.add_post("/api/calls/{linkedid}/conference", post_conference)
    app.router.add_post("/api/calls/{linkedid}/linkage", post_linkage)
    app.router.add_post("/api/calls/{linkedid}/spy", post_spy)

"""The flow buttons of the console: ``POST /api/calls/{linkedid}/transfer``.

Thin: validate, call the flow service (``call_flows.flows``, wired in by ``hotline up``), audit who
pressed it. Without a flow service (the API run alone) the answer is 503 ``flows_unavailable``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from app import keys
from app.auth import requires
from app.errors import ApiError
from app.http_util import json_response, read_json
from call_flows.flows import FlowError
from hotline.contracts import LINKEDID_RE, CallEvent, CallEventType, Service


class FlowRefused(ApiError):
    """Carries a flow error's own status and id."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id


class BadFlowRequest(ApiError):
    status = 400
    error_id = "validation_failed"


def _flows(request: web.Request) -> Any:
    flows = request.app.get(keys.FLOWS)
    if flows is None:
        raise FlowRefused(503, "flows_unavailable", "call flows are not wired to this API instance")
    return flows


@requires("operator", "supervisor", "admin")
async def post_transfer(request: web.Request) -> web.Response:
    flows = _flows(request)

    async def run(lid: str, body: dict[str, Any]) -> Any:
        mode = body.get("mode", "blind")
        if mode not in ("blind", "attended"):
            raise BadFlowRequest("mode must be 'blind' or 'attended'", {"mode": mode})
        return await flows.transfer(lid, _service(body, "target"), mode)

    return await _run(request, "transfer", {"target", "mode"}, run)


@requires("operator", "supervisor", "admin")
async def post_transfer_complete(request: web.Request) -> web.Response:
    flows = _flows(request)
    return await _run(request, "transfer_complete", set(), lambda lid, _b: flows.complete_attended(lid))


@requires("operator", "supervisor", "admin")
async def post_transfer_cancel(request: web.Request) -> web.Response:
    flows = _flows(request)

    async def run(lid: str, _body: dict[str, Any]) -> Any:
        result = await flows.cancel_attended(lid)
        # The caller is back with its seat: the timeline says so (the app is the one writer).
        await request.app[keys.CALLS].record([CallEvent(
            event_id=f"{lid}:transfer_failed:cancel:{time.time():.3f}", linkedid=lid,
            type=CallEventType.TRANSFER_FAILED, at=time.time(), source="api",
            data={"kind": "attended", "status": "cancelled"})])
        return result

    return await _run(request, "transfer_cancel", set(), run)


def _conf(request: web.Request) -> Any:
    flows = request.app.get(keys.CONFERENCE_FLOWS)
    if flows is None:
        raise FlowRefused(503, "flows_unavailable", "call flows are not wired to this API instance")
    return flows


async def _run(request: web.Request, action: str, allowed: set[str], call: Any) -> web.Response:
    """Validate the call id and body keys, run the flow, audit who asked and what came of it."""
    linkedid = request.match_info["linkedid"]
    if not LINKEDID_RE.fullmatch(linkedid):
        raise BadFlowRequest("bad call id", {"linkedid": "not a call id"})
    body = await read_json(request) if request.can_read_body else {}
    if not isinstance(body, dict) or set(body) - allowed:
        raise BadFlowRequest(f"body keys allowed: {sorted(allowed)}", {"got": sorted(body)
                                                                      if isinstance(body, dict) else None})
    who = request[keys.PRINCIPAL]
    try:
        result = await call(linkedid, body)
    except FlowError as exc:
        await request.app[keys.CALLS].audit(who, f"{action}_refused", linkedid,
                                            {"error_id": exc.error_id, **body})
        raise FlowRefused(exc.status, exc.error_id, exc.message) from None
    except (TimeoutError, ConnectionError) as exc:  # Asterisk slow or reconnecting: nothing changed
        raise FlowRefused(503, "flows_unavailable", f"Asterisk did not answer: {exc!r}") from None
    await request.app[keys.CALLS].audit(who, action, linkedid, result)
    return json_response(result, status=202)


def _service(body: dict[str, Any], key: str) -> Service | None:
    v = body.get(key)
    if v is None:
        return None
    if v not in (s.value for s in Service):
        raise BadFlowRequest(f"{key} must be '110' or '12345'", {key: v})
    return Service(v)


@requires("operator", "supervisor", "admin")
async def post_conference(request: web.Request) -> web.Response:
    flows = _conf(request)
    return await _run(request, "three_way", {"with"},
                      lambda lid, body: flows.three_way(lid, _service(body, "with")))


@requires("operator", "supervisor", "admin")
async def post_linkage(request: web.Request) -> web.Response:
    flows = _conf(request)

    async def run(lid: str, body: dict[str, Any]) -> Any:
        if not isinstance(body.get("hotline"), str):
            raise BadFlowRequest("hotline is required", {"hotline": "119|120|122|water|power|gas|heating"})
        return await flows.linkage(lid, body["hotline"])

    return await _run(request, "linkage", {"hotline"}, run)


@requires("supervisor", "admin")
async def post_spy(request: web.Request) -> web.Response:
    flows = _conf(request)

    async def run(lid: str, body: dict[str, Any]) -> Any:
        sup, mode, seat = body.get("supervisor"), body.get("mode", "listen"), body.get("seat")
        if not (isinstance(sup, str) and isinstance(mode, str) and (seat is None or isinstance(seat, str))):
            raise BadFlowRequest("supervisor (seat id) is required; mode listen|whisper|barge")
        return await flows.spy(lid, sup, mode, seat)

    return await _run(request, "spy", {"supervisor", "mode", "seat"}, run)


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

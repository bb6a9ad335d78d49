"""The flow buttons of the console: ``POST /api/calls/{linkedid}/transfer``.

Thin: validate, call the flow service (``call_flows.flows``, wired in by ``hotline up``), audit who
pressed it. Without a flow service (the API run alone) the answer is 503 ``flows_unavailable``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app import keys
from app.auth import requires
from app.errors import ApiError
from app.http_util import json_response, read_json
from call_flows.flows import FlowError
from hotline.contracts import LINKEDID_RE, Service


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
    linkedid = request.match_info["linkedid"]
    if not LINKEDID_RE.match(linkedid):
        raise BadFlowRequest("bad call id", {"linkedid": "not a call id"})
    body = await read_json(request) if request.can_read_body else {}
    if not isinstance(body, dict) or set(body) - {"target"}:
        raise BadFlowRequest("body must be {} or {\"target\": \"110\"|\"12345\"}")
    target = body.get("target")
    if target is not None and target not in (s.value for s in Service):
        raise BadFlowRequest("target must be '110' or '12345'", {"target": target})
    who = request[keys.PRINCIPAL]
    try:
        result = await _flows(request).transfer(linkedid, Service(target) if target else None)
    except FlowError as exc:
        await request.app[keys.CALLS].audit(who, "transfer_refused", linkedid,
                                            {"error_id": exc.error_id, "target": target})
        raise FlowRefused(exc.status, exc.error_id, exc.message) from None
    await request.app[keys.CALLS].audit(who, "transfer", linkedid, result)
    return json_response(result, status=202)


def setup_routes(app: web.Application, flows: Any = None) -> None:
    if flows is not None:
        app[keys.FLOWS] = flows
    app.router.add_post("/api/calls/{linkedid}/transfer", post_transfer)

"""``POST /api/route`` (who takes this call) and ``POST /api/route/reload`` (admins, new rules).

The routing engine (``routing/``) takes about a second to load its rules and dictionary, so it is
loaded once per app, off the event loop, on first use (``hotline up`` warms it at start). A reload
swaps the rules atomically and keeps the old ones when the new files are invalid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from app import keys
from app.auth import requires
from app.endpoint import endpoint
from app.errors import PassedOn, RulesNotReloaded, UnknownCall
from app.http_util import call_id, json_response, parse_body
from app.schemas import Answer, Body
from hotline.contracts import CallEvent, CallEventType
from hotline.platforms import Service
from hotline.types import Text
from routing.engine import MAX_TEXT_CHARS, Router
from routing.errors import RoutingDataError, RoutingInputError
from routing.http import RouteRequest, make_route_handler

log = logging.getLogger(__name__)


class RouteAnswer(Answer):
    """The routing engine's answer (``routing.result.RouteResult``)."""

    at: Service
    action: str
    category: dict[str, str] | None
    alternatives: list[dict[str, Any]]
    life_threat: bool
    linkage: list[str]
    slots: dict[str, list[str]]
    reasons: list[str]
    matters: list[dict[str, Any]]
    rules_version: str


class CallRouteBody(Body):
    text: Text(MAX_TEXT_CHARS)  # type: ignore[valid-type]
    at: Service | None = None


class ReloadAnswer(Answer):
    previous: str
    version: str


class RouterHolder:
    """Loads the :class:`Router` once, on first use, in a worker thread."""

    def __init__(self) -> None:
        self._router: Router | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Router:
        if self._router is None:
            async with self._lock:
                if self._router is None:
                    self._router = await asyncio.to_thread(Router)
        return self._router


@endpoint("Route a text: who takes this matter, and why", body=RouteRequest, response=RouteAnswer,
          passes_on=("routing",))
@requires("operator", "supervisor", "admin", "service")
async def post_route(request: web.Request) -> web.StreamResponse:
    router = await request.app[keys.ROUTER].get()
    return await make_route_handler(router)(request)


@endpoint("Reload the routing rules (the old ones stay in service when the new files are invalid)",
          response=ReloadAnswer, errors=(RulesNotReloaded,))
@requires("admin")
async def post_route_reload(request: web.Request) -> web.StreamResponse:
    router = await request.app[keys.ROUTER].get()
    old = router.version
    try:
        version = await asyncio.to_thread(router.reload)
    except RoutingDataError as exc:
        raise RulesNotReloaded(f"rules not reloaded, {old} stays in service: {exc}",
                               {"file": exc.file, "key": exc.key, "problem": exc.problem}) from None
    log.info("routing rules reloaded: %s -> %s by %s", old, version, request[keys.PRINCIPAL].name)
    return json_response({"previous": old, "version": version})


@endpoint("Route the caller's words for one call and keep the answer with the call (its context)",
          body=CallRouteBody, response=RouteAnswer, errors=(UnknownCall,), passes_on=("routing",))
@requires("operator", "supervisor", "admin", "service")
async def post_call_route(request: web.Request) -> web.StreamResponse:
    """The seat that takes a transfer or joins a three-way bridge reads the answer in ``context``."""
    linkedid = call_id(request)
    call = await request.app[keys.CALLS].exists(linkedid)
    if call is None:
        raise UnknownCall(details={"linkedid": linkedid})
    body = await parse_body(request, CallRouteBody)
    at = (body.at.value if body.at else None) or call.get("service") or "12345"
    router = await request.app[keys.ROUTER].get()
    try:
        result = await asyncio.to_thread(router.route, body.text, at)
    except RoutingInputError as exc:
        raise PassedOn(exc.status, exc.error_id, exc.message) from None
    answer = result.to_json()
    now = time.time()
    data = {k: answer.get(k) for k in ("at", "action", "category", "life_threat", "linkage", "rules_version")}
    data["reasons"] = list(answer.get("reasons") or [])[:8]
    await request.app[keys.CALLS].record([CallEvent(
        event_id=f"{linkedid}:routed:{now:.6f}", linkedid=linkedid, type=CallEventType.ROUTED, at=now,
        source="api", data=data)])
    return json_response(answer)


def setup_routes(app: web.Application) -> None:
    app[keys.ROUTER] = RouterHolder()
    app.router.add_post("/api/route", post_route)
    app.router.add_post("/api/calls/{linkedid}/route", post_call_route)
    app.router.add_post("/api/route/reload", post_route_reload)

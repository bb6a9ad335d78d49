"""``POST /api/route`` (who takes this call) and ``POST /api/route/reload`` (admins, new rules).

The routing engine (``routing/``) takes about a second to load its rules and dictionary, so it is
loaded once per app, off the event loop, on first use (``hotline up`` warms it at start). A reload
swaps the rules atomically and keeps the old ones when the new files are invalid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web

from app import keys
from app.auth import requires
from app.errors import ApiError, UnknownCall
from app.http_util import read_json
from hotline.contracts import LINKEDID_RE, CallEvent, CallEventType
from routing.engine import Router
from routing.errors import RoutingDataError, RoutingInputError
from routing.http import make_route_handler

log = logging.getLogger(__name__)


class RulesNotReloaded(ApiError):
    status = 400
    error_id = "route.reload_failed"
    message = "the routing rules were not reloaded"


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


@requires("operator", "supervisor", "admin", "service")
async def post_route(request: web.Request) -> web.StreamResponse:
    router = await request.app[keys.ROUTER].get()
    return await make_route_handler(router)(request)


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
    return web.json_response({"previous": old, "version": version})


@requires("operator", "supervisor", "admin", "service")
async def post_call_route(request: web.Request) -> web.StreamResponse:
    """Route the caller's words for one call and keep the answer with the call, so it travels with
    it: the seat that takes a transfer or joins a three-way bridge reads it in ``context``."""
    linkedid = request.match_info["linkedid"]
    call = await request.app[keys.CALLS].exists(linkedid) if LINKEDID_RE.fullmatch(linkedid) else None
    if call is None:
        raise UnknownCall(details={"linkedid": linkedid})
    raw = await read_json(request)
    if not isinstance(raw, dict) or set(raw) - {"text", "at"}:
        raise RouteBodyInvalid("body must be {\"text\": ..., \"at\"?: \"12345\"|\"110\"}")
    at = raw.get("at") or call.get("service") or "12345"
    router = await request.app[keys.ROUTER].get()
    text = raw.get("text")
    try:
        if not isinstance(text, str):
            raise RoutingInputError("route.invalid_text", "text must be a string")
        result = await asyncio.to_thread(router.route, text, at)
    except RoutingInputError as exc:
        return web.json_response(exc.to_json(), status=exc.status)
    answer = result.to_json()
    now = time.time()
    data = {k: answer.get(k) for k in ("at", "action", "category", "life_threat", "linkage", "rules_version")}
    data["reasons"] = list(answer.get("reasons") or [])[:8]
    await request.app[keys.CALLS].record([CallEvent(
        event_id=f"{linkedid}:routed:{now:.6f}", linkedid=linkedid, type=CallEventType.ROUTED, at=now,
        source="api", data=data)])
    return web.json_response(answer, dumps=lambda d: json.dumps(d, ensure_ascii=False))


class RouteBodyInvalid(ApiError):
    status = 400
    error_id = "validation_failed"


def setup_routes(app: web.Application) -> None:
    app[keys.ROUTER] = RouterHolder()
    app.router.add_post("/api/route", post_route)
    app.router.add_post("/api/calls/{linkedid}/route", post_call_route)
    app.router.add_post("/api/route/reload", post_route_reload)

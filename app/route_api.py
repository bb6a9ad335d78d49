"""``POST /api/route`` (who takes this call) and ``POST /api/route/reload`` (admins, new rules).

The routing engine (``routing/``) takes about a second to load its rules and dictionary, so it is
loaded once per app, off the event loop, on first use (``hotline up`` warms it at start). A reload
swaps the rules atomically and keeps the old ones when the new files are invalid.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from app import keys
from app.auth import requires
from app.errors import ApiError
from routing.engine import Router
from routing.errors import RoutingDataError
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


def setup_routes(app: web.Application) -> None:
    app[keys.ROUTER] = RouterHolder()
    app.router.add_post("/api/route", post_route)
    app.router.add_post("/api/route/reload", post_route_reload)

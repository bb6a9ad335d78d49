"""Live transcripts over WebSocket.

- ``GET /api/calls/{linkedid}/live`` (operator, supervisor, admin): first a ``snapshot`` (the stored
  finals and gaps, and the work order or null), then every message published for the call.
- ``GET /api/live`` (supervisor, admin): every message of every call.

Messages are forwarded as they were published on Redis (``hotline.redis_keys``): segments from the
transcriber, work-order updates and alerts from the app. Browsers cannot set headers on a WebSocket,
so these two routes also take the token as ``?access_token=``. Opening one is audited like a read.
Redis down or lost: the socket closes with 1013 (try again later) and ``redis_unavailable``. All
sockets of a process share one Redis subscription (:class:`app.transcripts.sockets.LiveHub`, made
with the app's Redis link in :mod:`app.factory`), with limits per process and per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, web

from app import keys
from app.auth import ADMIN, QUERY_TOKEN_PARAM, READERS, SUPERVISOR, query_token, requires
from app.errors import ApiError
from app.http_util import call_id, check_query
from app.redis_link import RedisDown
from app.transcripts.sockets import CLOSE_REDIS_DOWN, LiveHub, SocketRefused, Watcher, reason
from hotline.redis_keys import TRANSCRIPTS_CHANNEL, transcript_channel

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0


class WebSocketRequired(ApiError):
    status, error_id, message = 400, "live.websocket_required", "this route speaks WebSocket only"


@query_token
@requires(*READERS)
async def call_live(request: web.Request) -> web.StreamResponse:
    linkedid = call_id(request)
    check_query(request, {QUERY_TOKEN_PARAM})
    app = request.app

    async def snapshot() -> dict[str, Any]:
        return {"type": "snapshot", "call": linkedid,
                "segments": await app[keys.TRANSCRIPTS].segments(linkedid),
                "work_order": await app[keys.WORK_ORDERS].find(linkedid)}

    return await stream(request, transcript_channel(linkedid), "watch_call_live", linkedid, snapshot)


@query_token
@requires(SUPERVISOR, ADMIN)
async def all_live(request: web.Request) -> web.StreamResponse:
    check_query(request, {QUERY_TOKEN_PARAM})
    return await stream(request, TRANSCRIPTS_CHANNEL, "watch_live", "calls", None)


async def stream(request: web.Request, channel: str, action: str, target: str,
                 snapshot: Callable[[], Awaitable[dict[str, Any]]] | None, *,
                 accept: Callable[[dict[str, Any]], bool] | None = None) -> web.StreamResponse:
    """Serve ``channel``'s messages on a WebSocket (those ``accept`` lets through), after the
    ``snapshot``; opening it is audited as ``action`` on ``target``. The console's sockets use it too."""
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    if not ws.can_prepare(request).ok:
        raise WebSocketRequired()
    principal = request[keys.PRINCIPAL]
    await request.app[keys.CALLS].audit(principal, action, target, {})
    await ws.prepare(request)
    hub = request.app[keys.LIVE_SOCKETS]
    try:
        # Subscribed before the snapshot is read: nothing published meanwhile is missed (a segment
        # may come both in the snapshot and live; (tap, seq) tells them apart).
        watcher = await hub.attach(ws, channel, principal.name, accept=accept)
    except SocketRefused as exc:
        log.warning("live %s refused for %s: %s", channel, principal.name, exc)
        await ws.close(code=exc.code, message=exc.reason)
        return ws
    except RedisDown as exc:
        log.warning("live %s refused: Redis is unavailable: %s", channel, exc)
        await ws.close(code=CLOSE_REDIS_DOWN, message=reason(f"redis_unavailable: {exc}"))
        return ws
    try:
        await _serve(ws, hub, watcher, channel, snapshot)
    finally:
        await hub.detach(watcher)
    return ws


async def _serve(ws: web.WebSocketResponse, hub: LiveHub, watcher: Watcher, channel: str,
                 snapshot: Callable[[], Awaitable[dict[str, Any]]] | None) -> None:
    if snapshot is not None:
        try:
            first = await snapshot()
        except Exception:
            log.exception("live %s: could not read the snapshot", channel)
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal_error: snapshot unavailable")
            return
        with contextlib.suppress(ConnectionError):
            await ws.send_str(json.dumps(first, ensure_ascii=False))
    sender = asyncio.create_task(hub.send_loop(watcher), name=f"live-{channel}")
    try:
        async for _ in ws:  # the console sends nothing we act on; this ends when it goes
            pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def close_sockets(app: web.Application) -> None:
    """``on_shutdown``: close every open live socket (1001 going away) before the app stops."""
    await app[keys.LIVE_SOCKETS].close_all()


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/calls/{linkedid}/live", call_live)
    app.router.add_get("/api/live", all_live)
    app.on_shutdown.append(close_sockets)

"""Live transcripts over WebSocket.

- ``GET /api/calls/{linkedid}/live`` (operator, supervisor, admin): first a ``snapshot`` (the stored
  finals and gaps, and the work order or null), then every message published for the call.
- ``GET /api/live`` (supervisor, admin): every message of every call.

Messages are forwarded as they were published on Redis (``hotline.redis_keys``): segments from the
transcriber, work-order updates and alerts from the app. Browsers cannot set headers on a WebSocket,
so these two routes also take the token as ``?access_token=``. Opening one is audited like a read.
Redis down or lost: the socket closes with 1013 (try again later) and ``redis_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, web
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from app import keys
from app.auth import ADMIN, QUERY_TOKEN_PARAM, READERS, SUPERVISOR, query_token, requires
from app.errors import ApiError
from app.http_util import call_id, check_query
from app.redis_link import RedisDown, close_pubsub
from app.transcripts.sockets import LiveSockets
from hotline.redis_keys import TRANSCRIPTS_CHANNEL, transcript_channel

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
POLL_S = 1.0
CLOSE_REDIS_DOWN = WSCloseCode.TRY_AGAIN_LATER  # 1013


class WebSocketRequired(ApiError):
    status, error_id, message = 400, "live.websocket_required", "this route speaks WebSocket only"


def _reason(text: str) -> bytes:
    return text.encode()[:120]  # a close frame's reason fits in 123 bytes


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

    return await _stream(request, transcript_channel(linkedid), "watch_call_live", linkedid, snapshot)


@query_token
@requires(SUPERVISOR, ADMIN)
async def all_live(request: web.Request) -> web.StreamResponse:
    check_query(request, {QUERY_TOKEN_PARAM})
    return await _stream(request, TRANSCRIPTS_CHANNEL, "watch_live", "calls", None)


async def _stream(request: web.Request, channel: str, action: str, target: str,
                  snapshot: Callable[[], Awaitable[dict[str, Any]]] | None) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    if not ws.can_prepare(request).ok:
        raise WebSocketRequired()
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], action, target, {})
    await ws.prepare(request)
    sockets = request.app[keys.LIVE_SOCKETS]
    sockets.add(ws)
    try:
        try:
            pubsub = await request.app[keys.REDIS].subscribe(channel)
        except RedisDown as exc:
            log.warning("live %s refused: Redis is unavailable: %s", channel, exc)
            await ws.close(code=CLOSE_REDIS_DOWN, message=_reason(f"redis_unavailable: {exc}"))
            return ws
        try:
            await _serve(ws, pubsub, channel, snapshot)
        finally:
            await close_pubsub(pubsub)
    finally:
        sockets.discard(ws)
    return ws


async def _serve(ws: web.WebSocketResponse, pubsub: PubSub, channel: str,
                 snapshot: Callable[[], Awaitable[dict[str, Any]]] | None) -> None:
    # Subscribed before the snapshot is read: nothing published meanwhile is missed (a segment may
    # come both in the snapshot and live; (tap, seq) tells them apart).
    if snapshot is not None:
        try:
            first = await snapshot()
        except Exception:
            log.exception("live %s: could not read the snapshot", channel)
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal_error: snapshot unavailable")
            return
        with contextlib.suppress(ConnectionError):
            await ws.send_str(json.dumps(first, ensure_ascii=False))
    forward = asyncio.create_task(_forward(pubsub, ws, channel), name=f"live-{channel}")
    try:
        async for _ in ws:  # the console sends nothing we act on; this ends when it goes
            pass
    finally:
        forward.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forward


async def _forward(pubsub: PubSub, ws: web.WebSocketResponse, channel: str) -> None:
    while not ws.closed:
        try:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
        except (RedisError, OSError) as exc:
            log.warning("live %s: lost the Redis subscription: %s", channel, exc)
            await ws.close(code=CLOSE_REDIS_DOWN, message=b"redis_unavailable: the subscription was lost")
            return
        if msg is None or msg.get("type") != "message":
            continue
        data = msg["data"]
        try:
            await ws.send_str(data if isinstance(data, str) else data.decode("utf-8", "replace"))
        except ConnectionError:
            return  # the console went away; the handler cleans up


async def close_sockets(app: web.Application) -> None:
    """``on_shutdown``: close every open live socket (1001 going away) before the app stops."""
    await app[keys.LIVE_SOCKETS].close_all()


def setup_routes(app: web.Application) -> None:
    app[keys.LIVE_SOCKETS] = LiveSockets()
    app.router.add_get("/api/calls/{linkedid}/live", call_live)
    app.router.add_get("/api/live", all_live)
    app.on_shutdown.append(close_sockets)

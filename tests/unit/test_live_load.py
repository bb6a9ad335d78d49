"""Hundreds of live WebSockets against a real Redis: they share one subscription, so Redis stays
available to everything else (``/ready``, the harassment list, event and life-threat broadcasts); the
limits per token and per process close with their codes; a console that does not read is closed
(4008) without holding up the others; the process's Redis connections stay within the pool size."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from redis.asyncio import Redis

from app import keys
from app.redis_link import RedisLink
from app.transcripts.sockets import CLOSE_SLOW_CONSUMER, LiveHub
from hotline.redis_client import connect, pool_stats
from hotline.redis_keys import TRANSCRIPTS_CHANNEL, transcript_channel
from routing.engine import Router

T0 = 1_760_000_000.0
ROOFTOP = "楼顶上站着一个人，看样子要往下跳"
SOCKETS = 400


def seg(call: str, seq: int, text: str) -> dict[str, Any]:
    start = T0 + 20 + 3 * seq
    return {"call": call, "tap": f"{call}-caller", "seq": seq, "speaker": "caller", "kind": "final",
            "start": start, "end": start + 2.5, "text": text, "confidence": 0.8, "seat": None}


def auth(api_secrets, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_secrets.token_for(role)}"}


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'load.db'}"


async def next_of_type(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout_s: float = 15) -> dict:
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await ws.receive()
            assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
            body = json.loads(msg.data)
            if body.get("type") == kind:
                return body


async def app_connections(redis: Redis) -> int:
    """Connections Redis holds, other than the test's own client."""
    clients = await redis.client_list()
    me = await redis.client_id()
    return sum(1 for c in clients if int(c["id"]) != me)


async def test_hundreds_of_sockets_leave_redis_to_everything_else(app_client, api_secrets, sqlite_url,
                                                                 redis_url, router) -> None:
    max_conn = 8
    client = await app_client(sqlite_url, redis_url,
                              settings_kw={"redis_max_connections": max_conn, "live_max_per_token": 500})
    app = client.server.app
    app[keys.ROUTER]._router = router
    probe = Redis.from_url(redis_url, decode_responses=True)
    baseline = await app_connections(probe)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    async with contextlib.AsyncExitStack() as stack:
        # the test client's session stops at 100 connections; consoles are many browsers
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))

        async def open_socket(path: str, role: str) -> aiohttp.ClientWebSocketResponse:
            ws = await stack.enter_async_context(
                session.ws_connect(client.make_url(path), headers=auth(api_secrets, role)))
            sockets.append(ws)
            return ws

        watch_all = [await open_socket("/api/live", "supervisor") for _ in range(20)]
        calls = [f"load{i}" for i in range(SOCKETS - len(watch_all))]
        for i, call in enumerate(calls):
            ws = await open_socket(f"/api/calls/{call}/live", ("operator", "supervisor", "admin")[i % 3])
            assert (await ws.receive_json(timeout=10))["type"] == "snapshot"
        assert len(app[keys.LIVE_SOCKETS]) == SOCKETS
        # one subscription serves all of them: the app holds a handful of connections, not 400
        held = await app_connections(probe) - baseline
        assert held <= max_conn, f"the app holds {held} Redis connections with {SOCKETS} sockets open"
        assert (await probe.pubsub_numsub(TRANSCRIPTS_CHANNEL))[0][1] == 1
        assert (await probe.pubsub_numsub(transcript_channel(calls[0])))[0][1] == 1

        async with client.get("/ready") as resp:
            body = await resp.json()
            assert resp.status == 200 and body["redis"] == "ok", body
        async with client.get("/api/harassment", headers=auth(api_secrets, "admin")) as resp:
            assert resp.status == 200, await resp.text()

        # a life threat said on one call reaches that call's socket and every all-calls socket
        target = calls[7]
        await client.post("/api/events", headers=auth(api_secrets, "service"), json={"events": [
            {"event_id": f"{target}:arrived", "linkedid": target, "type": "arrived", "at": T0,
             "source": "agi", "service": "12345", "caller": "13800000001", "data": {}}]})
        async with client.post("/api/transcripts", headers=auth(api_secrets, "service"),
                               json={"segments": [seg(target, 0, ROOFTOP)]}) as resp:
            assert resp.status == 200, await resp.text()
        alert = await next_of_type(sockets[len(watch_all) + 7], "alert")
        assert alert["call"] == target and "楼顶" in alert["text"]
        for ws in watch_all:
            assert (await next_of_type(ws, "alert"))["call"] == target
        # a second call's socket heard nothing of it
        other = sockets[len(watch_all) + 8]
        with pytest.raises(TimeoutError):
            await other.receive(timeout=0.3)
        stats = pool_stats(app[keys.REDIS].client)
        assert stats["open"] <= max_conn
    await probe.aclose()

    async def all_gone() -> bool:
        return len(app[keys.LIVE_SOCKETS]) == 0 and not app[keys.LIVE_SOCKETS].subscribed

    for _ in range(100):
        if await all_gone():
            break
        await asyncio.sleep(0.05)
    assert await all_gone()


async def test_limits_per_token_and_per_process_close_with_their_codes(app_client, api_secrets,
                                                                      sqlite_url, redis_url) -> None:
    client = await app_client(sqlite_url, redis_url,
                              settings_kw={"live_max_per_token": 2, "live_max_sockets": 3})
    async with client.ws_connect("/api/calls/l1/live", headers=auth(api_secrets, "operator")) as a, \
            client.ws_connect("/api/calls/l2/live", headers=auth(api_secrets, "operator")) as b:
        for ws in (a, b):
            assert (await ws.receive_json(timeout=10))["type"] == "snapshot"
        async with client.ws_connect("/api/calls/l3/live", headers=auth(api_secrets, "operator")) as c:
            msg = await c.receive(timeout=10)
            assert msg.type == WSMsgType.CLOSE and msg.data == 4429, (msg.type, msg.data)
            assert msg.extra.startswith("too_many_sockets")
        async with client.ws_connect("/api/live", headers=auth(api_secrets, "supervisor")) as d:
            async with client.ws_connect("/api/live", headers=auth(api_secrets, "admin")) as e:
                msg = await e.receive(timeout=10)
                assert msg.type == WSMsgType.CLOSE and msg.data == 1013, (msg.type, msg.data)
                assert msg.extra.startswith("at_capacity")
            assert not d.closed
        # the refused ones took nothing: the first two still work
        assert len(client.server.app[keys.LIVE_SOCKETS]) in (2, 3)


class StuckSocket:
    """A socket whose peer never reads: every send waits forever."""

    def __init__(self) -> None:
        self.closed = False
        self.close_code: int | None = None
        self.sent = 0

    async def send_str(self, data: str) -> None:
        self.sent += 1
        await asyncio.Event().wait()

    async def close(self, *, code: int, message: bytes) -> None:
        self.closed, self.close_code = True, code


class ReadingSocket(StuckSocket):
    async def send_str(self, data: str) -> None:
        self.sent += 1


async def test_a_console_that_does_not_read_is_closed_and_does_not_hold_up_the_others(redis_url) -> None:
    link = RedisLink(client=connect(redis_url, max_connections=4))
    hub = LiveHub(link, queue_max=20, send_timeout_s=0.5)
    stuck, reading = StuckSocket(), ReadingSocket()
    w_stuck = await hub.attach(stuck, TRANSCRIPTS_CHANNEL, "a")  # type: ignore[arg-type]
    w_read = await hub.attach(reading, TRANSCRIPTS_CHANNEL, "b")  # type: ignore[arg-type]
    senders = [asyncio.create_task(hub.send_loop(w)) for w in (w_stuck, w_read)]
    publisher = Redis.from_url(redis_url, decode_responses=True)
    try:
        for i in range(100):
            await publisher.publish(TRANSCRIPTS_CHANNEL, json.dumps({"type": "segment", "seq": i}))
        for _ in range(100):
            if reading.sent == 100:
                break
            await asyncio.sleep(0.05)
        assert reading.sent == 100 and not reading.closed
        assert w_stuck.closing is not None and w_stuck.closing[0] == CLOSE_SLOW_CONSUMER
        for _ in range(40):  # its send times out, then the socket is closed with 4008
            if stuck.closed:
                break
            await asyncio.sleep(0.05)
        assert stuck.closed and stuck.close_code == CLOSE_SLOW_CONSUMER and hub.slow_closed == 1
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        await hub.detach(w_stuck)
        await hub.detach(w_read)
        assert not hub.subscribed
        await hub.stop()
        await publisher.aclose()
        await link.close()


async def test_the_pool_waits_for_a_connection_instead_of_failing(redis_url) -> None:
    redis = connect(redis_url, max_connections=3)
    try:
        # 300 concurrent commands through 3 connections: all succeed, none "Too many connections"
        results = await asyncio.gather(*(redis.incr("hotline:test:pool") for _ in range(300)))
        assert len(results) == 300 and pool_stats(redis)["open"] <= 3
    finally:
        await redis.delete("hotline:test:pool")
        await redis.aclose()

"""The live WebSockets: snapshot then live messages from Redis, tokens in the URL, Redis down or lost,
unsubscribing when the console goes, and closing every socket when the app shuts down."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from redis.asyncio import Redis
from sqlalchemy import select

from app import keys
from app.models import AuditRow
from hotline.redis_keys import TRANSCRIPTS_CHANNEL, transcript_channel
from operations.redis_server import RedisServer, free_port

T0 = 1_760_000_000.0


def seg(call: str, seq: int, text: str, *, speaker: str = "caller", kind: str = "final") -> dict[str, Any]:
    start = T0 + 3 * seq
    return {"call": call, "tap": f"{call}-{speaker}", "seq": seq, "speaker": speaker, "kind": kind,
            "start": start, "end": start + 2.5, "text": text, "confidence": None, "seat": None}


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def auth(api_secrets, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_secrets.token_for(role)}"}


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=10)
    assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def eventually(check, timeout_s: float = 5.0) -> bool:
    for _ in range(int(timeout_s / 0.05)):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


async def post_segments(client, api_secrets, segments: list[dict]) -> dict:
    async with client.post("/api/transcripts", json={"segments": segments},
                           headers=auth(api_secrets, "service")) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_a_call_socket_sends_a_snapshot_then_what_is_published(app_client, api_secrets, sqlite_url,
                                                                    redis_url, redis) -> None:
    client = await app_client(sqlite_url, redis_url)
    await post_segments(client, api_secrets, [seg("w1", 0, "你好，我们这条街的路灯晚上全不亮")])
    async with client.ws_connect("/api/calls/w1/live", headers=auth(api_secrets, "operator")) as ws:
        snapshot = await receive_json(ws)
        assert snapshot["type"] == "snapshot" and snapshot["call"] == "w1"
        assert [s["text"] for s in snapshot["segments"]] == ["你好，我们这条街的路灯晚上全不亮"]
        assert snapshot["work_order"]["category"]["code"] == "A01"
        # what the transcriber publishes, for this call and for another one
        partial = {"type": "segment", **seg("w1", 1, "走夜路", kind="partial")}
        await redis.publish(transcript_channel("w2"), json.dumps({"type": "segment", **seg("w2", 0, "别处")}))
        await redis.publish(transcript_channel("w1"), json.dumps(partial, ensure_ascii=False))
        assert await receive_json(ws) == partial
        # what the app makes: the draft follows the caller's next final
        await post_segments(client, api_secrets, [seg("w1", 1, "走夜路心里发毛，在胜利路")])
        update = await receive_json(ws)
        assert update["type"] == "work_order" and update["call"] == "w1"
        assert update["work_order"]["caller_segments"] == 2
    async with client.server.app[keys.DATABASE].read() as conn:
        rows = (await conn.execute(select(AuditRow.who, AuditRow.action, AuditRow.target))).all()
    assert ("test-operator", "watch_call_live", "w1") in [tuple(r) for r in rows]


async def test_a_call_with_nothing_yet_gets_an_empty_snapshot(app_client, api_secrets, sqlite_url,
                                                              redis_url) -> None:
    client = await app_client(sqlite_url, redis_url)
    async with client.ws_connect("/api/calls/w3/live", headers=auth(api_secrets, "admin")) as ws:
        snapshot = await receive_json(ws)
        assert snapshot == {"type": "snapshot", "call": "w3", "segments": [], "work_order": None}


async def test_all_calls_socket_is_for_supervisors_and_takes_the_token_in_the_url(
        app_client, api_secrets, sqlite_url, redis_url, redis) -> None:
    client = await app_client(sqlite_url, redis_url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/live", headers=auth(api_secrets, "operator"))
    assert refused.value.status == 403
    for bad in ("", "?access_token=nope", "?token=" + api_secrets.token_for("supervisor")):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"/api/live{bad}")
        assert refused.value.status == 401, bad
    url = f"/api/live?access_token={api_secrets.token_for('supervisor')}"
    async with client.ws_connect(url) as ws:
        await asyncio.sleep(0.2)  # no snapshot on this route: let the subscription settle
        for call in ("w4", "w5"):
            await redis.publish(TRANSCRIPTS_CHANNEL, json.dumps({"type": "segment", **seg(call, 0, "喂")}))
        assert [(await receive_json(ws))["call"] for _ in range(2)] == ["w4", "w5"]
    url = f"/api/calls/w4/live?access_token={api_secrets.token_for('operator')}"
    async with client.ws_connect(url) as ws:
        assert (await receive_json(ws))["type"] == "snapshot"


async def test_plain_http_on_a_live_route_is_refused(app_client, api_secrets, sqlite_url, redis_url) -> None:
    client = await app_client(sqlite_url, redis_url)
    async with client.get("/api/calls/w6/live", headers=auth(api_secrets, "operator")) as resp:
        assert resp.status == 400 and (await resp.json())["error_id"] == "live.websocket_required"
    async with client.get("/api/calls/bad%20id/live", headers=auth(api_secrets, "operator")) as resp:
        assert resp.status == 400 and (await resp.json())["error_id"] == "invalid_call_id"


@pytest.mark.parametrize("redis_at", ["dead", "none"])
async def test_redis_down_closes_the_socket_clearly(app_client, api_secrets, sqlite_url, redis_at) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0" if redis_at == "dead" else ""
    client = await app_client(sqlite_url, url)
    async with client.ws_connect("/api/calls/w7/live", headers=auth(api_secrets, "operator")) as ws:
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1013
        assert msg.extra.startswith("redis_unavailable")

    async def forgotten() -> bool:
        return len(client.server.app[keys.LIVE_SOCKETS]) == 0

    assert await eventually(forgotten)
    async with client.get("/health") as resp:
        assert resp.status == 200


async def test_redis_lost_mid_stream_closes_the_socket(app_client, api_secrets, sqlite_url) -> None:
    server = RedisServer().start()
    try:
        client = await app_client(sqlite_url, server.url)
        async with client.ws_connect("/api/live", headers=auth(api_secrets, "supervisor")) as ws:
            await asyncio.sleep(0.2)
            server.stop()
            msg = await ws.receive(timeout=15)
            assert msg.type == WSMsgType.CLOSE and msg.data == 1013, (msg.type, msg.data)
            assert msg.extra.startswith("redis_unavailable")
    finally:
        server.stop()


async def test_the_subscription_ends_with_the_console(app_client, api_secrets, sqlite_url, redis_url,
                                                     redis) -> None:
    client = await app_client(sqlite_url, redis_url)
    channel = transcript_channel("w8")
    async with client.ws_connect("/api/calls/w8/live", headers=auth(api_secrets, "operator")) as ws:
        await receive_json(ws)
        assert (await redis.pubsub_numsub(channel))[0][1] == 1
        assert len(client.server.app[keys.LIVE_SOCKETS]) == 1

    async def gone() -> bool:
        subscribers = (await redis.pubsub_numsub(channel))[0][1]
        return subscribers == 0 and not len(client.server.app[keys.LIVE_SOCKETS])

    assert await eventually(gone)


async def test_shutdown_closes_open_sockets(app_client, api_secrets, sqlite_url, redis_url) -> None:
    client = await app_client(sqlite_url, redis_url)
    app = client.server.app
    async with client.ws_connect("/api/calls/w9/live", headers=auth(api_secrets, "operator")) as one, \
            client.ws_connect("/api/live", headers=auth(api_secrets, "admin")) as every:
        await receive_json(one)

        async def both_open() -> bool:
            return len(app[keys.LIVE_SOCKETS]) == 2

        assert await eventually(both_open)
        await app.shutdown()  # what the runner does first when the app stops
        for ws in (one, every):
            msg = await ws.receive(timeout=10)
            assert msg.type == WSMsgType.CLOSE and msg.data == 1001
    assert len(app[keys.LIVE_SOCKETS]) == 0

"""Redis: every new event is broadcast; Redis down never fails a write; the app reconnects."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from hotline.redis_keys import EVENTS_CHANNEL, HARASSMENT_SET
from operations.redis_server import RedisServer, free_port


async def test_new_events_are_published(api, redis_url: str) -> None:
    sub = Redis.from_url(redis_url, decode_responses=True)
    pubsub = sub.pubsub()
    try:
        await pubsub.subscribe(EVENTS_CHANNEL)
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        events = api.answered_call("2100.1")
        await api.post_events({"events": events})
        await api.post_events({"events": events})  # duplicates are not broadcast again
        got = []
        while len(got) < len(events) + 1:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
            if msg is None:
                break
            got.append(json.loads(msg["data"]))
        assert sorted(e["event_id"] for e in got) == sorted(e["event_id"] for e in events)
        arrived = next(e for e in got if e["type"] == "arrived")
        assert arrived["linkedid"] == "2100.1" and arrived["caller"] == "13812345678" and arrived["at"] > 0
    finally:
        await pubsub.aclose()
        await sub.aclose()


async def test_redis_down_never_fails_a_write(db_url: str, app_client, api_secrets) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    client = await app_client(db_url, dead)
    headers = {"Authorization": f"Bearer {api_secrets.token_for('service')}"}
    ev = {
        "event_id": "2100.2-a",
        "linkedid": "2100.2",
        "type": "arrived",
        "at": 1_760_000_000.0,
        "caller": "13800000002",
    }
    async with client.post("/api/events", json=ev, headers=headers) as resp:
        assert resp.status == 200 and (await resp.json())["new"] == 1
    async with client.put(
        "/api/calls/2100.2/outcome", json={"outcome": "harassment"}, headers=headers
    ) as resp:
        body = await resp.json()
        assert resp.status == 200 and body["outcome"] == "harassment" and body["harassment_listed"] is False
    async with client.get("/ready") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ready", "database": "ok", "redis": "unavailable"}
    admin = {"Authorization": f"Bearer {api_secrets.token_for('admin')}"}
    async with client.get("/api/harassment", headers=admin) as resp:
        assert (resp.status, (await resp.json())["error_id"]) == (503, "redis_unavailable")


async def test_redis_restart_is_survived(db_url: str, app_client, api_secrets) -> None:
    server = RedisServer().start()
    port = server.port
    try:
        client = await app_client(db_url, server.url)
        headers = {"Authorization": f"Bearer {api_secrets.token_for('service')}"}

        async def post(n: int) -> int:
            ev = {
                "event_id": f"2100.3-{n}",
                "linkedid": "2100.3",
                "type": "ringing",
                "at": 1_760_000_000.0 + n,
            }
            async with client.post("/api/events", json=ev, headers=headers) as resp:
                return resp.status

        assert await post(1) == 200
        server.stop()
        assert [await post(n) for n in range(2, 6)] == [200] * 4
        server = RedisServer(port=port).start()
        sub = Redis.from_url(server.url, decode_responses=True)
        pubsub = sub.pubsub()
        try:
            await pubsub.subscribe(EVENTS_CHANNEL)
            await pubsub.get_message(timeout=2)
            received = None
            for n in range(6, 60):  # the notifier backs off after failures; it must come back
                assert await post(n) == 200
                received = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if received:
                    break
            assert received is not None, "events were not broadcast after Redis came back"
            async with client.get("/ready") as resp:
                assert (await resp.json())["redis"] == "ok"
            await sub.sadd(HARASSMENT_SET, "13800000003")
            admin = {"Authorization": f"Bearer {api_secrets.token_for('admin')}"}
            async with client.get("/api/harassment", headers=admin) as resp:
                assert (await resp.json())["numbers"] == ["13800000003"]
        finally:
            await pubsub.aclose()
            await sub.aclose()
    finally:
        server.stop()


async def test_without_redis_configured(db_url: str, app_client, api_secrets) -> None:
    client = await app_client(db_url, "")
    headers = {"Authorization": f"Bearer {api_secrets.token_for('service')}"}
    ev = {"event_id": "2100.4-a", "linkedid": "2100.4", "type": "arrived", "at": 1_760_000_000.0}
    async with client.post("/api/events", json=ev, headers=headers) as resp:
        assert resp.status == 200
    async with client.get("/ready") as resp:
        assert (await resp.json())["redis"] == "not_configured"


async def test_redis_server_helper() -> None:
    with RedisServer() as server:
        client = Redis.from_url(server.url)
        assert await client.ping()
        await client.aclose()
        port = server.port
    await asyncio.sleep(0)
    assert not server.running
    assert port > 0

"""EventSink against a real aiohttp server standing in for the app service's POST /api/events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hotline.contracts import CallEvent, CallEventType, Service
from hotline.sink import EventSink

TOKEN = "service-token-xyz"


@dataclass
class FakeApi:
    """Records accepted events; ``status`` forces an answer; ``reject`` ids get a 422."""

    received: list[dict] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    status: int | None = None
    reject: set[str] = field(default_factory=set)
    delay_s: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization"))
        body = await request.json()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status is not None:
            return web.json_response({"error_id": "forced", "message": "forced"}, status=self.status)
        events = body["events"] if "events" in body else [body]
        if any(e["event_id"] in self.reject for e in events):
            return web.json_response({"error_id": "event.invalid", "message": "bad event"}, status=422)
        self.bodies.append(body)
        self.received.extend(events)
        return web.json_response({"stored": len(events)})


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_post("/api/events", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def event(n: int, linkedid: str = "1700000000.1") -> CallEvent:
    return CallEvent(event_id=f"{linkedid}:test:{n}", linkedid=linkedid, type=CallEventType.ARRIVED,
                     at=1700000000.0 + n, source="agi", service=Service.HOTLINE_12345, caller="13800138000")


async def wait_for(pred, within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not pred():  # noqa: ASYNC110 - polling the sink's counters is the point
            await asyncio.sleep(0.01)


async def test_delivers_one_event_with_service_token(api):
    fake, url = api
    sink = EventSink(url, TOKEN)
    await sink.start()
    sink.emit(event(1))
    assert await sink.flush(5)
    await sink.aclose()
    assert [e["event_id"] for e in fake.received] == ["1700000000.1:test:1"]
    assert fake.received[0]["type"] == "arrived" and fake.received[0]["service"] == "12345"
    assert fake.auth == [f"Bearer {TOKEN}"]
    assert "events" not in fake.bodies[0]  # a lone event is posted as itself
    assert sink.stats.delivered == 1


async def test_batches_what_queued_up_while_sending(api):
    fake, url = api
    sink = EventSink(url, TOKEN, batch_size=500)
    for i in range(1200):  # queued before start: must go out in batches of at most 500
        sink.emit(event(i))
    await sink.start()
    assert await sink.flush(10)
    await sink.aclose()
    assert len(fake.received) == 1200
    assert [e["event_id"] for e in fake.received] == [f"1700000000.1:test:{i}" for i in range(1200)]
    assert [len(b["events"]) for b in fake.bodies] == [500, 500, 200]


async def test_retries_while_api_is_down_then_delivers(api):
    fake, url = api
    fake.status = 503
    sink = EventSink(url, TOKEN, backoff_initial_s=0.02, backoff_max_s=0.05)
    await sink.start()
    sink.emit(event(1))
    sink.emit(event(2))
    await wait_for(lambda: sink.stats.retries >= 3)
    assert fake.received == []
    fake.status = None  # the API comes back
    assert await sink.flush(5)
    await sink.aclose()
    assert {e["event_id"] for e in fake.received} == {"1700000000.1:test:1", "1700000000.1:test:2"}


async def test_retries_when_api_is_unreachable_then_delivers():
    # nothing listens yet: connection refused, then a server comes up on that port
    fake = FakeApi()
    app = web.Application()
    app.router.add_post("/api/events", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    port = server.port
    await server.close()
    sink = EventSink(f"http://127.0.0.1:{port}", TOKEN, backoff_initial_s=0.02, backoff_max_s=0.05)
    await sink.start()
    sink.emit(event(7))
    await wait_for(lambda: sink.stats.retries >= 2)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        assert await sink.flush(5)
    finally:
        await sink.aclose()
        await server.close()
    assert [e["event_id"] for e in fake.received] == ["1700000000.1:test:7"]


async def test_429_is_retried(api):
    fake, url = api
    fake.status = 429
    sink = EventSink(url, TOKEN, backoff_initial_s=0.02, backoff_max_s=0.05)
    await sink.start()
    sink.emit(event(1))
    await wait_for(lambda: sink.stats.retries >= 2)
    fake.status = None
    assert await sink.flush(5)
    await sink.aclose()
    assert len(fake.received) == 1 and sink.stats.dropped_rejected == 0


async def test_4xx_drops_only_the_rejected_event(api, caplog):
    fake, url = api
    fake.reject = {"1700000000.1:test:3"}
    sink = EventSink(url, TOKEN)
    for i in range(6):
        sink.emit(event(i))
    with caplog.at_level(logging.ERROR, logger="hotline.sink"):
        await sink.start()
        assert await sink.flush(5)
    await sink.aclose()
    assert sorted(e["event_id"] for e in fake.received) == [
        f"1700000000.1:test:{i}" for i in (0, 1, 2, 4, 5)]
    assert sink.stats.dropped_rejected == 1 and sink.stats.delivered == 5
    assert "rejected" in caplog.text and "1700000000.1:test:3" in caplog.text


async def test_401_drops_without_retrying(api):
    fake, url = api
    fake.status = 401
    sink = EventSink(url, "wrong")
    await sink.start()
    sink.emit(event(1))
    sink.emit(event(2))
    assert await sink.flush(5)
    await sink.aclose()
    assert sink.stats.retries == 0 and sink.stats.dropped_rejected == 2 and len(fake.auth) == 1


async def test_bounded_queue_drops_oldest_and_counts(api, caplog):
    fake, url = api
    sink = EventSink(url, TOKEN, max_queue=10)
    with caplog.at_level(logging.WARNING, logger="hotline.sink"):
        for i in range(25):  # not started: nothing leaves the queue
            sink.emit(event(i))
    assert sink.pending == 10
    assert sink.stats.dropped_full == 15
    assert "queue full" in caplog.text
    await sink.start()
    assert await sink.flush(5)
    await sink.aclose()
    assert [e["event_id"] for e in fake.received] == [f"1700000000.1:test:{i}" for i in range(15, 25)]


async def test_emit_never_blocks_or_raises_while_api_hangs(api):
    fake, url = api
    fake.delay_s = 2.0
    sink = EventSink(url, TOKEN, max_queue=100, request_timeout_s=0.2, backoff_initial_s=0.05)
    await sink.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(1000):
        sink.emit(event(i))
    assert loop.time() - t0 < 0.5
    assert sink.pending <= 100 + 1
    await sink.aclose(timeout=0.1)  # API still hanging: aclose gives up on time and counts the loss
    assert sink.stats.dropped_closed > 0
    sink.emit(event(5000))  # after close: counted, not raised
    assert sink.stats.dropped_closed > 1


async def test_aclose_flushes_queued_events(api):
    fake, url = api
    sink = EventSink(url, TOKEN)
    await sink.start()
    for i in range(50):
        sink.emit(event(i))
    await sink.aclose(timeout=5)
    assert len(fake.received) == 50 and sink.pending == 0

"""Helpers for the integration tests: an API client, SIPp calls, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from agents.sipp import Seat, place_call
from operations.stack import Stack


class Api:
    """A small client for the tests, authenticated as a supervisor."""

    def __init__(self, stack: Stack) -> None:
        assert stack.secrets is not None
        self.base = stack.api_url
        self.headers = {"Authorization": f"Bearer {stack.secrets.token_for('supervisor')}"}

    async def get(self, path: str, **params: Any) -> Any:
        async with aiohttp.ClientSession(headers=self.headers) as s, \
                s.get(self.base + path, params=params) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def call_of(self, caller: str, *, timeout: float = 20.0,
                      until: str = "outcome") -> dict[str, Any]:
        """Wait until the call from ``caller`` has ``until`` set; return it with its timeline."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            page = await self.get("/api/calls", limit=100)
            for c in page["calls"]:
                if c["caller"] == caller:
                    last = await self.get(f"/api/calls/{c['linkedid']}")
                    if last.get(until):
                        return last
            await asyncio.sleep(0.25)
        raise AssertionError(f"call from {caller} not recorded with {until!r} in {timeout}s: {last}")


_counter = iter(range(10_000))


def new_caller() -> str:
    """A unique caller number per call so a test finds its own call."""
    return f"139{int(time.time()) % 100000:05d}{next(_counter):03d}"


async def call(stack: Stack, service: str, caller: str, talk_s: float, *, timeout: float = 60) -> int:
    run = place_call(asterisk=stack.sip_address, service=service, caller=caller,
                     talk_ms=int(talk_s * 1000), local_ip=stack.site.trunk_hosts[0])
    rc = await asyncio.to_thread(run.wait, timeout)
    assert rc == 0, f"SIPp caller failed (rc={rc}): {run.errors()}"
    return rc


def timeline_types(c: dict[str, Any]) -> list[str]:
    return [e["type"] for e in c["timeline"]]


def sources_of(c: dict[str, Any], type_: str) -> set[str]:
    return {e["source"] for e in c["timeline"] if e["type"] == type_}


def wait_until(pred: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")




async def count_datagrams(sock: Any, *, want: int, within_s: float) -> int:
    """Count datagrams (RTP) arriving on a non-blocking UDP socket, until ``want`` or time is up."""
    received = 0
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and received <= want:
        await asyncio.sleep(0.1)
        while True:
            try:
                sock.recv(2048)
            except BlockingIOError:
                break
            received += 1
    return received


@contextlib.asynccontextmanager
async def supervisor_phone(stack: Stack, sup: str) -> AsyncIterator[socket.socket]:
    """A supervisor's softphone (SIPp) whose audio port is a socket the test reads."""
    assert stack.secrets is not None
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.setblocking(False)
    phone = Seat(sup, stack.secrets.sip_passwords[sup], stack.sip_address, media_port=rtp.getsockname()[1])
    await asyncio.to_thread(phone.start)
    try:
        yield rtp
    finally:
        phone.stop()
        rtp.close()


@contextlib.asynccontextmanager
async def seat_saying(stack: Stack, seats: dict[str, Seat], seat_id: str, pcap: str) -> AsyncIterator[Seat]:
    """Seat ``seat_id`` (one of the session's) answers its calls and says what ``pcap`` holds."""
    assert stack.secrets is not None
    seats[seat_id].stop()
    talking = Seat(seat_id, stack.secrets.sip_passwords[seat_id], stack.sip_address,
                   port=seats[seat_id].port, audio_pcap=pcap)
    await asyncio.to_thread(talking.reregister)
    try:
        yield talking
    finally:
        talking.stop()
        await asyncio.to_thread(seats[seat_id].reregister)


async def pause_seats(stack: Stack, service: Any, paused: bool, *, except_seat: str | None = None) -> None:
    """Put a platform's operators on a break (QueuePause), all but ``except_seat``."""
    from hotline.names import QUEUE_BY_SERVICE

    assert stack.ami is not None
    for m in stack.site.operators[service]:
        if m != except_seat:
            await stack.ami.client.action({"Action": "QueuePause", "Queue": QUEUE_BY_SERVICE[service],
                                           "Interface": f"PJSIP/{m}",
                                           "Paused": "true" if paused else "false"})


class LiveFeed:
    """The supervisors' WebSocket of every call's live transcript (``/api/live``), collected."""

    def __init__(self, stack: Stack, path: str = "/api/live") -> None:
        assert stack.secrets is not None
        self.url = stack.api_url.replace("http://", "ws://") + path
        self.token = stack.secrets.token_for("supervisor")
        self.messages: list[tuple[float, dict[str, Any]]] = []  # (monotonic arrival, message)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> LiveFeed:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(self.url, headers={"Authorization": f"Bearer {self.token}"}) as ws:
            self._ready.set()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.messages.append((time.monotonic(), msg.json()))

    def of_call(self, call: str, type_: str = "segment") -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("call") == call and m.get("type") == type_]

    async def wait_for(self, pred: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            await asyncio.sleep(0.1)
        seen = [(m.get("type"), m.get("speaker"), m.get("kind"), round(m.get("start", 0) % 1000, 2))
                for _, m in self.messages if m.get("kind") != "partial"]
        raise AssertionError(f"live feed: condition not met in {timeout}s ({len(self.messages)} messages; "
                             f"not partials: {seen})")


@contextlib.asynccontextmanager
async def caller_says(stack: Stack, call: str) -> AsyncIterator[Callable[[str], None]]:
    """Caller finals for ``call`` through the transcriber's own publishing path (Redis pub/sub and
    ``POST /api/transcripts``), one ``say(text)`` per utterance, 3 s apart."""
    from hotline.contracts import Segment, SegmentKind, Speaker
    from hotline.sink import transcript_sink
    from transcription.publisher import SegmentPublisher

    assert stack.secrets is not None
    sink = transcript_sink(stack.settings, stack.secrets.token_for("service"))
    await sink.start()
    publisher = SegmentPublisher(stack.redis, sink)
    publisher.start()
    t0, seq = time.time(), iter(range(1000))

    def say(text: str) -> None:
        n = next(seq)
        publisher.emit(Segment(call=call, tap=f"test-{call}", seq=n, speaker=Speaker.CALLER,
                               kind=SegmentKind.FINAL, start=t0 + 3 * n, end=t0 + 3 * n + 2, text=text,
                               confidence=0.9))
    try:
        yield say
    finally:
        await publisher.stop()
        await sink.aclose()

"""The transcriber process (transcription.service.Transcriber) on a real TCP socket and the session's
real Redis, with a scripted speech model: who is served and who is refused, the tap's state in
Redis, keepalive audio, the heartbeat, and streams whose call is over."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from hotline.contracts import Segment, SegmentKind, Speaker
from hotline.redis_keys import TRANSCRIBER_ALIVE, media_tap, transcript_channel
from transcription import service as service_module
from transcription.audiosocket import (
    KIND_AUDIO,
    KIND_DTMF,
    KIND_ERROR,
    KIND_HANGUP,
    KIND_ID,
    encode,
    id_message,
)
from transcription.publisher import SegmentPublisher
from transcription.recognizer import DecoderPool, Utterance, Word
from transcription.service import Transcriber

CALL = "1760000000.77"
SILENCE_FRAME = bytes([KIND_AUDIO]) + struct.pack("!H", 320) + b"\0" * 320


class Decoder:
    """A partial after the first 100 ms, a final once 300 ms were heard, the rest on finish()."""

    def __init__(self) -> None:
        self.fed_s = 0.0
        self.said = 0
        self.finished = False

    def accept(self, pcm: bytes, partials: bool = True) -> Utterance | None:
        self.fed_s += len(pcm) / 16000
        if self.said == 0:
            self.said = 1
            return Utterance(False, "there is")
        if self.said == 1 and self.fed_s >= 0.3 - 1e-9:
            self.said = 2
            words = (Word("there", 0.0, 0.1, 0.9), Word("fire", 0.2, 0.3, 0.7))
            return Utterance(True, "there is a fire", words)
        return None

    def finish(self) -> Utterance | None:
        self.finished = True
        if self.said == 2 or self.fed_s == 0:
            return None
        return Utterance(True, "cut short", (Word("cut", 0.0, 0.1, 1.0),))


class Model:
    def __init__(self) -> None:
        self.decoders: list[Decoder] = []

    def decoder(self, sample_rate: int = 8000) -> Decoder:
        self.decoders.append(Decoder())
        return self.decoders[-1]


class StoredSegments:
    """Stands in for the app's transcript sink: finals and gaps only."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []

    def emit(self, seg: Segment) -> None:
        self.segments.append(seg)


@dataclass
class Running:
    transcriber: Transcriber
    port: int
    model: Model
    stored: StoredSegments


async def stop_within(transcriber: Transcriber, timeout_s: float = 3.0) -> None:
    """stop(), failing the test (and cancelling until it gives in) when it hangs."""
    stopping = asyncio.create_task(transcriber.stop())
    done, _ = await asyncio.wait([stopping], timeout=timeout_s)
    if not done:
        where = [str(t) for t in (transcriber._heartbeat, *transcriber._handlers, transcriber.publisher._task)
                 if t is not None and not t.done()]
        while not stopping.done():
            for task in (transcriber._heartbeat, *transcriber._handlers, transcriber.publisher._task):
                if task is not None:
                    task.cancel()
            await asyncio.sleep(0.01)
        raise AssertionError(f"Transcriber.stop() hung: {where}")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)  # bytes back, like the transcriber's own client
    yield client
    await client.aclose()


@pytest.fixture
async def running(redis: Redis) -> AsyncIterator[Running]:
    pool = DecoderPool(1)
    model, stored = Model(), StoredSegments()
    transcriber = Transcriber(model, pool, SegmentPublisher(redis, stored), redis)  # type: ignore[arg-type]
    port = await transcriber.start("127.0.0.1", 0)
    try:
        yield Running(transcriber, port, model, stored)
    finally:
        await stop_within(transcriber)
        pool.close()


async def register(redis: Redis, *, speaker: str = "operator_12345", seat: str = "1201",
                   **fields: str) -> str:
    tap = str(uuid.uuid4())
    mapping: dict[Any, Any] = {"call": CALL, "speaker": speaker, "seat": seat,
                               "channel": "PJSIP/1201-00000001", "state": "starting", **fields}
    await redis.hset(media_tap(tap), mapping=mapping)
    await redis.expire(media_tap(tap), 60)
    return tap


@contextlib.asynccontextmanager
async def peer(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Asterisk's side of one AudioSocket() connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, timeout_s: float = 3.0) -> bytes:
    """Everything the server sent, once it has closed the connection."""
    return await asyncio.wait_for(reader.read(), timeout_s)


async def state_of(redis: Redis, tap: str) -> str | None:
    raw: bytes | None = await redis.hget(media_tap(tap), "state")  # type: ignore[assignment]
    return raw.decode() if raw is not None else None


async def eventually_state(redis: Redis, tap: str, want: str) -> None:
    for _ in range(200):
        if await state_of(redis, tap) == want:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"tap state {await state_of(redis, tap)!r}, never {want!r}")


def audio(frames: int) -> bytes:
    return encode(KIND_AUDIO, struct.pack("<h", 1000) * 160) * frames


async def test_a_registered_tap_is_transcribed_for_its_party(running: Running, redis: Redis) -> None:
    tap = await register(redis)
    sub = redis.pubsub()
    await sub.subscribe(transcript_channel(CALL))
    try:
        async with peer(running.port) as (reader, writer):
            writer.write(id_message(tap))
            await eventually_state(redis, tap, "streaming")
            assert tap in running.transcriber.streams
            writer.write(audio(25) + encode(KIND_DTMF, b"5") + encode(KIND_HANGUP))
            await writer.drain()
            await closed_by_server(reader)
        assert await state_of(redis, tap) == "ended"
        live = []
        for _ in range(100):
            msg = await sub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if msg is not None:
                live.append(json.loads(msg["data"]))
            if len(live) == 2:
                break
    finally:
        await sub.aclose()

    (final,) = running.stored.segments  # the app stores finals and gaps, never partials
    assert (final.kind, final.text) == (SegmentKind.FINAL, "there is a fire")
    assert (final.call, final.tap, final.speaker, final.seat) == (CALL, tap, Speaker.OPERATOR_12345, "1201")
    assert [(m["type"], m["kind"], m["call"], m["speaker"], m["seat"]) for m in live] == [
        ("segment", "partial", CALL, "operator_12345", "1201"),
        ("segment", "final", CALL, "operator_12345", "1201")]
    assert running.model.decoders[0].finished
    stats = running.transcriber.stats
    assert (stats.streams_total, stats.streams_active, stats.refused) == (1, 0, 0)
    assert stats.received_s == pytest.approx(0.5)
    assert running.transcriber.streams == {}


@pytest.mark.parametrize("end", ["hangup", "error", "close"])
async def test_the_stream_ends_with_the_tap(running: Running, redis: Redis, end: str) -> None:
    tap = await register(redis, speaker="caller", seat="")
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap) + audio(10))
        await eventually_state(redis, tap, "streaming")
        if end == "close":
            writer.close()
        else:
            writer.write(encode(KIND_HANGUP if end == "hangup" else KIND_ERROR, b"\0\0\0\1"))
            await closed_by_server(reader)
        await eventually_state(redis, tap, "ended")
    (seg,) = running.stored.segments
    assert (seg.text, seg.speaker, seg.seat) == ("cut short", Speaker.CALLER, None)


async def test_an_unknown_tap_is_refused(running: Running, redis: Redis) -> None:
    tap = str(uuid.uuid4())
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap) + audio(5))
        assert await closed_by_server(reader) == b""
    assert running.transcriber.stats.refused == 1
    assert running.transcriber.stats.streams_total == 0
    assert not await redis.exists(media_tap(tap)), "a refused stream writes no tap state"


@pytest.mark.parametrize("fields", [{"speaker": "bystander"}, {"call": ""}])
async def test_a_tap_registered_without_a_party_is_refused(running: Running, redis: Redis,
                                                           fields: dict[str, str]) -> None:
    tap = await register(redis, **fields)
    if fields.get("call") == "":
        await redis.hdel(media_tap(tap), "call")
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap))
        assert await closed_by_server(reader) == b""
    assert running.transcriber.stats.refused == 1
    assert await state_of(redis, tap) == "starting"


async def test_streams_beyond_the_limit_are_refused(running: Running, redis: Redis) -> None:
    running.transcriber.max_streams = 1
    first, second = await register(redis), await register(redis, speaker="caller", seat="")
    async with peer(running.port) as (_r1, w1), peer(running.port) as (r2, w2):
        w1.write(id_message(first))
        await eventually_state(redis, first, "streaming")
        w2.write(id_message(second))
        assert await closed_by_server(r2) == b""
        assert running.transcriber.stats.refused == 1
        assert list(running.transcriber.streams) == [first], "the open stream goes on"
        w1.write(encode(KIND_HANGUP))


async def test_a_peer_that_never_names_its_stream_is_closed(running: Running,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "HELLO_TIMEOUT_S", 0.2)
    async with peer(running.port) as (reader, _writer):
        assert await closed_by_server(reader, 2.0) == b""
    assert running.transcriber.streams == {} and running.transcriber.stats.streams_total == 0


@pytest.mark.parametrize("first", [encode(KIND_AUDIO, b"\0" * 320), encode(KIND_ID, b"short"),
                                   b"GET / HTTP/1.1\r\n\r\n"], ids=["audio", "short-id", "http"])
async def test_a_first_message_that_is_not_a_stream_id_is_refused(running: Running, first: bytes,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "HELLO_TIMEOUT_S", 0.3)  # "GET" announces an 18 kB message
    async with peer(running.port) as (reader, writer):
        writer.write(first)
        assert await closed_by_server(reader) == b""
    assert running.transcriber.stats.streams_total == 0


async def test_keepalive_silence_goes_to_asterisk_while_the_party_says_nothing(
        running: Running, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "KEEPALIVE_S", 0.05)
    tap = await register(redis)
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap))
        for _ in range(3):
            assert await asyncio.wait_for(reader.readexactly(len(SILENCE_FRAME)), 2) == SILENCE_FRAME
        writer.write(encode(KIND_HANGUP))
        rest = await closed_by_server(reader)
        assert len(rest) % len(SILENCE_FRAME) == 0 and set(rest[3:323]) <= {0}


async def test_heartbeat_while_running_and_gone_when_stopped(running: Running, redis: Redis,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    async def beat() -> dict[str, int]:
        for _ in range(200):
            raw = await redis.get(TRANSCRIBER_ALIVE)
            if raw is not None:
                return dict(json.loads(raw))
            await asyncio.sleep(0.01)
        raise AssertionError("no heartbeat")

    info = await beat()
    assert info["pid"] == os.getpid() and info["streams"] == 0
    assert 0 < await redis.pttl(TRANSCRIBER_ALIVE) <= service_module.ALIVE_TTL_MS, "it expires if we stall"
    await running.transcriber.stop()
    assert not await redis.exists(TRANSCRIBER_ALIVE)


async def test_heartbeat_counts_open_streams(running: Running, redis: Redis,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "HEARTBEAT_S", 0.02)
    tap = await register(redis)
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap))
        await eventually_state(redis, tap, "streaming")
        for _ in range(200):
            raw = await redis.get(TRANSCRIBER_ALIVE)
            if raw is not None and json.loads(raw)["streams"] == 1:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"heartbeat {raw!r}")
        writer.write(encode(KIND_HANGUP))
        await closed_by_server(reader)


@pytest.mark.parametrize("over", ["call_ended", "expired"])
async def test_a_quiet_stream_whose_call_is_over_is_closed(
        running: Running, redis: Redis, monkeypatch: pytest.MonkeyPatch, over: str) -> None:
    monkeypatch.setattr(service_module, "CHECK_EVERY_S", 0.05)
    tap = await register(redis)
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap) + audio(5))
        await eventually_state(redis, tap, "streaming")
        await asyncio.sleep(0.3)  # a silent party over several checks: the call is on, keep hearing
        assert tap in running.transcriber.streams and not reader.at_eof()
        if over == "call_ended":
            await redis.hset(media_tap(tap), "state", "call_ended")
        else:
            await redis.delete(media_tap(tap))
        await closed_by_server(reader, 2.0)
    assert running.transcriber.streams == {}
    assert await state_of(redis, tap) == ("call_ended" if over == "call_ended" else None), \
        "a call that is over is not marked as a tap that merely ended"


async def test_stopping_flushes_open_streams(running: Running, redis: Redis) -> None:
    tap = await register(redis, speaker="caller", seat="")
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap) + audio(10))
        await eventually_state(redis, tap, "streaming")
        for _ in range(200):
            if running.transcriber.stats.streams_active and running.model.decoders[0].fed_s >= 0.2 - 1e-9:
                break
            await asyncio.sleep(0.01)
        await running.transcriber.stop()
        await closed_by_server(reader)
    assert [s.text for s in running.stored.segments] == ["cut short"]
    assert await state_of(redis, tap) == "ended"


async def test_stop_right_after_start_returns(redis: Redis) -> None:
    # A cancel that lands while the heartbeat's SET is being sent is lost on Python 3.11
    # (asyncio.wait_for, which redis-py uses, returns the finished result instead): stop() must end
    # the heartbeat anyway, and leave no heartbeat behind.
    pool = DecoderPool(1)
    try:
        for _ in range(10):
            transcriber = Transcriber(Model(), pool, SegmentPublisher(redis, None), redis)  # type: ignore[arg-type]
            await transcriber.start("127.0.0.1", 0)
            await asyncio.sleep(0)
            await stop_within(transcriber)
            assert not await redis.exists(TRANSCRIBER_ALIVE)
    finally:
        pool.close()


async def test_stop_while_audio_flows_returns_and_flushes(running: Running, redis: Redis) -> None:
    tap = await register(redis, speaker="caller", seat="")
    async with peer(running.port) as (reader, writer):
        writer.write(id_message(tap))
        await eventually_state(redis, tap, "streaming")

        async def talk() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    writer.write(audio(1))
                    await writer.drain()
                    await asyncio.sleep(0.001)

        talking = asyncio.create_task(talk())
        try:
            await asyncio.sleep(0.2)
            await stop_within(running.transcriber)
            with contextlib.suppress(ConnectionResetError):  # closed with our audio unread: a reset
                await closed_by_server(reader)
        finally:
            talking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await talking
    assert await state_of(redis, tap) == "ended"
    assert running.transcriber.streams == {}


async def test_the_publisher_stops_while_redis_is_busy(redis: Redis) -> None:
    # Segments keep coming while the publisher stops: its cancel lands in a pipeline most times.
    seg = Segment(call=CALL, tap="t", seq=0, speaker=Speaker.CALLER, kind=SegmentKind.PARTIAL, start=1.0,
                  end=2.0, text="x")
    for _ in range(10):
        publisher = SegmentPublisher(redis, None)
        publisher.start()

        async def emit(publisher: SegmentPublisher = publisher) -> None:
            while True:
                for _ in range(20):
                    publisher.emit(seg)
                await asyncio.sleep(0)

        emitting = asyncio.create_task(emit())
        for _ in range(1000):
            if publisher.published:
                break
            await asyncio.sleep(0.001)
        stopping = asyncio.create_task(publisher.stop(drain_s=0))
        done, _ = await asyncio.wait([stopping], timeout=2)
        emitting.cancel()
        while not stopping.done():
            assert publisher._task is not None
            publisher._task.cancel()
            await asyncio.sleep(0.01)
        with contextlib.suppress(asyncio.CancelledError):
            await emitting
        assert done, "SegmentPublisher.stop() hung"

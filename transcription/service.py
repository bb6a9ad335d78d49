"""The transcriber process: an AudioSocket server whose every connection is one tapped party.

A connection's first message names the stream (the tap id the controller put in Redis with the
call, speaker and seat). Unknown ids, too many streams, or a peer that says nothing are refused:
the controller sees the tap end and records the gap. While it runs, the transcriber refreshes
``TRANSCRIBER_ALIVE`` every second; a stopped or stalled process lets it expire, which is how the
controller tells "recognizer down or stalled" from a tap that merely ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from hotline import redis_keys
from hotline.contracts import Speaker
from transcription.audiosocket import (
    KIND_AUDIO,
    KIND_ERROR,
    KIND_HANGUP,
    ProtocolError,
    encode,
    parse_id,
    read_message,
)
from transcription.publisher import SegmentPublisher
from transcription.recognizer import DecoderPool, SpeechModel
from transcription.stream import TapMeta, TapStream

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
ALIVE_TTL_MS = 3000
HELLO_TIMEOUT_S = 5.0
CHECK_EVERY_S = 5.0  # with no audio for this long, ask Redis whether the tap's call is still on
KEEPALIVE_S = 0.5  # no audio at all for this long: the tap is stuck, end it


@dataclass
class TranscriberStats:
    streams_total: int = 0
    streams_active: int = 0
    refused: int = 0
    received_s: float = 0.0
    dropped_s: float = 0.0
    started_at: float = field(default_factory=time.time)


class Transcriber:
    def __init__(self, model: SpeechModel, pool: DecoderPool, publisher: SegmentPublisher, redis: Any,
                 *, max_streams: int = 64, max_backlog_s: float = 2.0) -> None:
        self.model = model
        self.pool = pool
        self.publisher = publisher
        self.redis = redis
        self.max_streams = max_streams
        self.max_backlog_s = max_backlog_s
        self.streams: dict[str, TapStream] = {}
        self.stats = TranscriberStats()
        self._server: asyncio.Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        # stop() cancels the loops, but on Python 3.11 a cancel that lands as a Redis command or an
        # asyncio.wait_for() finishes is lost (wait_for returns the result): the loops check this too.
        self._closing = False

    async def start(self, host: str, port: int) -> int:
        self._closing = False
        self.publisher.start()
        self._server = await asyncio.start_server(self._handle, host, port)
        if self.redis is not None:
            self._heartbeat = asyncio.create_task(self._beat(), name="transcriber-heartbeat")
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
        await self.publisher.stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.delete(redis_keys.TRANSCRIBER_ALIVE)

    async def _beat(self) -> None:
        while not self._closing:
            info = json.dumps({"pid": os.getpid(), "streams": len(self.streams), "max": self.max_streams,
                               "busy": self.pool.busy})
            try:
                await self.redis.set(redis_keys.TRANSCRIBER_ALIVE, info, px=ALIVE_TTL_MS)
            except Exception as exc:  # noqa: BLE001
                log.warning("heartbeat not written: %s", exc)
            if not self._closing:
                await asyncio.sleep(HEARTBEAT_S)

    async def _lookup(self, tap_id: str) -> TapMeta | None:
        if self.redis is None:
            return None
        raw = await self.redis.hgetall(redis_keys.media_tap(tap_id))
        meta = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}
        try:
            return TapMeta(tap=tap_id, call=meta["call"], speaker=Speaker(meta["speaker"]),
                           seat=meta.get("seat") or None)
        except (KeyError, ValueError):
            return None

    async def _tap_over(self, tap_id: str) -> bool:
        try:
            state = await self.redis.hget(redis_keys.media_tap(tap_id), "state")
        except Exception:  # noqa: BLE001 - cannot tell: keep hearing
            return False
        return state is None or (state.decode() if isinstance(state, bytes) else state) == "call_ended"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        tap_id = "?"
        try:
            kind, payload = await asyncio.wait_for(read_message(reader), HELLO_TIMEOUT_S)
            tap_id = parse_id(kind, payload)
            meta = await asyncio.wait_for(self._lookup(tap_id), 2.0)
            if meta is None:
                self.stats.refused += 1
                log.warning("stream %s refused: no such tap", tap_id)
                return
            if len(self.streams) >= self.max_streams:
                self.stats.refused += 1
                log.warning("stream %s refused: %d streams already", tap_id, len(self.streams))
                with contextlib.suppress(Exception):  # tells the tap controller to wait, not retry
                    await asyncio.wait_for(self.redis.hset(redis_keys.media_tap(tap_id), "state",
                                                           redis_keys.TAP_STATE_REFUSED_FULL), 1.0)
                return
            await self._serve(meta, reader, writer)
        except (ProtocolError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.info("stream %s ended: %s", tap_id, type(exc).__name__)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # stop(): end quietly (asyncio's server callback would log a cancelled handler as an error)
        except Exception:
            log.exception("stream %s failed", tap_id)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, meta: TapMeta, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = TapStream(meta, self.model.decoder(), self.pool, self.publisher.emit,
                           max_backlog_s=self.max_backlog_s)
        self.streams[meta.tap] = stream
        self.stats.streams_total += 1
        self.stats.streams_active = len(self.streams)
        decoding = asyncio.create_task(stream.run(), name=f"decode-{meta.tap}")
        keepalive = asyncio.create_task(_keepalive(writer), name=f"keepalive-{meta.tap}")
        with contextlib.suppress(Exception):
            await self.redis.hset(redis_keys.media_tap(meta.tap),
                                  mapping={"state": "streaming", "streaming_at": f"{time.time():.3f}"})
        log.info("stream %s: %s of call %s (seat %s)", meta.tap, meta.speaker.value, meta.call, meta.seat)
        try:
            while not self._closing:
                try:
                    kind, payload = await asyncio.wait_for(read_message(reader), CHECK_EVERY_S)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except TimeoutError:
                    # A silent party sends nothing; a stuck tap sends nothing either. The controller
                    # marks a tap "call_ended" (or lets its key expire) when the call is over.
                    if await self._tap_over(meta.tap):
                        log.warning("stream %s: its call is over but the tap is still open; closing",
                                    meta.tap)
                        break
                    continue
                if kind == KIND_AUDIO:
                    stream.feed(payload)
                elif kind in (KIND_HANGUP, KIND_ERROR):
                    break
        finally:
            keepalive.cancel()
            stream.close()
            try:
                await asyncio.shield(decoding)
            finally:
                self.streams.pop(meta.tap, None)
                self.stats.streams_active = len(self.streams)
                self.stats.received_s += stream.stats.received_s
                self.stats.dropped_s += stream.stats.dropped_s
                with contextlib.suppress(Exception):
                    if not await self._tap_over(meta.tap):
                        await self.redis.hset(redis_keys.media_tap(meta.tap), "state", "ended")
                log.info("stream %s done: %.1f s heard, %.1f s dropped, %d finals", meta.tap,
                         stream.stats.received_s, stream.stats.dropped_s, stream.stats.finals)


async def _keepalive(writer: asyncio.StreamWriter) -> None:
    """Asterisk's AudioSocket() gives up after 2 s with nothing from either side; a party who says
    nothing (a muted phone, silence suppression) sends nothing. A 20 ms frame of silence now and then
    keeps the tap open; it only reaches the tap's own Local channel, never the call."""
    frame = encode(KIND_AUDIO, b"\0" * 320)
    with contextlib.suppress(ConnectionError, OSError):
        while True:
            writer.write(frame)
            await writer.drain()
            await asyncio.sleep(KEEPALIVE_S)

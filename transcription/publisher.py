"""Segments out: every segment on Redis pub/sub at once (the call's channel and the all-calls
channel, which the app's WebSockets relay), and final and gap segments to the app, which stores
them and runs the work-order creator (``POST /api/transcripts`` through a retrying sink).

:meth:`SegmentPublisher.emit` never blocks and never raises: decoding and calls go on whatever
Redis or the app do. Both queues are bounded; what does not fit is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from hotline import redis_keys
from hotline.contracts import Segment, SegmentKind

log = logging.getLogger(__name__)

MAX_PENDING = 20_000
MAX_PIPELINE = 200


def segment_message(seg: Segment) -> str:
    return json.dumps({"type": "segment", **seg.to_json()}, ensure_ascii=False, separators=(",", ":"))


class SegmentPublisher:
    def __init__(self, redis: Any, sink: Any) -> None:
        self._redis = redis
        self._sink = sink  # hotline.sink.transcript_sink(...), or None (nothing stored)
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None
        # stop() cancels the task, but on Python 3.11 a cancel that lands as a Redis pipeline or
        # asyncio.wait_for() finishes is lost (wait_for returns the result): the loop checks this too.
        self._stopping = False
        self.published = 0
        self.dropped = 0
        self._healthy = True
        self.listeners: list[Any] = []  # callables(seg) in this process (benchmarks, tests)

    def emit(self, seg: Segment) -> None:
        try:
            for listener in self.listeners:
                listener(seg)
            if seg.kind is not SegmentKind.PARTIAL and self._sink is not None:
                self._sink.emit(seg)
            if self._redis is not None:
                self._queue.put_nowait((redis_keys.transcript_channel(seg.call), segment_message(seg)))
        except asyncio.QueueFull:
            self.dropped += 1
        except Exception:  # the decoding path must not fail because of publishing
            log.exception("segment not published")

    def start(self) -> None:
        if self._redis is not None and self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="segment-publisher")

    async def stop(self, drain_s: float = 1.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_s)
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            batch = [await self._queue.get()]
            while len(batch) < MAX_PIPELINE and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, msg in batch:
                        pipe.publish(channel, msg)
                        pipe.publish(redis_keys.TRANSCRIPTS_CHANNEL, msg)
                    await asyncio.wait_for(pipe.execute(), 2.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # live display pauses while Redis is away; the app stores finals
                self.dropped += len(batch)
                if self._healthy:
                    log.warning("Redis publish failed, live transcript paused: %s", exc)
                self._healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                self.published += len(batch)
                if not self._healthy:
                    log.info("Redis publish works again")
                self._healthy, backoff = True, 0.1
            finally:
                for _ in batch:
                    self._queue.task_done()

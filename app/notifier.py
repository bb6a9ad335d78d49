"""The only publisher of call events on Redis (``hotline.redis_keys.EVENTS_CHANNEL``).

Writers hand stored events to :meth:`EventNotifier.publish`, which never blocks and never fails: a
background task drains the queue and publishes in pipelines. When Redis is down the task logs once,
drops what it holds (pub/sub has no memory for absent subscribers anyway; the database is the record)
and retries with backoff until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from app.redis_link import RedisLink
from hotline.redis_keys import EVENTS_CHANNEL

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
MAX_PIPELINE = 200


class EventNotifier:
    def __init__(self, redis: RedisLink, channel: str = EVENTS_CHANNEL) -> None:
        self.redis = redis
        self.channel = channel
        self.published = 0
        self.dropped = 0
        self._queue: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None
        self._healthy = True

    def publish(self, events: list[dict[str, Any]]) -> None:
        if not self.redis.configured:
            return
        for ev in events:
            try:
                self._queue.put_nowait(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))
            except asyncio.QueueFull:
                self.dropped += 1

    def start(self) -> None:
        if self.redis.configured and self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-notifier")

    async def stop(self, drain_s: float = 1.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        client = self.redis.client
        assert client is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_PIPELINE and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for msg in batch:
                        pipe.publish(self.channel, msg)
                    await asyncio.wait_for(pipe.execute(), 2.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down must never reach a writer: log, drop, back off.
                self.dropped += len(batch)
                if self._healthy:
                    log.warning("redis publish failed, events not broadcast until it is back: %s", exc)
                self._healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                self.published += len(batch)
                if not self._healthy:
                    log.info("redis publish works again")
                self._healthy, backoff = True, 0.1
            finally:
                for _ in batch:
                    self._queue.task_done()

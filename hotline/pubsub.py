"""One way to publish on Redis pub/sub without ever making the writer wait or fail.

:meth:`Broadcaster.put` queues a message (bounded; a full queue drops and counts). A background task
drains the queue and publishes in pipelines. When Redis is down it logs once, drops what it holds
(pub/sub has no memory for absent subscribers anyway; what matters is stored elsewhere) and retries
with backoff until Redis answers again. The app's call-event and transcript notifiers and the
transcriber's segment publisher are all this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
MAX_PIPELINE = 200

# One queued message: the channels it goes to, and the message (a dict while it may be prepared).
Item = tuple[tuple[str, ...], dict[str, Any] | str]
# Turns a batch into what is published (e.g. adds context read from the database); may not raise.
Prepare = Callable[[list[Item]], Awaitable[list[tuple[tuple[str, ...], str]]]]


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Broadcaster:
    def __init__(self, client: Any, name: str, *, prepare: Prepare | None = None,
                 max_pending: int = MAX_PENDING) -> None:
        self.client = client  # redis.asyncio.Redis, or None: nothing is published
        self.name = name
        self._prepare = prepare
        self.published = 0
        self.dropped = 0
        self._queue: asyncio.Queue[Item] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None
        # stop() cancels the task, but on Python 3.11 a cancel that lands as a Redis pipeline or
        # asyncio.wait_for() finishes is lost (wait_for returns the result): the loop checks this too.
        self._stopping = False
        self._healthy = True

    def put(self, channels: tuple[str, ...], message: dict[str, Any] | str) -> None:
        """Queue one message for ``channels``. Never blocks, never raises."""
        if self.client is None:
            return
        try:
            self._queue.put_nowait((channels, message))
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self.client is not None and self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, drain_s: float = 1.0) -> None:
        """Publish what is queued (for at most ``drain_s``), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_s)
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _ready(self, batch: list[Item]) -> list[tuple[tuple[str, ...], str]]:
        if self._prepare is not None:
            return await self._prepare(batch)
        return [(channels, m if isinstance(m, str) else dumps(m)) for channels, m in batch]

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            batch = [await self._queue.get()]
            while len(batch) < MAX_PIPELINE and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                ready = await self._ready(batch)
                async with self.client.pipeline(transaction=False) as pipe:
                    for channels, msg in ready:
                        for channel in channels:
                            pipe.publish(channel, msg)
                    await asyncio.wait_for(pipe.execute(), 2.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down must never reach a writer: log, drop, back off.
                self.dropped += len(batch)
                if self._healthy:
                    log.warning("redis publish failed, %s not broadcast until it is back: %s", self.name, exc)
                self._healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                self.published += len(batch)
                if not self._healthy:
                    log.info("redis publish works again (%s)", self.name)
                self._healthy, backoff = True, 0.1
            finally:
                for _ in batch:
                    self._queue.task_done()

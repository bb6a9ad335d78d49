"""The app's only publishers on Redis pub/sub.

- :class:`EventNotifier`: every stored call event on ``hotline.redis_keys.EVENTS_CHANNEL``. Events
  that hand the call to another seat (``transferred``, ``conference_joined``) go out with the call's
  ``context`` added by an enricher, so the receiving seat's console has it at once; what is stored
  does not change.
- :class:`TranscriptNotifier`: what the app makes while a call is transcribed (work-order updates,
  alerts), on the call's transcript channel and on the all-calls one.

Writers hand messages over with :meth:`EventNotifier.publish` / :meth:`TranscriptNotifier.to_call`,
which never block and never fail: a background task drains the queue and publishes in pipelines. When
Redis is down the task logs once, drops what it holds (pub/sub has no memory for absent subscribers
anyway; the database is the record) and retries with backoff until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.redis_link import RedisLink
from hotline.redis_keys import EVENTS_CHANNEL, TRANSCRIPTS_CHANNEL, transcript_channel

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
MAX_PIPELINE = 200

# Adds keys to the copies of call events about to be published (in place); may read the database.
Enricher = Callable[[list[dict[str, Any]]], Awaitable[None]]
# One queued message: the channels it goes to, and the message (a dict while it may be enriched).
_Item = tuple[tuple[str, ...], dict[str, Any] | str]


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class EventNotifier:
    def __init__(
        self, redis: RedisLink, channel: str = EVENTS_CHANNEL, *, enrich: Enricher | None = None,
        name: str = "event-notifier",
    ) -> None:
        self.redis = redis
        self.channel = channel
        self.enrich = enrich
        self.name = name
        self.published = 0
        self.dropped = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None
        self._healthy = True

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Queue stored call events for ``self.channel`` (copies: the caller's dicts stay as they are)."""
        for ev in events:
            self._put(((self.channel,), dict(ev) if self.enrich else _dumps(ev)))

    def send(self, channels: tuple[str, ...], message: dict[str, Any]) -> None:
        """Queue one message for several channels, as it is now."""
        self._put((channels, _dumps(message)))

    def _put(self, item: _Item) -> None:
        if not self.redis.configured:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self.redis.configured and self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, drain_s: float = 1.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _enriched(self, batch: list[_Item]) -> list[tuple[tuple[str, ...], str]]:
        events = [m for _, m in batch if isinstance(m, dict)]
        if events and self.enrich is not None:
            try:
                await self.enrich(events)
            except asyncio.CancelledError:
                raise
            except Exception:  # the event still goes out, without the extra context
                log.exception("could not add the call context to published events")
        return [(channels, m if isinstance(m, str) else _dumps(m)) for channels, m in batch]

    async def _run(self) -> None:
        backoff = 0.1
        client = self.redis.client
        assert client is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_PIPELINE and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                ready = await self._enriched(batch)
                async with client.pipeline(transaction=False) as pipe:
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


class TranscriptNotifier(EventNotifier):
    """Publishes the app's own transcript messages (work orders, alerts) for one call on the call's
    channel and on ``TRANSCRIPTS_CHANNEL``; the transcriber publishes its segments itself."""

    def __init__(self, redis: RedisLink) -> None:
        super().__init__(redis, TRANSCRIPTS_CHANNEL, name="transcript-notifier")

    def to_call(self, linkedid: str, message: dict[str, Any]) -> None:
        self.send((transcript_channel(linkedid), TRANSCRIPTS_CHANNEL), message)

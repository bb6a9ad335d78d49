"""The app's only publishers on Redis pub/sub.

- :class:`EventNotifier`: every stored call event on ``hotline.redis_keys.EVENTS_CHANNEL``. Events
  that hand the call to another seat (``transferred``, ``conference_joined``) go out with the call's
  ``context`` added by an enricher, so the receiving seat's console has it at once; what is stored
  does not change.
- :class:`TranscriptNotifier`: what the app makes while a call is transcribed (work-order updates,
  alerts), on the call's transcript channel and on the all-calls one.

Writers hand messages over with :meth:`EventNotifier.publish` / :meth:`TranscriptNotifier.to_call`,
which never block and never fail (:class:`hotline.pubsub.Broadcaster`: bounded queue, pipelines,
backoff while Redis is down; the database is the record).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.redis_link import RedisLink
from hotline.pubsub import Broadcaster, Item, dumps
from hotline.redis_keys import EVENTS_CHANNEL, TRANSCRIPTS_CHANNEL, transcript_channel

log = logging.getLogger(__name__)

# Adds keys to the copies of call events about to be published (in place); may read the database.
Enricher = Callable[[list[dict[str, Any]]], Awaitable[None]]


class EventNotifier(Broadcaster):
    def __init__(
        self, redis: RedisLink, channel: str = EVENTS_CHANNEL, *, enrich: Enricher | None = None,
        name: str = "event-notifier",
    ) -> None:
        super().__init__(redis.client, name, prepare=self._enriched)
        self.redis = redis
        self.channel = channel
        self.enrich = enrich

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Queue stored call events for ``self.channel`` (copies: the caller's dicts stay as they are)."""
        for ev in events:
            self.put((self.channel,), dict(ev) if self.enrich else dumps(ev))

    def send(self, channels: tuple[str, ...], message: dict[str, Any]) -> None:
        """Queue one message for several channels, as it is now."""
        self.put(channels, dumps(message))

    async def _enriched(self, batch: list[Item]) -> list[tuple[tuple[str, ...], str]]:
        events = [m for _, m in batch if isinstance(m, dict)]
        if events and self.enrich is not None:
            try:
                await self.enrich(events)
            except asyncio.CancelledError:
                raise
            except Exception:  # the event still goes out, without the extra context
                log.exception("could not add the call context to published events")
        return [(channels, m if isinstance(m, str) else dumps(m)) for channels, m in batch]


class TranscriptNotifier(EventNotifier):
    """Publishes the app's own transcript messages (work orders, alerts) for one call on the call's
    channel and on ``TRANSCRIPTS_CHANNEL``; the transcriber publishes its segments itself."""

    def __init__(self, redis: RedisLink) -> None:
        super().__init__(redis, TRANSCRIPTS_CHANNEL, name="transcript-notifier")

    def to_call(self, linkedid: str, message: dict[str, Any]) -> None:
        self.send((transcript_channel(linkedid), TRANSCRIPTS_CHANNEL), message)

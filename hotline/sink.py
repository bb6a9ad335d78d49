"""EventSink: hands :class:`~hotline.contracts.CallEvent` objects to the app service.

Producers (the AGI server, the AMI listener) call :meth:`EventSink.emit`, which never blocks and never
raises: the event goes into a bounded in-memory queue. A background task posts batches to
``POST {api}/api/events`` with the service token, retrying with exponential backoff while the API is
down, times out, answers 429 or 5xx. A 4xx other than 429 means the API will never take that body:
a rejected batch is retried one event at a time so that one bad event does not sink 499 good ones,
and a rejected single event is dropped and logged. When the queue is full the oldest event is dropped
(counted, logged): the app service replays from AMI after a restart, but intake must never wait.

The app service stores events idempotently by ``event_id``, so delivering one twice (a retry after a
lost response) is harmless.

The same class delivers the live transcript's final segments (``TranscriptSink``: ``POST
/api/transcripts``, stored idempotently by stream and sequence number).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from hotline.contracts import CallEvent
from hotline.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/events"
MAX_BATCH = 500  # the API's limit for one {"events": [...]} body


@dataclass
class SinkStats:
    emitted: int = 0
    delivered: int = 0
    dropped_full: int = 0      # oldest events pushed out of a full queue
    dropped_rejected: int = 0  # events the API refused with a 4xx (not 429)
    dropped_closed: int = 0    # emitted after aclose(), or still queued when aclose() timed out
    retries: int = 0           # failed attempts that were retried


class EventSink:
    """Bounded, non-blocking, retrying publisher of call events to the app service."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        max_queue: int = 10_000,
        batch_size: int = MAX_BATCH,
        request_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        linger_s: float = 0.0,
        session: aiohttp.ClientSession | None = None,
        path: str = EVENTS_PATH,
        list_key: str = "events",
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self._url = base_url.rstrip("/") + path
        self._list_key = list_key
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._max_queue = max_queue
        self._batch_size = max(1, min(batch_size, MAX_BATCH))
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._linger_s = linger_s  # wait this long after the first event for a batch to fill
        self._queue: collections.deque[Any] = collections.deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._session = session
        self._own_session = session is None
        self.stats = SinkStats()

    @classmethod
    def from_settings(cls, settings: Settings, token: str | None, **kwargs: Any) -> EventSink:
        return cls(settings.effective_api_base_url, token, **kwargs)

    # --- producer side ---------------------------------------------------------------------------

    def emit(self, event: Any) -> None:
        """Queue one event for delivery. Never blocks, never raises."""
        try:
            if self._closing:
                self.stats.dropped_closed += 1
                log.warning("event sink closed; dropped %s", _item_id(event))
                return
            if len(self._queue) >= self._max_queue:
                old = self._queue.popleft()
                self.stats.dropped_full += 1
                n = self.stats.dropped_full
                if n == 1 or n % 1000 == 0:  # a full queue drops thousands; don't flood the log
                    log.warning("event sink queue full (%d); dropped oldest %s (%d dropped so far)",
                                self._max_queue, _item_id(old), n)
            self._queue.append(event)
            self.stats.emitted += 1
            self._idle.clear()
            self._wake.set()
        except Exception:  # emit is called from call-handling paths that must not fail
            log.exception("event sink: emit failed")

    @property
    def pending(self) -> int:
        """Events not yet delivered or dropped (queued plus in flight)."""
        return len(self._queue) + self._in_flight

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="event-sink")

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109 - a grace period, part of the API
        """Wait until everything emitted so far is delivered or dropped. True if it was."""
        if self._task is None:
            return not self.pending
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - grace period for the flush
        """Deliver what is queued (for at most ``timeout`` seconds), then stop."""
        if self._task is not None and not self._task.done():
            await self.flush(timeout)
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lost = self.pending
        if lost:
            self.stats.dropped_closed += lost
            log.error("event sink closed with %d undelivered event(s)", lost)
            self._queue.clear()
            self._in_flight = 0
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> EventSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- delivery --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                if self._linger_s:
                    await asyncio.sleep(self._linger_s)
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            self._in_flight = len(batch)
            try:
                await self._deliver(batch)
            except asyncio.CancelledError:
                # put the batch back so aclose() can count it as lost
                self._queue.extendleft(reversed(batch))
                self._in_flight = 0
                raise
            except Exception:  # a bug here must not stop the sink for good
                log.exception("event sink: delivery failed; %d event(s) dropped", len(batch))
            self._in_flight = 0

    async def _deliver(self, batch: Sequence[Any]) -> None:
        attempt = 0
        while True:
            status, detail = await self._post(batch)
            if status is not None and 200 <= status < 300:
                self.stats.delivered += len(batch)
                return
            if status is not None and 400 <= status < 500 and status != 429:
                if len(batch) > 1 and status not in (401, 403):
                    # find the bad ones: each event alone
                    for ev in batch:
                        await self._deliver([ev])
                    return
                self.stats.dropped_rejected += len(batch)
                log.error("API rejected %d item(s) with %s: %s (first %s); dropped",
                          len(batch), status, detail, _item_id(batch[0]))
                return
            attempt += 1
            self.stats.retries += 1
            delay = min(self._backoff_max_s, self._backoff_initial_s * (2 ** (attempt - 1)))
            delay *= random.uniform(0.8, 1.2)  # several workers must not retry in lockstep
            if attempt == 1 or attempt % 10 == 0:
                log.warning("event API unavailable (%s); retry %d in %.2fs, %d event(s) waiting",
                            detail, attempt, delay, self.pending)
            await asyncio.sleep(delay)

    async def ask(self, path: str, body: dict[str, Any], timeout_s: float) -> tuple[int | None, Any]:
        """One POST the worker needs answered now (not queued, not retried), with the same token:
        the status and the JSON answer, or ``(None, reason)`` when the API cannot be reached."""
        if self._session is None:
            return None, "not started"
        url = self._url.rsplit("/api/", 1)[0] + path
        try:
            async with self._session.post(url, json=body, headers=self._headers,
                                          timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
                return resp.status, answer
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _post(self, batch: Sequence[Any]) -> tuple[int | None, str]:
        body: dict[str, Any]
        if len(batch) == 1 and self._list_key == "events":  # POST /api/events takes one bare event
            body = batch[0].to_json()
        else:
            body = {self._list_key: [e.to_json() for e in batch]}
        assert self._session is not None
        try:
            async with self._session.post(self._url, json=body, headers=self._headers,
                                          timeout=self._timeout) as resp:
                text = await resp.text(errors="replace") if resp.status >= 300 else ""
                return resp.status, f"HTTP {resp.status} {text[:200]}".strip()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"


def _item_id(item: Any) -> str:
    if isinstance(item, CallEvent):
        return f"event {item.event_id}"
    return f"{type(item).__name__} {getattr(item, 'tap', '?')}:{getattr(item, 'seq', '?')}"


TRANSCRIPTS_PATH = "/api/transcripts"


def transcript_sink(settings: Settings, token: str | None, **kwargs: Any) -> EventSink:
    """Delivers final and gap :class:`~hotline.contracts.Segment` objects to the app service."""
    return EventSink(settings.effective_api_base_url, token, path=TRANSCRIPTS_PATH, list_key="segments",
                     **kwargs)

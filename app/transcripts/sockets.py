"""The live WebSockets of one app process, and the one Redis subscription that feeds them all.

A socket no longer holds a Redis connection of its own (100 open sockets used to exhaust the pool and
take Redis away from every other request, alerts included). :class:`LiveHub` keeps one pub/sub
connection per process, subscribed to each channel that at least one socket watches (a call's
channel, or the all-calls channel) and unsubscribed when the last of them goes. Each message read is
copied into every watching socket's own bounded queue; each socket has a sender task that writes its
queue out. So:

- a slow console cannot hold up the others: when its queue is full it is closed with
  ``4008 slow_consumer`` (it reconnects and gets a fresh snapshot);
- at most ``max_sockets`` sockets per process (then ``1013`` try again later) and ``max_per_token``
  per API token (then ``4429 too_many_sockets``);
- Redis down when a socket opens, or the subscription lost: the socket(s) close with ``1013
  redis_unavailable``; the next socket opens a fresh subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from app.redis_link import COMMAND_TIMEOUT_S, RedisDown, RedisLink, close_pubsub

log = logging.getLogger(__name__)

CLOSE_REDIS_DOWN = WSCloseCode.TRY_AGAIN_LATER  # 1013
CLOSE_AT_CAPACITY = WSCloseCode.TRY_AGAIN_LATER  # 1013: this process has as many sockets as it serves
CLOSE_TOO_MANY_FOR_TOKEN = 4429                  # this token already has its share open
CLOSE_SLOW_CONSUMER = 4008                       # the console did not read its messages fast enough
READ_TIMEOUT_S = 1.0
SEND_TIMEOUT_S = 10.0  # a console whose socket takes longer than this to take one message is too slow


def reason(text: str) -> bytes:
    return text.encode()[:120]  # a close frame's reason fits in 123 bytes


class SocketRefused(Exception):
    """A socket the hub will not serve; ``code`` and ``reason`` go in its close frame."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.reason = reason(text)


@dataclass(eq=False)
class Watcher:
    """One open socket: what it watches and the messages waiting to be sent to it."""

    ws: web.WebSocketResponse
    channel: str
    token: str
    queue: asyncio.Queue[str]
    closing: tuple[int, bytes] | None = None  # set when the hub wants it closed
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Only the messages this accepts (an operator's desk: its own seat's calls); None: all of them.
    accept: Callable[[dict[str, Any]], bool] | None = None

    def close_later(self, code: int, text: str) -> None:
        if self.closing is None:
            self.closing = (code, reason(text))
        self.wake.set()


class LiveHub:
    def __init__(self, redis: RedisLink, *, max_sockets: int = 2000, max_per_token: int = 200,
                 queue_max: int = 1000, send_timeout_s: float = SEND_TIMEOUT_S) -> None:
        self._redis = redis
        self.max_sockets = max_sockets
        self.max_per_token = max_per_token
        self.queue_max = queue_max
        self.send_timeout_s = send_timeout_s
        self._watchers: dict[str, set[Watcher]] = {}  # channel -> its sockets
        self._per_token: Counter[str] = Counter()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # subscribe/unsubscribe/open/close, one at a time
        self.slow_closed = 0
        # channel -> what its messages become before any socket sees them (once per message, not per
        # socket): the call events' caller numbers are masked for the console this way.
        self._shapers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {}

    def shape(self, channel: str, fn: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Every message of ``channel`` goes to its sockets as ``fn(message)`` (None: dropped)."""
        self._shapers[channel] = fn

    def __len__(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    @property
    def subscribed(self) -> tuple[str, ...]:
        return tuple(sorted(self._watchers))

    # --- sockets come and go ---------------------------------------------------------------------

    async def attach(self, ws: web.WebSocketResponse, channel: str, token: str, *,
                     accept: Callable[[dict[str, Any]], bool] | None = None) -> Watcher:
        """Register a prepared socket for ``channel``; the channel is subscribed when this returns.
        Raises :class:`SocketRefused` (limits) or :class:`RedisDown`."""
        async with self._lock:
            if len(self) >= self.max_sockets:
                raise SocketRefused(CLOSE_AT_CAPACITY, f"at_capacity: this server has {self.max_sockets} "
                                    "live sockets open; try again later")
            if self._per_token[token] >= self.max_per_token:
                raise SocketRefused(CLOSE_TOO_MANY_FOR_TOKEN, f"too_many_sockets: at most "
                                    f"{self.max_per_token} live sockets per token")
            if channel not in self._watchers:
                await self._subscribe(channel)
            watcher = Watcher(ws, channel, token, asyncio.Queue(self.queue_max), accept=accept)
            self._watchers.setdefault(channel, set()).add(watcher)
            self._per_token[token] += 1
            return watcher

    async def detach(self, watcher: Watcher) -> None:
        async with self._lock:
            group = self._watchers.get(watcher.channel)
            if group is None or watcher not in group:
                return
            group.discard(watcher)
            self._per_token[watcher.token] -= 1
            if self._per_token[watcher.token] <= 0:
                del self._per_token[watcher.token]
            if not group:
                del self._watchers[watcher.channel]
                await self._unsubscribe(watcher.channel)

    async def send_loop(self, watcher: Watcher) -> None:
        """Write the watcher's queue to its socket until the socket or the hub ends it."""
        ws = watcher.ws
        while not ws.closed:
            if watcher.closing is not None:
                code, text = watcher.closing
                with contextlib.suppress(ConnectionError):
                    await ws.close(code=code, message=text)
                return
            try:
                data = watcher.queue.get_nowait()
            except asyncio.QueueEmpty:
                watcher.wake.clear()
                if watcher.queue.empty() and watcher.closing is None:
                    await watcher.wake.wait()
                continue
            try:
                await asyncio.wait_for(ws.send_str(data), self.send_timeout_s)
            except ConnectionError:
                return  # the console went away; its handler detaches it
            except TimeoutError:
                self._slow(watcher, f"a message waited {self.send_timeout_s:g}s to be taken")
                continue

    async def close_all(self, code: int = WSCloseCode.GOING_AWAY, text: str = "server shutting down") -> None:
        for group in list(self._watchers.values()):
            for watcher in list(group):
                with contextlib.suppress(ConnectionError):
                    await watcher.ws.close(code=code, message=reason(text))
        await self.stop()

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await close_pubsub(pubsub)

    # --- the one subscription --------------------------------------------------------------------

    async def _subscribe(self, channel: str) -> None:
        client = self._redis.client
        if client is None:
            raise RedisDown("Redis is not configured")
        fresh = self._pubsub is None
        if fresh:
            self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        assert self._pubsub is not None
        try:
            await asyncio.wait_for(self._pubsub.subscribe(channel), COMMAND_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            if fresh or not self._watchers:
                pubsub, self._pubsub = self._pubsub, None
                await close_pubsub(pubsub)
            raise RedisDown(str(exc) or type(exc).__name__) from exc
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(self._pubsub), name="live-hub")

    async def _unsubscribe(self, channel: str) -> None:
        if self._pubsub is None:
            return
        try:
            await asyncio.wait_for(self._pubsub.unsubscribe(channel), COMMAND_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("live hub: could not unsubscribe %s: %s", channel, exc)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=READ_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError) as exc:
                log.warning("live hub: lost the Redis subscription: %s", exc)
                await self._lost()
                return
            if msg is None or msg.get("type") != "message":
                continue
            data = msg["data"]
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            channel = msg["channel"] if isinstance(msg["channel"], str) else msg["channel"].decode()
            parsed: dict[str, Any] | None = None
            shaper = self._shapers.get(channel)
            if shaper is not None:
                parsed = _parse(text)
                shaped = shaper(parsed) if parsed is not None else None
                if shaped is None:
                    continue
                parsed, text = shaped, json.dumps(shaped, ensure_ascii=False)
            for watcher in tuple(self._watchers.get(channel, ())):
                if watcher.closing is not None:
                    continue
                if watcher.accept is not None:
                    parsed = parsed if parsed is not None else _parse(text)
                    if parsed is None or not watcher.accept(parsed):
                        continue
                try:
                    watcher.queue.put_nowait(text)
                except asyncio.QueueFull:
                    self._slow(watcher, f"{self.queue_max} messages were waiting")
                    continue
                watcher.wake.set()

    def _slow(self, watcher: Watcher, why: str) -> None:
        if watcher.closing is None:
            self.slow_closed += 1
            log.warning("live %s: closing a console that does not keep up (4008): %s", watcher.channel, why)
        watcher.close_later(CLOSE_SLOW_CONSUMER, "slow_consumer: messages were not taken in time; "
                            "reconnect for a fresh snapshot")

    async def _lost(self) -> None:
        """The subscription failed: every socket closes with 1013; the next one subscribes afresh."""
        async with self._lock:
            for group in self._watchers.values():
                for watcher in group:
                    watcher.close_later(CLOSE_REDIS_DOWN, "redis_unavailable: the subscription was lost")
            # forgotten now (their handlers' detach finds nothing): a socket that opens next
            # subscribes its channel afresh on a new connection
            self._watchers.clear()
            self._per_token.clear()
            pubsub, self._pubsub = self._pubsub, None
            self._reader = None
        if pubsub is not None:
            await close_pubsub(pubsub)


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

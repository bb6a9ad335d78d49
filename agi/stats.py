"""Per-session timing of the FastAGI server: what Asterisk waits for, from connect to close."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import statistics
from dataclasses import dataclass, field
from typing import Any

from hotline import redis_keys

log = logging.getLogger(__name__)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, min(998, int(q * 1000) - 1))]


@dataclass
class SessionStats:
    """A bounded window of recent session durations (seconds) and running totals."""

    window: int = 10_000
    total: int = 0
    _durations: collections.deque[float] = field(default_factory=collections.deque)

    def record(self, seconds: float) -> None:
        self.total += 1
        self._durations.append(seconds)
        if len(self._durations) > self.window:
            self._durations.popleft()

    def summary(self) -> dict[str, float]:
        d = sorted(self._durations)
        return {"sessions": float(len(d)), "p50_ms": percentile(d, 0.50) * 1000,
                "p99_ms": percentile(d, 0.99) * 1000, "max_ms": (d[-1] * 1000) if d else 0.0}


class RedisSessionLog:
    """Ships session durations to Redis in the background, so every AGI instance's figures can be
    read in one place (``hotline.redis_keys.AGI_SESSION_MS``). Never on Asterisk's critical path:
    durations are buffered and flushed once a second; Redis trouble only costs the figures."""

    def __init__(self, redis: Any, interval_s: float = 1.0) -> None:
        self._redis = redis
        self._interval_s = interval_s
        self._pending: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, seconds: float) -> None:
        if len(self._pending) < 50_000:
            self._pending.append(seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending or self._redis is None:
            return
        batch, self._pending = self._pending, []
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.lpush(redis_keys.AGI_SESSION_MS, *(f"{s * 1000:.3f}" for s in batch))
            pipe.ltrim(redis_keys.AGI_SESSION_MS, 0, redis_keys.AGI_SESSION_KEEP - 1)
            await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - metrics must never hurt intake
            log.debug("AGI session figures not shipped: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

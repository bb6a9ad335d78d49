"""The app's Redis connection. Optional: with no URL configured, every Redis feature reports
``not_configured`` and writes to the database carry on. Commands time out fast, so a dead Redis costs
a request at most about a second; redis-py reconnects on the next command once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from hotline.redis_client import connect

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 1.0


class RedisLink:
    """The app's view of its Redis client (``hotline.redis_client.connect``: one per process)."""

    def __init__(self, url: str | None = None, client: Redis | None = None) -> None:
        self.url = url
        if client is None and url:
            client = connect(url, timeout_s=COMMAND_TIMEOUT_S)
        self.client = client

    @property
    def configured(self) -> bool:
        return self.client is not None

    async def status(self) -> str:
        """``ok``, ``unavailable`` or ``not_configured``; never raises."""
        if self.client is None:
            return "not_configured"
        try:
            await asyncio.wait_for(self.client.ping(), COMMAND_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis ping failed: %s", exc)
            return "unavailable"
        return "ok"

    async def run(self, command: str, *args: Any) -> Any:
        """Run one command with a deadline. Raises :class:`RedisDown` on any Redis trouble."""
        if self.client is None:
            raise RedisDown("Redis is not configured")
        try:
            return await asyncio.wait_for(self.client.execute_command(command, *args), COMMAND_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RedisDown(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


class RedisDown(Exception):
    """Redis could not run a command (down, slow, or not configured)."""


async def close_pubsub(pubsub: PubSub) -> None:
    """Unsubscribe and give the connection back; never raises (Redis may be gone)."""
    try:
        await asyncio.wait_for(pubsub.unsubscribe(), COMMAND_TIMEOUT_S)
    except (RedisError, OSError, TimeoutError):
        pass
    try:
        await pubsub.aclose()
    except (RedisError, OSError):
        pass

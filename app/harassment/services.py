"""The harassment list lives in the Redis set ``HARASSMENT_SET`` so intake can read it on every call."""

from __future__ import annotations

import logging

from app.errors import RedisUnavailable
from app.redis_link import RedisDown, RedisLink
from hotline.phone import mask_number
from hotline.redis_keys import HARASSMENT_SET

log = logging.getLogger(__name__)


class HarassmentService:
    def __init__(self, redis: RedisLink, key: str = HARASSMENT_SET) -> None:
        self.redis = redis
        self.key = key

    async def numbers(self) -> list[str]:
        try:
            return sorted(await self.redis.run("SMEMBERS", self.key))
        except RedisDown as exc:
            raise RedisUnavailable(details={"reason": str(exc)}) from exc

    async def listed(self, number: str) -> bool:
        """Is ``number`` on the list? Raises :class:`RedisUnavailable` when that cannot be known."""
        try:
            return bool(await self.redis.run("SISMEMBER", self.key, number))
        except RedisDown as exc:
            raise RedisUnavailable(details={"reason": str(exc)}) from exc

    async def add(self, number: str) -> bool:
        try:
            added = bool(await self.redis.run("SADD", self.key, number))
        except RedisDown as exc:
            raise RedisUnavailable(details={"reason": str(exc)}) from exc
        log.info("harassment list: added %s", mask_number(number))
        return added

    async def remove(self, number: str) -> bool:
        try:
            removed = bool(await self.redis.run("SREM", self.key, number))
        except RedisDown as exc:
            raise RedisUnavailable(details={"reason": str(exc)}) from exc
        log.info("harassment list: removed %s", mask_number(number))
        return removed

    async def flag_quietly(self, number: str | None) -> bool:
        """Flag from an outcome: the outcome is already stored, so Redis trouble only warns."""
        if not number or number == "anonymous":
            return False
        try:
            await self.add(number)
        except RedisUnavailable as exc:
            log.warning(
                "harassment outcome stored, but %s not added to Redis: %s", mask_number(number), exc.details
            )
            return False
        return True

"""Live call state in Redis, so any backend instance (and the console) sees the calls in progress."""

from __future__ import annotations

import logging
from typing import Any

from hotline import redis_keys
from hotline.contracts import CallEvent, CallEventType

log = logging.getLogger(__name__)

_STATE = {
    CallEventType.ARRIVED: "arrived",
    CallEventType.QUEUED: "queued",
    CallEventType.RINGING: "ringing",
    CallEventType.ANSWERED: "talking",
    CallEventType.BRIDGED: "talking",
    CallEventType.TRANSFERRED: "transferring",
    CallEventType.TRANSFER_FAILED: "transferring",
    CallEventType.ABANDONED: "abandoned",
    CallEventType.HANGUP: "ended",
}
ENDED_TTL_S = 3600
CLAIM_TTL_S = 120  # a claim outlives no transfer by more than this, whatever happens to its owner


class LiveCalls:
    """Writes each call's latest state; Redis trouble is logged, never raised (calls go on)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def apply(self, ev: CallEvent) -> None:
        state = _STATE.get(ev.type)
        if state is None or self._redis is None:
            return
        key = redis_keys.live_call(ev.linkedid)
        fields: dict[str, str] = {"state": state, f"{ev.type.value}_at": f"{ev.at:.3f}"}
        if ev.service:
            fields["service"] = ev.service.value
        if ev.caller:
            fields["caller"] = ev.caller
        if ev.seat:
            fields["seat"] = ev.seat
        # The channels the flows act on: the caller's, and the seat's while one is connected.
        if ev.type is CallEventType.ARRIVED and ev.data.get("channel"):
            fields["caller_channel"] = str(ev.data["channel"])
        # A transfer is pending from the moment it starts until a seat answers the caller again
        # (the other side, or the first seat when nobody answered there).
        if ev.type in (CallEventType.TRANSFERRED, CallEventType.TRANSFER_FAILED):
            fields["transfer"] = "pending"
        own_leg = not ev.data.get("leg")
        if ev.type is CallEventType.ANSWERED and own_leg:
            # A seat answered the caller itself (not a consultation or invited leg of the call).
            fields["transfer"] = ""
            if ev.data.get("channel"):
                fields["seat_channel"] = str(ev.data["channel"])
            if ev.data.get("caller_channel"):
                fields["caller_channel"] = str(ev.data["caller_channel"])
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(key, mapping=fields)
            if ev.type is CallEventType.HANGUP or (ev.type is CallEventType.ANSWERED and own_leg):
                pipe.delete(redis_keys.transfer_claim(ev.linkedid))  # the transfer, if any, is over
            if ev.type is CallEventType.HANGUP:
                pipe.srem(redis_keys.LIVE_CALLS, ev.linkedid)
                pipe.expire(key, ENDED_TTL_S)
            else:
                pipe.sadd(redis_keys.LIVE_CALLS, ev.linkedid)
                pipe.expire(key, 6 * 3600)
            await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis down must not stop event recording
            log.warning("live state not updated for %s: %s", ev.linkedid, exc)

    async def get(self, linkedid: str) -> dict[str, str]:
        """The live hash of one call ({} when unknown). Raises on Redis trouble."""
        raw = await self._redis.hgetall(redis_keys.live_call(linkedid))
        return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}

    async def mark(self, linkedid: str, **fields: str) -> None:
        await self._redis.hset(redis_keys.live_call(linkedid), mapping=fields)

    async def claim(self, linkedid: str, owner: str, ttl_s: int = CLAIM_TTL_S) -> bool:
        """Take the call's transfer claim; False when someone holds it. One atomic SET NX."""
        return bool(await self._redis.set(redis_keys.transfer_claim(linkedid), owner, nx=True, ex=ttl_s))

    async def release(self, linkedid: str) -> None:
        """Give the claim back (best effort: it expires anyway)."""
        try:
            await self._redis.delete(redis_keys.transfer_claim(linkedid))
        except Exception as exc:  # noqa: BLE001
            log.warning("transfer claim of %s not released (it expires): %s", linkedid, exc)

    async def live_linkedids(self) -> set[str]:
        if self._redis is None:
            return set()
        try:
            members = await self._redis.smembers(redis_keys.LIVE_CALLS)
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot read live calls: %s", exc)
            return set()
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

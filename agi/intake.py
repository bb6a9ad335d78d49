"""The intake service: what we decide about a call as it arrives, before it joins a queue.

Pure logic plus one Redis pipeline round trip. It records the call in the caller's history, counts
the caller's calls in the previous 24 h, checks the harassment list (notice part 四(五), order
maintenance), picks the channel variables, and reports the arrival to the event sink.

It never raises and never blocks the call: Redis down, slow or broken gives the dialplan's defaults
with ``HOTLINE_INTAKE=degraded``. A harassment-flagged number is only put at a lower queue priority:
the notice says such calls are handled according to law, so a human still answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hotline import redis_keys
from hotline.contracts import LINKEDID_RE, CallEvent, CallEventType, Service
from hotline.names import (
    QUEUE_BY_SERVICE,
    VAR_CALL_ID,
    VAR_FLAGS,
    VAR_INTAKE,
    VAR_PRIORITY,
    VAR_QUEUE,
    VAR_REPEAT_24H,
)
from hotline.phone import clean_number, mask_number

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

DAY_S = 24 * 3600
HISTORY_KEEP_S = 7 * DAY_S          # history older than this is trimmed on every call
HISTORY_TTL_S = HISTORY_KEEP_S + 3600
REPEAT_CALLS_24H = 3                # this call is at least the 3rd from the number within 24 h
PRIORITY_NORMAL = 0                 # QUEUE_PRIO, higher served first; 0 = the dialplan's own default,
PRIORITY_HARASSMENT = -1            # so a degraded intake never ranks below a flagged number; never refused
REDIS_TIMEOUT_S = 0.15
REDIS_RETRY_AFTER_S = 1.0           # after a Redis failure, skip it this long (calls keep flowing fast)

FLAG_REPEAT = "repeat"
FLAG_HARASSMENT = "harassment"
INTAKE_OK = "ok"
INTAKE_DEGRADED = "degraded"
ANONYMOUS = "anonymous"             # what clean_number returns when nothing usable is left


class Sink(Protocol):
    def emit(self, event: CallEvent) -> None: ...


@dataclass(frozen=True)
class IntakeRequest:
    """What Asterisk tells us about an arriving call (raw, untrusted)."""

    service: str
    linkedid: str
    caller_raw: str
    uniqueid: str = ""
    channel: str = ""
    at: float = 0.0

    @classmethod
    def from_agi(cls, env: Mapping[str, str], args: Sequence[str], at: float) -> IntakeRequest:
        """From the AGI environment and arguments ``(service, linkedid)`` as the dialplan passes them."""
        return cls(
            service=(args[0] if len(args) > 0 else "").strip(),
            linkedid=(args[1] if len(args) > 1 else "").strip(),
            caller_raw=env.get("agi_callerid", ""),
            uniqueid=env.get("agi_uniqueid", "").strip(),
            channel=env.get("agi_channel", "")[:128],
            at=at,
        )


@dataclass(frozen=True)
class IntakeDecision:
    """The channel variables to set, and why intake degraded (empty when it did not)."""

    variables: dict[str, str]
    degraded: tuple[str, ...] = ()
    caller: str = ANONYMOUS
    flags: tuple[str, ...] = ()
    repeat_24h: int | None = None


def degraded_answer() -> dict[str, str]:
    """The answer when intake could not run at all: leave the dialplan's defaults untouched."""
    return {VAR_INTAKE: INTAKE_DEGRADED}


@dataclass
class _History:
    previous_24h: int
    harassment: bool


@dataclass
class IntakeService:
    """Intake decisions. ``redis`` is a ``redis.asyncio.Redis`` (or None: no history, degraded)."""

    redis: Redis | None
    sink: Sink | None
    redis_timeout_s: float = REDIS_TIMEOUT_S
    clock: Callable[[], float] = time.time
    _redis_skip_until: float = field(default=0.0, init=False, repr=False)

    async def intake(self, req: IntakeRequest) -> IntakeDecision:
        degraded: list[str] = []
        variables: dict[str, str] = {}

        linkedid = _valid_id(req.linkedid) or _valid_id(req.uniqueid)
        if linkedid:
            variables[VAR_CALL_ID] = linkedid
            if linkedid != req.linkedid:
                degraded.append("bad_linkedid")
        else:
            degraded.append("no_call_id")

        service = _service(req.service)
        if service is not None:
            variables[VAR_QUEUE] = QUEUE_BY_SERVICE[service]
        else:
            degraded.append("unknown_service")  # the dialplan's default queue stays

        caller = clean_number(req.caller_raw)
        history: _History | None = None
        if caller != ANONYMOUS and linkedid:
            history = await self._history(caller, linkedid, req.at or self._now())
            if history is None:
                degraded.append("redis_unavailable")

        flags: list[str] = []
        if history is not None:
            if history.previous_24h + 1 >= REPEAT_CALLS_24H:
                flags.append(FLAG_REPEAT)
            if history.harassment:
                flags.append(FLAG_HARASSMENT)
            variables[VAR_REPEAT_24H] = str(history.previous_24h)
        elif caller == ANONYMOUS:
            variables[VAR_REPEAT_24H] = "0"  # nothing to count by; not a failure
        variables[VAR_FLAGS] = ",".join(flags)
        variables[VAR_PRIORITY] = str(PRIORITY_HARASSMENT if FLAG_HARASSMENT in flags else PRIORITY_NORMAL)
        variables[VAR_INTAKE] = INTAKE_DEGRADED if degraded else INTAKE_OK

        decision = IntakeDecision(variables=variables, degraded=tuple(degraded), caller=caller,
                                  flags=tuple(flags), repeat_24h=history.previous_24h if history else None)
        if linkedid:
            self._emit_arrived(req, linkedid, service, decision)
        if degraded:
            log.warning("intake degraded for %s from %s: %s", linkedid or "-", mask_number(caller),
                        ",".join(degraded))
        return decision

    async def _history(self, caller: str, linkedid: str, at: float) -> _History | None:
        """One pipeline round trip: record, trim, count, expire, harassment check. None on failure."""
        if self.redis is None:
            return None
        if self._now_monotonic() < self._redis_skip_until:
            return None
        key = redis_keys.caller_history(caller)
        try:
            async with asyncio.timeout(self.redis_timeout_s):
                pipe = self.redis.pipeline(transaction=True)
                pipe.zadd(key, {linkedid: at})
                pipe.zremrangebyscore(key, "-inf", at - HISTORY_KEEP_S)
                pipe.zcount(key, at - DAY_S, "+inf")
                pipe.expire(key, HISTORY_TTL_S)
                pipe.sismember(redis_keys.HARASSMENT_SET, caller)
                _, _, in_window, _, harassment = await pipe.execute()
        except Exception as exc:  # Redis down, slow, or answering nonsense: degrade, never raise
            self._redis_skip_until = self._now_monotonic() + REDIS_RETRY_AFTER_S
            log.warning("intake: Redis unavailable (%s: %s); skipping it for %.1fs",
                        type(exc).__name__, exc, REDIS_RETRY_AFTER_S)
            return None
        # the count includes this call (just added); a re-entry of the same linkedid is not a repeat
        return _History(previous_24h=max(0, int(in_window) - 1), harassment=bool(harassment))

    def _emit_arrived(self, req: IntakeRequest, linkedid: str, service: Service | None,
                      decision: IntakeDecision) -> None:
        if self.sink is None:
            return
        event = CallEvent(
            event_id=f"{linkedid}:agi:arrived",
            linkedid=linkedid,
            type=CallEventType.ARRIVED,
            at=req.at or self._now(),
            source="agi",
            service=service,
            caller=decision.caller,
            data={
                "uniqueid": _valid_id(req.uniqueid) or None,
                "queue": decision.variables.get(VAR_QUEUE),
                "flags": list(decision.flags),
                "repeat_24h": decision.repeat_24h,
                "intake": decision.variables[VAR_INTAKE],
                "degraded": list(decision.degraded),
            },
        )
        try:
            self.sink.emit(event)
        except Exception:  # the sink promises not to raise; belt and braces on the call path
            log.exception("intake: sink.emit failed for %s", linkedid)

    def _now(self) -> float:
        return float(self.clock())

    @staticmethod
    def _now_monotonic() -> float:
        return time.monotonic()


def _valid_id(value: str) -> str:
    return value if LINKEDID_RE.fullmatch(value) else ""


def _service(value: str) -> Service | None:
    try:
        return Service(value)
    except ValueError:
        return None

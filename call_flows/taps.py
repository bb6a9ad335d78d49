"""The media-tap controller: every party of every answered call is heard by the transcriber.

For each party (the caller's channel when a seat first answers; each seat's channel when it
answers, also after a transfer or when invited into a three-way bridge; a linkage hotline that
joins the bridge) it registers a tap id in Redis (call, speaker, seat) and has Asterisk originate
``Local/<tap id>@hotline-tap``: one half listens to the party (ChanSpy, read-only), the other
streams to the transcriber (AudioSocket). The call's own channels are never redirected or bridged
by a tap, so nothing a tap does can drop a caller.

A tap is watched until its party leaves:

- **never starts** (the transcriber does not report the stream within ``start_timeout_s``): the
  tap channel is hung up, a ``tap_failed`` gap is opened and the tap is retried with backoff;
- **ends early** (its Local channel hangs up while the party is still on: the transcriber died or
  refused it): a ``tap_lost`` gap (``recognizer_down`` when the transcriber's heartbeat is gone),
  and a retry once the transcriber is back;
- **stalls** (the heartbeat expires while the stream is open): a ``recognizer_stalled`` gap until
  the heartbeat is back;
- **outlives its call** (the call ended): its channel is hung up; ChanSpy's ``E`` option already
  ends it when the party hangs up, this is the second line.

Each gap becomes one ``gap`` segment (start, end, reason) of the party's transcript when it closes
(when the tap works again, or when the party leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotline import redis_keys
from hotline.contracts import CallEvent, CallEventType, GapReason, Segment, SegmentKind, Service, Speaker
from hotline.names import CTX_TAP, VAR_LINKEDID, VAR_TAP, VAR_TAP_TARGET

log = logging.getLogger(__name__)

TAP_KEY_TTL_S = 6 * 3600
WATCH_EVERY_S = 0.5
# A tap hung up because its call ended still holds one of the transcriber's streams until its channel
# is gone (its AMI Hangup): counted as busy until then, at most this long.
RELEASE_S = 3.0
SPEAKER_OF_SERVICE = {Service.HOTLINE_12345: Speaker.OPERATOR_12345, Service.POLICE_110: Speaker.OPERATOR_110}


@dataclass
class PartyTap:
    """One party of one call, and the tap currently hearing it (``tap`` empty when none)."""

    call: str
    channel: str
    speaker: Speaker
    seat: str | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # names this party's gap segments
    tap: str = ""
    state: str = "down"  # starting | streaming | ended (tap channel gone, not yet judged) | down
    since: float = 0.0
    attempts: int = 0
    next_try: float = 0.0
    gap: tuple[float, GapReason] | None = None
    gap_seq: int = 0
    gone: bool = False  # the party left: nothing more to hear


@dataclass
class TapStats:
    started: int = 0
    streaming: int = 0
    failed: int = 0
    lost: int = 0
    refused_full: int = 0  # the transcriber had no room when the tap reached it: waits as overload
    gaps: int = 0


class TapController:
    def __init__(self, ami: Callable[[], Any], redis: Any, emit_segment: Callable[[Segment], None],
                 seat_service: Callable[[str], Service | None], *, enabled: bool = True,
                 start_timeout_s: float = 4.0, retry_max_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._ami = ami
        self._redis = redis
        self._emit = emit_segment
        self._seat_service = seat_service
        self.enabled = enabled
        self.start_timeout_s = start_timeout_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self.parties: dict[tuple[str, str], PartyTap] = {}  # (call, channel) -> party
        self._by_tap: dict[str, PartyTap] = {}
        self._releasing: dict[str, float] = {}  # tap -> until when it still counts as a busy stream
        self._task: asyncio.Task[None] | None = None
        # close() cancels the watch, but on Python 3.11 a cancel that lands as a Redis command
        # finishes is lost (redis-py's asyncio.wait_for returns the result): the watch checks this too.
        self._closing = False
        self._limit: int | None = None  # the transcriber's stream limit, from its last heartbeat read
        self.stats = TapStats()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._watch(), name="tap-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._closing = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- what the listener tells us ---------------------------------------------------------------

    async def on_call_event(self, ev: CallEvent) -> None:
        if not self.enabled:
            return
        if ev.type is CallEventType.ANSWERED:
            if not ev.data.get("leg") and ev.data.get("caller_channel"):
                await self._attach(ev.linkedid, str(ev.data["caller_channel"]), Speaker.CALLER, None)
            seat_channel = str(ev.data.get("channel") or "")
            if seat_channel and ev.seat:
                svc = self._seat_service(ev.seat)
                speaker = SPEAKER_OF_SERVICE.get(svc) if svc else None
                await self._attach(ev.linkedid, seat_channel, speaker or Speaker.OPERATOR_12345, ev.seat)
        elif ev.type is CallEventType.CONFERENCE_JOINED and ev.data.get("party") == "linkage":
            await self._attach(ev.linkedid, str(ev.data.get("channel", "")), Speaker.LINKAGE, None)
        elif ev.type is CallEventType.HANGUP:
            await self._end_call(ev.linkedid)

    def on_ami_event(self, ev: dict[str, Any]) -> None:
        """Raw AMI events: a tap's own channel hung up, or a tapped party's channel did."""
        if ev.get("Event") != "Hangup":
            return
        tap = _chanvar(ev, VAR_TAP)
        if tap and self._releasing.pop(tap, None) is not None:
            return
        if tap and tap in self._by_tap:
            party = self._by_tap[tap]
            if party.tap == tap and party.state in ("starting", "streaming"):
                party.state, party.since = "ended", self._clock()
            return
        channel = str(ev.get("Channel", ""))
        for party in self.parties.values():
            if party.channel == channel:
                party.gone = True

    # --- taps ------------------------------------------------------------------------------------

    async def _attach(self, call: str, channel: str, speaker: Speaker, seat: str | None) -> None:
        if not channel or (call, channel) in self.parties:
            return
        party = PartyTap(call, channel, speaker, seat)
        self.parties[(call, channel)] = party
        await self._start(party)

    async def _alive(self) -> bool:
        try:
            return bool(await self._redis.exists(redis_keys.TRANSCRIBER_ALIVE))
        except Exception:  # noqa: BLE001 - no Redis: no taps either (the transcriber needs it too)
            return False

    def _at_limit(self) -> bool:
        return self._limit is not None and self._active() >= self._limit

    def _active(self) -> int:
        now = self._clock()
        for tap in [t for t, until in self._releasing.items() if until <= now]:
            del self._releasing[tap]
        busy = sum(1 for p in self.parties.values() if p.state in ("starting", "streaming"))
        return busy + len(self._releasing)

    async def _full(self) -> bool:
        """As many taps are starting or streaming as the transcriber may hear (its heartbeat says
        how many; counted here, as a burst of answers comes faster than its heartbeat)."""
        try:
            info = json.loads(await self._redis.get(redis_keys.TRANSCRIBER_ALIVE) or b"{}")
            limit = int(info.get("max", 1 << 30))
            reported = int(info.get("streams", 0))
        except Exception:  # noqa: BLE001 - cannot tell: try, the transcriber refuses if it must
            return False
        self._limit = limit
        return max(self._active(), reported) >= limit

    async def _start(self, party: PartyTap) -> None:
        now = self._clock()
        party.attempts += 1
        if not await self._alive():
            self._open_gap(party, GapReason.RECOGNIZER_DOWN, now)
            self._retry_later(party, now)
            return
        full = await self._full()
        if full or self._at_limit():  # re-counted after the await: a burst of starts cannot overshoot
            # No tap, rather than one the transcriber will refuse: no Originate storm at capacity.
            self._open_gap(party, GapReason.OVERLOAD, now)
            party.state, party.tap, party.next_try = "down", "", now + self.retry_max_s
            return
        client = self._ami()
        tap = str(uuid.uuid4())
        # The slot is taken now, before the awaits below, so that starts running meanwhile count it.
        party.tap, party.state, party.since = tap, "starting", now
        try:
            if client is None:
                raise ConnectionError("AMI not connected")
            await self._redis.hset(redis_keys.media_tap(tap), mapping={
                "call": party.call, "speaker": party.speaker.value, "seat": party.seat or "",
                "channel": party.channel, "state": "starting"})
            await self._redis.expire(redis_keys.media_tap(tap), TAP_KEY_TTL_S)
            resp = await client.action({
                "Action": "Originate", "Channel": f"Local/{tap}@{CTX_TAP}/n", "Context": CTX_TAP,
                "Exten": "stream", "Priority": "1", "Async": "true", "Timeout": "5000",
                "CallerID": f"tap <{party.speaker.value}>",
                "Variable": [f"{VAR_TAP}={tap}", f"{VAR_TAP_TARGET}={party.channel}",
                             f"{VAR_LINKEDID}={party.call}"]})
            if resp.get("Response") != "Success":
                raise RuntimeError(resp.get("Message", "refused"))
        except Exception as exc:  # noqa: BLE001 - a tap that cannot start is a gap, never an error
            log.warning("tap for %s of %s not started: %s", party.speaker.value, party.call, exc)
            self.stats.failed += 1
            if party.tap == tap:
                party.state, party.tap = "down", ""
            self._open_gap(party, GapReason.TAP_FAILED, now)
            self._retry_later(party, now)
            return
        self._by_tap[tap] = party
        party.tap, party.state, party.since = tap, "starting", now
        self.stats.started += 1

    def _retry_later(self, party: PartyTap, now: float) -> None:
        party.state, party.tap = "down", ""
        party.next_try = now + min(self.retry_max_s, 0.5 * 2 ** min(party.attempts, 6))

    async def _hangup(self, tap: str) -> None:
        client = self._ami()
        if client is None or not tap:
            return
        with contextlib.suppress(Exception):
            await client.action({"Action": "Hangup", "Channel": f"/^Local\\/{tap}@/"})

    async def _end_call(self, call: str) -> None:
        now = self._clock()
        for key in [k for k in self.parties if k[0] == call]:
            party = self.parties.pop(key, None)  # the watch may have let it go meanwhile
            if party is None:
                continue
            party.gone = True
            self._close_gap(party, now)
            if party.tap:
                self._by_tap.pop(party.tap, None)
                if party.state in ("starting", "streaming"):
                    self._releasing[party.tap] = now + RELEASE_S
                await self._hangup(party.tap)
                with contextlib.suppress(Exception):
                    await self._redis.hset(redis_keys.media_tap(party.tap), "state", "call_ended")
                    await self._redis.expire(redis_keys.media_tap(party.tap), 60)

    # --- the watch -------------------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(WATCH_EVERY_S)
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tap watch failed")

    async def _check(self) -> None:
        if not self.parties:
            return
        now = self._clock()
        alive = await self._alive()
        for party in list(self.parties.values()):
            if party.gone:
                self._close_gap(party, now)
                if party.tap:
                    self._by_tap.pop(party.tap, None)
                self.parties.pop((party.call, party.channel), None)
                continue
            if party.state == "starting":
                state = await self._tap_state(party.tap)
                if state == "streaming":
                    party.state = "streaming"
                    party.attempts = 0
                    self.stats.streaming += 1
                    self._close_gap(party, now)
                elif now - party.since > self.start_timeout_s:
                    log.warning("tap %s for %s of %s never started", party.tap, party.speaker.value,
                                party.call)
                    self.stats.failed += 1
                    await self._hangup(party.tap)
                    self._by_tap.pop(party.tap, None)
                    # Nothing was heard since the tap was started, not just since we gave up on it.
                    self._open_gap(party, GapReason.TAP_FAILED if alive else GapReason.RECOGNIZER_DOWN,
                                   party.since)
                    self._retry_later(party, now)
            elif party.state == "streaming":
                if not alive:
                    self._open_gap(party, GapReason.RECOGNIZER_STALLED, now)
                elif party.gap is not None:
                    self._close_gap(party, now)
            elif party.state == "ended" and now - party.since > 1.0:
                # The tap's channel hung up and, a second later, its party is still on the call.
                if await self._tap_state(party.tap) == redis_keys.TAP_STATE_REFUSED_FULL:
                    # The transcriber had no room after all (a stream it still held): wait as overload.
                    self.stats.refused_full += 1
                    self._by_tap.pop(party.tap, None)
                    log.info("tap %s for %s of %s refused (transcriber full); waiting", party.tap,
                             party.speaker.value, party.call)
                    self._open_gap(party, GapReason.OVERLOAD, party.since)
                    party.state, party.tap, party.next_try = "down", "", now + 1.0
                    continue
                self.stats.lost += 1
                self._by_tap.pop(party.tap, None)
                log.warning("tap %s for %s of %s lost", party.tap, party.speaker.value, party.call)
                self._open_gap(party, GapReason.TAP_LOST if alive else GapReason.RECOGNIZER_DOWN,
                               party.since)
                party.attempts = 0
                self._retry_later(party, now)
            elif party.state == "down" and not alive:
                self._open_gap(party, GapReason.RECOGNIZER_DOWN, now)  # or say why the gap goes on
            elif party.state == "down" and now >= party.next_try:
                if party.gap is not None and party.gap[1] is GapReason.OVERLOAD and self._at_limit():
                    party.next_try = now + 1.0  # still full (counted here, no Redis round trip)
                    continue
                await self._start(party)

    async def _tap_state(self, tap: str) -> str:
        try:
            raw = await self._redis.hget(redis_keys.media_tap(tap), "state")
        except Exception:  # noqa: BLE001
            return ""
        return raw.decode() if isinstance(raw, bytes) else str(raw or "")

    # --- gaps ------------------------------------------------------------------------------------

    def _open_gap(self, party: PartyTap, reason: GapReason, at: float) -> None:
        if party.gap is None:
            party.gap = (at, reason)
            log.info("transcript gap opens for %s of %s: %s", party.speaker.value, party.call, reason.value)
        elif party.gap[1] is GapReason.TAP_LOST and reason is GapReason.RECOGNIZER_DOWN:
            party.gap = (party.gap[0], reason)

    def _close_gap(self, party: PartyTap, at: float) -> None:
        if party.gap is None:
            return
        start, reason = party.gap
        party.gap = None
        self.stats.gaps += 1
        self._emit(Segment(call=party.call, tap=party.id, seq=party.gap_seq, speaker=party.speaker,
                           kind=SegmentKind.GAP, start=round(start, 3), end=round(max(at, start), 3),
                           text=reason.value, seat=party.seat))
        party.gap_seq += 1


def _chanvar(ev: dict[str, Any], name: str) -> str:
    raw = ev.get("ChanVariable")
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, str) and item.startswith(name + "="):
            return item[len(name) + 1:]
    return ""

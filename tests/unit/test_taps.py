"""The media-tap controller (call_flows.taps.TapController) against a recording AMI client and the
session's real Redis, driven by hand: call events, raw AMI events and the watch's ``_check`` at
times the test chooses. What a supervisor would notice: every party is heard once, and every
stretch that is not heard is one gap segment with its reason, start and end."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from call_flows import taps as taps_module
from call_flows.taps import TAP_KEY_TTL_S, TapController
from hotline.contracts import CallEvent, CallEventType, Segment, SegmentKind, Service, Speaker
from hotline.names import CTX_TAP, VAR_LINKEDID, VAR_TAP, VAR_TAP_TARGET
from hotline.redis_keys import TRANSCRIBER_ALIVE, media_tap

T0 = 1_760_000_000.0
CALLER_CHANNEL = "PJSIP/trunk-00000001"
SEATS = {"1201": Service.HOTLINE_12345, "1202": Service.HOTLINE_12345, "1101": Service.POLICE_110}


class Ami:
    """Records actions; answers Success (or ``response``)."""

    def __init__(self) -> None:
        self.actions: list[dict[str, Any]] = []
        self.response: dict[str, str] = {"Response": "Success"}

    async def action(self, action: dict[str, Any]) -> dict[str, str]:
        self.actions.append(action)
        return self.response

    def originated(self) -> list[dict[str, Any]]:
        return [a for a in self.actions if a["Action"] == "Originate"]

    def hung_up(self) -> list[str]:
        return [a["Channel"] for a in self.actions if a["Action"] == "Hangup"]


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@dataclass
class Taps:
    controller: TapController
    ami: Ami
    redis: Redis
    clock: Clock
    segments: list[Segment] = field(default_factory=list)
    call: str = field(default_factory=lambda: f"1760000000.{uuid.uuid4().int % 10**6}")

    async def at(self, dt: float) -> None:
        """The watch runs at T0 + dt."""
        self.clock.t = T0 + dt
        await self.controller._check()

    async def event(self, type: CallEventType, dt: float, *, seat: str | None = None, call: str | None = None,
                    **data: Any) -> None:
        self.clock.t = T0 + dt
        await self.controller.on_call_event(CallEvent(event_id=f"{type}-{dt}-{uuid.uuid4()}",
                                                      linkedid=call or self.call, type=type,
                                                      at=T0 + dt, seat=seat, data=data))

    async def answered(self, dt: float = 0.0, seat: str = "1201", **data: Any) -> None:
        data.setdefault("caller_channel", CALLER_CHANNEL)
        data.setdefault("channel", f"PJSIP/{seat}-00000002")
        await self.event(CallEventType.ANSWERED, dt, seat=seat, **data)

    def taps(self) -> list[str]:
        return [tap_of(a) for a in self.ami.originated()]

    async def state(self, tap: str) -> str | None:
        raw = await self.redis.hget(media_tap(tap), "state")
        return raw.decode() if raw is not None else None  # type: ignore[union-attr]

    async def streaming(self, tap: str) -> None:
        """What the transcriber writes when Asterisk connects with the tap's id."""
        await self.redis.hset(media_tap(tap), "state", "streaming")

    async def heartbeat(self, streams: int = 0, max_streams: int = 64) -> None:
        info = {"pid": 1, "streams": streams, "max": max_streams}  # what the transcriber's heartbeat says
        await self.redis.set(TRANSCRIBER_ALIVE, json.dumps(info))

    async def no_heartbeat(self) -> None:
        await self.redis.delete(TRANSCRIBER_ALIVE)

    def hangup_event(self, channel: str, chanvar: Any = None, dt: float | None = None) -> None:
        if dt is not None:
            self.clock.t = T0 + dt
        ev: dict[str, Any] = {"Event": "Hangup", "Channel": channel, "Linkedid": self.call}
        if chanvar is not None:
            ev["ChanVariable"] = chanvar
        self.controller.on_ami_event(ev)

    def tap_hung_up(self, tap: str, dt: float, *, as_list: bool = True) -> None:
        """The tap's Local channel is gone (the AMI user has HOTLINE_TAP among its channel variables)."""
        var = f"{VAR_TAP}={tap}"
        self.hangup_event(f"Local/{tap}@{CTX_TAP}-00000001;2",
                          [f"{VAR_LINKEDID}={self.call}", var] if as_list else var, dt)

    def gaps(self) -> list[tuple[str, float, float]]:
        return [(s.text, round(s.start - T0, 3), round(s.end - T0, 3)) for s in self.segments]


def tap_of(originate: dict[str, Any]) -> str:
    (var,) = [v for v in originate["Variable"] if v.startswith(VAR_TAP + "=")]
    return str(var.split("=", 1)[1])


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.delete(TRANSCRIBER_ALIVE)
    await client.aclose()


def controller(redis: Redis, *, enabled: bool = True, connected: bool = True) -> Taps:
    ami, clock = Ami(), Clock()
    out: list[Segment] = []
    ctl = TapController(lambda: ami if connected else None, redis, out.append, SEATS.get, enabled=enabled,
                        start_timeout_s=4.0, retry_max_s=5.0, clock=clock)
    return Taps(ctl, ami, redis, clock, out)


@pytest.fixture
async def t(redis: Redis) -> Taps:
    taps = controller(redis)
    await taps.heartbeat()
    return taps


# --- who is tapped --------------------------------------------------------------------------------


@pytest.mark.parametrize(("seat", "speaker"), [("1201", "operator_12345"), ("1101", "operator_110"),
                                               ("7777", "operator_12345")])
async def test_an_answered_call_taps_the_caller_and_the_seat(t: Taps, seat: str, speaker: str) -> None:
    await t.answered(seat=seat)

    caller, operator = t.ami.originated()
    for originate, target in ((caller, CALLER_CHANNEL), (operator, f"PJSIP/{seat}-00000002")):
        tap = tap_of(originate)
        assert uuid.UUID(tap)
        assert originate["Channel"] == f"Local/{tap}@{CTX_TAP}/n"
        assert (originate["Context"], originate["Exten"], originate["Priority"]) == (CTX_TAP, "stream", "1")
        assert sorted(originate["Variable"]) == sorted([f"{VAR_TAP}={tap}", f"{VAR_TAP_TARGET}={target}",
                                                        f"{VAR_LINKEDID}={t.call}"])
    registered: list[dict[bytes, bytes]] = [await t.redis.hgetall(media_tap(tap_of(o)))  # type: ignore[misc]
                                            for o in (caller, operator)]
    assert [{k.decode(): v.decode() for k, v in r.items()} for r in registered] == [
        {"call": t.call, "speaker": "caller", "seat": "", "channel": CALLER_CHANNEL, "state": "starting"},
        {"call": t.call, "speaker": speaker, "seat": seat, "channel": f"PJSIP/{seat}-00000002",
         "state": "starting"}]
    assert 0 < await t.redis.ttl(media_tap(tap_of(caller))) <= TAP_KEY_TTL_S
    assert t.controller.stats.started == 2 and t.segments == []


@pytest.mark.parametrize("leg", ["consultation", "invited"])
async def test_a_consultation_or_invited_leg_taps_only_the_seat(t: Taps, leg: str) -> None:
    await t.answered(seat="1101", caller_channel="Local/110@hotline-atxfer-00000003;2", leg=leg)
    (originate,) = t.ami.originated()
    assert f"{VAR_TAP_TARGET}=PJSIP/1101-00000002" in originate["Variable"]
    assert (await t.redis.hget(media_tap(tap_of(originate)), "speaker")) == b"operator_110"


async def test_the_same_channel_is_never_tapped_twice(t: Taps) -> None:
    await t.answered(seat="1201")
    await t.answered(seat="1201")  # the same event, replayed
    await t.answered(5, seat="1202")  # a transfer: a new seat answers the same caller
    targets = [v for o in t.ami.originated() for v in o["Variable"] if v.startswith(VAR_TAP_TARGET)]
    assert targets == [f"{VAR_TAP_TARGET}={c}" for c in (CALLER_CHANNEL, "PJSIP/1201-00000002",
                                                         "PJSIP/1202-00000002")]
    await t.answered(6, seat="1201", call="1760000000.999")  # another call's party is its own
    assert len(t.ami.originated()) == 5


async def test_a_linkage_hotline_joining_the_bridge_is_tapped(t: Taps) -> None:
    await t.event(CallEventType.CONFERENCE_JOINED, 1, party="linkage", channel="PJSIP/trunk-00000009")
    await t.event(CallEventType.CONFERENCE_JOINED, 1, party="seat", channel="PJSIP/1202-00000009")
    (originate,) = t.ami.originated()
    assert (await t.redis.hget(media_tap(tap_of(originate)), "speaker")) == b"linkage"


async def test_disabled_does_nothing(redis: Redis) -> None:
    off = controller(redis, enabled=False)
    await off.heartbeat()
    await off.answered()
    await off.event(CallEventType.HANGUP, 9)
    await off.at(30)
    assert off.ami.actions == [] and off.controller.parties == {} and off.segments == []


# --- gaps ------------------------------------------------------------------------------------------


async def test_recognizer_down_no_tap_until_it_is_back_then_one_gap(t: Taps) -> None:
    await t.no_heartbeat()
    await t.answered(seat="1201")
    assert t.ami.actions == [], "no tap the transcriber cannot hear"
    await t.at(2)
    await t.at(4)
    assert t.ami.actions == [] and t.segments == []

    await t.heartbeat()
    await t.at(6)
    assert len(t.ami.originated()) == 2, "tapped again once it is back"
    for tap in t.taps():
        await t.streaming(tap)
    await t.at(6.5)
    assert sorted(t.gaps()) == [("recognizer_down", 0.0, 6.5)] * 2
    caller = next(s for s in t.segments if s.speaker is Speaker.CALLER)
    assert (caller.kind, caller.call, caller.seq, caller.seat) == (SegmentKind.GAP, t.call, 0, None)
    operator = next(s for s in t.segments if s.speaker is Speaker.OPERATOR_12345)
    assert operator.seat == "1201" and operator.tap != caller.tap
    assert all(Segment.from_json(s.to_json()) == s for s in t.segments)


async def test_a_tap_that_never_starts_is_hung_up_recorded_and_retried(t: Taps) -> None:
    await t.answered(seat="1201", caller_channel="")  # the seat only
    (first,) = t.taps()
    await t.at(3)
    assert t.ami.hung_up() == [] and t.segments == []
    await t.at(4.5)
    assert t.ami.hung_up() == [f"/^Local\\/{first}@/"]
    assert t.controller.stats.failed == 1
    await t.at(5)
    assert len(t.ami.originated()) == 1, "retried after a backoff, not at once"
    await t.at(5.6)
    second = t.taps()[-1]
    assert second != first, "a retry is a new tap"
    await t.streaming(second)
    await t.at(6)
    (gap,) = t.segments
    assert gap.text == "tap_failed"
    assert (gap.start - T0, gap.end - T0) == (pytest.approx(0.0), pytest.approx(6.0)), \
        "the gap covers the audio never heard: from the first tap's start"


@pytest.mark.parametrize("as_list", [True, False], ids=["chanvars", "one-chanvar"])
async def test_a_tap_lost_mid_call_is_a_gap_and_a_new_tap(t: Taps, as_list: bool) -> None:
    await t.answered(seat="1201", caller_channel="")
    (tap,) = t.taps()
    await t.streaming(tap)
    await t.at(1)
    t.tap_hung_up(tap, 10, as_list=as_list)
    await t.at(10.5)
    assert t.controller.stats.lost == 0 and len(t.ami.originated()) == 1, \
        "a second's grace: is the party leaving?"
    await t.at(11.2)
    assert t.controller.stats.lost == 1
    await t.at(11.8)
    new = t.taps()[-1]
    assert new != tap
    await t.streaming(new)
    await t.at(12)
    assert t.gaps() == [("tap_lost", 10.0, 12.0)]


async def test_a_tap_lost_with_the_recognizer_is_recognizer_down(t: Taps) -> None:
    await t.answered(seat="1201", caller_channel="")
    (tap,) = t.taps()
    await t.streaming(tap)
    await t.at(1)
    await t.no_heartbeat()
    t.tap_hung_up(tap, 10)
    await t.at(11.5)
    await t.at(20)
    assert len(t.ami.originated()) == 1
    await t.heartbeat()
    await t.at(21)
    await t.streaming(t.taps()[-1])
    await t.at(22)
    assert t.gaps() == [("recognizer_down", 10.0, 22.0)]


@pytest.mark.parametrize("tap_first", [False, True], ids=["party-first", "tap-first"])
async def test_a_party_that_hangs_up_leaves_no_gap(t: Taps, tap_first: bool) -> None:
    await t.answered(seat="1201", caller_channel="")
    (tap,) = t.taps()
    await t.streaming(tap)
    await t.at(1)
    if tap_first:  # ChanSpy's E option ends the tap with its party: either Hangup may come first
        t.tap_hung_up(tap, 30)
        await t.at(30.3)  # the watch runs in between
        t.hangup_event("PJSIP/1201-00000002", dt=30.4)
    else:
        t.hangup_event("PJSIP/1201-00000002", dt=30)
        t.tap_hung_up(tap, 30.1)
    await t.at(32)
    await t.at(40)
    assert t.segments == [] and t.controller.parties == {}
    assert len(t.ami.originated()) == 1, "nobody left to hear"


async def test_recognizer_stalled_while_streaming_is_a_gap_until_it_is_back(t: Taps) -> None:
    await t.answered(seat="1201", caller_channel="")
    await t.streaming(t.taps()[0])
    await t.at(1)
    await t.no_heartbeat()
    await t.at(15)
    await t.at(16)
    assert t.segments == []
    await t.heartbeat()
    await t.at(18.5)
    assert t.gaps() == [("recognizer_stalled", 15.0, 18.5)]
    assert len(t.ami.originated()) == 1, "the stream goes on: no new tap"


async def test_at_capacity_no_tap_but_an_overload_gap(t: Taps) -> None:
    await t.heartbeat(streams=4, max_streams=4)
    await t.answered(seat="1201", caller_channel="")
    assert t.ami.actions == []
    await t.at(2)
    assert t.ami.actions == [], "no Originate storm while the transcriber is full"
    await t.heartbeat(streams=3, max_streams=4)
    await t.at(5)
    (tap,) = t.taps()
    await t.streaming(tap)
    await t.at(5.5)
    assert t.gaps() == [("overload", 0.0, 5.5)]


async def test_a_burst_of_answers_is_held_to_the_limit_before_the_heartbeat_catches_up(t: Taps) -> None:
    await t.heartbeat(streams=0, max_streams=3)  # the heartbeat has not seen any of these yet
    await t.answered(seat="1201")                # caller + seat: two taps
    await t.answered(seat="1202", call="1760000000.999999", caller_channel="PJSIP/trunk-00000009",
                     channel="PJSIP/1202-00000010")
    assert len(t.taps()) == 3, "the third tap reaches the limit; the fourth party waits"
    waiting = [p for p in t.controller.parties.values() if p.gap is not None]
    assert [(p.speaker.value, p.gap[1].value) for p in waiting if p.gap] == [("operator_12345", "overload")]


async def test_concurrent_starts_never_overshoot_the_limit(t: Taps) -> None:
    """Answers handled at the same time (each awaits Redis and AMI) still take one slot each."""
    await t.heartbeat(streams=0, max_streams=2)
    await asyncio.gather(*(t.answered(seat="1201", call=f"1760000000.{700 + i}", caller_channel="",
                                      channel=f"PJSIP/1201-0000010{i}") for i in range(5)))
    assert len(t.taps()) == 2
    assert sum(1 for p in t.controller.parties.values() if p.gap is not None) == 3


async def test_taps_of_an_ended_call_hold_their_streams_until_their_channels_are_gone(t: Taps) -> None:
    await t.heartbeat(streams=0, max_streams=2)
    await t.answered(seat="1201")  # caller + seat: the two streams
    caller_tap, seat_tap = t.taps()
    await t.streaming(caller_tap)
    await t.streaming(seat_tap)
    await t.at(1)
    await t.answered(2, seat="1101", call="1760000000.888", caller_channel="", channel="PJSIP/1101-00000020")
    assert len(t.taps()) == 2, "full: the third party waits"
    await t.event(CallEventType.HANGUP, 6)  # the first call ends; its taps are hung up ...
    await t.at(7)
    assert len(t.taps()) == 2, "... but the transcriber still hears them until their channels go"
    t.tap_hung_up(caller_tap, 7.2)
    t.tap_hung_up(seat_tap, 7.2)
    await t.at(8)  # the overload retry comes round
    assert len(t.taps()) == 3, "a stream is free now"
    # and a tap whose Hangup never arrives stops counting after RELEASE_S
    assert not t.controller._releasing


async def test_a_stream_the_transcriber_refuses_for_room_waits_as_overload_not_lost(t: Taps) -> None:
    await t.heartbeat(streams=1, max_streams=2)  # its heartbeat is a second old: it is full by now
    await t.answered(seat="1201", caller_channel="")
    (tap,) = t.taps()
    await t.redis.hset(media_tap(tap), "state", "refused_full")  # what the transcriber writes
    t.tap_hung_up(tap, 0.3)
    await t.at(1.5)
    assert t.controller.stats.lost == 0 and t.controller.stats.refused_full == 1
    party = next(iter(t.controller.parties.values()))
    assert party.gap is not None and party.gap[1].value == "overload" and party.state == "down"
    await t.heartbeat(streams=0, max_streams=2)
    await t.at(3)
    assert len(t.taps()) == 2, "tapped again once there is room"


@pytest.mark.parametrize("failure", ["refused", "not-connected"])
async def test_a_tap_asterisk_will_not_start_is_a_gap_and_retried(redis: Redis, failure: str) -> None:
    t = controller(redis, connected=failure != "not-connected")
    await t.heartbeat()
    t.ami.response = {"Response": "Error", "Message": "Extension does not exist."}
    await t.answered(seat="1201", caller_channel="")
    assert t.controller.stats.failed == 1
    t.ami.response = {"Response": "Success"}
    await t.at(0.5)
    assert len(t.ami.originated()) == (1 if failure == "refused" else 0)
    await t.at(1.2)
    if failure == "not-connected":
        return  # still no AMI: the gap stays open
    tap = t.taps()[-1]
    await t.streaming(tap)
    await t.at(2)
    assert t.gaps() == [("tap_failed", 0.0, 2.0)]


async def test_the_calls_end_closes_gaps_hangs_up_taps_and_forgets_the_call(t: Taps) -> None:
    await t.answered(seat="1201")
    caller_tap, seat_tap = t.taps()
    await t.streaming(caller_tap)  # the caller is heard; the seat's tap never starts
    await t.at(5)
    assert t.ami.hung_up() == [f"/^Local\\/{seat_tap}@/"]
    await t.answered(1, seat="1101", call="1760000000.555")  # another call goes on
    other = {k: v for k, v in t.controller.parties.items() if k[0] == "1760000000.555"}

    await t.event(CallEventType.HANGUP, 20)
    assert t.gaps() == [("tap_failed", 0.0, 20.0)]
    assert t.segments[0].speaker is Speaker.OPERATOR_12345
    assert t.ami.hung_up()[-1] == f"/^Local\\/{caller_tap}@/", "the second line: ChanSpy's E is the first"
    assert await t.state(caller_tap) == "call_ended", "the transcriber closes a quiet stream of an ended call"
    assert 0 < await t.redis.ttl(media_tap(caller_tap)) <= 60
    assert t.controller.parties == other
    assert all(p.call != t.call for p in t.controller._by_tap.values())
    await t.at(30)
    assert len(t.ami.originated()) == 4 and len(t.segments) == 1, "nothing more for the ended call"


async def test_close_returns_while_the_watch_is_talking_to_redis(redis: Redis,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # On Python 3.11 a cancel that lands as a Redis command finishes is lost (asyncio.wait_for, which
    # redis-py uses, returns the result): the watch must end anyway.
    monkeypatch.setattr(taps_module, "WATCH_EVERY_S", 0)
    t = controller(redis)
    await t.heartbeat()
    await t.answered(seat="1201")
    for _ in range(10):
        t.controller.start()
        await asyncio.sleep(0.005)
        closing = asyncio.create_task(t.controller.close())
        done, _ = await asyncio.wait([closing], timeout=2)
        while not closing.done():
            assert t.controller._task is not None
            t.controller._task.cancel()
            await asyncio.sleep(0.01)
        assert done, "TapController.close() hung"

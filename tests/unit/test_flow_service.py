"""The flow service (call_flows.flows) against a recording AMI and the session's real Redis: a call's
transfer is claimed atomically, so two requests at the same moment (blind, attended or a three-way,
in any mix) send exactly one action and the other answers 409; the claim is given back when Asterisk
refuses, when the consultation is completed or cancelled, when a seat answers the caller again and
when the call ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from call_flows.flows import ConferenceFlows, FlowError, FlowService, FlowsUnavailable, TransferInProgress
from call_flows.live_state import LiveCalls
from hotline.contracts import CallEvent, CallEventType
from hotline.redis_keys import live_call, transfer_claim
from hotline.site import load_site

SITE = load_site(Path(__file__).resolve().parents[2] / "site.toml")
CALLER = "PJSIP/trunk-00000001"
SEAT = "PJSIP/1201-00000002"


class RecordingAmi:
    """Records every action; each answer comes after ``delay_s`` (so concurrent requests interleave)."""

    connected = True

    def __init__(self, delay_s: float = 0.02) -> None:
        self.actions: list[dict[str, Any]] = []
        self.delay_s = delay_s
        self.response: dict[str, str] = {"Response": "Success"}
        self.fail: Exception | None = None

    async def action(self, action: dict[str, Any]) -> dict[str, str]:
        self.actions.append(action)
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return self.response

    def sent(self, verb: str) -> list[dict[str, Any]]:
        return [a for a in self.actions if a["Action"] == verb]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def call(redis: Redis) -> str:
    linkedid = f"1760000000.{uuid.uuid4().int % 10**9}"
    await redis.hset(live_call(linkedid), mapping={"state": "talking", "seat": "1201", "service": "12345",
                                                   "caller_channel": CALLER, "seat_channel": SEAT})
    return linkedid


def flows(redis: Redis, ami: RecordingAmi) -> tuple[FlowService, ConferenceFlows, LiveCalls]:
    live = LiveCalls(redis)
    service = FlowService(lambda: ami, live, SITE)  # type: ignore[arg-type,return-value]
    return service, ConferenceFlows(service), live


async def outcomes(*coros: Any) -> list[Any]:
    return list(await asyncio.gather(*coros, return_exceptions=True))


@pytest.mark.parametrize("second", ["blind", "attended", "three_way"])
async def test_two_requests_at_once_send_one_action(redis: Redis, call: str, second: str) -> None:
    ami = RecordingAmi()
    service, conference, _ = flows(redis, ami)
    other = (conference.three_way(call) if second == "three_way" else service.transfer(call, mode=second))
    first, then = await outcomes(service.transfer(call), other)
    assert isinstance(first, dict) and first["target"] == "110"
    assert isinstance(then, TransferInProgress), then
    assert then.status == 409 and then.error_id == "transfer_in_progress"
    assert len(ami.sent("Redirect")) == 1 and not ami.sent("Atxfer") and not ami.sent("Originate")
    assert await redis.get(transfer_claim(call)) == "blind:1201:110"


async def test_many_requests_at_once_one_wins(redis: Redis, call: str) -> None:
    ami = RecordingAmi()
    service, _, _ = flows(redis, ami)
    await asyncio.gather(*(redis.ping() for _ in range(25)))  # connections open: the reads really race
    results = await outcomes(*(service.transfer(call, mode=("blind", "attended")[i % 2]) for i in range(20)))
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, TransferInProgress) for r in results) == 19
    assert len(ami.sent("Redirect")) + len(ami.sent("Atxfer")) == 1


@pytest.mark.parametrize("failure", ["refused", "ami_down"])
async def test_a_refused_transfer_gives_the_claim_back(redis: Redis, call: str, failure: str) -> None:
    ami = RecordingAmi()
    service, _, _ = flows(redis, ami)
    if failure == "refused":
        ami.response = {"Response": "Error", "Message": "Channel does not exist"}
    else:
        ami.fail = ConnectionError("AMI connection lost")
    with pytest.raises(FlowsUnavailable if failure == "ami_down" else FlowError):
        await service.transfer(call)
    assert await redis.get(transfer_claim(call)) is None
    assert (await redis.hgetall(live_call(call)))["state"] == "talking"
    ami.response, ami.fail = {"Response": "Success"}, None
    assert (await service.transfer(call))["target"] == "110", "the next try goes through"


async def test_the_claim_ends_when_a_seat_answers_the_caller_again_or_the_call_ends(redis: Redis,
                                                                                    call: str) -> None:
    ami = RecordingAmi(delay_s=0)
    service, _, live = flows(redis, ami)
    await service.transfer(call)
    with pytest.raises(TransferInProgress):
        await service.transfer(call)
    # the 110 seat answers the caller: the transfer is over
    await live.apply(CallEvent(event_id=f"{call}:answered:x", linkedid=call, type=CallEventType.ANSWERED,
                               at=1_760_000_010.0, seat="1101",
                               data={"channel": "PJSIP/1101-00000009", "caller_channel": CALLER}))
    assert await redis.get(transfer_claim(call)) is None
    assert (await service.transfer(call))["target"] == "12345", "from 110 back to 12345 now"
    await live.apply(CallEvent(event_id=f"{call}:hangup:x", linkedid=call, type=CallEventType.HANGUP,
                               at=1_760_000_020.0, data={}))
    assert await redis.get(transfer_claim(call)) is None


async def test_a_consultation_leg_answering_does_not_end_the_claim(redis: Redis, call: str) -> None:
    ami = RecordingAmi(delay_s=0)
    service, _, live = flows(redis, ami)
    await service.transfer(call, mode="attended")
    await live.apply(CallEvent(event_id=f"{call}:answered:c", linkedid=call, type=CallEventType.ANSWERED,
                               at=1_760_000_010.0, seat="1101",
                               data={"channel": "PJSIP/1101-00000009", "leg": "consultation"}))
    assert await redis.get(transfer_claim(call)) == "attended:1201:110"
    with pytest.raises(TransferInProgress):
        await service.transfer(call)


@pytest.mark.parametrize("end", ["complete", "cancel"])
async def test_completing_or_cancelling_a_consultation_gives_the_claim_back(redis: Redis, call: str,
                                                                           end: str) -> None:
    ami = RecordingAmi(delay_s=0)
    service, _, _ = flows(redis, ami)
    await service.transfer(call, mode="attended")
    (atxfer,) = ami.sent("Atxfer")
    assert atxfer["Channel"] == SEAT and atxfer["Exten"] == f"110*{call}"
    await (service.complete_attended(call) if end == "complete" else service.cancel_attended(call))
    assert await redis.get(transfer_claim(call)) is None
    if end == "cancel":
        (hangup,) = ami.sent("Hangup")
        assert hangup["Channel"].startswith("/^Local\\/(110|12345)\\*")


async def test_a_three_way_holds_the_claim_only_while_it_sets_the_bridge_up(redis: Redis, call: str) -> None:
    ami = RecordingAmi()
    _, conference, _ = flows(redis, ami)
    first, second = await outcomes(conference.three_way(call), conference.three_way(call))
    assert isinstance(first, dict) and isinstance(second, TransferInProgress)
    assert len(ami.sent("Redirect")) == 1 and len(ami.sent("Originate")) == 1
    assert await redis.get(transfer_claim(call)) is None, "set up: the claim is free again"


async def test_the_claim_expires_if_nothing_ever_releases_it(redis: Redis, call: str) -> None:
    ami = RecordingAmi(delay_s=0)
    service, _, _ = flows(redis, ami)
    await service.transfer(call)
    ttl = await redis.ttl(transfer_claim(call))
    assert 0 < ttl <= 120

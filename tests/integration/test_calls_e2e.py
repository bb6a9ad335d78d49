"""Real calls through the real stack: SIPp trunk caller -> Asterisk 22 -> FastAGI intake -> queue ->
SIPp seat; the AMI listener records it; the HTTP API reads back what happened."""

from __future__ import annotations

import asyncio

import pytest
from e2e_support import Api, call, new_caller, sources_of, timeline_types

from hotline.contracts import Service
from hotline.names import QUEUE_BY_SERVICE
from operations.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize("service", [Service.HOTLINE_12345, Service.POLICE_110])
async def test_answered_call_is_recorded_with_timeline(stack: Stack, seats: dict, api: Api,
                                                        service: Service) -> None:
    caller = new_caller()
    await call(stack, service.value, caller, talk_s=2.0)
    c = await api.call_of(caller)

    assert c["service"] == service.value
    assert c["queue"] == QUEUE_BY_SERVICE[service]
    assert c["seat"] in stack.site.operators[service], "answered by a seat of the right platform"
    assert c["outcome"] == "resolved_on_call" and c["outcome_source"] == "auto"
    types = timeline_types(c)
    for expected in ("arrived", "queued", "ringing", "answered", "bridged", "hangup"):
        assert expected in types, f"{expected} missing from {types}"
    assert sources_of(c, "arrived") == {"agi", "ami"}, "intake and AMI both saw the arrival"
    agi_arrival = next(e for e in c["timeline"] if e["type"] == "arrived" and e["source"] == "agi")
    assert agi_arrival["data"]["intake"] == "ok"
    # The caller talked ~2 s after answer; waiting is short because a seat was free.
    assert 1.0 <= c["talk_s"] <= 4.0, c
    assert 0 <= c["wait_s"] < 3.0, c
    assert c["total_s"] >= c["talk_s"]


async def test_caller_hanging_up_in_queue_is_abandoned(stack: Stack, seats: dict, api: Api) -> None:
    assert stack.ami is not None
    queue = QUEUE_BY_SERVICE[Service.POLICE_110]
    members = stack.site.operators[Service.POLICE_110]
    for m in members:  # every 110 operator on a break: the caller waits with music
        await stack.ami.client.action({"Action": "QueuePause", "Queue": queue,
                                       "Interface": f"PJSIP/{m}", "Paused": "true"})
    try:
        caller = new_caller()
        await call(stack, "110", caller, talk_s=1.5)
        c = await api.call_of(caller)
    finally:
        for m in members:
            await stack.ami.client.action({"Action": "QueuePause", "Queue": queue,
                                           "Interface": f"PJSIP/{m}", "Paused": "false"})
    assert c["outcome"] == "abandoned"
    assert c["seat"] is None and c["answered_at"] is None
    assert "abandoned" in timeline_types(c)
    assert c["wait_s"] >= 1.0


async def test_fastagi_down_call_still_reaches_a_seat(stack: Stack, seats: dict, api: Api) -> None:
    await stack.stop_agi()
    try:
        caller = new_caller()
        await call(stack, "12345", caller, talk_s=1.5)
        c = await api.call_of(caller)
    finally:
        await stack.start_agi()
    assert c["seat"] in stack.site.operators[Service.HOTLINE_12345], "fail-open: queued on defaults"
    assert c["outcome"] == "resolved_on_call"
    assert sources_of(c, "arrived") == {"ami"}, "recorded from AMI alone"


async def test_redis_restart_degrades_intake_without_losing_calls(stack: Stack, seats: dict,
                                                                  api: Api) -> None:
    assert stack.redis_server is not None
    port = stack.redis_server.port
    await asyncio.to_thread(stack.redis_server.stop)
    try:
        caller = new_caller()
        await call(stack, "12345", caller, talk_s=1.5)
        c = await api.call_of(caller)
        agi = next(e for e in c["timeline"] if e["type"] == "arrived" and e["source"] == "agi")
        assert agi["data"]["intake"] == "degraded"
        assert c["seat"] is not None and c["outcome"] == "resolved_on_call"
    finally:
        from operations.redis_server import RedisServer

        stack.redis_server = RedisServer(port=port)
        await asyncio.to_thread(stack.redis_server.start)
    caller = new_caller()
    await call(stack, "12345", caller, talk_s=1.0)
    c = await api.call_of(caller)
    agi = next(e for e in c["timeline"] if e["type"] == "arrived" and e["source"] == "agi")
    assert agi["data"]["intake"] == "ok", "intake recovers once Redis is back"


async def test_asterisk_restart_ami_reconnects_and_records_later_calls(stack: Stack, seats: dict,
                                                                       api: Api) -> None:
    assert stack.asterisk is not None and stack.ami is not None
    logins = stack.ami.client.logins
    await asyncio.to_thread(stack.asterisk.kill)
    await asyncio.to_thread(stack.asterisk.start)
    for _ in range(150):
        if stack.ami.client.logins > logins and stack.ami.client.connected:
            break
        await asyncio.sleep(0.1)
    assert stack.ami.client.logins > logins, "AMI client logged in again after the restart"
    for seat in seats.values():  # phones re-register after a PBX restart, as real ones do
        await asyncio.to_thread(seat.reregister)
    caller = new_caller()
    await call(stack, "12345", caller, talk_s=1.5)
    c = await api.call_of(caller)
    assert c["outcome"] == "resolved_on_call" and c["seat"] is not None


async def test_dialplan_reload_through_ami_keeps_live_calls(stack: Stack, seats: dict, api: Api) -> None:
    from agents.sipp import place_call
    from operations.reload import reload_via_ami

    assert stack.asterisk is not None
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=5000,
                     local_ip=stack.site.trunk_hosts[0])
    live = await api.call_of(caller, until="answered_at")
    assert live["ended_at"] is None, "the call is up while we reload"
    await asyncio.to_thread(stack.asterisk.prepare)  # re-render asterisk_conf/ as an admin's edit would
    result = await reload_via_ami(stack.asterisk)
    assert result and all(v == "Success" for v in result.values()), result
    rc = await asyncio.to_thread(run.wait, 30)
    assert rc == 0, f"the caller's call survived the reload: {run.errors()}"
    c = await api.call_of(caller)
    assert c["outcome"] == "resolved_on_call"
    assert c["talk_s"] >= 3.5, "talk went on to the caller's own hangup"


async def test_blind_transfer_to_110_is_recorded_as_transferred_110(stack: Stack, seats: dict,
                                                                    api: Api) -> None:
    """A 12345 seat blind-transfers the caller to a 110 seat (AMI BlindTransfer, as the built-in
    ``##`` does): the timeline has the transfer and the automatic outcome is ``transferred_110``."""
    from agents.sipp import place_call

    assert stack.ami is not None
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=5000,
                     local_ip=stack.site.trunk_hosts[0])
    live = await api.call_of(caller, until="answered_at")
    seat = live["seat"]
    channels = await stack.ami.client.action({"Action": "CoreShowChannels"}, as_list=True)
    seat_chan = next(m["Channel"] for m in channels if m.get("Event") == "CoreShowChannel"
                     and m.get("Linkedid") == live["linkedid"] and m["Channel"].startswith(f"PJSIP/{seat}-"))
    target = stack.site.operators[Service.POLICE_110][0]
    resp = await stack.ami.client.action({"Action": "BlindTransfer", "Channel": seat_chan,
                                          "Context": "from-seats", "Exten": target})
    assert resp.get("Response") == "Success", resp
    assert await asyncio.to_thread(run.wait, 30) == 0, run.errors()
    c = await api.call_of(caller)
    transfers = [e for e in c["timeline"] if e["type"] == "transferred"]
    assert transfers and transfers[0]["data"]["kind"] == "blind"
    assert transfers[0]["data"]["target"] == target
    assert transfers[0]["data"]["target_service"] == "110"
    assert transfers[0]["seat"] == seat
    assert c["outcome"] == "transferred_110"


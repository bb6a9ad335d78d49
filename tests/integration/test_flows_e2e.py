"""Call flows on the real stack: the operator presses the one-touch transfer code on the phone
(SIP INFO DTMF), the caller is moved to the other platform, the first seat is freed."""

from __future__ import annotations

import asyncio

import pytest
from e2e_support import Api, new_caller

from hotline.contracts import Service
from hotline.names import QUEUE_BY_SERVICE
from hotline.sipp import Seat, place_call
from hotline.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _pause(stack: Stack, service: Service, paused: bool, except_seat: str | None = None) -> None:
    assert stack.ami is not None
    for m in stack.site.operators[service]:
        if m != except_seat:
            await stack.ami.client.action({"Action": "QueuePause", "Queue": QUEUE_BY_SERVICE[service],
                                           "Interface": f"PJSIP/{m}",
                                           "Paused": "true" if paused else "false"})


async def test_one_touch_key_moves_the_caller_from_12345_to_110(stack: Stack, seats: dict, api: Api) -> None:
    assert stack.secrets is not None
    # One 12345 seat that presses *1 one second after answering; the others on a break.
    presser = stack.site.operators[Service.HOTLINE_12345][0]
    seats[presser].stop()
    keyed = Seat(presser, stack.secrets.sip_passwords[presser], stack.sip_address, port=seats[presser].port,
                 dtmf=stack.site.feature_codes["one_touch_transfer"], dtmf_after_ms=1000)
    await asyncio.to_thread(keyed.reregister)
    await _pause(stack, Service.HOTLINE_12345, True, except_seat=presser)
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=6000,
                         local_ip=stack.site.trunk_hosts[0])
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
        c = await api.call_of(caller)
    finally:
        await _pause(stack, Service.HOTLINE_12345, False)
        keyed.stop()
        await asyncio.to_thread(seats[presser].reregister)
    types = [e["type"] for e in c["timeline"]]
    assert "transferred" in types, types
    xfer = next(e for e in c["timeline"] if e["type"] == "transferred")
    assert xfer["data"]["target_service"] == "110" and xfer["seat"] == presser
    answered = [e for e in c["timeline"] if e["type"] == "answered"]
    assert [e["seat"] for e in answered][0] == presser
    assert answered[-1]["seat"] in stack.site.operators[Service.POLICE_110], "a 110 seat took the caller"
    assert c["outcome"] == "transferred_110"


async def test_api_transfer_from_110_to_12345_and_bad_requests(stack: Stack, seats: dict, api: Api) -> None:
    import aiohttp

    assert stack.secrets is not None
    op = {"Authorization": f"Bearer {stack.secrets.token_for('operator')}"}
    url = f"{stack.api_url}/api/calls/{{}}/transfer"
    async with aiohttp.ClientSession(headers=op) as http:
        async with http.post(url.format("no-such-call.1"), json={}) as r:
            assert r.status == 404 and (await r.json())["error_id"] == "unknown_call"
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="110", caller=caller, talk_ms=7000,
                         local_ip=stack.site.trunk_hosts[0])
        live = await api.call_of(caller, until="answered_at")
        lid = live["linkedid"]
        async with http.post(url.format(lid), json={"target": "110"}) as r:
            assert r.status == 400 and (await r.json())["error_id"] == "same_platform"
        async with http.post(url.format(lid), json={"target": "119"}) as r:
            assert r.status == 400 and (await r.json())["error_id"] == "validation_failed"
        async with http.post(url.format(lid), json={}) as r:
            assert r.status == 202, await r.text()
            assert (await r.json())["target"] == "12345"
        async with http.post(url.format(lid), json={}) as r:
            assert r.status == 409 and (await r.json())["error_id"] == "transfer_in_progress"
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
        c = await api.call_of(caller)
        async with http.post(url.format(lid), json={}) as r:
            assert r.status == 409 and (await r.json())["error_id"] == "call_not_bridged"
    answered = [e["seat"] for e in c["timeline"] if e["type"] == "answered"]
    assert answered[0] in stack.site.operators[Service.POLICE_110]
    assert answered[-1] in stack.site.operators[Service.HOTLINE_12345]
    assert c["outcome"] == "transferred_12345"


async def test_nobody_answers_at_110_the_caller_comes_back_to_the_seat(stack: Stack, seats: dict,
                                                                       api: Api) -> None:
    import aiohttp

    assert stack.secrets is not None
    op = {"Authorization": f"Bearer {stack.secrets.token_for('operator')}"}
    await _pause(stack, Service.POLICE_110, True)  # everyone at 110 on a break
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=12000,
                         local_ip=stack.site.trunk_hosts[0])
        live = await api.call_of(caller, until="answered_at")
        first_seat = live["seat"]
        async with aiohttp.ClientSession(headers=op) as http, \
                http.post(f"{stack.api_url}/api/calls/{live['linkedid']}/transfer", json={}) as r:
            assert r.status == 202, await r.text()
        assert await asyncio.to_thread(run.wait, 60) == 0, f"the caller was never dropped: {run.errors()}"
        c = await api.call_of(caller)
    finally:
        await _pause(stack, Service.POLICE_110, False)
    types = [e["type"] for e in c["timeline"]]
    assert "transferred" in types and "transfer_failed" in types, types
    answered = [e["seat"] for e in c["timeline"] if e["type"] in ("answered",)]
    assert answered[0] == first_seat
    assert c["outcome"] == "resolved_on_call", ("the hand-over failed, the call stayed", " ".join(types))
    assert c["seat"] == first_seat and answered[-1] == first_seat, "back with the first seat"
    assert c["talk_s"] >= 8, "the caller talked on after coming back"

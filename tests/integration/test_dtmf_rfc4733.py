"""The one-touch transfer code pressed as a real phone presses it: RFC 4733 telephone-events in the
seat's RTP (SIPp plays a pcap of the keys), not SIP INFO. Asterisk must act on the in-band events."""

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


async def test_one_touch_key_as_rfc4733_events_moves_the_caller_to_110(stack: Stack, seats: dict,
                                                                       api: Api) -> None:
    assert stack.secrets is not None
    # One 12345 seat that presses *1 in its RTP one second after answering; the others on a break.
    presser = stack.site.operators[Service.HOTLINE_12345][0]
    seats[presser].stop()
    keyed = Seat(presser, stack.secrets.sip_passwords[presser], stack.sip_address, port=seats[presser].port,
                 dtmf=stack.site.feature_codes["one_touch_transfer"], dtmf_after_ms=1000,
                 dtmf_mode="rfc4733")
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
    assert keyed.uas is not None and "INFO" not in (keyed.uas.workdir / "scenario.xml").read_text()
    types = [e["type"] for e in c["timeline"]]
    assert "transferred" in types, f"Asterisk did not act on the RFC 4733 keys: {types}"
    xfer = next(e for e in c["timeline"] if e["type"] == "transferred")
    assert xfer["data"]["target_service"] == "110" and xfer["seat"] == presser
    answered = [e for e in c["timeline"] if e["type"] == "answered"]
    assert answered[0]["seat"] == presser
    assert answered[-1]["seat"] in stack.site.operators[Service.POLICE_110], "a 110 seat took the caller"
    assert c["outcome"] == "transferred_110"

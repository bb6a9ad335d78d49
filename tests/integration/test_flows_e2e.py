"""Call flows on the real stack: the operator presses the one-touch transfer code on the phone
(SIP INFO DTMF), the caller is moved to the other platform, the first seat is freed."""

from __future__ import annotations

import asyncio

import pytest
from e2e_support import Api, count_datagrams, new_caller, pause_seats, supervisor_phone

from agents.sipp import SAMPLE_AUDIO_PCAP, Seat, place_call
from hotline.contracts import Service
from operations.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize("dtmf_mode", ["info", "rfc4733"])
async def test_one_touch_key_moves_the_caller_from_12345_to_110(stack: Stack, seats: dict, api: Api,
                                                                 dtmf_mode: str) -> None:
    """The key as SIP INFO, and as RFC 4733 telephone-events in the seat's RTP (as phones send)."""
    assert stack.secrets is not None
    # One 12345 seat that presses *1 one second after answering; the others on a break.
    presser = stack.site.operators[Service.HOTLINE_12345][0]
    seats[presser].stop()
    keyed = Seat(presser, stack.secrets.sip_passwords[presser], stack.sip_address, port=seats[presser].port,
                 dtmf=stack.site.feature_codes["one_touch_transfer"], dtmf_after_ms=1000,
                 dtmf_mode=dtmf_mode)
    await asyncio.to_thread(keyed.reregister)
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat=presser)
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=6000,
                         local_ip=stack.site.trunk_hosts[0])
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
        c = await api.call_of(caller)
    finally:
        await pause_seats(stack, Service.HOTLINE_12345, False)
        keyed.stop()
        await asyncio.to_thread(seats[presser].reregister)
    if dtmf_mode == "rfc4733":
        assert keyed.uas is not None and "INFO" not in (keyed.uas.workdir / "scenario.xml").read_text()
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
    await pause_seats(stack, Service.POLICE_110, True)  # everyone at 110 on a break
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
        await pause_seats(stack, Service.POLICE_110, False)
    types = [e["type"] for e in c["timeline"]]
    assert "transferred" in types and "transfer_failed" in types, types
    answered = [e["seat"] for e in c["timeline"] if e["type"] in ("answered",)]
    assert answered[0] == first_seat
    assert c["outcome"] == "resolved_on_call", ("the hand-over failed, the call stayed", " ".join(types))
    assert c["seat"] == first_seat and answered[-1] == first_seat, "back with the first seat"
    assert c["talk_s"] >= 8, "the caller talked on after coming back"


async def _post(stack: Stack, path: str, body: dict, role: str = "operator") -> tuple[int, dict]:
    import aiohttp

    assert stack.secrets is not None
    headers = {"Authorization": f"Bearer {stack.secrets.token_for(role)}"}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.post(f"{stack.api_url}{path}", json=body) as r:
        return r.status, await r.json()


async def _bridge_members(stack: Stack, room: str) -> list[str]:
    assert stack.ami is not None
    # An empty/unknown bridge answers with one Error, a live one with an event list.
    msgs = await asyncio.wait_for(stack.ami.client.manager.send_action(
        {"Action": "ConfbridgeList", "Conference": room}), 5)
    msgs = msgs if isinstance(msgs, list) else [msgs]
    return [m["Channel"] for m in msgs if m.get("Event") == "ConfbridgeList"]


async def test_three_way_then_the_12345_seat_leaves(stack: Stack, seats: dict, api: Api) -> None:
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=9000,
                     local_ip=stack.site.trunk_hosts[0])
    live = await api.call_of(caller, until="answered_at")
    lid, first_seat = live["linkedid"], live["seat"]
    status, body = await _post(stack, f"/api/calls/{lid}/conference", {})
    assert status == 202, body
    assert body["invited"] == "110"
    members: list[str] = []
    for _ in range(50):
        members = await _bridge_members(stack, lid)
        if len(members) == 3:
            break
        await asyncio.sleep(0.1)
    assert len(members) == 3, f"caller, 12345 seat and 110 in one bridge: {members}"
    # The 12345 seat leaves; the caller and 110 go on.
    seat_chan = next(m for m in members if m.startswith(f"PJSIP/{first_seat}-"))
    assert stack.ami is not None
    await stack.ami.client.action({"Action": "Hangup", "Channel": seat_chan})
    await asyncio.sleep(0.5)
    members = await _bridge_members(stack, lid)
    assert len(members) == 2 and not any(m.startswith(f"PJSIP/{first_seat}-") for m in members), members
    assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
    await asyncio.sleep(0.5)
    assert await _bridge_members(stack, lid) == [], "the caller hung up: the bridge is closed, no seat held"
    c = await api.call_of(caller)
    joined = [e for e in c["timeline"] if e["type"] == "conference_joined"]
    parties = {e["data"]["party"] for e in joined}
    assert "caller" in parties and first_seat in parties and len(joined) >= 3, joined
    assert any(e["type"] == "conference_left" and e["data"]["party"] == first_seat for e in c["timeline"])
    assert c["outcome"] == "three_way" and c["outcome_detail"] == "12345", \
        "undecided: the platform that took the call keeps it"
    # The operators agreed that 110 takes it: recorded as theirs.
    import aiohttp

    assert stack.secrets is not None
    headers = {"Authorization": f"Bearer {stack.secrets.token_for('operator')}"}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.put(f"{stack.api_url}/api/calls/{lid}/outcome",
                     json={"outcome": "three_way", "detail": "110"}) as r:
        assert r.status == 200, await r.text()
        agreed = await r.json()
    assert agreed["outcome"] == "three_way" and agreed["outcome_detail"] == "110"
    assert agreed["outcome_source"] == "operator"


async def test_supervisor_listens_to_a_live_call_and_it_is_audited(stack: Stack, seats: dict,
                                                                    api: Api) -> None:
    sup = stack.site.supervisors[0]
    async with supervisor_phone(stack, sup) as rtp:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="110", caller=caller, talk_ms=7000,
                         local_ip=stack.site.trunk_hosts[0], audio_pcap=SAMPLE_AUDIO_PCAP)
        live = await api.call_of(caller, until="answered_at")
        status, body = await _post(stack, f"/api/calls/{live['linkedid']}/spy",
                                   {"supervisor": sup, "mode": "listen"}, role="supervisor")
        assert status == 202, body
        status, body = await _post(stack, f"/api/calls/{live['linkedid']}/spy",
                                   {"supervisor": sup, "mode": "listen"}, role="operator")
        assert status == 403, "operators cannot spy"
        received = await count_datagrams(rtp, want=20, within_s=6)
        assert received > 20, f"RTP reaches the supervisor's phone: {received} packets"
        assert await asyncio.to_thread(run.wait, 30) == 0, run.errors()
    c = await api.call_of(caller)
    spied = [e for e in c["timeline"] if e["type"] == "supervised"]
    assert spied and spied[0]["data"]["supervisor"] == sup and spied[0]["data"]["mode"] == "listen"


async def test_linkage_brings_119_into_the_call(stack: Stack, seats: dict, api: Api) -> None:
    from agents.sipp import SippRun, seat_scenario

    assert stack.site.linkage_trunk is not None
    host, port = stack.site.linkage_trunk
    gateway = SippRun([stack.sip_address, "-i", host, "-p", str(port), "-key", "seat", "119",
                       "-mi", host, "-mp", "0", "-nostdin"], seat_scenario(50)).start()
    await asyncio.sleep(0.3)
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=7000,
                         local_ip=stack.site.trunk_hosts[0])
        live = await api.call_of(caller, until="answered_at")
        status, body = await _post(stack, f"/api/calls/{live['linkedid']}/linkage", {"hotline": "fire"})
        assert status == 400 and body["error_id"] == "unknown_hotline"
        status, body = await _post(stack, f"/api/calls/{live['linkedid']}/linkage", {"hotline": "119"})
        assert status == 202, body
        members: list[str] = []
        for _ in range(50):
            members = await _bridge_members(stack, live["linkedid"])
            if any("hl-119" in m for m in members):
                break
            await asyncio.sleep(0.1)
        log_tail = (stack.asterisk.paths.host_dir("log") / "messages.log").read_text()[-2500:] \
            if stack.asterisk else ""
        assert any("hl-119" in m for m in members), (members, log_tail)
        assert await asyncio.to_thread(run.wait, 30) == 0, run.errors()
    finally:
        gateway.stop()
    c = await api.call_of(caller)
    assert any(e["type"] == "conference_joined" and e["data"]["party"] == "linkage" for e in c["timeline"])
    assert c["outcome"] == "emergency_linked" and c["outcome_detail"] == "119"


@pytest.mark.parametrize("finish", ["complete", "cancel"])
async def test_attended_transfer_complete_and_cancel(stack: Stack, seats: dict, api: Api,
                                                     finish: str) -> None:
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=8000,
                     local_ip=stack.site.trunk_hosts[0])
    live = await api.call_of(caller, until="answered_at")
    lid, first_seat = live["linkedid"], live["seat"]
    status, body = await _post(stack, f"/api/calls/{lid}/transfer", {"mode": "attended"})
    assert status == 202 and body["mode"] == "attended", body
    # The seat is put through to 110 first (consultation); the caller waits with music.
    for _ in range(50):
        c = await api.get(f"/api/calls/{lid}")
        if any(e["type"] == "answered" and e["seat"] in stack.site.operators[Service.POLICE_110]
               for e in c["timeline"]):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the seat talks to 110 before deciding
    status, body = await _post(stack, f"/api/calls/{lid}/transfer/{finish}", {})
    assert status == 202, body
    status, body = await _post(stack, f"/api/calls/{lid}/transfer/{finish}", {})
    assert status == 409, "nothing left to complete or cancel"
    assert await asyncio.to_thread(run.wait, 40) == 0, f"the caller was never dropped: {run.errors()}"
    c = await api.call_of(caller)
    if finish == "complete":
        assert c["outcome"] == "transferred_110", [e for e in c["timeline"] if e["type"] == "transferred"]
        assert c["seat"] in stack.site.operators[Service.POLICE_110]
    else:
        assert c["outcome"] == "resolved_on_call"
        assert c["seat"] == first_seat and c["talk_s"] >= 6, "back with the first seat to the end"


async def test_supervisor_listens_to_a_three_way_bridge(stack: Stack, seats: dict, api: Api) -> None:
    sup = stack.site.supervisors[0]
    async with supervisor_phone(stack, sup) as rtp:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=9000,
                         local_ip=stack.site.trunk_hosts[0], audio_pcap=SAMPLE_AUDIO_PCAP)
        live = await api.call_of(caller, until="answered_at")
        lid = live["linkedid"]
        status, body = await _post(stack, f"/api/calls/{lid}/conference", {})
        assert status == 202, body
        for _ in range(50):
            if len(await _bridge_members(stack, lid)) == 3:
                break
            await asyncio.sleep(0.1)
        status, body = await _post(stack, f"/api/calls/{lid}/spy", {"supervisor": sup, "mode": "listen"},
                                   role="supervisor")
        assert status == 202, body
        received = await count_datagrams(rtp, want=20, within_s=6)
        assert received > 20, f"RTP from the three-way bridge reaches the supervisor: {received}"
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
    c = await api.call_of(caller)
    assert any(e["type"] == "supervised" for e in c["timeline"])
    assert any(e["type"] == "conference_joined" for e in c["timeline"])


async def test_builtin_blind_transfer_to_a_seat(stack: Stack, seats: dict, api: Api) -> None:
    """Asterisk's own ``##`` + a seat (features.conf blindxfer) still reaches that seat: the
    TRANSFER_CONTEXT the seat's *2 needs also holds the seats' extensions."""
    assert stack.secrets is not None and stack.ami is not None
    presser = stack.site.operators[Service.HOTLINE_12345][0]
    target = stack.site.operators[Service.POLICE_110][0]
    dials: list[dict] = []

    def observe(ev: dict) -> None:
        if ev.get("Event") == "DialBegin" and str(ev.get("DestChannel", "")).startswith(f"PJSIP/{target}-"):
            dials.append(ev)

    stack.ami.observers.append(observe)
    seats[presser].stop()
    keyed = Seat(presser, stack.secrets.sip_passwords[presser], stack.sip_address, port=seats[presser].port,
                 dtmf="##" + target, dtmf_after_ms=1000, dtmf_mode="info")
    await asyncio.to_thread(keyed.reregister)
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat=presser)
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=6000,
                         local_ip=stack.site.trunk_hosts[0])
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
        c = await api.call_of(caller)
    finally:
        stack.ami.observers.remove(observe)
        await pause_seats(stack, Service.HOTLINE_12345, False)
        keyed.stop()
        await asyncio.to_thread(seats[presser].reregister)
    assert dials, "Asterisk never rang the seat named after ##"
    xfer = [e for e in c["timeline"] if e["type"] == "transferred"]
    assert xfer and xfer[0]["data"]["kind"] == "blind" and xfer[0]["data"]["target"] == target, c["timeline"]
    assert xfer[0]["data"]["target_service"] == "110"

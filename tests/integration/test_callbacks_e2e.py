"""Outbound calls on the real stack: the end-of-call rating (一次一评), a work order's 回访 on the
outbound trunk, missed-call callbacks through a seat, and the limits that protect the lines.

Callers and phones are SIPp; their audio ports are sockets the tests own, which count what
Asterisk plays (the prompts) and send the keys as RFC 4733 telephone-events, as a phone does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from e2e_support import Api, new_caller, pause_seats

from agents.rtp_dtmf import event_packets, rtp_payload
from agents.sipp import Phone, Seat, place_call
from app import keys
from app.callbacks.scheduler import CallbackScheduler
from hotline.contracts import Service
from operations.stack import Stack

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Media:
    """A phone's audio port: counts Asterisk's RTP and sends keys back to where it comes from."""

    def __init__(self, ip: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))  # the address the SIPp side puts in its SDP
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.first_at: float | None = None
        self.peer: tuple[str, int] | None = None
        self.seq, self.ts = 1000, 160000
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            while True:
                try:
                    _, addr = self.sock.recvfrom(2048)
                except BlockingIOError:
                    break
                self.received += 1
                self.peer = addr
                self.first_at = self.first_at or time.monotonic()

    async def heard(self, timeout: float = 15.0) -> float:
        deadline = time.monotonic() + timeout
        while self.first_at is None:
            assert time.monotonic() < deadline, "no audio from Asterisk"
            await asyncio.sleep(0.05)
        return self.first_at

    async def press(self, keys_: str, *, ssrc: int = 0x11223344) -> None:
        assert self.peer is not None
        start = time.monotonic()
        # sequence numbers and timestamps rise across presses, or Asterisk takes a key for a repeat
        packets = event_packets(keys_, start_seq=self.seq, start_ts=self.ts)
        for p in packets:
            await asyncio.sleep(max(0.0, start + p.at_ms / 1000 - time.monotonic()))
            self.sock.sendto(rtp_payload(p, ssrc=ssrc, payload_type=101), self.peer)
        self.seq += len(packets) + 10
        self.ts += 8000 * 5

    def close(self) -> None:
        self._task.cancel()
        self.sock.close()


def scheduler(stack: Stack) -> CallbackScheduler:
    assert stack._runner is not None
    return stack._runner.app[keys.CALLBACKS]


@contextlib.asynccontextmanager
async def seats_hanging_up(stack: Stack, seats: dict[str, Seat], ids: list[str],
                           after_ms: int) -> AsyncIterator[None]:
    """These seats answer and hang up first; the platform's other operators are paused."""
    assert stack.secrets is not None
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat=None)
    mine: list[Seat] = []
    for seat_id in ids:
        seats[seat_id].stop()
        s = Seat(seat_id, stack.secrets.sip_passwords[seat_id], stack.sip_address, port=seats[seat_id].port,
                 hangup_after_ms=after_ms)
        await asyncio.to_thread(s.reregister)
        mine.append(s)
    assert stack.ami is not None
    for seat_id in ids:
        await stack.ami.client.action({"Action": "QueuePause", "Queue": "hotline-12345",
                                       "Interface": f"PJSIP/{seat_id}", "Paused": "false"})
    try:
        yield
    finally:
        for s in mine:
            s.stop()
        for seat_id in ids:
            await asyncio.to_thread(seats[seat_id].reregister)
        await pause_seats(stack, Service.HOTLINE_12345, False)


async def rated_call(stack: Stack, api: Api, keys_: list[tuple[float, str]], *, talk_s: float = 40) -> dict:
    """A caller on the trunk; the seat hangs up after 1.5 s; the caller presses ``keys_`` (seconds
    after Asterisk answered, key) and stays until Asterisk hangs up (or ``talk_s``)."""
    caller = new_caller()
    media = Media(stack.site.trunk_hosts[0])
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=int(talk_s * 1000),
                     local_ip=stack.site.trunk_hosts[0], media_port=media.port)
    try:
        t0 = await media.heard()
        for at, key in keys_:
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            await media.press(key)
        rc = await asyncio.to_thread(run.wait, talk_s + 20)
        assert rc == 0, run.errors()
        call = await api.call_of(caller, until="rating_result", timeout=30)
        call["heard_packets"] = media.received
        return call
    finally:
        media.close()
        run.close()


async def test_end_of_call_rating_keys_no_key_wrong_keys(stack: Stack, seats: dict[str, Seat],
                                                         api: Api) -> None:
    async with seats_hanging_up(stack, seats, ["1201", "1202", "1203"], after_ms=1500):
        pressed, silent, wrong = await asyncio.gather(
            rated_call(stack, api, [(5.0, "2")]),
            rated_call(stack, api, []),
            rated_call(stack, api, [(5.0, "7"), (10.5, "8")]),
        )
    assert (pressed["rating"], pressed["rating_result"]) == ("satisfied", "rated")
    assert pressed["outcome"] == "resolved_on_call"  # the rating does not change the outcome
    assert pressed["heard_packets"] > 100  # the prompt was played to the caller
    assert pressed["talk_s"] < 4  # talk time ends when the seat hangs up, not after the rating
    assert (silent["rating"], silent["rating_result"]) == (None, "no_key")
    assert (wrong["rating"], wrong["rating_result"]) == (None, "invalid")
    rated = [e for e in wrong["timeline"] if e["type"] == "rated"][0]
    assert rated["data"]["keys"] == ["7", "8"]
    async with aiohttp.ClientSession(headers=api.headers) as s, \
            s.get(f"{api.base}/api/calls/{pressed['linkedid']}/rating") as r:
        assert r.status == 200 and (await r.json())["rating"] == "satisfied"


async def test_a_caller_hanging_up_during_the_rating_prompt(stack: Stack, seats: dict[str, Seat],
                                                            api: Api) -> None:
    async with seats_hanging_up(stack, seats, ["1201"], after_ms=1500):
        call = await rated_call(stack, api, [], talk_s=4.5)
    assert (call["rating"], call["rating_result"]) == (None, "hung_up")
    assert call["outcome"] == "resolved_on_call"


# --- 回访 ----------------------------------------------------------------------------------------

class Http:
    def __init__(self, stack: Stack) -> None:
        assert stack.secrets is not None
        self.stack, self.base, self.secrets = stack, stack.api_url, stack.secrets

    async def call(self, method: str, path: str, who: str = "operator", **kw: Any) -> Any:
        role, handler = (("department", who) if who not in ("operator", "supervisor", "service", "admin")
                         else (who, None))
        token = self.secrets.token_for(role, handler) if handler else self.secrets.token_for(role)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s, \
                s.request(method, self.base + path, **kw) as r:
            body = await r.json()
            assert r.status in (200, 201), (r.status, body)
            return body


async def replied_order(http: Http, caller: str) -> str:
    """A call, its order confirmed, dispatched to the housing department, signed and replied."""
    call = f"cbtest-{caller}"
    t0 = time.time() - 60
    await http.call("POST", "/api/events", "service", json={"events": [{
        "event_id": f"{call}:arrived", "linkedid": call, "type": "arrived", "at": t0, "source": "agi",
        "service": "12345", "caller": caller, "seat": None, "data": {}}]})
    await http.call("POST", "/api/transcripts", "service", json={"segments": [{
        "call": call, "tap": f"{call}-caller", "seq": 0, "speaker": "caller", "kind": "final",
        "start": t0 + 5, "end": t0 + 9, "text": "你好我们小区的路灯坏了一个多月了晚上很黑在临河区胜利路",
        "confidence": 0.9, "seat": None}]})
    wo = await http.call("GET", f"/api/calls/{call}/work-order")
    ticket = wo["ticket"]
    await http.call("POST", f"/api/work-orders/{ticket}/confirm")
    await http.call("POST", f"/api/work-orders/{ticket}/dispatch", json={"handlers": ["housing"]})
    await http.call("POST", f"/api/work-orders/{ticket}/parts/1/sign", "housing", json={})
    await http.call("POST", f"/api/work-orders/{ticket}/parts/1/reply", "housing",
                    json={"result": "路灯已修复"})
    return ticket


async def wait_task(stack: Stack, ticket: str, state: tuple[str, ...], timeout: float = 60) -> dict:
    http = Http(stack)
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = (await http.call("GET", f"/api/work-orders/{ticket}/callbacks", "supervisor"))["tasks"]
        if last and last[-1]["state"] in state:
            return last[-1]
        await asyncio.sleep(0.3)
    raise AssertionError(f"callback of {ticket} not {state} in {timeout}s: {last}")


@contextlib.asynccontextmanager
async def phone(stack: Stack, mode: str, media: Media | None = None) -> AsyncIterator[Phone]:
    cb = stack.site.callbacks
    p = await asyncio.to_thread(Phone(cb.trunk_host, cb.trunk_port, mode, media.port if media else 0).start)
    try:
        yield p
    finally:
        p.close()


@contextlib.contextmanager
def surveys_now(stack: Stack) -> Any:
    sched = scheduler(stack)
    saved = sched.cfg
    sched.cfg = saved.model_copy(update={"survey_after": "now"})
    try:
        yield sched
    finally:
        sched.cfg = saved


async def answer_survey(stack: Stack, ticket: str, keys_: str) -> tuple[dict, int]:
    media = Media(stack.site.callbacks.trunk_host)
    async with phone(stack, "answer", media) as p:
        t0 = await media.heard(timeout=30)
        await asyncio.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
        await media.press(keys_[0])  # during the introduction: it answers the first question
        await asyncio.sleep(3.0)
        await media.press(keys_[1])  # during the second question
        task = await wait_task(stack, ticket, ("done", "failed"))
        assert p.invites() == 1
    heard = media.received
    media.close()
    return task, heard


async def test_callback_survey_reopens_when_not_satisfied_and_closes_when_satisfied(stack: Stack) -> None:
    http = Http(stack)
    with surveys_now(stack):
        unhappy = await replied_order(http, new_caller())
        task, heard = await answer_survey(stack, unhappy, "13")
        assert heard > 50  # the caller heard the prompts (RTP counted)
        assert (task["state"], task["result"]) == ("done", "reopened")
        assert task["answers"]["resolved"] is True and task["answers"]["rating"] == "unsatisfied"
        order = await http.call("GET", f"/api/work-orders/{unhappy}", "supervisor")
        assert order["work_order"]["status"] == "reopened"
        assert order["parts"][0]["state"] == "reopened"  # back to its handler
        reopen = [h for h in order["history"] if h["step"] == "reopen"][-1]
        assert "不满意" in reopen["note"]

        happy = await replied_order(http, new_caller())
        task, _ = await answer_survey(stack, happy, "11")
        assert (task["state"], task["result"]) == ("done", "closed")
        order = await http.call("GET", f"/api/work-orders/{happy}", "supervisor")
        assert order["work_order"]["status"] == "closed"
        steps = [h["step"] for h in order["history"]]
        assert "start_callback" in steps and "callback_attempt" in steps


async def test_callback_busy_then_answered_and_never_answered_fails(stack: Stack) -> None:
    http = Http(stack)
    with surveys_now(stack):
        ticket = await replied_order(http, new_caller())
        async with phone(stack, "busy") as busy:
            deadline = time.monotonic() + 30
            while busy.invites() < 1:
                assert time.monotonic() < deadline, "the busy phone was never rung"
                await asyncio.sleep(0.2)
        task, _ = await answer_survey(stack, ticket, "12")
        assert (task["state"], task["result"], task["attempts"]) == ("done", "closed", 2)
        first = task["attempts_log"][0]
        assert first["result"] == "busy" and first["cause"] == 17  # SIP 486 -> cause 17 (user busy)

        never = await replied_order(http, new_caller())
        async with phone(stack, "ring") as ringing:
            task = await wait_task(stack, never, ("failed",), timeout=60)
            assert ringing.invites() == 2  # attempts = 2
        assert task["result"] == "callback_failed"
        assert [a["result"] for a in task["attempts_log"]] == ["no_answer", "no_answer"]
        order = await http.call("GET", f"/api/work-orders/{never}", "supervisor")
        assert order["history"][-1]["step"] == "callback_failed"


# --- missed calls, limits, restarts ------------------------------------------------------------

class AmiLog:
    """Asterisk's own word on what was dialled: DialBegin and the outbound trunk's channels."""

    def __init__(self, stack: Stack) -> None:
        assert stack.ami is not None
        self.stack, self.events = stack, []  # type: ignore[var-annotated]
        self.trunk_up: set[str] = set()
        self.max_trunk_up = 0
        stack.ami.observers.append(self.on_event)

    def on_event(self, ev: dict[str, str]) -> None:
        self.events.append((time.monotonic(), ev))
        chan = ev.get("Channel", "")
        if chan.startswith("PJSIP/callback-trunk-"):
            if ev.get("Event") == "Newchannel":
                self.trunk_up.add(chan)
                self.max_trunk_up = max(self.max_trunk_up, len(self.trunk_up))
            elif ev.get("Event") == "Hangup":
                self.trunk_up.discard(chan)

    def dials(self) -> list[str]:
        return [ev.get("DestChannel", "") for _, ev in self.events if ev.get("Event") == "DialBegin"]

    def close(self) -> None:
        assert self.stack.ami is not None
        self.stack.ami.observers.remove(self.on_event)


def hours_without_now() -> tuple[str, str]:
    """Calling hours (local time, as the scheduler reads them) that do not include this minute."""
    hour = dt.datetime.now(ZoneInfo("Asia/Shanghai")).hour
    return ("23:00", "23:59") if hour < 12 else ("00:00", "00:01")


async def abandon(stack: Stack, caller: str, wait_s: float = 2.5) -> None:
    """A caller waits in the 12345 queue (every seat paused) and hangs up."""
    await pause_seats(stack, Service.HOTLINE_12345, True)
    run = place_call(asterisk=stack.sip_address, service="12345", caller=caller,
                     talk_ms=int(wait_s * 1000), local_ip=stack.site.trunk_hosts[0])
    try:
        assert await asyncio.to_thread(run.wait, wait_s + 20) == 0, run.errors()
    finally:
        run.close()


async def missed_task(stack: Stack, caller: str, states: tuple[str, ...], timeout: float = 30,
                      kind: str = "missed") -> dict:
    http = Http(stack)
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        tasks = (await http.call("GET", "/api/callbacks", "supervisor", params={"kind": kind}))["tasks"]
        last = [t for t in tasks if t["number"] == caller]
        if last and last[0]["state"] in states:
            return last[0]
        await asyncio.sleep(0.3)
    raise AssertionError(f"no missed-call task for the caller in {states} within {timeout}s: {last}")


async def test_a_missed_call_is_called_back_through_the_next_free_seat(stack: Stack, seats: dict[str, Seat],
                                                                       api: Api) -> None:
    sched = scheduler(stack)
    saved = sched.cfg
    sched.cfg = saved.model_copy(update={"missed_within_min": 30})
    sched.missed_since = time.time()
    ami = AmiLog(stack)
    http = Http(stack)
    try:
        async with phone(stack, "answer") as p:
            listed = new_caller()
            await http.call("POST", "/api/harassment", "admin", json={"number": listed})
            # outside calling hours first (a site whose hours do not include now): nothing is dialled
            sched.cfg = sched.cfg.model_copy(update={"hours": hours_without_now()})
            caller = new_caller()
            await abandon(stack, caller)
            await abandon(stack, listed)
            assert (await api.call_of(caller))["outcome"] == "abandoned"
            task = await missed_task(stack, caller, ("scheduled",))
            assert task["waited_s"] and task["waited_s"] > 1
            await asyncio.sleep(3)
            assert p.invites() == 0 and not any("callback-trunk" in d for d in ami.dials())
            assert (await missed_task(stack, caller, ("scheduled",)))["attempts"] == 0

            # calling hours: the next free seat (1201; the others are on a break) rings first, then the caller
            await pause_seats(stack, Service.HOTLINE_12345, False, except_seat="1202")
            await pause_seats(stack, Service.HOTLINE_12345, True, except_seat="1201")
            sched.cfg = sched.cfg.model_copy(update={"hours": ("00:00", "23:59")})
            deadline = time.monotonic() + 30
            while p.invites() < 1:
                assert time.monotonic() < deadline, f"the caller's phone never rang: {ami.dials()}"
                await asyncio.sleep(0.2)
            dials = ami.dials()
            seat_at = next(i for i, d in enumerate(dials) if d.startswith("PJSIP/1201-"))
            trunk_at = next(i for i, d in enumerate(dials) if d.startswith("PJSIP/callback-trunk-"))
            assert seat_at < trunk_at, dials  # the seat first, then the caller
            # the harassment-listed caller is never called back
            blocked = await missed_task(stack, listed, ("cancelled",))
            assert blocked["result"] == "harassment" and p.invites() == 1
            # the seat (SIPp) and the caller talk; once they are bridged the test ends the callback leg
            deadline = time.monotonic() + 15
            while not any(ev.get("Event") == "BridgeEnter" and ev.get("Channel", "").startswith(
                    "PJSIP/callback-trunk-") for _, ev in ami.events):
                assert time.monotonic() < deadline, "the caller was never bridged with the seat"
                await asyncio.sleep(0.1)
            assert stack.ami is not None
            await stack.ami.client.action({"Action": "Hangup", "Channel": "/^PJSIP\\/callback-trunk-/"})
            done = await missed_task(stack, caller, ("done",))
            assert done["result"] == "connected"
            call = await api.call_of(caller)
            attempts = [e for e in call["timeline"] if e["type"] == "callback"]
            assert attempts and attempts[-1]["data"]["result"] == "connected"
    finally:
        sched.cfg = saved
        ami.close()
        await pause_seats(stack, Service.HOTLINE_12345, False)
        await http.call("DELETE", "/api/harassment", "admin", json={"number": listed})


async def _due_surveys(stack: Stack, n: int) -> list[int]:
    sched = scheduler(stack)
    from app.callbacks.store import SURVEY, add_task

    now = time.time()
    ids = []
    async with sched.db.write() as conn:
        for _ in range(n):
            number = new_caller()
            task = await add_task(conn, kind=SURVEY, platform="12345", number=number, due_at=now, now=now,
                                  max_attempts=1, dedupe_key=f"test:{number}")
            assert task is not None
            ids.append(task)
    return ids


async def _wait_tasks(stack: Stack, ids: list[int], states: tuple[str, ...],
                      timeout: float = 60) -> list[dict]:
    sched = scheduler(stack)
    deadline = time.monotonic() + timeout
    while True:
        tasks = [await sched.get(i) for i in ids]
        if all(t and t["state"] in states for t in tasks):
            return tasks  # type: ignore[return-value]
        assert time.monotonic() < deadline, tasks
        await asyncio.sleep(0.3)


async def lines_free(stack: Stack, timeout: float = 60) -> None:
    """Wait until no callback is being placed (an earlier test's call has ended)."""
    from sqlalchemy import func, select

    from app.models import CallbackTaskRow

    sched = scheduler(stack)
    deadline = time.monotonic() + timeout
    while True:
        async with sched.db.read() as conn:
            busy = (await conn.execute(select(func.count()).select_from(CallbackTaskRow)
                                       .where(CallbackTaskRow.state == "placing"))).scalar_one()
        if not busy:
            return
        assert time.monotonic() < deadline, f"{busy} callbacks still being placed"
        await asyncio.sleep(0.3)


async def test_at_most_max_outbound_calls_at_once(stack: Stack) -> None:
    await lines_free(stack)
    ami = AmiLog(stack)
    try:
        async with _hanging_phone(stack, 3000) as p:
            ids = await _due_surveys(stack, 5)
            tasks = await _wait_tasks(stack, ids, ("failed", "done"))
            assert p.invites() == 5  # every task placed once ...
        assert ami.max_trunk_up == stack.site.callbacks.max_outbound == 2  # ... never more than 2 at once
        assert all(t["attempts"] == 1 for t in tasks)
    finally:
        ami.close()


@contextlib.asynccontextmanager
async def _hanging_phone(stack: Stack, after_ms: int) -> AsyncIterator[Phone]:
    cb = stack.site.callbacks
    p = await asyncio.to_thread(Phone(cb.trunk_host, cb.trunk_port, "answer", hangup_after_ms=after_ms).start)
    try:
        yield p
    finally:
        p.close()


async def test_a_task_due_across_an_app_restart_is_placed_once(stack: Stack) -> None:
    assert stack._runner is not None and stack.ami is not None
    old = scheduler(stack)
    await stack._runner.cleanup()  # the app stops (its scheduler too) ...
    stack.ami.observers.remove(old.on_ami_event)
    async with _hanging_phone(stack, 2000) as p:
        from app.callbacks.store import SURVEY, add_task
        from app.db import Database, make_engine

        engine = make_engine(stack.settings.effective_database_url)
        try:
            db = Database(engine)
            now = time.time()
            async with db.write() as conn:  # ... while a task falls due
                task_id = await add_task(conn, kind=SURVEY, platform="12345", number=new_caller(), due_at=now,
                                         now=now, max_attempts=1, dedupe_key=f"restart:{now}")
        finally:
            await engine.dispose()
        await stack.start_api()  # ... and comes back: a second scheduler beside it, as a second instance
        new = scheduler(stack)
        stack.ami.observers.append(new.on_ami_event)
        twin = CallbackScheduler(new.db, new.calls, new.loop, new.cfg, new.platforms, new.originate,
                                 tick_s=0.05)
        await twin.ensure_slots()
        for _ in range(20):
            await asyncio.gather(twin.tick(), new.tick())
        assert task_id is not None
        await _wait_tasks(stack, [task_id], ("failed", "done"))
        await asyncio.sleep(2)
        assert p.invites() == 1
        await twin.stop()


async def test_an_operator_places_a_callback_from_a_seat_and_enters_the_result(
        stack: Stack, seats: dict[str, Seat]) -> None:
    await lines_free(stack)
    http = Http(stack)
    ticket = await replied_order(http, new_caller())  # due the next working day: waiting
    task = (await http.call("GET", f"/api/work-orders/{ticket}/callbacks", "operator"))["tasks"][0]
    assert task["state"] == "scheduled" and "*" in task["number"]  # masked for an operator
    # another department never sees this order's 回访
    token = stack.secrets.token_for("department", "urban")  # type: ignore[union-attr]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s, \
            s.get(f"{stack.api_url}/api/work-orders/{ticket}/callbacks") as r:
        assert r.status == 404
    own = await http.call("GET", f"/api/work-orders/{ticket}/callbacks", "housing")
    assert "number" not in own["tasks"][0]
    ami = AmiLog(stack)
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat="1202")
    try:
        async with phone(stack, "answer") as p:
            placed = await http.call("POST", f"/api/callbacks/{task['id']}/place", "operator",
                                     json={"seat": "1202"})
            assert placed["task"]["seat"] == "1202"
            deadline = time.monotonic() + 30
            while not any(ev.get("Event") == "BridgeEnter" and ev.get("Channel", "").startswith(
                    "PJSIP/callback-trunk-") for _, ev in ami.events):
                assert time.monotonic() < deadline, f"not bridged: {ami.dials()}"
                await asyncio.sleep(0.1)
            new = [ev.get("Channel", "") for _, ev in ami.events if ev.get("Event") == "Newchannel"]
            seat_at = next(i for i, c in enumerate(new) if c.startswith("PJSIP/1202-"))
            trunk_at = next(i for i, c in enumerate(new) if c.startswith("PJSIP/callback-trunk-"))
            assert seat_at < trunk_at, new  # the operator's seat rings first, then the caller
            assert p.invites() == 1
            assert stack.ami is not None
            await stack.ami.client.action({"Action": "Hangup", "Channel": "/^PJSIP\\/callback-trunk-/"})
        done = await wait_task(stack, ticket, ("done",))
        assert done["result"] == "connected"
        entered = await http.call("POST", f"/api/callbacks/{task['id']}/result", "operator",
                                  json={"resolved": True, "rating": "very_satisfied", "note": "群众表示满意"})
        assert (entered["task"]["state"], entered["task"]["result"]) == ("done", "closed")
        order = await http.call("GET", f"/api/work-orders/{ticket}", "supervisor")
        assert order["work_order"]["status"] == "closed"
    finally:
        ami.close()
        await pause_seats(stack, Service.HOTLINE_12345, False)


async def test_a_waiting_callback_is_cancelled_and_bad_requests_get_clear_errors(stack: Stack) -> None:
    http = Http(stack)
    ticket = await replied_order(http, new_caller())
    task = (await http.call("GET", f"/api/work-orders/{ticket}/callbacks", "supervisor"))["tasks"][0]
    cancelled = await http.call("POST", f"/api/callbacks/{task['id']}/cancel", "supervisor",
                                json={"note": "群众要求不再回访"})
    assert (cancelled["task"]["state"], cancelled["task"]["result"]) == ("cancelled", "cancelled")
    assert stack.secrets is not None
    headers = {"Authorization": f"Bearer {stack.secrets.token_for('supervisor')}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.post(f"{stack.api_url}/api/callbacks/{task['id']}/cancel", json={}) as r:
            assert r.status == 409 and (await r.json())["error_id"] == "callback.not_open"
        async with s.post(f"{stack.api_url}/api/callbacks/{task['id']}/place", json={"seat": "12;34"}) as r:
            assert r.status == 400
        async with s.post(f"{stack.api_url}/api/callbacks/{task['id']}/place", json={"seat": "1101"}) as r:
            assert r.status == 400 and (await r.json())["error_id"] == "callback.unknown_seat"  # a 110 seat
        async with s.post(f"{stack.api_url}/api/no-call", json={"number": "no digits"}) as r:
            assert r.status == 400
        async with s.post(f"{stack.api_url}/api/no-call", json={"number": "139-0000-9999"}) as r:
            assert r.status == 201 and (await r.json())["number"] == "13900009999"
    operator = {"Authorization": f"Bearer {stack.secrets.token_for('operator')}"}
    async with aiohttp.ClientSession(headers=operator) as s, \
            s.post(f"{stack.api_url}/api/callbacks/{task['id']}/cancel", json={}) as r:
        assert r.status == 403


async def test_a_waiting_caller_presses_the_key_to_be_called_back_and_keeps_their_place(
        stack: Stack, seats: dict[str, Seat], api: Api) -> None:
    await lines_free(stack)
    ami = AmiLog(stack)
    first, second, third = new_caller(), new_caller(), new_caller()
    await pause_seats(stack, Service.HOTLINE_12345, True)
    runs = []
    media = Media(stack.site.trunk_hosts[0])
    try:
        async with phone(stack, "answer") as p:
            runs.append(place_call(asterisk=stack.sip_address, service="12345", caller=first, talk_ms=9000,
                                   local_ip=stack.site.trunk_hosts[0]))
            await asyncio.sleep(1.0)
            runs.append(place_call(asterisk=stack.sip_address, service="12345", caller=second, talk_ms=40000,
                                   local_ip=stack.site.trunk_hosts[0], media_port=media.port))
            await media.heard()
            await asyncio.sleep(1.0)
            await media.press(stack.site.callbacks.queue_callback_key or "9")
            asked = await missed_task(stack, second, ("placing",), kind="requested")
            assert asked["note"] == "position 2"
            runs.append(place_call(asterisk=stack.sip_address, service="12345", caller=third, talk_ms=22000,
                                   local_ip=stack.site.trunk_hosts[0]))
            await asyncio.sleep(0.5)
            await pause_seats(stack, Service.HOTLINE_12345, False, except_seat="1202")
            await pause_seats(stack, Service.HOTLINE_12345, True, except_seat="1201")
            deadline = time.monotonic() + 40
            while p.invites() < 1:
                assert time.monotonic() < deadline, f"never called back: {ami.dials()}"
                await asyncio.sleep(0.2)
            rang_at = time.time()
            first_call = await api.call_of(first)
            assert first_call["answered_at"] < rang_at  # the caller ahead was served first ...
            third_call = await api.get("/api/calls", limit=100)
            third_row = next(c for c in third_call["calls"] if c["caller"] == third)
            assert third_row["answered_at"] is None  # ... and the one behind waits for the callback
            deadline = time.monotonic() + 15
            while not any(ev.get("Event") == "BridgeEnter" and ev.get("Channel", "").startswith(
                    "PJSIP/callback-trunk-") for _, ev in ami.events):
                assert time.monotonic() < deadline, "the callback was never bridged with the seat"
                await asyncio.sleep(0.1)
            assert stack.ami is not None
            await stack.ami.client.action({"Action": "Hangup", "Channel": "/^PJSIP\\/callback-trunk-/"})
            done = await missed_task(stack, second, ("done",), kind="requested")
            assert done["result"] == "connected"
            assert await asyncio.to_thread(runs[1].wait, 30) == 0  # was told it is registered, then hung up
            second_call = await api.call_of(second)
            assert second_call["outcome"] == "abandoned"  # left the queue (and was called back)
            assert (await api.call_of(third, timeout=40))["answered_at"] > rang_at
    finally:
        media.close()
        for r in runs:
            r.close()
        ami.close()
        await pause_seats(stack, Service.HOTLINE_12345, False)

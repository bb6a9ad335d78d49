"""The callback scheduler: places due callback tasks through AMI Originate, within the limits.

Each tick (every ``callback_tick_ms``):

1. **Missed calls.** A caller who hung up in the queue (outcome ``abandoned``) within the last
   ``missed_within_min`` and has not called again gets a ``missed`` task (once: a unique key).
2. **Recovery.** A task whose lease ran out (its app instance died mid-call) gets its attempt's
   result from what was stored (a survey's answers) or ``lost``, and frees its line.
3. **Placing.** Inside calling hours only: for each platform, as many due tasks as it has free
   outbound lines (``max_outbound``). A line is a row in ``callback_slots`` taken by a conditional
   update, and the task is claimed the same way, so two app instances never place one task twice
   nor more calls than there are lines. Numbers on the harassment list or the do-not-call list are
   never called (the task is cancelled with that reason).

A survey call (回访) rings the caller on the outbound trunk; when answered, FastAGI's survey route
plays the prompts and reports the answers (a ``surveyed`` event), which close the order
(satisfied) or reopen it (重办) with the answers as the reason. A missed-call callback rings the
platform's next free seat first (behind every inbound caller), then dials the caller. A busy line,
no answer, a refusal, an answered call with no answers: retried with backoff up to ``attempts``,
then ``callback_failed``. Every attempt is recorded with its SIP cause, in the task, in the order's
history and in the call's timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.background import Background
from app.callbacks.store import (
    CANCELLED,
    DONE,
    FAILED,
    MISSED,
    PLACING,
    REQUESTED,
    SCHEDULED,
    SURVEY,
    add_task,
    dialable,
    survey_due,
    task_row,
)
from app.calls.services import CallService
from app.db import Database
from app.models import Call, CallEventRow, NoCallRow
from app.models import CallbackAttemptRow as A
from app.models import CallbackSlotRow as L
from app.models import CallbackTaskRow as K
from app.work_orders.history import Moves, load_order, parts_of
from app.work_orders.lifecycle import State, Step
from app.work_orders.loop import SYSTEM, WorkOrderLoop
from hotline.callback_site import SATISFIED_RATINGS, CallbacksTable
from hotline.contracts import CallEvent, CallEventType
from hotline.names import (
    CALLBACK_ID_PREFIX,
    CALLBACK_TRUNK,
    CTX_CALLBACK,
    CTX_CALLBACK_SEAT,
    UEV_CALLBACK,
    VAR_CALL_SERVICE,
    VAR_CALLBACK_ATTEMPT,
    VAR_CALLBACK_NUMBER,
    VAR_CALLBACK_SEAT_WAIT,
    VAR_CALLBACK_TASK,
    VAR_QUEUE_POSITION,
)
from hotline.phone import mask_number
from hotline.prompts import PromptError, load_prompts, synthesize

log = logging.getLogger(__name__)

Originate = Callable[[dict[str, Any], float], Awaitable[list[dict[str, str]]]]

# OriginateResponse's Reason: the last control frame Asterisk saw on the outbound channel.
REASONS = {"0": "failed", "1": "rejected", "3": "no_answer", "4": "answered", "5": "busy", "8": "congestion"}
CAUSES = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected", 1: "unallocated", 3: "unallocated",
          27: "unavailable", 34: "congestion", 38: "congestion", 41: "congestion", 42: "congestion"}
DIAL_STATUS = {"ANSWER": "connected", "BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "congestion",
               "CHANUNAVAIL": "unavailable", "CANCEL": "seat_hung_up", "": "lost"}
SURVEY_WAIT_S = 300.0   # an answered survey call reports within this (prompts, two questions)
RETRY_NOT_PLACED_S = 5.0
QUEUE_WAIT_S = 3600     # a queue callback waits for its turn as long as a caller would


class CallbackScheduler(Background):
    name = "callback_scheduler"

    def __init__(self, db: Database, calls: CallService, loop: WorkOrderLoop, cfg: CallbacksTable,
                 platforms: tuple[str, ...], originate: Originate | None, *, harassment: Any = None,
                 sounds_dir: Path | None = None, tick_s: float = 0.5, tz: str = "Asia/Shanghai",
                 is_workday: Callable[[dt.date], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.calls, self.loop, self.cfg = db, calls, loop, cfg
        self.platforms = platforms
        self.originate = originate
        self.harassment = harassment  # app.harassment.services.HarassmentService
        self.sounds_dir = sounds_dir
        self.tick_s = tick_s
        self.tz = ZoneInfo(tz)
        self.is_workday = is_workday or (lambda day: day.weekday() < 5)
        self.clock = clock
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self._calls: set[asyncio.Task[None]] = set()
        self._causes: dict[str, tuple[int | None, str]] = {}  # outbound uniqueid -> its hangup cause
        self.placed = 0          # originations sent (benchmarks, tests)
        self.failed_originations = 0
        # Calls that ended before this are never called back: switching missed-call callbacks on
        # (or lengthening the window) does not call back the past.
        self.missed_since = 0.0

    # --- the loop --------------------------------------------------------------------------------
    async def _run(self) -> None:
        await self.ensure_slots()
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("callback scheduler tick failed")
            await asyncio.sleep(self.tick_s)

    async def stop(self) -> None:
        await super().stop()
        for t in list(self._calls):
            t.cancel()
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

    async def ensure_slots(self) -> None:
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        async with self.db.write() as conn:
            for p in self.platforms:
                for n in range(1, self.cfg.max_outbound + 1):
                    await conn.execute(insert(L).values(platform=p, slot=n).on_conflict_do_nothing())

    async def tick(self) -> int:
        now = self.clock()
        await self.derive_missed(now)
        await self.recover(now)
        if not self.within_hours(now):
            return 0
        placed = 0
        for platform in self.platforms:
            placed += await self.place_due(platform, now)
        return placed

    def within_hours(self, now: float) -> bool:
        return self.cfg.within_hours(dt.datetime.fromtimestamp(now, self.tz))

    # --- 1. missed calls -------------------------------------------------------------------------
    async def derive_missed(self, now: float) -> int:
        window = self.cfg.missed_within_min * 60
        if window <= 0:
            return 0
        c2 = Call.__table__.alias("again")
        called_again = exists().where(c2.c.caller == Call.caller, c2.c.arrived_at > Call.ended_at)
        # any task about the call: its missed-call callback, or the callback the caller asked for
        task_exists = exists().where(K.linkedid == Call.linkedid)
        query = (select(Call.linkedid, Call.caller, Call.service, Call.ended_at, Call.wait_s)
                 .where(Call.outcome == "abandoned", Call.ended_at >= max(now - window, self.missed_since),
                        Call.ended_at <= now,
                        Call.arrived_at >= now - window - 86400, Call.service.in_(self.platforms),
                        ~called_again, ~task_exists)
                 .order_by(Call.ended_at).limit(200))
        async with self.db.read() as conn:  # most ticks find nothing: no write transaction for that
            found = [dict(r) for r in (await conn.execute(query)).mappings() if dialable(r["caller"])]
        if not found:
            return 0
        made = 0
        async with self.db.write() as conn:
            for r in found:
                if await add_task(conn, kind=MISSED, platform=r["service"], number=r["caller"],
                                  due_at=r["ended_at"], now=now, max_attempts=self.cfg.attempts,
                                  dedupe_key=f"missed:{r['linkedid']}", linkedid=r["linkedid"],
                                  expires_at=r["ended_at"] + window, waited_s=r["wait_s"]):
                    made += 1
        return made

    # --- 2. recovery -----------------------------------------------------------------------------
    async def recover(self, now: float) -> None:
        async with self.db.read() as conn:
            stale = [dict(r) for r in (await conn.execute(
                select(K.id, K.attempts).where(K.state == PLACING, K.lease_until < now))).mappings()]
        if not stale:
            return
        for t in stale:
            channel = channel_id(t["id"], t["attempts"])
            answers = await self._stored_survey(channel)
            if answers is not None:
                await self.on_survey(channel, answers)
            else:
                await self.finish_attempt(t["id"], t["attempts"], "lost", None, "lease expired")
        # a line held by a task that is no longer being placed (its instance died) is free again
        async with self.db.write() as conn:
            await conn.execute(update(L).where(L.task_id.is_not(None), ~exists().where(
                K.id == L.task_id, K.state == PLACING)).values(task_id=None, taken_at=None))

    async def _stored_survey(self, channel: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(CallEventRow.data).where(
                CallEventRow.linkedid == channel, CallEventRow.type == CallEventType.SURVEYED.value))).first()
        return dict(row[0]) if row else None

    # --- 3. placing ------------------------------------------------------------------------------
    async def place_due(self, platform: str, now: float) -> int:
        async with self.db.read() as conn:
            free = (await conn.execute(select(func.count()).select_from(L).where(
                L.platform == platform, L.task_id.is_(None)))).scalar_one()
            if not free:
                return 0
            due = [dict(r) for r in (await conn.execute(
                select(K.id).where(K.state == SCHEDULED, K.platform == platform, K.due_at <= now)
                .order_by(K.due_at, K.id).limit(free + 20))).mappings()]  # some may be blocked
        placed = 0
        for t in due:
            if placed >= free:
                break
            try:
                if await self._claim_and_place(t["id"], platform, now):
                    placed += 1
            except _Lost:
                continue  # another instance has it
        return placed

    async def _blocked(self, conn: AsyncConnection, task: dict[str, Any], now: float) -> str | None:
        number = task["number"]
        if task["expires_at"] is not None and task["expires_at"] < now:
            return "expired"
        if (await conn.execute(select(NoCallRow.number).where(NoCallRow.number == number))).first():
            return "do_not_call"
        if task["kind"] == MISSED and task["linkedid"]:
            ended = (await conn.execute(select(Call.ended_at)
                                        .where(Call.linkedid == task["linkedid"]))).scalar()
            again = (await conn.execute(select(Call.id).where(
                Call.caller == number, Call.arrived_at > (ended or now)).limit(1))).first()
            if again:
                return "called_again"
        if task["kind"] == SURVEY and task["ticket"]:
            order = await load_order(conn, task["ticket"])
            if order is None or order["status"] not in (State.REPLIED.value, State.CALLBACK.value):
                return "order_moved"  # closed or reopened by hand meanwhile: nothing to ask
        if self.harassment is not None:
            try:
                if await self.harassment.listed(number):
                    return "harassment"
            except Exception as exc:  # noqa: BLE001 - cannot check: do not call (fail safe)
                log.warning("callbacks: harassment list unavailable (%s); task %s waits", exc, task["id"])
                return "unknown"
        return None

    async def _claim_and_place(self, task_id: int, platform: str, now: float, *,
                               position: int | None = None) -> bool:
        async with self.db.write() as conn:
            task = await task_row(conn, task_id)
            if task is None or task["state"] != SCHEDULED:
                return False
            blocked = await self._blocked(conn, task, now)
            if blocked == "unknown":
                return False
            if blocked:
                await conn.execute(update(K).where(K.id == task_id, K.state == SCHEDULED).values(
                    state=CANCELLED if blocked != "expired" else FAILED, result=blocked, updated_at=now,
                    version=K.version + 1))
                await self._timeline(conn, task, {"result": blocked, "attempt": task["attempts"]}, now)
                return False
            if task["kind"] != REQUESTED:  # a queue callback is the caller's own place: no line until dialled
                slot = (await conn.execute(select(L.slot).where(L.platform == platform, L.task_id.is_(None))
                                           .order_by(L.slot).limit(1))).scalar()
                if slot is None:
                    return False
                free_line = (L.platform == platform, L.slot == slot, L.task_id.is_(None))
                took = await conn.execute(update(L).where(*free_line).values(task_id=task_id, taken_at=now))
                if took.rowcount != 1:
                    return False
            no = task["attempts"] + 1
            seat_wait = {SURVEY: 0, MISSED: self.cfg.seat_wait_s}.get(task["kind"], QUEUE_WAIT_S)
            lease = now + self.cfg.ring_s + seat_wait + SURVEY_WAIT_S
            claimed = await conn.execute(update(K).where(K.id == task_id, K.state == SCHEDULED,
                                                         K.version == task["version"]).values(
                state=PLACING, attempts=no, owner=self.owner, lease_until=lease, updated_at=now,
                version=K.version + 1))
            if claimed.rowcount != 1:
                raise _Lost()  # rolls the slot back too
            await conn.execute(insert(A).values(
                task_id=task_id, no=no, channel_id=channel_id(task_id, no), started_at=now,
                placed_by=task["seat"] and f"seat {task['seat']}" or "system"))
            if task["kind"] == SURVEY and task["ticket"]:
                await self._start_callback(conn, task, now)
        self._track(self._place(task, no, position))
        return True

    async def _start_callback(self, conn: AsyncConnection, task: dict[str, Any], now: float) -> None:
        """The order enters 回访 with its first attempt (replied -> callback)."""
        order = await load_order(conn, task["ticket"])
        if order is not None and order["status"] == State.REPLIED.value:
            moves = Moves(conn, SYSTEM, now)
            await moves.order(order, Step.START_CALLBACK, None, {"task": task["id"]})

    def _track(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` beside the loop, kept (not garbage-collected mid-call) and stopped with us."""
        t = asyncio.ensure_future(coro)
        self._calls.add(t)
        t.add_done_callback(self._calls.discard)

    def originate_action(self, task: dict[str, Any], no: int, position: int | None = None) -> dict[str, Any]:
        number = dialable(task["number"])
        if number is None:
            raise ValueError("not a dialable number")
        cid = channel_id(task["id"], no)
        variables: list[str] = [f"{VAR_CALLBACK_TASK}={task['id']}", f"{VAR_CALLBACK_ATTEMPT}={no}",
                     f"{VAR_CALL_SERVICE}={task['platform']}"]
        if task["kind"] == SURVEY and not task["seat"]:
            return {"Action": "Originate", "Channel": f"PJSIP/{number}@{CALLBACK_TRUNK}",
                    "Context": CTX_CALLBACK, "Exten": "survey", "Priority": "1", "Async": "true",
                    "CallerID": f"\"{task['platform']}\" <{self.cfg.caller_id}>",
                    "Timeout": str(self.cfg.ring_s * 1000), "ChannelId": cid, "Variable": variables}
        waited = int(task["waited_s"] or 0)
        seat = task["seat"]
        channel = f"PJSIP/{seat}" if seat else f"Local/{task['platform']}@{CTX_CALLBACK_SEAT}"
        variables.append(f"{VAR_CALLBACK_NUMBER}={number}")
        if task["kind"] == REQUESTED and not seat:  # the caller's place in the queue, and its patience
            variables += [f"{VAR_QUEUE_POSITION}={max(1, int(position or 1))}",
                          f"{VAR_CALLBACK_SEAT_WAIT}={QUEUE_WAIT_S}"]
        action = {"Action": "Originate", "Channel": channel, "Context": CTX_CALLBACK, "Exten": "missed",
                  "Priority": "1", "Async": "true", "CallerID": f"\"CB {waited}s\" <{number}>",
                  "Timeout": str((self.cfg.seat_wait_s if not seat else self.cfg.ring_s) * 1000),
                  "ChannelId": cid, "Variable": variables}
        if not seat:
            action["OtherChannelId"] = f"{cid}-seat"
        if task["kind"] == REQUESTED and not seat:
            action["Timeout"] = str((QUEUE_WAIT_S + 5) * 1000)
        return action

    async def _place(self, task: dict[str, Any], no: int, position: int | None = None) -> None:
        cid = channel_id(task["id"], no)
        if task["kind"] == SURVEY and self.sounds_dir is not None and task["ticket"]:
            await self._speak_matter(task)
        if self.originate is None:
            await self.finish_attempt(task["id"], no, "not_placed", None, "no AMI")
            return
        action = self.originate_action(task, no, position)
        wait_s = int(action["Timeout"]) / 1000 + 15
        try:
            self.placed += 1
            answers = await self.originate(action, wait_s)
        except Exception as exc:  # noqa: BLE001 - AMI down or refused: try again soon
            self.failed_originations += 1
            log.warning("callback %s attempt %d not placed: %s", task["id"], no, exc)
            await self.finish_attempt(task["id"], no, "not_placed", None, str(exc)[:64], count=False)
            return
        response = next((m for m in answers if m.get("Event") == "OriginateResponse"),
                        answers[-1] if answers else {})
        if response.get("Response") == "Success":
            # answered. A survey on the trunk: the answers come from FastAGI (a surveyed event); a
            # call through a seat: the dialplan's UserEvent says how the caller's leg ended
            return
        await asyncio.sleep(0.2)  # the channel's Hangup (with its cause) is on its way
        cause, txt = self._causes.pop(cid, (None, ""))
        # the Q.850 cause of the channel's hangup says most (486 -> 17); OriginateResponse's Reason else
        reason = CAUSES.get(cause or 0) or REASONS.get(str(response.get("Reason", "0")), "failed")
        log.info("callback %s attempt %d: not answered (Reason %s, cause %s %s)", task["id"], no,
                 response.get("Reason"), cause, txt)
        if task["kind"] != SURVEY and not task["seat"]:
            reason = "no_seat" if reason in ("no_answer", "failed") else reason
        await self.finish_attempt(task["id"], no, reason, cause, txt)

    async def _speak_matter(self, task: dict[str, Any]) -> None:
        """The matter and the handler's reply, synthesized now (the text of the order at call time)."""
        assert self.sounds_dir is not None
        try:
            async with self.db.read() as conn:
                order = await load_order(conn, task["ticket"])
                replies = await _replies(conn, task["ticket"])
            if order is None:
                return
            date = dt.datetime.fromtimestamp(order["created_at"], self.tz)
            text = load_prompts().templates["callback-matter"].format(
                date=f"{date.month}月{date.day}日", summary=order.get("summary") or "",
                reply="；".join(replies) or "已办结")
            folder = self.sounds_dir / "callbacks"
            folder.mkdir(parents=True, exist_ok=True)
            await synthesize(text, folder / f"task-{task['id']}.wav")
        except (PromptError, OSError, KeyError) as exc:
            log.warning("callback %s: the matter could not be synthesized (%s); questions only",
                        task["id"], exc)

    # --- results ---------------------------------------------------------------------------------
    def on_ami_event(self, ev: dict[str, str]) -> None:
        """AMI observer: hangup causes of outbound legs, and the dialplan's word on a seat's callback."""
        kind = ev.get("Event")
        if kind == "Hangup" and ev.get("Uniqueid", "").startswith(CALLBACK_ID_PREFIX):
            with contextlib.suppress(ValueError):
                self._causes[ev["Uniqueid"]] = (int(ev.get("Cause", "0")), ev.get("Cause-txt", "")[:64])
            if len(self._causes) > 10_000:
                self._causes.clear()
        elif kind == "UserEvent" and ev.get("UserEvent") == UEV_CALLBACK:
            try:
                task, no = int(ev.get("Task", "")), int(ev.get("Attempt", ""))
            except ValueError:
                return
            status = ev.get("Status", "")
            result = DIAL_STATUS.get(status, "failed")
            cause = int(ev["Cause"]) if ev.get("Cause", "").isdigit() else None
            self._track(self.finish_attempt(task, no, result, cause, status[:64]))

    def on_events(self, stored: list[dict[str, Any]]) -> None:
        """CallService watcher: a survey's answers arrived (FastAGI, through the event sink)."""
        for e in stored:
            if e["type"] == CallEventType.SURVEYED.value and e["linkedid"].startswith(CALLBACK_ID_PREFIX):
                self._track(self.on_survey(e["linkedid"], dict(e["data"])))

    async def on_survey(self, channel: str, answers: dict[str, Any]) -> None:
        task_id, no = parse_channel_id(channel)
        if task_id is None:
            return
        rating = answers.get("rating")
        if rating is None:  # no answer to the satisfaction question: an attempt that failed
            result = "hung_up" if answers.get("result") == "hung_up" else "no_response"
            await self.finish_attempt(task_id, no, result, None, "", answers=answers)
            return
        satisfied = rating in SATISFIED_RATINGS
        await self.finish_attempt(task_id, no, "answered", None, "", answers=answers,
                                  outcome="closed" if satisfied else "reopened")

    async def finish_attempt(self, task_id: int, no: int, result: str, cause: int | None, cause_txt: str, *,
                             answers: dict[str, Any] | None = None, outcome: str | None = None,
                             count: bool = True) -> None:
        """Record how attempt ``no`` of ``task_id`` ended, once; free its line; then the task is done,
        due again later, or failed after its last attempt."""
        now = self.clock()
        async with self.db.write() as conn:
            done = await conn.execute(update(A).where(A.task_id == task_id, A.no == no, A.result.is_(None))
                                      .values(result=result, cause=cause, cause_txt=cause_txt or None,
                                              ended_at=now))
            if done.rowcount != 1:
                return  # told twice (an event replayed, recovery racing a late answer)
            task = await task_row(conn, task_id)
            if task is None:
                return
            await conn.execute(update(L).where(L.task_id == task_id).values(task_id=None, taken_at=None))
            values: dict[str, Any] = {"owner": None, "lease_until": None, "updated_at": now,
                                      "version": K.version + 1}
            if answers is not None:
                values["answers"] = answers
            if task["state"] != PLACING:
                pass  # cancelled meanwhile: the attempt is recorded, the task stays as it is
            elif outcome is not None or result == "connected":
                values.update(state=DONE, result=outcome or result)
            else:
                attempts = task["attempts"] if count else task["attempts"] - 1
                values["attempts"] = attempts
                if attempts >= task["max_attempts"]:
                    values.update(state=FAILED, result="callback_failed")
                else:
                    delay = self.cfg.retry_delay(attempts) if count else RETRY_NOT_PLACED_S
                    values.update(state=SCHEDULED, due_at=now + delay)
            await conn.execute(update(K).where(K.id == task_id).values(**values))
            final = values.get("result")
            if final and self.sounds_dir is not None:  # the task is over: its spoken matter goes
                (self.sounds_dir / "callbacks" / f"task-{task_id}.wav").unlink(missing_ok=True)
            entry = {"attempt": no, "result": result, "cause": cause, "cause_txt": cause_txt or None,
                     "task": task_id, "kind": task["kind"], **({"outcome": final} if final else {})}
            await self._timeline(conn, task, entry, now)
            if task["ticket"] and task["kind"] == SURVEY:
                await self._order_history(conn, task, entry, now)
        log.info("callback %s (%s to %s) attempt %d: %s%s", task_id, task["kind"],
                 mask_number(task["number"]), no, result,
                 f" -> {values['result']}" if values.get("result") else "")
        if outcome is not None and task["ticket"] and task["kind"] == SURVEY and task["state"] == PLACING:
            await self._apply_to_order(task, answers or {}, outcome == "closed")

    async def _timeline(self, conn: AsyncConnection, task: dict[str, Any], entry: dict[str, Any],
                        now: float) -> None:
        if not task["linkedid"]:
            return
        event = CallEvent(event_id=f"{task['linkedid']}:callback:{task['id']}:{entry.get('attempt', 0)}:"
                                   f"{entry['result']}"[:128],
                          linkedid=task["linkedid"], type=CallEventType.CALLBACK, at=now, source="api",
                          data=entry)
        stored = await self.calls.record_in(conn, [event])
        self.calls.announce(stored)  # published after the commit by the notifier's own queue

    async def _order_history(self, conn: AsyncConnection, task: dict[str, Any], entry: dict[str, Any],
                             now: float) -> None:
        order = await load_order(conn, task["ticket"])
        if order is None:
            return
        step = "callback_failed" if entry.get("outcome") == "callback_failed" else "callback_attempt"
        await Moves(conn, SYSTEM, now).append(task["ticket"], None, step, order["status"], order["status"],
                                              None, entry)

    async def _apply_to_order(self, task: dict[str, Any], answers: dict[str, Any], satisfied: bool) -> None:
        """Satisfied: the order is closed (办结归档). Not: reopened (重办), back to its handlers, with the
        caller's answers as the reason."""
        resolved = answers.get("resolved")
        note = (f"回访：{'已解决' if resolved else ('未解决' if resolved is False else '未答是否解决')}，"
                f"{_RATING_WORDS.get(str(answers.get('rating')), '未评价')}")
        try:
            await self.loop.close(task["ticket"], satisfied, note, SYSTEM)
        except Exception as exc:  # noqa: BLE001 - the order moved meanwhile (a supervisor): keep the answers
            log.warning("callback %s: order %s not moved by the survey (%s)", task["id"], task["ticket"], exc)

    # --- new tasks ------------------------------------------------------------------------------
    async def schedule_survey(self, conn: AsyncConnection, order: dict[str, Any], now: float) -> None:
        """``WorkOrderLoop.on_all_replied``: the order replied; its 回访 is due (next working day by
        default). Only for an order taken here (not one a peer sent) with a number to call."""
        if order.get("origin") or order.get("service") not in self.platforms:
            return
        number = dialable(order.get("contact") or order.get("caller"))
        if number is None:
            log.info("order %s replied: no number to call back (回访 by hand)", order["ticket"])
            return
        await add_task(conn, kind=SURVEY, platform=order["service"], number=number,
                       due_at=survey_due(self.cfg, now, self.is_workday, self.tz), now=now,
                       max_attempts=self.cfg.attempts,
                       dedupe_key=f"survey:{order['ticket']}:{order['version']}", ticket=order["ticket"],
                       linkedid=order.get("linkedid"))

    # --- what the API asks -----------------------------------------------------------------------
    async def place_now(self, task_id: int, seat: str | None, who: str) -> dict[str, Any] | None:
        now = self.clock()
        async with self.db.write() as conn:
            values: dict[str, Any] = {"due_at": now, "updated_at": now, "version": K.version + 1}
            if seat is not None:
                values["seat"] = seat
            res = await conn.execute(update(K).where(K.id == task_id, K.state.in_((SCHEDULED, FAILED)))
                                     .values(state=SCHEDULED, **values))
            if res.rowcount != 1:
                return None
            task = await task_row(conn, task_id)
            if task is not None and task["attempts"] >= task["max_attempts"]:
                await conn.execute(update(K).where(K.id == task_id).values(max_attempts=task["attempts"] + 1))
        return await self.get(task_id)

    async def enter_result(self, task_id: int, resolved: bool | None, rating: str, note: str | None,
                           who: str) -> dict[str, Any] | None:
        """An operator's 回访 result (a callback placed from a seat, or by other means): the answers
        go to the task and, as the survey's would, close or reopen the order."""
        now = self.clock()
        answers = {"resolved": resolved, "rating": rating, "satisfied": rating in SATISFIED_RATINGS,
                   "entered_by": who, "note": note}
        outcome = "closed" if rating in SATISFIED_RATINGS else "reopened"
        async with self.db.write() as conn:
            task = await task_row(conn, task_id)
            if task is None or task["kind"] != SURVEY or not task["ticket"]:
                return None
            open_ = task["state"] in (SCHEDULED, PLACING, FAILED) or (task["state"], task["result"]) == (
                DONE, "connected")
            if not open_:
                return None
            res = await conn.execute(update(K).where(K.id == task_id, K.version == task["version"]).values(
                state=DONE, result=outcome, answers=answers, owner=None, lease_until=None, updated_at=now,
                version=K.version + 1))
            if res.rowcount != 1:
                return None
            await conn.execute(update(L).where(L.task_id == task_id).values(task_id=None, taken_at=None))
            await conn.execute(update(A).where(A.task_id == task_id, A.result.is_(None))
                               .values(result="answered", ended_at=now))
            await self._start_callback(conn, task, now)
            entry = {"attempt": task["attempts"], "result": "entered", "task": task_id, "kind": SURVEY,
                     "outcome": outcome, "by": who}
            await self._order_history(conn, task, entry, now)
        await self._apply_to_order(task, answers, outcome == "closed")
        return await self.get(task_id)

    async def cancel(self, task_id: int, note: str | None) -> dict[str, Any] | None:
        now = self.clock()
        async with self.db.write() as conn:
            res = await conn.execute(update(K).where(K.id == task_id, K.state == SCHEDULED).values(
                state=CANCELLED, result="cancelled", note=note, updated_at=now, version=K.version + 1))
            if res.rowcount != 1:
                return None
        return await self.get(task_id)

    async def get(self, task_id: int) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            return await task_row(conn, task_id)

    async def request(self, platform: str, number: str, linkedid: str | None, now: float, *,
                      position: int = 1, waited_s: float | None = None) -> int | None:
        """排队回拨: a caller asked in the queue to be called back. Placed at once: a placeholder takes
        the caller's place in the queue (it uses no outbound line until a seat takes it)."""
        async with self.db.write() as conn:
            task = await add_task(conn, kind=REQUESTED, platform=platform, number=number, due_at=now, now=now,
                                  max_attempts=self.cfg.attempts, linkedid=linkedid,
                                  dedupe_key=f"requested:{linkedid or number}", note=f"position {position}",
                                  waited_s=waited_s)
        if task is not None:
            await self._claim_and_place(task, platform, now, position=position)
        return task


_RATING_WORDS = {"very_satisfied": "非常满意", "satisfied": "满意", "unsatisfied": "不满意",
                 "very_unsatisfied": "非常不满意"}


class _Lost(Exception):
    """Another instance claimed the task between our read and our update."""


def channel_id(task_id: int, no: int) -> str:
    return f"{CALLBACK_ID_PREFIX}{task_id}-{no}"


def parse_channel_id(channel: str) -> tuple[int | None, int]:
    body = channel.removeprefix(CALLBACK_ID_PREFIX).split("-")
    try:
        return int(body[0]), int(body[1])
    except (ValueError, IndexError):
        return None, 0


async def _replies(conn: AsyncConnection, ticket: str) -> list[str]:
    """What each handler answered (the parts' results), in part order."""
    return [str(p["result"]) for p in await parts_of(conn, ticket) if p.get("result")]



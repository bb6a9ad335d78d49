"""The callback scheduler on SQLite and PostgreSQL with a scripted Asterisk (fake Originate): one
placement per attempt however many instances tick, the line cap, calling hours, blocked numbers,
retries to callback_failed, and the survey's answers closing or reopening nothing but their task.
The real calls are tests/integration/test_callbacks_e2e.py."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from app.callbacks.scheduler import CallbackScheduler, channel_id, parse_channel_id
from app.callbacks.store import MISSED, SURVEY, add_task, survey_due
from app.db import Database, make_engine, upgrade_engine
from app.models import NoCallRow
from hotline.callback_site import CallbacksTable, SurveyTable

SH = ZoneInfo("Asia/Shanghai")
NOON = dt.datetime(2026, 12, 2, 12, 0, tzinfo=SH).timestamp()  # a Wednesday


class FakeAsterisk:
    """Answers each Originate after ``delay`` with the next of ``reasons`` (4: answered, 5: busy)."""

    def __init__(self, reasons: list[str] | None = None, delay: float = 0.05) -> None:
        self.reasons = reasons or []
        self.delay = delay
        self.actions: list[dict[str, Any]] = []
        self.up = 0
        self.max_up = 0

    async def originate(self, action: dict[str, Any], wait_s: float) -> list[dict[str, str]]:
        self.actions.append(action)
        self.up += 1
        self.max_up = max(self.max_up, self.up)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.up -= 1
        reason = self.reasons.pop(0) if self.reasons else "3"
        return [{"Response": "Success", "Message": "Originate successfully queued"},
                {"Event": "OriginateResponse", "Response": "Success" if reason == "4" else "Failure",
                 "Reason": reason, "Uniqueid": action["ChannelId"]}]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def _db(url: str) -> Database:
    engine = make_engine(url)
    await upgrade_engine(engine)
    return Database(engine)


def _scheduler(db: Database, fake: FakeAsterisk | None, clock: Clock, **cfg: Any) -> CallbackScheduler:
    table = CallbacksTable(**{"max_outbound": 2, "attempts": 2, "retry_after_s": (60,), **cfg})
    return CallbackScheduler(db, calls=None, loop=None, cfg=table, platforms=("12345",),  # type: ignore[arg-type]
                             originate=fake.originate if fake else None, clock=clock)


async def _tasks(db: Database, n: int, now: float, kind: str = SURVEY) -> list[int]:
    ids = []
    async with db.write() as conn:
        for i in range(n):
            task = await add_task(conn, kind=kind, platform="12345", number=f"1390000{i:04d}", due_at=now,
                                  now=now, max_attempts=2, dedupe_key=f"t:{kind}:{i}")
            assert task is not None
            ids.append(task)
    return ids


async def _settle(*scheds: CallbackScheduler) -> None:
    for _ in range(200):
        if not any(s._calls for s in scheds):
            return
        await asyncio.sleep(0.01)


async def test_two_instances_place_each_task_once_and_never_more_than_the_lines(db_url: str) -> None:
    db = await _db(db_url)
    clock = Clock(NOON)
    fake = FakeAsterisk(reasons=["5"] * 5, delay=0.1)
    a, b = _scheduler(db, fake, clock), _scheduler(db, fake, clock)
    await a.ensure_slots()
    await b.ensure_slots()
    ids = await _tasks(db, 5, NOON)
    for _ in range(100):
        await asyncio.gather(a.tick(), b.tick())
        if len(fake.actions) >= 5:
            break
        await asyncio.sleep(0.03)
    await _settle(a, b)
    for _ in range(5):  # nothing more is placed once all are out
        await asyncio.gather(a.tick(), b.tick())
    placed = [x["ChannelId"] for x in fake.actions]
    assert sorted(placed) == sorted(channel_id(i, 1) for i in ids)  # each once
    assert fake.max_up == 2  # the two lines, across both instances
    rows = [await a.get(i) for i in ids]
    # busy: due again after the backoff, attempt 1 recorded
    assert {(r["state"], r["attempts"]) for r in rows if r} == {("scheduled", 1)}
    assert all(r and r["due_at"] >= NOON + 60 for r in rows)
    await db.engine.dispose()


async def test_busy_twice_is_callback_failed(db_url: str) -> None:
    db = await _db(db_url)
    clock = Clock(NOON)
    fake = FakeAsterisk(reasons=["5", "3"])
    s = _scheduler(db, fake, clock)
    await s.ensure_slots()
    [task] = await _tasks(db, 1, NOON)
    await s.tick()
    await _settle(s)
    clock.t += 61
    await s.tick()
    await _settle(s)
    row = await s.get(task)
    assert row and (row["state"], row["result"], row["attempts"]) == ("failed", "callback_failed", 2)
    assert [a["ChannelId"] for a in fake.actions] == [channel_id(task, 1), channel_id(task, 2)]
    await db.engine.dispose()


async def test_outside_calling_hours_nothing_is_dialled(db_url: str) -> None:
    db = await _db(db_url)
    night = dt.datetime(2026, 12, 2, 21, 0, tzinfo=SH).timestamp()
    fake = FakeAsterisk()
    s = _scheduler(db, fake, Clock(night))
    await s.ensure_slots()
    await _tasks(db, 3, night - 60)
    assert await s.tick() == 0 and fake.actions == []
    await db.engine.dispose()


async def test_do_not_call_and_harassment_numbers_are_never_dialled(db_url: str) -> None:
    db = await _db(db_url)

    class Listed:
        async def listed(self, number: str) -> bool:
            return number.endswith("0001")

    fake = FakeAsterisk()
    s = _scheduler(db, fake, Clock(NOON))
    s.harassment = Listed()
    await s.ensure_slots()
    ids = await _tasks(db, 3, NOON)
    async with db.write() as conn:
        await conn.execute(insert(NoCallRow).values(number="13900000002", added_by="t", added_at=NOON))
    await s.tick()
    await _settle(s)
    rows = {i: await s.get(i) for i in ids}
    assert [a["Channel"] for a in fake.actions] == ["PJSIP/13900000000@callback-trunk"]
    assert (rows[ids[1]] or {})["result"] == "harassment" and (rows[ids[2]] or {})["result"] == "do_not_call"
    await db.engine.dispose()


async def test_harassment_list_unknown_means_not_dialled_yet(db_url: str) -> None:
    db = await _db(db_url)

    class Down:
        async def listed(self, number: str) -> bool:
            raise RuntimeError("redis down")

    fake = FakeAsterisk()
    s = _scheduler(db, fake, Clock(NOON))
    s.harassment = Down()
    await s.ensure_slots()
    [task] = await _tasks(db, 1, NOON)
    await s.tick()
    assert fake.actions == [] and (await s.get(task) or {})["state"] == "scheduled"
    await db.engine.dispose()


async def test_a_missed_call_rings_a_seat_first_and_expires(db_url: str) -> None:
    db = await _db(db_url)
    clock = Clock(NOON)
    fake = FakeAsterisk(reasons=["3"])
    s = _scheduler(db, fake, clock, missed_within_min=30)
    await s.ensure_slots()
    async with db.write() as conn:
        await add_task(conn, kind=MISSED, platform="12345", number="13900001111", due_at=NOON, now=NOON,
                       max_attempts=3, dedupe_key="m:1", expires_at=NOON + 1800, waited_s=45.0)
    await s.tick()
    await _settle(s)
    action = fake.actions[0]
    assert action["Channel"] == "Local/12345@hotline-callback-seat"
    assert action["CallerID"] == '"CB 45s" <13900001111>' and action["Exten"] == "missed"
    assert "HOTLINE_CALLBACK_NUMBER=13900001111" in action["Variable"]
    clock.t = NOON + 1900  # past its window: never called again
    await s.tick()
    rows = [await s.get(i) for i in (1,)]
    assert rows[0] and (rows[0]["state"], rows[0]["result"]) == ("failed", "expired")
    assert len(fake.actions) == 1
    await db.engine.dispose()


async def test_a_lost_instance_frees_its_line_and_the_attempt_counts(db_url: str) -> None:
    db = await _db(db_url)
    clock = Clock(NOON)

    class Hangs(FakeAsterisk):
        async def originate(self, action: dict[str, Any], wait_s: float) -> list[dict[str, str]]:
            self.actions.append(action)
            await asyncio.sleep(3600)
            return []

    hang = Hangs()
    dead = _scheduler(db, hang, clock)
    await dead.ensure_slots()
    [task] = await _tasks(db, 1, NOON)
    await dead.tick()
    for t in list(dead._calls):
        t.cancel()  # the instance dies mid-call
    fake = FakeAsterisk(reasons=["4"])
    alive = _scheduler(db, fake, clock)
    clock.t += 3600  # its lease ran out
    await alive.tick()
    row = await alive.get(task)
    assert row and row["state"] == "scheduled" and row["attempts"] == 1
    await db.engine.dispose()


def test_survey_due_is_the_next_working_day_at_the_start_of_calling_hours() -> None:
    cfg = CallbacksTable()
    friday = dt.datetime(2026, 12, 4, 15, 0, tzinfo=SH).timestamp()
    due = dt.datetime.fromtimestamp(survey_due(cfg, friday, lambda d: d.weekday() < 5, SH), SH)
    assert (due.date().isoformat(), due.strftime("%H:%M")) == ("2026-12-07", "08:30")
    assert survey_due(cfg.model_copy(update={"survey_after": "now"}), friday, lambda d: True, SH) == friday


def test_channel_ids_round_trip() -> None:
    assert parse_channel_id(channel_id(42, 3)) == (42, 3)
    assert parse_channel_id("cb-x") == (None, 0)


@pytest.mark.parametrize("bad", [{"hours": ("20:00", "08:30")}, {"retry_after_s": ()}, {"caller_id": "12a"},
                                 {"trunk_host": "example.com"}, {"max_outbound": -1}])
def test_callbacks_table_refuses_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CallbacksTable(**bad)


def test_survey_scale_needs_both_sides() -> None:
    with pytest.raises(ValueError):
        SurveyTable(scale={"1": "satisfied", "2": "very_satisfied"})


async def test_an_answered_call_without_answers_is_retried_then_failed(db_url: str) -> None:
    """Voicemail-like silence: the phone answered, nobody pressed anything (FastAGI: no rating)."""
    db = await _db(db_url)
    clock = Clock(NOON)
    fake = FakeAsterisk(reasons=["4", "4"])
    s = _scheduler(db, fake, clock)
    await s.ensure_slots()
    [task] = await _tasks(db, 1, NOON)
    for attempt in (1, 2):
        await s.tick()
        await _settle(s)
        await s.on_survey(channel_id(task, attempt), {"result": "no_key", "rating": None, "resolved": None})
        clock.t += 61
    row = await s.get(task)
    assert row and (row["state"], row["result"], row["attempts"]) == ("failed", "callback_failed", 2)
    assert len(fake.actions) == 2
    await db.engine.dispose()

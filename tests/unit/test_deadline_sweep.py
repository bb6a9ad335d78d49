"""The deadline sweep on a real database (SQLite and PostgreSQL): each alert fires once across restarts
and concurrent instances, each kind fires when (and only when) it should, and an approved extension's
new deadline fires its own alerts.

Parts are inserted directly (no API): their times are laid out around a fixed epoch ``T0``; a default
part is dispatched at T0, must be signed by T0 + 2 h, is warned at T0 + 8 h and due at T0 + 10 h.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from app.db import Database, make_engine, upgrade_engine
from app.models import DeadlineAlertRow, WorkOrderPartRow
from app.work_orders.lifecycle import LIVE_PART_STATES, State
from app.work_orders.sweep import DeadlineSweep

T0 = 1_760_000_000.0
H = 3600.0
SIGN_DUE, WARN, DUE = T0 + 2 * H, T0 + 8 * H, T0 + 10 * H
URGE_H = (0.0, 24.0, 72.0)  # the site default: the handler at once, its supervisor a day on, then the group

Opener = Callable[[], Awaitable[Database]]
Key = tuple[str, str, str, int, float]  # (ticket, handler, kind, level, due_at)


class Recorder:
    """The sweep's publish callback: keeps every message in order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


@pytest.fixture
async def open_db(db_url: str) -> AsyncIterator[Opener]:
    """``await open_db()``: a Database on a NEW engine to this test's database (migrated); every engine
    is disposed at the end of the test."""
    engines = []

    async def open_() -> Database:
        engine = make_engine(db_url)
        engines.append(engine)
        await upgrade_engine(engine)
        return Database(engine)

    yield open_
    for engine in engines:
        await engine.dispose()


def sweep_on(db: Database, publish: Recorder | None = None, urge_after_h: tuple[float, ...] = URGE_H,
             ) -> DeadlineSweep:
    # a clock that fails the test if run_once ever ignores the ``now`` it is given
    def no_clock() -> float:
        raise AssertionError("the sweep read its clock although it was given now")

    return DeadlineSweep(db, urge_after_h, publish or Recorder(), clock=no_clock)


async def add_part(
    db: Database,
    ticket: str,
    *,
    no: int = 1,
    handler: str = "housing",
    state: str = State.DISPATCHED.value,
    dispatched_at: float = T0,
    sign_due_at: float = SIGN_DUE,
    warn_at: float = WARN,
    due_at: float = DUE,
) -> int:
    async with db.write() as conn:
        result = await conn.execute(
            insert(WorkOrderPartRow)
            .values(
                ticket=ticket, no=no, handler=handler, handler_kind="department", handler_name=handler,
                state=state, dispatched_at=dispatched_at, dispatched_by="test-operator",
                sign_due_at=sign_due_at, warn_at=warn_at, due_at=due_at, calendar_covered=True,
                updated_at=dispatched_at,
            )
            .returning(WorkOrderPartRow.id)
        )
        return int(result.scalar_one())


async def set_part(db: Database, part_id: int, **values: Any) -> None:
    async with db.write() as conn:
        await conn.execute(update(WorkOrderPartRow).where(WorkOrderPartRow.id == part_id).values(**values))


async def part_row(db: Database, part_id: int) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(WorkOrderPartRow).where(WorkOrderPartRow.id == part_id))).one()


async def alert_rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(select(DeadlineAlertRow).order_by(DeadlineAlertRow.id))).all())


def keys(alerts: list[dict[str, Any]]) -> list[Key]:
    return sorted((a["ticket"], a["handler"], a["kind"], a["level"], a["due_at"]) for a in alerts)


def kinds(alerts: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted((a["kind"], a["level"]) for a in alerts)


def row_keys(rows: list[Any]) -> list[Key]:
    return sorted((r.ticket, r.handler, r.kind, r.level, r.due_at) for r in rows)


# --- once, across restarts and instances --------------------------------------------------------------


async def test_each_alert_fires_once_across_a_restart(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "W1", state="in_progress")  # signed in time, now being worked
    await add_part(db, "W2", state="dispatched")   # never signed
    before = Recorder()
    first = await sweep_on(db, before).run_once(now=WARN + 60)
    assert keys(first) == [
        ("W1", "housing", "warning", 0, DUE),
        ("W2", "housing", "sign_overdue", 0, SIGN_DUE),
        ("W2", "housing", "warning", 0, DUE),
    ]
    assert before.messages == first

    # the app restarts: a new engine, a new sweep, nothing kept in memory
    db2 = await open_db()
    assert db2.engine is not db.engine
    after = Recorder()
    restarted = sweep_on(db2, after)
    assert await restarted.run_once(now=WARN + 60) == []
    assert await restarted.run_once(now=DUE - 1) == []
    assert after.messages == []

    later = await restarted.run_once(now=DUE + H)
    assert keys(later) == [
        ("W1", "housing", "overdue", 0, DUE),
        ("W1", "housing", "urge", 1, DUE),
        ("W2", "housing", "overdue", 0, DUE),
        ("W2", "housing", "urge", 1, DUE),
    ]
    assert after.messages == later and len(before.messages) == 3
    # and the first instance, still running, does not fire them again either
    assert await sweep_on(db, before).run_once(now=DUE + H) == []
    assert len(before.messages) == 3
    assert row_keys(await alert_rows(db2)) == keys(first + later)


async def test_two_instances_sweeping_at_once_fire_each_alert_once(open_db: Opener) -> None:
    # Two engines and two Database objects (two app instances) run their sweeps truly concurrently
    # (asyncio.gather) on both dialects: on SQLite each Database has its own write lock, so the two
    # transactions meet in SQLite itself and wait on each other through make_engine's busy_timeout.
    setup = await open_db()
    handlers = ("housing", "urban", "linhe")
    for i in range(6):
        await add_part(setup, f"C{i}", no=1, handler=handlers[i % 3],
                       state="dispatched" if i % 2 else "in_progress")
        await add_part(setup, f"C{i}", no=2, handler="110", state="signed")
    a, b = await open_db(), await open_db()
    pub_a, pub_b = Recorder(), Recorder()
    sweep_a, sweep_b = sweep_on(a, pub_a), sweep_on(b, pub_b)

    # at WARN + 1 min: warnings for all 12 parts, sign_overdue for the 3 never signed
    got_a, got_b = await asyncio.gather(sweep_a.run_once(now=WARN + 60), sweep_b.run_once(now=WARN + 60))
    both = keys(got_a + got_b)
    assert len(both) == len(set(both)) == 12 + 3
    assert {k[2] for k in both} == {"warning", "sign_overdue"}

    # three days past the deadline: overdue and all three urges for each part, still once each
    now = DUE + 73 * H
    late_a, late_b = await asyncio.gather(sweep_a.run_once(now=now), sweep_b.run_once(now=now))
    late = keys(late_a + late_b)
    assert len(late) == len(set(late)) == 12 * 4
    assert pub_a.messages == got_a + late_a and pub_b.messages == got_b + late_b

    rows = await alert_rows(setup)
    assert len(rows) == 15 + 48
    assert len({(r.part_id, r.kind, r.level, r.due_at) for r in rows}) == len(rows)
    assert row_keys(rows) == sorted(both + late)


async def test_two_instances_racing_many_rounds_never_duplicate(open_db: Opener) -> None:
    # the same race, many times, each round a new deadline for every part (as after extensions)
    setup = await open_db()
    ids = [await add_part(setup, f"R{i}", state="in_progress") for i in range(4)]
    a, b = await open_db(), await open_db()
    sweep_a, sweep_b = sweep_on(a), sweep_on(b)
    total: list[Key] = []
    for n in range(5):
        due = DUE + n * 200 * H
        for part_id in ids:
            await set_part(setup, part_id, due_at=due, warn_at=due - 2 * H, overdue_at=None)
        for now, expected in ((due - H, 4), (due + 80 * H, 4 * 4)):  # warnings; overdue and urges 1-3
            got = await asyncio.gather(*(s.run_once(now=now) for s in (sweep_a, sweep_b, sweep_a)))
            fired = keys([alert for batch in got for alert in batch])
            assert len(fired) == len(set(fired)) == expected, (n, now)
            total += fired
    assert row_keys(await alert_rows(setup)) == sorted(total)


# --- each kind -----------------------------------------------------------------------------------------


async def test_nothing_fires_before_anything_is_due(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "N1", state="dispatched")
    await add_part(db, "N2", state="in_progress")
    sweep = sweep_on(db)
    assert await sweep.run_once(now=T0) == []
    assert await sweep.run_once(now=SIGN_DUE - 1) == []
    assert await alert_rows(db) == []


async def test_a_warning_fires_once_warn_at_passed_and_before_the_deadline(open_db: Opener) -> None:
    db = await open_db()
    part = await add_part(db, "W1", state="in_progress")
    sweep = sweep_on(db)
    assert await sweep.run_once(now=WARN - 1) == []
    fired = await sweep.run_once(now=WARN + 1)
    assert kinds(fired) == [("warning", 0)] and fired[0]["due_at"] == DUE
    assert await sweep.run_once(now=DUE - 1) == []
    assert (await part_row(db, part)).overdue_at is None


async def test_no_warning_once_the_deadline_already_passed(open_db: Opener) -> None:
    # the app was down across warn_at and due_at: the first sweep after the deadline marks it overdue
    db = await open_db()
    await add_part(db, "W2", state="in_progress")
    fired = await sweep_on(db).run_once(now=DUE + 60)
    assert kinds(fired) == [("overdue", 0), ("urge", 1)]


async def test_sign_overdue_fires_for_a_part_still_not_signed(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "S1", state="dispatched", handler="urban")
    sweep = sweep_on(db)
    assert await sweep.run_once(now=SIGN_DUE - 1) == []
    fired = await sweep.run_once(now=SIGN_DUE + 1)
    assert keys(fired) == [("S1", "urban", "sign_overdue", 0, SIGN_DUE)]
    assert await sweep.run_once(now=SIGN_DUE + H) == []


@pytest.mark.parametrize("state", sorted(LIVE_PART_STATES - {State.DISPATCHED}), ids=str)
async def test_no_sign_overdue_once_signed(open_db: Opener, state: State) -> None:
    db = await open_db()
    await add_part(db, "S2", state=state.value)
    sweep = sweep_on(db)
    assert await sweep.run_once(now=SIGN_DUE + 1) == []
    # nor later, when the part's other alerts fire
    assert "sign_overdue" not in {a["kind"] for a in await sweep.run_once(now=DUE + 100 * H)}


async def test_overdue_marks_the_part_once(open_db: Opener) -> None:
    db = await open_db()
    part = await add_part(db, "O1", state="signed")
    other = await add_part(db, "O2", state="signed", due_at=DUE + 50 * H, warn_at=DUE + 40 * H)
    sweep = sweep_on(db, urge_after_h=(2.0, 24.0, 72.0))
    assert keys(await sweep.run_once(now=DUE - 1)) == [("O1", "housing", "warning", 0, DUE)]
    assert (await part_row(db, part)).overdue_at is None
    fired = await sweep.run_once(now=DUE + 60)
    assert keys(fired) == [("O1", "housing", "overdue", 0, DUE)]
    assert (await part_row(db, part)).overdue_at == DUE + 60
    assert (await part_row(db, other)).overdue_at is None  # not yet due: not marked
    # later sweeps fire the urges but keep the first mark
    assert kinds(await sweep.run_once(now=DUE + 3 * H)) == [("urge", 1)]
    assert (await part_row(db, part)).overdue_at == DUE + 60


@pytest.mark.parametrize("state", sorted(LIVE_PART_STATES), ids=str)
async def test_every_live_part_goes_overdue(open_db: Opener, state: State) -> None:
    db = await open_db()
    part = await add_part(db, "O3", state=state.value)
    sweep = sweep_on(db)
    await sweep.run_once(now=WARN + 1)  # the warning (and sign_overdue if unsigned) first
    fired = await sweep.run_once(now=DUE + 1)
    assert kinds(fired) == [("overdue", 0), ("urge", 1)]
    assert (await part_row(db, part)).overdue_at == DUE + 1


async def test_urges_climb_at_due_at_plus_urge_after_h(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "U1", state="in_progress", handler="linhe")
    sweep = sweep_on(db, urge_after_h=(2.0, 24.0, 72.0))
    await sweep.run_once(now=WARN + 1)
    assert kinds(await sweep.run_once(now=DUE + 1)) == [("overdue", 0)]
    assert await sweep.run_once(now=DUE + 2 * H - 1) == []
    expected = [(1, 2 * H, "handler"), (2, 24 * H, "handler's supervisor"), (3, 72 * H, "leading group")]
    for level, after, to in expected:
        assert await sweep.run_once(now=DUE + after - 1) == []
        fired = await sweep.run_once(now=DUE + after + 1)
        assert fired == [
            {
                "type": "deadline_alert",
                "kind": "urge",
                "level": level,
                "ticket": "U1",
                "handler": "linhe",
                "due_at": DUE,
                "fired_at": DUE + after + 1,
                "to": to,
            }
        ]
    assert await sweep.run_once(now=DUE + 1000 * H) == []


async def test_urges_skipped_by_a_long_outage_fire_together_once(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "U2", state="in_progress")
    sweep = sweep_on(db)
    await sweep.run_once(now=WARN + 1)
    fired = await sweep.run_once(now=DUE + 100 * H)
    assert kinds(fired) == [("overdue", 0), ("urge", 1), ("urge", 2), ("urge", 3)]
    assert {a["level"]: a["to"] for a in fired if a["kind"] == "urge"} == {
        1: "handler", 2: "handler's supervisor", 3: "leading group"}
    assert await sweep.run_once(now=DUE + 200 * H) == []


async def test_a_fourth_urge_level_goes_to_the_leading_group(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "U3", state="in_progress")
    fired = await sweep_on(db, urge_after_h=(0.0, 1.0, 2.0, 3.0)).run_once(now=DUE + 4 * H)
    urges = sorted((a["level"], a["to"]) for a in fired if a["kind"] == "urge")
    assert urges == [(1, "handler"), (2, "handler's supervisor"), (3, "leading group"), (4, "leading group")]


@pytest.mark.parametrize("state", [State.REPLIED, State.RETURNED], ids=str)
async def test_replied_and_returned_parts_fire_nothing(open_db: Opener, state: State) -> None:
    db = await open_db()
    part = await add_part(db, "D1", state=state.value)
    live = await add_part(db, "D1", no=2, handler="urban", state="dispatched")
    publish = Recorder()
    fired = await sweep_on(db, publish).run_once(now=DUE + 1000 * H)
    assert {a["handler"] for a in fired} == {"urban"}  # only the live part
    assert publish.messages == fired
    assert {r.part_id for r in await alert_rows(db)} == {live}
    assert (await part_row(db, part)).overdue_at is None


async def test_a_part_answered_after_its_warning_fires_nothing_more(open_db: Opener) -> None:
    db = await open_db()
    part = await add_part(db, "D2", state="in_progress")
    sweep = sweep_on(db)
    assert kinds(await sweep.run_once(now=WARN + 1)) == [("warning", 0)]
    await set_part(db, part, state="replied", replied_at=WARN + 2)
    assert await sweep.run_once(now=DUE + 1000 * H) == []


async def test_an_approved_extension_fires_the_new_deadlines_alerts(open_db: Opener) -> None:
    db = await open_db()
    part = await add_part(db, "E1", state="in_progress")
    sweep = sweep_on(db)
    assert kinds(await sweep.run_once(now=WARN + 1)) == [("warning", 0)]
    old = await sweep.run_once(now=DUE + 73 * H)
    assert kinds(old) == [("overdue", 0), ("urge", 1), ("urge", 2), ("urge", 3)]
    assert (await part_row(db, part)).overdue_at == DUE + 73 * H

    # approved: a new deadline five days on (what WorkOrderLoop writes: state, due_at, warn_at, no mark)
    new_due = DUE + 120 * H
    await set_part(db, part, state="extended", due_at=new_due, warn_at=new_due - 24 * H, overdue_at=None)
    assert await sweep.run_once(now=DUE + 73 * H) == []
    warned = await sweep.run_once(now=new_due - 24 * H + 1)
    assert keys(warned) == [("E1", "housing", "warning", 0, new_due)]
    assert (await part_row(db, part)).overdue_at is None
    late = await sweep.run_once(now=new_due + 1)
    assert keys(late) == [("E1", "housing", "overdue", 0, new_due), ("E1", "housing", "urge", 1, new_due)]
    assert (await part_row(db, part)).overdue_at == new_due + 1
    assert await sweep.run_once(now=new_due + 1) == []
    # both deadlines' alerts are kept, each once
    rows = await alert_rows(db)
    assert len(rows) == 5 + 3
    assert sorted(r.due_at for r in rows) == [DUE] * 5 + [new_due] * 3


# --- the messages --------------------------------------------------------------------------------------


async def test_each_message_says_what_fired_for_whom(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "M1", no=1, handler="housing", state="dispatched")
    await add_part(db, "M1", no=2, handler="110", state="in_progress", due_at=DUE + H, warn_at=WARN + H)
    publish = Recorder()
    sweep = sweep_on(db, publish)
    early = await sweep.run_once(now=WARN + H + 1)
    assert {m["fired_at"] for m in early} == {WARN + H + 1}
    now = DUE + 25 * H
    fired = early + await sweep.run_once(now=now)
    assert publish.messages == fired
    assert all(set(m) >= {"type", "ticket", "handler", "kind", "level", "due_at", "fired_at"} for m in fired)
    assert {m["type"] for m in fired} == {"deadline_alert"}
    assert {m["ticket"] for m in fired} == {"M1"}
    for m in fired:
        assert ("to" in m) == (m["kind"] == "urge"), m
    by_key = {(m["handler"], m["kind"], m["level"]): m for m in fired}
    assert sorted(by_key) == [
        ("110", "overdue", 0), ("110", "urge", 1), ("110", "urge", 2), ("110", "warning", 0),
        ("housing", "overdue", 0), ("housing", "sign_overdue", 0), ("housing", "urge", 1),
        ("housing", "urge", 2), ("housing", "warning", 0),
    ]
    assert len(by_key) == len(fired)
    assert by_key[("housing", "sign_overdue", 0)]["due_at"] == SIGN_DUE
    assert by_key[("110", "warning", 0)]["due_at"] == DUE + H
    assert by_key[("110", "urge", 2)] == {
        "type": "deadline_alert", "kind": "urge", "level": 2, "ticket": "M1", "handler": "110",
        "due_at": DUE + H, "fired_at": now, "to": "handler's supervisor",
    }
    assert by_key[("housing", "overdue", 0)] == {
        "type": "deadline_alert", "kind": "overdue", "level": 0, "ticket": "M1", "handler": "housing",
        "due_at": DUE, "fired_at": now,
    }
    assert by_key[("110", "warning", 0)]["fired_at"] == WARN + H + 1
    # what was published is what was stored
    rows = await alert_rows(db)
    assert row_keys(rows) == keys(fired)
    assert sorted(r.fired_at for r in rows) == sorted(m["fired_at"] for m in fired)


async def test_messages_are_published_after_the_alerts_are_committed(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "P1", state="dispatched")
    await add_part(db, "P2", state="dispatched")
    in_transaction: list[int] = []

    def publish(message: dict[str, Any]) -> None:
        # publish is synchronous: a connection still checked out here is the sweep's open transaction
        in_transaction.append(db.engine.pool.checkedout())

    fired = await DeadlineSweep(db, URGE_H, publish).run_once(now=SIGN_DUE + 1)
    assert len(fired) == 2 and in_transaction == [0, 0]
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(DeadlineAlertRow))).scalar_one() == 2


async def test_run_once_without_now_reads_the_clock(open_db: Opener) -> None:
    db = await open_db()
    await add_part(db, "K1", state="dispatched")
    sweep = DeadlineSweep(db, URGE_H, Recorder(), clock=lambda: SIGN_DUE + 5)
    fired = await sweep.run_once()
    assert keys(fired) == [("K1", "housing", "sign_overdue", 0, SIGN_DUE)]
    assert fired[0]["fired_at"] == SIGN_DUE + 5

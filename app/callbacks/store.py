"""Callback tasks in the database: creating them (in the caller's transaction), reading them.

A task is created once: its ``dedupe_key`` is unique (``survey:<ticket>:<order version>``,
``missed:<linkedid>``), so a replayed event, a second app instance or a restart adds nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import CallbackAttemptRow as A
from app.models import CallbackTaskRow as K
from hotline.callback_site import CallbacksTable

SURVEY, MISSED, REQUESTED = "survey", "missed", "requested"
KINDS = (SURVEY, MISSED, REQUESTED)
SCHEDULED, PLACING, DONE, FAILED, CANCELLED = "scheduled", "placing", "done", "failed", "cancelled"
STATES = (SCHEDULED, PLACING, DONE, FAILED, CANCELLED)
OPEN_STATES = (SCHEDULED, PLACING)
# Only digits reach the Originate's Channel header and the dialplan's Dial().
DIALABLE_RE = re.compile(r"^[0-9]{3,20}\Z")

TASK_COLUMNS = ("id", "kind", "platform", "ticket", "linkedid", "number", "state", "result", "due_at",
                "expires_at", "attempts", "max_attempts", "seat", "answers", "note", "waited_s", "created_at",
                "updated_at", "version", "owner", "lease_until")
ATTEMPT_COLUMNS = ("task_id", "no", "channel_id", "started_at", "ended_at", "result", "cause", "cause_txt",
                   "placed_by")


def dialable(number: str | None) -> str | None:
    return number if number and DIALABLE_RE.fullmatch(number) else None


async def add_task(conn: AsyncConnection, *, kind: str, platform: str, number: str, due_at: float,
                   now: float, max_attempts: int, dedupe_key: str, ticket: str | None = None,
                   linkedid: str | None = None, expires_at: float | None = None,
                   seat: str | None = None, note: str | None = None,
                   waited_s: float | None = None) -> int | None:
    """Insert a task unless one with ``dedupe_key`` exists; its id, or None when it existed."""
    if kind not in KINDS or not dialable(number):
        raise ValueError(f"a {kind} callback needs a dialable number")
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(K).values(
        kind=kind, platform=platform, ticket=ticket, linkedid=linkedid, number=number, state=SCHEDULED,
        due_at=due_at, expires_at=expires_at, attempts=0, max_attempts=max_attempts, seat=seat,
        note=note, waited_s=waited_s, dedupe_key=dedupe_key, created_at=now, updated_at=now, version=0,
    ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(K.id)
    return (await conn.execute(stmt)).scalar_one_or_none()


def survey_due(cfg: CallbacksTable, now: float, is_workday: Any, tz: dt.tzinfo) -> float:
    """When a replied order's 回访 is due: now, or the next working day at the start of calling hours."""
    if cfg.survey_after == "now":
        return now
    day = dt.datetime.fromtimestamp(now, tz).date() + dt.timedelta(days=1)
    for _ in range(60):
        if is_workday(day):
            break
        day += dt.timedelta(days=1)
    hh, mm = (int(x) for x in cfg.hours[0].split(":"))
    return dt.datetime.combine(day, dt.time(hh, mm), tz).timestamp()


async def task_row(conn: AsyncConnection, task_id: int) -> dict[str, Any] | None:
    query = select(*(getattr(K, c) for c in TASK_COLUMNS)).where(K.id == task_id)
    found = (await conn.execute(query)).mappings().first()
    return dict(found) if found else None


async def attempts_of(conn: AsyncConnection, task_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not task_ids:
        return {}
    res = await conn.execute(select(*(getattr(A, c) for c in ATTEMPT_COLUMNS))
                             .where(A.task_id.in_(task_ids)).order_by(A.task_id, A.no))
    out: dict[int, list[dict[str, Any]]] = {}
    for r in res.mappings():
        out.setdefault(r["task_id"], []).append(dict(r))
    return out

"""The deadline sweep: warnings before a part's deadline, overdue marks, and 催办/督办 that climb.

The state is the database: each alert is one row whose unique key (part, kind, level, deadline) is
what fires it; a sweep inserts every alert now due that has no row yet (``INSERT ... SELECT ... ON
CONFLICT DO NOTHING RETURNING``) and publishes only what its own insert returned. So a restarted app
fires nothing twice, several app instances sweeping at once fire each alert once, and an extension
(a new deadline) fires its own alerts afresh.

Kinds: ``warning`` (the part's ``warn_at`` passed), ``sign_overdue`` (not signed within the signing
limit), ``overdue`` (the deadline passed: the part is marked), ``urge`` level 1, 2, 3 (督办: the
handler, then its supervisor, then the leading group, ``[deadlines] urge_after_h`` after the deadline).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import and_, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.background import Background
from app.db import Database
from app.models import DeadlineAlertRow as A
from app.models import WorkOrderPartRow as P
from app.work_orders.lifecycle import LIVE_PART_STATES, State

log = logging.getLogger(__name__)
LIVE = sorted(s.value for s in LIVE_PART_STATES)
URGED_TO = {1: "handler", 2: "handler's supervisor", 3: "leading group"}


class DeadlineSweep(Background):
    name = "deadline-sweep"

    def __init__(
        self,
        db: Database,
        urge_after_h: tuple[float, ...],
        publish: Callable[[dict[str, Any]], None],
        *,
        interval_s: float = 30.0,
        also: Callable[[], Awaitable[Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.urge_after_s = tuple(h * 3600 for h in urge_after_h)
        self.publish = publish
        self.interval_s = interval_s
        self.also = also  # other periodic upkeep (pruning exchange nonces)
        self.clock = clock
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
                if self.also is not None:
                    await self.also()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be restarting: the next sweep catches up
                log.exception("deadline sweep failed")
            await asyncio.sleep(self.interval_s)

    def _rules(self) -> list[tuple[str, int, Any, float, list[str]]]:
        """(kind, level, the indexed time column it fires at, seconds after that time, states).
        The condition is ``column <= now - after``, so each rule is a range scan of its index."""
        rules: list[tuple[str, int, Any, float, list[str]]] = [
            ("warning", 0, P.warn_at, 0.0, LIVE),
            ("sign_overdue", 0, P.sign_due_at, 0.0, [State.DISPATCHED.value]),
            ("overdue", 0, P.due_at, 0.0, LIVE),
        ]
        rules += [("urge", i, P.due_at, after, LIVE) for i, after in enumerate(self.urge_after_s, 1)]
        return rules

    async def run_once(self, now: float | None = None) -> list[dict[str, Any]]:
        """Fire every alert due at ``now``; returns those this sweep fired."""
        now = self.clock() if now is None else now
        fired: list[dict[str, Any]] = []
        async with self.db.write() as conn:
            for kind, level, fires_at, after, states in self._rules():
                due = P.sign_due_at if kind == "sign_overdue" else P.due_at
                already = exists().where(
                    and_(A.part_id == P.id, A.kind == kind, A.level == level, A.due_at == due)
                )
                source = select(
                    P.id, P.ticket, P.handler, literal(kind), literal(level), due, literal(now)
                ).where(P.state.in_(states), fires_at <= now - after, ~already,
                        # a warning says "due soon": past the deadline (after an outage) only overdue fires
                        *([P.due_at > now] if kind == "warning" else []))
                stmt = (
                    self._insert(A)
                    .from_select(
                        ["part_id", "ticket", "handler", "kind", "level", "due_at", "fired_at"], source
                    )
                    .on_conflict_do_nothing()
                    .returning(A.part_id, A.ticket, A.handler, A.due_at)
                )
                rows = (await conn.execute(stmt)).all()
                if kind == "overdue" and rows:
                    await conn.execute(
                        update(P)
                        .where(P.id.in_([r.part_id for r in rows]), P.overdue_at.is_(None))
                        .values(overdue_at=now)
                    )
                fired += [
                    {
                        "type": "deadline_alert",
                        "kind": kind,
                        "level": level,
                        "ticket": r.ticket,
                        "handler": r.handler,
                        "due_at": r.due_at,
                        "fired_at": now,
                        **({"to": URGED_TO.get(level, "leading group")} if kind == "urge" else {}),
                    }
                    for r in rows
                ]
        for alert in fired:
            self.publish(alert)
        if fired:
            log.info(
                "deadline sweep: %d alerts (%s)", len(fired), ", ".join(sorted({a["kind"] for a in fired}))
            )
        return fired

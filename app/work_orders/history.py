"""The rows of the closed loop inside one write transaction: moving an order or a part (a conditional
``UPDATE ... WHERE state = <the state read>``, so two racing requests cannot both move it), and the
history every move appends to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import Principal
from app.errors import PartNotFound, StaleWorkOrder
from app.models import DeadlineAlertRow as A
from app.models import WorkOrderHistoryRow as H
from app.models import WorkOrderPartRow as P
from app.models import WorkOrderRow as W
from app.work_orders.lifecycle import State, Step, order_move, part_move


def history_json(r: Any) -> dict[str, Any]:
    return {
        "part": r["part"],
        "step": r["step"],
        "from": r["from_state"],
        "to": r["to_state"],
        "who": r["who"],
        "role": r["role"],
        "at": r["at"],
        "note": r["note"],
        "data": r["data"],
    }


class Moves:
    """Moves and history of one transaction; ``steps`` collects what to publish after it commits."""

    def __init__(self, conn: AsyncConnection, who: Principal, now: float) -> None:
        self.conn = conn
        self.who = who
        self.now = now
        self.steps: list[dict[str, Any]] = []

    async def append(
        self,
        ticket: str,
        part: int | None,
        step: str,
        from_state: str | None,
        to_state: str,
        note: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        row = {
            "ticket": ticket,
            "part": part,
            "step": step,
            "from_state": from_state,
            "to_state": to_state,
            "who": self.who.name,
            "role": self.who.role,
            "at": self.now,
            "note": note,
            "data": data or {},
        }
        await self.conn.execute(insert(H).values(**row))
        self.steps.append({"type": "work_order_step", **history_json(row), "ticket": ticket})

    async def order(
        self,
        row: dict[str, Any],
        step: Step,
        note: str | None = None,
        data: dict[str, Any] | None = None,
        **values: Any,
    ) -> State:
        """Move the order ``row`` (as read, with ``id``, ``status`` and ``version``); updates ``row``."""
        new = order_move(row["status"], step)
        values = {**values, "status": new.value, "version": row["version"] + 1, "updated_at": self.now}
        done = await self.conn.execute(
            update(W)
            .where(W.id == row["id"], W.status == row["status"], W.version == row["version"])
            .values(**values)
        )
        if done.rowcount != 1:
            raise StaleWorkOrder(details={"ticket": row["ticket"]})
        await self.append(row["ticket"], None, step.value, row["status"], new.value, note, data)
        row.update(values)
        return new

    async def part(
        self,
        part: dict[str, Any],
        step: Step,
        note: str | None = None,
        data: dict[str, Any] | None = None,
        **values: Any,
    ) -> State:
        new = part_move(part["state"], step)
        values = {**values, "state": new.value, "updated_at": self.now}
        done = await self.conn.execute(
            update(P).where(P.id == part["id"], P.state == part["state"]).values(**values)
        )
        if done.rowcount != 1:
            raise StaleWorkOrder(details={"ticket": part["ticket"], "part": part["no"]})
        await self.append(part["ticket"], part["no"], step.value, part["state"], new.value, note, data)
        part.update(values)
        return new

    async def new_part(
        self, values: dict[str, Any], note: str | None, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Insert a dispatched part numbered after the order's last."""
        last = (await self.conn.execute(select(func.max(P.no)).where(P.ticket == values["ticket"]))).scalar()
        row = {**values, "no": (last or 0) + 1, "state": State.DISPATCHED.value, "updated_at": self.now}
        row["id"] = (await self.conn.execute(insert(P).values(**row).returning(P.id))).scalar_one()
        await self.append(
            row["ticket"],
            row["no"],
            Step.DISPATCH.value,
            None,
            State.DISPATCHED.value,
            note,
            {"handler": row["handler"], **data},
        )
        return row


async def load_order(
    conn: AsyncConnection, ticket: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    query = select(W.__table__).where(W.ticket == ticket)
    row = (await conn.execute(query.with_for_update() if for_update else query)).mappings().first()
    return dict(row) if row else None


async def parts_of(conn: AsyncConnection, ticket: str) -> list[dict[str, Any]]:
    res = await conn.execute(select(P.__table__).where(P.ticket == ticket).order_by(P.no))
    return [dict(r) for r in res.mappings()]


def part_no(parts: list[dict[str, Any]], ticket: str, no: int) -> dict[str, Any]:
    for p in parts:
        if p["no"] == no:
            return p
    raise PartNotFound(f"{ticket} has no part {no}", details={"ticket": ticket, "part": no})


async def history_of(conn: AsyncConnection, ticket: str) -> list[dict[str, Any]]:
    res = await conn.execute(select(H.__table__).where(H.ticket == ticket).order_by(H.at, H.id))
    return [history_json(r) for r in res.mappings()]


async def alerts_of(conn: AsyncConnection, ticket: str) -> list[dict[str, Any]]:
    res = await conn.execute(select(A.__table__).where(A.ticket == ticket).order_by(A.fired_at, A.id))
    return [
        {
            "kind": r["kind"],
            "level": r["level"],
            "handler": r["handler"],
            "due_at": r["due_at"],
            "fired_at": r["fired_at"],
        }
        for r in res.mappings()
    ]

"""Work orders for operators: read (audited), list, confirm with corrections, and the corrections made.

Confirming is the lifecycle's ``accept`` step (``draft -> accepted``, 受理); confirming twice is refused.
Each field an operator changes is kept beside the engine's value in ``work_order_corrections``, so the
routing engine can be measured against what operators decided.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, or_, select, update

from app.auth import Principal
from app.calls.services import CallService
from app.db import Database
from app.errors import WorkOrderAlreadyConfirmed, WorkOrderNotFound
from app.models import WorkOrderCorrectionRow as C
from app.models import WorkOrderPartRow
from app.models import WorkOrderRow as W
from app.notifier import TranscriptNotifier
from app.work_orders import corrections
from app.work_orders.creator import RouterSource
from app.work_orders.dispatch import dispatch_for
from app.work_orders.history import Moves
from app.work_orders.lifecycle import State
from app.work_orders.loop import WorkOrderLoop, classify
from app.work_orders.schemas import Corrections
from app.work_orders.store import DRAFT, load, work_order_event, work_order_json


@dataclass(frozen=True)
class WorkOrderFilter:
    status: str | None = None
    service: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class CorrectionFilter:
    ticket: str | None = None
    field: str | None = None
    limit: int = 100


def correction_json(r: Any) -> dict[str, Any]:
    return {"ticket": r["ticket"], "field": r["field"], "engine_value": r["engine_value"],
            "operator_value": r["operator_value"], "by": r["corrected_by"], "at": r["corrected_at"]}


def _district(dispatch: list[dict[str, Any]]) -> str | None:
    return next((d.get("district") for d in dispatch if d.get("to") == "local_government"), None)


class WorkOrderService:
    def __init__(self, db: Database, calls: CallService, router: RouterSource, notifier: TranscriptNotifier,
                 districts: tuple[str, ...] = (), clock: Callable[[], float] = time.time,
                 loop: WorkOrderLoop | None = None) -> None:
        self.db = db
        self.calls = calls
        self.router = router
        self.notifier = notifier
        self.districts = districts
        self.clock = clock
        self.loop = loop  # publishes the accept step with the closed loop's other moves

    async def find(self, linkedid: str) -> dict[str, Any] | None:
        """The call's work order, unaudited: for callers that audit the access themselves."""
        async with self.db.read() as conn:
            row = await load(conn, linkedid=linkedid)
        return work_order_json(row) if row else None

    async def get(self, linkedid: str, who: Principal) -> dict[str, Any]:
        async with self.db.write() as conn:
            row = await load(conn, linkedid=linkedid)
            if row is not None and who.platform and who.platform not in (row["service"], row.get("origin")):
                exchanged = (await conn.execute(select(WorkOrderPartRow.id).where(
                    WorkOrderPartRow.ticket == row["ticket"],
                    WorkOrderPartRow.handler == who.platform))).first()
                row = row if exchanged else None  # another platform's order: as if there were none
            if row is None:
                raise WorkOrderNotFound(f"call {linkedid} has no work order", details={"call": linkedid})
            await self.calls.audit_in(conn, who, "read_work_order", linkedid, {"ticket": row["ticket"]})
        return work_order_json(row)

    async def list(self, f: WorkOrderFilter, who: Principal) -> dict[str, Any]:
        conds = [col == val for col, val in ((W.status, f.status), (W.service, f.service)) if val is not None]
        if who.platform:  # a person of one platform: its orders and those exchanged with it
            conds.append(or_(W.service == who.platform, W.origin == who.platform,
                             W.ticket.in_(select(WorkOrderPartRow.ticket).where(
                                 WorkOrderPartRow.handler == who.platform))))
        async with self.db.write() as conn:
            total = (await conn.execute(select(func.count()).select_from(W).where(*conds))).scalar_one()
            res = await conn.execute(select(W.__table__).where(*conds)
                                     .order_by(W.created_at.desc(), W.id.desc()).limit(f.limit))
            orders = [work_order_json(r) for r in res.mappings()]
            query = {k: v for k, v in vars(f).items() if v is not None}
            await self.calls.audit_in(conn, who, "list_work_orders", "work_orders",
                                      {"query": query, "returned": len(orders)})
        return {"work_orders": orders, "total": total, "limit": f.limit}

    async def confirm(self, ticket: str, raw: Corrections, who: Principal) -> dict[str, Any]:
        """Confirm the draft with the operator's corrections (checked against the work order's
        platform and the routing rules in service)."""
        categories = (await self.router.get()).rules.categories
        now = self.clock()
        async with self.db.write() as conn:
            row = await load(conn, ticket=ticket, for_update=True)
            if row is None:
                raise WorkOrderNotFound(f"no work order {ticket}", details={"ticket": ticket})
            if row["status"] != DRAFT:
                raise WorkOrderAlreadyConfirmed(
                    f"{ticket} was confirmed by {row['confirmed_by']}",
                    details={"ticket": ticket, "confirmed_by": row["confirmed_by"],
                             "confirmed_at": row["confirmed_at"]})
            changes = corrections.check(raw, row["service"], categories)
            made = [{"ticket": ticket, "field": field, "engine_value": row[col],
                     "operator_value": changes[col], "corrected_by": who.name, "corrected_at": now}
                    for field in corrections.FIELDS
                    if (col := "category_code" if field == "category" else field) in changes
                    and changes[col] != row[col]]
            merged = {**row, **changes}
            # Who the matter goes to follows the corrected values; the district the engine heard
            # stays unless the operator gave another address.
            places = [merged["address"] or ""]
            if "address" not in changes:
                places.append(_district(row["dispatch"]) or "")
            dispatch = dispatch_for(merged["action"], merged["life_threat"], merged["category_code"], places,
                                    self.districts)
            call = await self.calls.exists(row["linkedid"]) if row["linkedid"] else None
            values = {**changes, "status": State.ACCEPTED.value, "confirmed_by": who.name,
                      "confirmed_at": now,
                      "updated_at": now, "dispatch": dispatch, "version": row["version"] + 1,
                      "caller": row["caller"] or (call or {}).get("caller"),
                      "request_kind": classify(" ".join(filter(None, (row["words"], merged["summary"]))),
                                               merged["life_threat"], merged["linkage"])}
            await conn.execute(update(W).where(W.id == row["id"]).values(**values))
            if made:
                await conn.execute(insert(C), made)
            moves = Moves(conn, who, now)
            await moves.append(ticket, None, "accept", DRAFT, State.ACCEPTED.value, None,
                               {"corrected": [m["field"] for m in made]})
            wo = work_order_json({**row, **values})
            stored = await self.calls.record_in(conn, [work_order_event(wo, "accepted", now)])
            await self.calls.audit_in(conn, who, "confirm_work_order", row["linkedid"],
                                      {"ticket": ticket, "corrected": [m["field"] for m in made]})
        self.calls.announce(stored)
        if self.loop is not None:
            self.loop.published(moves)
        self.notifier.to_call(wo["call"], {"type": "work_order", "call": wo["call"], "work_order": wo})
        return {"work_order": wo, "corrections": [correction_json(m) for m in made]}

    async def corrections(self, f: CorrectionFilter, who: Principal) -> dict[str, Any]:
        conds = [col == val for col, val in ((C.ticket, f.ticket), (C.field, f.field)) if val is not None]
        async with self.db.write() as conn:
            res = await conn.execute(select(C.__table__).where(*conds)
                                     .order_by(C.corrected_at.desc(), C.id.desc()).limit(f.limit))
            rows = [correction_json(r) for r in res.mappings()]
            query = {k: v for k, v in vars(f).items() if v is not None}
            await self.calls.audit_in(conn, who, "list_work_order_corrections", "work_orders",
                                      {"query": query, "returned": len(rows)})
        return {"corrections": rows, "limit": f.limit}

"""What travels with a call to whoever takes it next (a transfer, a three-way bridge): the latest
routing answer, the work order (ticket, status, category, action, danger, dispatch) and where the
transcript reads back. ``GET /api/calls/{id}`` shows it as ``context``, and the published copies of
``transferred`` and ``conference_joined`` events carry it, so the receiving seat's console has it at
once (what is stored does not change)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.models import CallEventRow
from app.transcripts import transcript_link
from app.transcripts.services import segment_counts
from app.work_orders.store import context_json, load, work_order_json
from hotline.contracts import CallEventType

HANDOVER_EVENTS = frozenset({CallEventType.TRANSFERRED.value, CallEventType.CONFERENCE_JOINED.value})


async def latest_routing(conn: AsyncConnection, linkedid: str) -> dict[str, Any] | None:
    res = await conn.execute(
        select(CallEventRow.data)
        .where(CallEventRow.linkedid == linkedid, CallEventRow.type == CallEventType.ROUTED.value)
        .order_by(CallEventRow.at.desc(), CallEventRow.event_id.desc())
        .limit(1))
    return res.scalar_one_or_none()


class CallContext:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def of(self, conn: AsyncConnection, linkedid: str,
                 routing: dict[str, Any] | None) -> dict[str, Any]:
        row = await load(conn, linkedid=linkedid)
        counts = await segment_counts(conn, linkedid)
        return {
            "routing": routing,
            "work_order": context_json(work_order_json(row)) if row else None,
            "transcript": {"link": transcript_link(linkedid), "finals": counts["final"],
                           "gaps": counts["gap"]},
        }

    async def enrich(self, events: list[dict[str, Any]]) -> None:
        """Add ``context`` to the (copies of) events that hand the call to another seat."""
        wanted = [e for e in events if e.get("type") in HANDOVER_EVENTS]
        if not wanted:
            return
        found: dict[str, dict[str, Any]] = {}
        async with self.db.read() as conn:
            for e in wanted:
                lid = e["linkedid"]
                if lid not in found:
                    found[lid] = await self.of(conn, lid, await latest_routing(conn, lid))
                e["context"] = found[lid]

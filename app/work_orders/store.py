"""Work-order rows: loading (optionally locked for update), and their JSON shape."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import WorkOrderRow as W
from app.transcripts import transcript_link
from app.work_orders.drafting import ticket_number
from app.work_orders.lifecycle import State
from hotline.contracts import CallEvent, CallEventType

DRAFT, ACCEPTED = State.DRAFT.value, State.ACCEPTED.value
STATUSES = tuple(s.value for s in State)
COLUMNS = tuple(c for c in W.__table__.columns.keys() if c != "id")
# What the engine decides and an operator may see differently (kept apart once confirmed).
ENGINE_FIELDS = ("category_code", "category_name", "action", "life_threat", "linkage", "address", "slots",
                 "summary", "dispatch", "rules_version", "caller_segments")


# Columns a new order starts with unless its maker says otherwise.
ORDER_DEFAULTS: dict[str, Any] = {
    "linkedid": None, "category_code": None, "category_name": None, "life_threat": False, "linkage": [],
    "address": None, "slots": {}, "dispatch": [], "caller_segments": 0, "suggestion": None, "alert": None,
    "confirmed_by": None, "confirmed_at": None, "caller": None, "contact": None, "confidential": False,
    "request_kind": None, "words": None, "origin": None, "peer_ticket": None, "peer_transcript": None,
    "merged_into": None, "closed_at": None, "version": 0,
}


async def number_order(conn: AsyncConnection, order_id: int, service: str, at: float) -> str:
    """Give a just-inserted order its ticket (the number comes from the row id)."""
    ticket = ticket_number(service, order_id, at)
    await conn.execute(update(W).where(W.id == order_id).values(ticket=ticket))
    return ticket


async def insert_order(conn: AsyncConnection, values: dict[str, Any], now: float) -> dict[str, Any]:
    """Insert a new order (``ORDER_DEFAULTS`` for what ``values`` leaves out) and number it; the row
    as stored, with its ``id`` and ``ticket``."""
    row = {**ORDER_DEFAULTS, "created_at": now, "updated_at": now, **values}
    row["ticket"] = uuid.uuid4().hex  # a placeholder, numbered from the row id in the same transaction
    row["id"] = (await conn.execute(insert(W).values(**row).returning(W.id))).scalar_one()
    row["ticket"] = await number_order(conn, row["id"], row["service"], now)
    return row


async def load(conn: AsyncConnection, *, linkedid: str | None = None, ticket: str | None = None,
               for_update: bool = False) -> dict[str, Any] | None:
    """The row of a call's (or a ticket's) work order with its ``id``, or None."""
    query = select(W.__table__)
    query = query.where(W.linkedid == linkedid) if linkedid is not None else query.where(W.ticket == ticket)
    if for_update:
        query = query.with_for_update()  # PostgreSQL row lock; SQLite writers queue on the app's lock
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


def _category(code: str | None, name: str | None) -> dict[str, str] | None:
    return {"code": code, "name": name or ""} if code else None


def work_order_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    suggestion = row.get("suggestion")
    if suggestion:
        suggestion = {k: v for k, v in suggestion.items() if k not in ("category_code", "category_name")} | {
            "category": _category(suggestion.get("category_code"), suggestion.get("category_name"))}
    return {
        "ticket": row["ticket"],
        "kind": row["kind"],
        "call": row["linkedid"],
        "service": row["service"],
        "status": row["status"],
        "category": _category(row["category_code"], row["category_name"]),
        "action": row["action"],
        "life_threat": bool(row["life_threat"]),
        "linkage": list(row["linkage"] or []),
        "address": row["address"],
        "slots": dict(row["slots"] or {}),
        "summary": row["summary"],
        "dispatch": list(row["dispatch"] or []),
        "transcript": transcript_link(row["linkedid"]) if row["linkedid"] else row.get("peer_transcript"),
        "rules_version": row["rules_version"],
        "caller_segments": row["caller_segments"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "confirmed_by": row["confirmed_by"],
        "confirmed_at": row["confirmed_at"],
        "suggestion": suggestion or None,
        "alert": row["alert"],
        "caller": row.get("caller"),
        "contact": row.get("contact"),
        "confidential": bool(row.get("confidential")),
        "request_kind": row.get("request_kind"),
        "words": row.get("words"),
        "origin": row.get("origin"),
        "peer_ticket": row.get("peer_ticket"),
        "merged_into": row.get("merged_into"),
        "closed_at": row.get("closed_at"),
    }


def context_json(wo: Mapping[str, Any]) -> dict[str, Any]:
    """What travels with the call to the next seat (``context.work_order``)."""
    return {k: wo[k] for k in ("ticket", "kind", "status", "category", "action", "life_threat", "dispatch")}


def work_order_event(wo: Mapping[str, Any], what: str, at: float) -> CallEvent:
    """A ``work_order`` call event: created or accepted (each once per call: the id is fixed)."""
    return CallEvent(
        event_id=f"{wo['call']}:work_order:{what}", linkedid=wo["call"], type=CallEventType.WORK_ORDER, at=at,
        source="api",
        data={"ticket": wo["ticket"], "status": wo["status"], "action": wo["action"],
              "category": wo["category"]["code"] if wo["category"] else None})

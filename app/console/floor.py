"""The floor as the console shows it: live calls, queues and seats, alerts, late orders.

- :func:`floor_event` is what a published call event becomes before any console socket sees it:
  the fields a screen needs, the caller's number masked (the wallboard hangs where visitors pass;
  an operator reads their own caller's number through ``GET /api/calls/{id}``, which is audited).
- :func:`snapshot` is the wallboard's first frame: live calls (Redis), queues and seats (Asterisk's
  QueueStatus through AMI), today's KPIs, life-threat alerts and late or 督办 orders (database).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select

from app.models import DeadlineAlertRow, WorkOrderPartRow, WorkOrderRow
from hotline import redis_keys
from hotline.phone import mask_number
from hotline.platforms import Service
from hotline.site import Site

log = logging.getLogger(__name__)

# The data fields a console may see of a call event; anything else (channels, the caller's words in
# an alert, enrichment) stays on the server.
_DATA_FIELDS = ("seat", "kind", "target", "party", "mode", "hotline", "cause_txt", "outcome", "detail",
                "queue", "position", "reason", "category", "action", "leg", "ticket", "result")
ALERT_WINDOW_S = 3600.0  # life-threat alerts of the last hour stay on the wallboard


def floor_event(ev: dict[str, Any]) -> dict[str, Any] | None:
    """A call event for console sockets (None for anything that is not one)."""
    if "linkedid" not in ev or "type" not in ev:
        return None
    raw = ev.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    out = {"kind": "event", "linkedid": ev["linkedid"], "type": ev["type"], "at": ev.get("at"),
           "service": ev.get("service"), "seat": ev.get("seat"),
           "caller": mask_number(ev.get("caller")) if ev.get("caller") else None,
           "data": {k: data[k] for k in _DATA_FIELDS if k in data and isinstance(data[k], str | int | float)}}
    return out


def seat_kinds(site: Site) -> dict[str, tuple[str, str | None]]:
    """seat -> (kind, platform): operator, linkage or supervisor."""
    kinds: dict[str, tuple[str, str | None]] = {}
    for svc in Service:
        for seat in site.operators.get(svc, ()):
            kinds[seat] = ("operator", svc.value)
        for seat in site.linkage.get(svc, ()):
            kinds[seat] = ("linkage", svc.value)
    for seat in site.supervisors:
        kinds[seat] = ("supervisor", None)
    return kinds


# Asterisk's device states in QueueMember's Status (ast_devstate): what the wallboard says.
_DEVICE = {0: "unknown", 1: "ready", 2: "in_call", 3: "in_call", 4: "offline", 5: "offline", 6: "ringing",
           7: "ringing", 8: "on_hold"}


def seat_rows(site: Site, floor: dict[str, Any] | None, calls: list[dict[str, Any]],
              users: dict[str, str]) -> list[dict[str, Any]]:
    """One row per seat of the site: its state from Asterisk (or ``unknown`` without AMI), who is
    logged in to the console on it, and the live call it is on (with whom, since when)."""
    members: dict[str, dict[str, Any]] = {}
    for q in (floor or {}).get("queues", []):
        for m in q["members"]:
            members.setdefault(m["seat"], {**m, "queues": []})["queues"].append(q["queue"])
    on_call = {c["seat"]: c for c in calls if c.get("seat")}
    rows = []
    for seat, (kind, platform) in seat_kinds(site).items():
        m = members.get(seat)
        state = "unknown" if floor is None else "offline"
        if m is not None:
            state = _DEVICE.get(int(m["status"]), "unknown")
            if m["paused"] and state == "ready":
                state = "paused"
        call = on_call.get(seat)
        if call is not None and state in ("ready", "paused", "unknown", "offline"):
            state = "ringing" if call.get("state") == "ringing" else "in_call"
        rows.append({"seat": seat, "kind": kind, "platform": platform, "state": state,
                     "paused": bool(m and m["paused"]), "paused_reason": (m or {}).get("paused_reason", ""),
                     "queues": (m or {}).get("queues", []), "calls_taken": (m or {}).get("calls_taken", 0),
                     "user": users.get(seat), "call": call["linkedid"] if call else None,
                     "caller": call.get("caller") if call else None,
                     "since": call.get("since") if call else None})
    return rows


async def live_calls(redis: Any, *, limit: int = 500) -> list[dict[str, Any]]:
    """The calls Redis holds as live (masked), oldest first."""
    if redis is None:
        return []
    ids = sorted(await redis.smembers(redis_keys.LIVE_CALLS))[:limit]
    if not ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for linkedid in ids:
        pipe.hgetall(redis_keys.live_call(linkedid))
    out = []
    for linkedid, h in zip(ids, await pipe.execute(), strict=True):
        if not h or h.get("state") == "ended":
            continue
        since = _float(h.get("arrived_at")) or _float(h.get("queued_at"))
        out.append({"linkedid": linkedid, "service": h.get("service"), "state": h.get("state"),
                    "seat": h.get("seat"),
                    "caller": mask_number(h.get("caller")) if h.get("caller") else None,
                    "since": since, "answered_at": _float(h.get("answered_at")),
                    "transfer": h.get("transfer") or None})
    out.sort(key=lambda c: c["since"] or 0)
    return out


def _float(v: Any) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


async def alerts_and_late(db: Any, service: str | None, now: float | None = None) -> dict[str, Any]:
    """Life-threat alerts of the last hour, and late parts (overdue, 催办/督办 fired, unanswered)."""
    now = time.time() if now is None else now
    w, p, a = WorkOrderRow, WorkOrderPartRow, DeadlineAlertRow
    scope = [w.service == service] if service else []
    async with db.read() as conn:
        alerts = (await conn.execute(
            select(w.ticket, w.linkedid, w.service, w.category_name, w.summary, w.alert, w.updated_at)
            .where(w.life_threat.is_(True), w.updated_at >= now - ALERT_WINDOW_S, *scope)
            .order_by(w.updated_at.desc()).limit(20))).mappings().all()
        late = (await conn.execute(
            select(p.ticket, p.no, p.handler_name, p.state, p.due_at, p.overdue_at, w.summary, w.service)
            .join(w, w.ticket == p.ticket)
            .where(p.state.in_(("dispatched", "signed", "in_progress", "extension_requested", "extended",
                                "reopened")), p.due_at < now, *scope)
            .order_by(p.due_at).limit(50))).mappings().all()
        supervised = (await conn.execute(
            select(a.ticket, a.handler, a.level, a.due_at, a.fired_at)
            .where(a.kind == "urge", a.fired_at >= now - 7 * 86400)
            .order_by(a.fired_at.desc()).limit(50))).mappings().all()
    return {"alerts": [dict(r) for r in alerts], "late": [dict(r) for r in late],
            "supervised": [dict(r) for r in supervised]}


def queue_rows(floor: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for q in (floor or {}).get("queues", []):
        waits = [e["wait_s"] for e in q["waiting"]]
        rows.append({"queue": q["queue"], "waiting": len(waits), "longest_wait_s": max(waits, default=0),
                     "members": len(q["members"]),
                     "ready": sum(1 for m in q["members"] if m["status"] == 1 and not m["paused"]),
                     "paused": sum(1 for m in q["members"] if m["paused"]),
                     "completed": q.get("completed", 0), "abandoned": q.get("abandoned", 0)})
    return rows

"""What each role sees of an order in the closed loop.

Operators, supervisors and admins see the whole order. A department (one handler's staff) sees only
orders with a part dispatched to it, only its own parts, the caller's number masked, and no
transcript link (the transcript API is not theirs). Where the caller asked for confidentiality
(保密, GB/T 33358-2016) a department sees nothing of who called: no number, no contact, not the
caller's own words (only the operator's summary of the matter).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.auth import DEPARTMENT, Principal
from app.work_orders.store import work_order_json
from hotline.phone import mask_number

WITHHELD = "保密"  # shown in place of what a confidential caller asked to keep from handlers


def part_json(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "no": p["no"],
        "handler": {"id": p["handler"], "kind": p["handler_kind"], "name": p["handler_name"]},
        "state": p["state"],
        "dispatched_at": p["dispatched_at"],
        "dispatched_by": p["dispatched_by"],
        "sign_due_at": p["sign_due_at"],
        "warn_at": p["warn_at"],
        "due_at": p["due_at"],
        "calendar_covered": bool(p["calendar_covered"]),
        "signed_at": p["signed_at"],
        "replied_at": p["replied_at"],
        "overdue_at": p["overdue_at"],
        "result": p["result"],
        "extension": p["extension"],
        "returned": p["returned"],
        "peer": {"platform": p["peer"], "ticket": p["peer_ticket"], "part": p["peer_part"]}
        if p["peer"]
        else None,
    }


def order_view(
    row: Mapping[str, Any],
    parts: list[dict[str, Any]],
    who: Principal,
    history: list[dict[str, Any]] | None = None,
    alerts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    wo = work_order_json(row)
    mine = [p for p in parts if who.role != DEPARTMENT or p["handler"] == who.handler]
    view: dict[str, Any] = {"work_order": wo, "parts": [part_json(p) for p in mine]}
    if history is not None:
        view["history"] = [
            h
            for h in history
            if who.role != DEPARTMENT or h["part"] in {p["no"] for p in mine} or h["part"] is None
        ]
    if alerts is not None:
        view["alerts"] = [a for a in alerts if who.role != DEPARTMENT or a["handler"] == who.handler]
    if who.role == DEPARTMENT:
        for key in ("transcript", "call", "slots", "suggestion", "alert", "caller_segments", "rules_version"):
            wo.pop(key, None)
        if wo["confidential"]:
            wo.update(caller=WITHHELD, contact=WITHHELD, words=WITHHELD)
        else:
            wo.update(
                caller=mask_number(wo["caller"]) if wo["caller"] else None,
                contact=mask_number(wo["contact"]) if wo["contact"] else None,
            )
    return view

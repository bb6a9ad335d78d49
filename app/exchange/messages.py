"""Exchange messages built from the rows of an order and its parts (``hotline.exchange`` schema v1)."""

from __future__ import annotations

from typing import Any

from app.auth import Principal
from hotline.exchange import Message, OrderPart, PartStep, new_message_id
from hotline.platforms import Service

URGENCY = {"emergency": "emergency", "utilities": "urgent"}


def _district(dispatch: list[dict[str, Any]]) -> str | None:
    return next((d.get("district") for d in dispatch if d.get("to") == "local_government"), None)


def dispatch_message(
    order: dict[str, Any],
    part: dict[str, Any],
    recipient: Service,
    now: float,
    note: str | None,
    transcript_url: str | None,
) -> Message:
    kind = order["request_kind"] or "help"
    # A confidential caller's number stays here, unless a life is at risk: the police must be able to
    # call back whoever is in danger.
    withheld = bool(order["confidential"]) and not order["life_threat"]
    return Message.model_validate(
        {
            "schema": "hotline.exchange/1",
            "message_id": new_message_id(),
            "kind": "order.dispatch",
            "sent_at": now,
            "sender": order["service"],
            "recipient": recipient.value,
            "order": OrderPart.model_validate(
                {
                    "ticket": order["ticket"],
                    "part": part["no"],
                    "kind": order["kind"],
                    "call": order["linkedid"],
                    "received_at": order["created_at"],
                    "caller": None if withheld else order["caller"],
                    "contact": None if withheld else order["contact"],
                    "confidential": bool(order["confidential"]),
                    "address": order["address"],
                    "district": _district(order["dispatch"] or []),
                    "category": (
                        {"code": order["category_code"], "name": order["category_name"] or ""}
                        if order["category_code"]
                        else None
                    ),
                    "request_kind": kind,
                    "summary": order["summary"],
                    "words": (order["words"] or "")[:8000],
                    "transcript": transcript_url,
                    "urgency": URGENCY.get(kind, "normal"),
                    "life_threat": bool(order["life_threat"]),
                    "linkage": list(order["linkage"] or []),
                    "due_at": part["due_at"],
                    "handler": {"id": part["handler"], "name": part["handler_name"]},
                    "note": note,
                }
            ),
        }
    )


def step_message(
    order: dict[str, Any],
    part: dict[str, Any],
    step: str,
    who: Principal,
    now: float,
    *,
    note: str | None = None,
    **fields: Any,
) -> Message:
    """``part`` is this side's mirror of a part on the other platform (``peer``, ``peer_ticket``,
    ``peer_part`` say where); the message names the recipient's order and part, and this side's."""
    return Message.model_validate(
        {
            "schema": "hotline.exchange/1",
            "message_id": new_message_id(),
            "kind": "part.step",
            "sent_at": now,
            "sender": order["service"],
            "recipient": part["peer"],
            "step": PartStep.model_validate(
                {
                    "ticket": part["peer_ticket"],
                    "part": part["peer_part"],
                    "sender_ticket": order["ticket"],
                    "sender_part": part["no"],
                    "step": step,
                    "state": part["state"],
                    "at": now,
                    "by": {"name": who.name[:128], "role": who.role},
                    "note": note,
                    **{k: v for k, v in fields.items() if v is not None},
                }
            ),
        }
    )

"""A work order's fields from the caller's words and the routing engine's answer (pure functions)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from app.work_orders.dispatch import dispatch_for
from hotline.contracts import Service
from routing.engine import MAX_TEXT_CHARS
from routing.result import RouteResult

KINDS = {Service.HOTLINE_12345.value: "工单", Service.POLICE_110.value: "警单"}  # work order / police order
SUMMARY_CHARS = 60
MAX_ADDRESS = 256
# Ticket dates are the local date of the hotline (China Standard Time, UTC+8, no daylight saving).
TICKET_TZ = timezone(timedelta(hours=8), "CST")

_SENTENCE_END = re.compile(r"[。！？!?；;]")
_FILLER = re.compile(r"^(?:喂|你好|您好|嗯|啊|哎|唉|那个|就是|请问)[，,、。\s]*")


def kind_of(service: str) -> str:
    return KINDS.get(service, KINDS[Service.HOTLINE_12345.value])


def ticket_number(service: str, number: int, at: float) -> str:
    """Readable and unique: ``12345-20261129-000042`` (service, local date, the row's number)."""
    day = datetime.fromtimestamp(at, UTC).astimezone(TICKET_TZ).strftime("%Y%m%d")
    return f"{service}-{day}-{number:06d}"


def caller_text(finals: list[str]) -> str:
    """All the caller's finals as one text, each ending a sentence; the most recent words are kept
    when the whole is longer than the routing engine takes."""
    parts = [t.strip() for t in finals if t.strip()]
    text = "".join(p if _SENTENCE_END.search(p[-1]) else p + "。" for p in parts)
    return text[-MAX_TEXT_CHARS:]


def first_sentence(finals: list[str]) -> str:
    """The caller's first sentence that says something (greetings and fillers dropped)."""
    for t in finals:
        for sentence in _SENTENCE_END.split(t):
            s = sentence.strip()
            while (m := _FILLER.match(s)) and m.end() > 0:
                s = s[m.end():].strip()
            if s:
                return s
    return ""


def summary_of(finals: list[str], category_name: str | None) -> str:
    first = first_sentence(finals)
    if len(first) > SUMMARY_CHARS:
        first = first[: SUMMARY_CHARS - 1] + "…"
    return f"{category_name}：{first}" if category_name else first


def address_of(slots: dict[str, list[str]]) -> str | None:
    places = slots.get("place") or []
    return " ".join(places)[:MAX_ADDRESS] or None


def trigger_sentence(result: RouteResult, text: str) -> str:
    """The caller's words that made the matter a danger to life: the first such matter's text."""
    for m in result.matters:
        if m.life_threat:
            return m.text[:500]
    return text[-500:]


def draft_fields(result: RouteResult, finals: list[str], districts: tuple[str, ...] = ()) -> dict[str, Any]:
    """The engine's version of a work order (the columns an operator may later correct, and more).
    ``districts``: the site's own district/county/banner names, found first in the caller's words."""
    code = result.category["code"] if result.category else None
    name = result.category["name_zh"] if result.category else None
    address = address_of(result.slots)
    return {
        "category_code": code,
        "category_name": name,
        "action": result.action,
        "life_threat": result.life_threat,
        "linkage": list(result.linkage),
        "address": address,
        "slots": {k: list(v) for k, v in result.slots.items()},
        "summary": summary_of(finals, name),
        "dispatch": dispatch_for(result.action, result.life_threat, code,
                                 ([address] if address else []) + [caller_text(finals)], districts),
        "rules_version": result.rules_version[:32],
        "caller_segments": len(finals),
    }

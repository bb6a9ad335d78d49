"""A call's summary as a pure function of all its events, so arrival order never matters.

Rules: ``arrived_at`` is the earliest arrived/queued event (or the earliest event when neither came);
``answered_at`` the first answer; ``ended_at`` the hangup. Durations follow from those. The outcome is
the latest operator/flow outcome event; failing that, once the call has ended, an automatic one:
never answered or abandoned -> ``abandoned``; transferred to 110/12345 -> ``transferred_*``; a bridge
with the other platform or a hotline -> ``three_way`` / ``emergency_linked``; a confirmed work order ->
``ticket_created``; else ``resolved_on_call``. Automatic outcomes therefore never overwrite an
operator's or a flow's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hotline.contracts import CallEventType as T
from hotline.contracts import Outcome, Service

HUMAN_SOURCES = ("operator", "flow")


def _ts(e: Mapping[str, Any]) -> tuple[float, str]:
    return (e["at"], e["event_id"])


def _dur(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return round(max(0.0, end - start), 3)


def _str(v: Any, limit: int) -> str | None:
    return str(v)[:limit] if v not in (None, "") else None


def summarise(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    evs = sorted(events, key=_ts)
    if not evs:
        raise ValueError("a call summary needs at least one event")
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for e in evs:
        by_type.setdefault(e["type"], []).append(e)

    def first(*types: T) -> Mapping[str, Any] | None:
        found = [e for t in types for e in by_type.get(t.value, [])]
        return min(found, key=_ts) if found else None

    timeline = [e for e in evs if e["type"] != T.OUTCOME.value]
    start = first(T.ARRIVED, T.QUEUED) or (timeline or evs)[0]
    arrived_at = start["at"]
    queued = first(T.QUEUED)
    answered = first(T.ANSWERED)
    hangups = by_type.get(T.HANGUP.value, [])
    ended = max(hangups, key=_ts) if hangups else None
    answered_at = answered["at"] if answered else None
    ended_at = ended["at"] if ended else None
    # 一次一评: the caller rated after the seat hung up; the talk ended when the prompt began.
    rated = max(by_type.get(T.RATED.value, []), key=_ts, default=None)
    talk_end = min(ended_at, rated["at"]) if rated and ended_at is not None else ended_at

    service = next((e["service"] for e in evs if e.get("service")), None)
    caller = next((e["caller"] for e in evs if e.get("caller")), None)
    # The seat that holds the caller last (after transfers); answered_at stays the first answer.
    seat = _holding_seat(by_type)
    queue = None
    for e in by_type.get(T.QUEUED.value, []) + by_type.get(T.ARRIVED.value, []):
        if q := e["data"].get("queue"):
            queue = q
            break
    flags: set[str] = set()
    for e in evs:
        fl = e["data"].get("flags")
        if isinstance(fl, list):
            flags.update(str(f)[:32] for f in fl if isinstance(f, str | int))
        elif isinstance(fl, str):
            flags.update(f.strip()[:32] for f in fl.split(",") if f.strip())

    summary: dict[str, Any] = {
        "service": service,
        "caller": caller,
        "seat": _str(seat, 64),
        "queue": _str(queue, 64),
        "arrived_at": arrived_at,
        "queued_at": queued["at"] if queued else None,
        "answered_at": answered_at,
        "ended_at": ended_at,
        "wait_s": _dur(answered_at if answered else ended_at, arrived_at),
        "talk_s": _dur(talk_end, answered_at) if answered else (0.0 if ended else None),
        "total_s": _dur(ended_at, arrived_at),
        "hangup_cause": _str(ended["data"].get("cause"), 64) if ended else None,
        "flags": sorted(flags),
        "event_count": len(evs),
        "rating": _str(rated["data"].get("rating"), 24) if rated else None,
        "rating_result": _str(rated["data"].get("result"), 16) if rated else None,
        "outcome": None,
        "outcome_detail": None,
        "outcome_source": None,
        "outcome_by": None,
        "outcome_at": None,
    }
    summary.update(_outcome(by_type, answered is not None, ended, service))
    if summary.get("outcome_source") == "auto" and summary["outcome"] == Outcome.RESOLVED_ON_CALL.value:
        summary.update(_bridge_outcome(by_type, service) or _ticket_outcome(by_type))
    return summary


def _holding_seat(by_type: dict[str, list[Mapping[str, Any]]]) -> str | None:
    """The seat holding the caller last: the latest answer of the caller's own leg, or the seat
    consulted in an attended transfer once that transfer completed."""
    answers = sorted(by_type.get(T.ANSWERED.value, []), key=_ts)
    holding = [(_ts(e), e) for e in answers if not e["data"].get("leg")]
    for t in by_type.get(T.TRANSFERRED.value, []):
        if t["data"].get("kind") == "attended":
            consulted = [e for e in answers if e["data"].get("leg") == "consultation" and _ts(e) <= _ts(t)]
            if consulted:
                holding.append((_ts(t), consulted[-1]))
    if not holding:
        return None
    e = max(holding, key=lambda p: p[0])[1]
    return _str(e.get("seat") or e["data"].get("seat"), 64)


def _bridge_outcome(by_type: dict[str, list[Mapping[str, Any]]], service: str | None) -> dict:
    """A call that had a hotline or the other platform in its bridge: by the notice, when the two
    platforms do not agree the one that took the call keeps it, so the automatic answer is
    ``three_way`` with the receiving platform (operators correct it with the agreed one)."""
    joined = by_type.get(T.CONFERENCE_JOINED.value, [])
    hotlines = [e["data"]["hotline"] for e in sorted(joined, key=_ts) if e["data"].get("hotline")]
    if hotlines:
        return {"outcome": Outcome.EMERGENCY_LINKED.value, "outcome_detail": _str(hotlines[0], 32)}
    others = [e for e in joined if e["data"].get("platform") not in (None, service)]
    if others and service:
        return {"outcome": Outcome.THREE_WAY.value, "outcome_detail": service}
    return {}


def _ticket_outcome(by_type: dict[str, list[Mapping[str, Any]]]) -> dict:
    """A call kept on this platform whose work order (工单/警单) an operator confirmed ended with a
    ticket; the ticket number is the detail."""
    confirmed = [e for e in by_type.get(T.WORK_ORDER.value, [])
                 if e["data"].get("status") in ("accepted", "confirmed")]  # "confirmed": before 0003
    if not confirmed:
        return {}
    return {"outcome": Outcome.TICKET_CREATED.value,
            "outcome_detail": _str(max(confirmed, key=_ts)["data"].get("ticket"), 256)}


def _left_waiting(by_type: dict[str, list[Mapping[str, Any]]]) -> bool:
    """After an answer, the caller still abandoned if the last abandon (hanging up while waiting
    in a transfer's queue) came after every answer, bridge and failed transfer: a transfer queue's
    timeout also raises an abandon, but the fallback then answers or bridges the caller again."""
    abandons = by_type.get(T.ABANDONED.value, [])
    if not abandons:
        return False
    last_abandon = max(_ts(e) for e in abandons)
    later = [e for t in (T.ANSWERED, T.BRIDGED, T.TRANSFER_FAILED) for e in by_type.get(t.value, [])
             if _ts(e) > last_abandon]
    return not later


def _outcome(
    by_type: dict[str, list[Mapping[str, Any]]], answered: bool, ended: Mapping[str, Any] | None,
    service: str | None = None,
) -> dict:
    set_by_hand = by_type.get(T.OUTCOME.value, [])
    if set_by_hand:
        e = max(set_by_hand, key=_ts)
        src = e["data"].get("outcome_source")
        return {
            "outcome": e["data"]["outcome"],
            "outcome_detail": _str(e["data"].get("detail"), 256),
            "outcome_source": src if src in HUMAN_SOURCES else "flow",
            "outcome_by": _str(e["data"].get("by"), 128) or e["source"],
            "outcome_at": e["at"],
        }
    if ended is None:
        return {}
    if not answered or _left_waiting(by_type):
        outcome = Outcome.ABANDONED
    else:
        # The last transfer to the other platform decides where the call went.
        outcome = Outcome.RESOLVED_ON_CALL
        failed = by_type.get(T.TRANSFER_FAILED.value, [])
        last_failure = max((_ts(e) for e in failed), default=None)
        for e in sorted(by_type.get(T.TRANSFERRED.value, []), key=_ts, reverse=True):
            if last_failure is not None and last_failure >= _ts(e):
                break  # the latest hand-over failed: the caller came back to this platform
            target = str(e["data"].get("target_service"))
            if target == service:
                continue  # a transfer within the same platform (another seat) is not a hand-over
            if target == Service.POLICE_110.value:
                outcome = Outcome.TRANSFERRED_110
                break
            if target == Service.HOTLINE_12345.value:
                outcome = Outcome.TRANSFERRED_12345
                break
    return {
        "outcome": outcome.value,
        "outcome_detail": None,
        "outcome_source": "auto",
        "outcome_by": None,
        "outcome_at": ended["at"],
    }

"""Strict parsing of request bodies into typed values. Collects every problem, then raises once.

A batch is validated whole before anything is written, which is what makes it all-or-nothing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from app.errors import UnknownOutcome, ValidationFailed
from hotline.contracts import (
    EVENT_ID_RE,
    LINKAGE_HOTLINES,
    LINKEDID_RE,
    CallEvent,
    CallEventType,
    Outcome,
    Service,
)
from hotline.phone import clean_number

MAX_BATCH = 500
MAX_DATA_BYTES = 16 * 1024
MAX_RAW_CALLER = 256
MAX_NOTE = 2000
MAX_DETAIL = 256
EVENT_SOURCES = ("agi", "ami", "api", "flow")
SEAT_RE = re.compile(r"^[A-Za-z0-9._@/-]{1,64}$")
# 2000-01-01 .. 2100-01-01: catches milliseconds sent as seconds and other unit mistakes.
MIN_AT, MAX_AT = 946_684_800.0, 4_102_444_800.0

_EVENT_FIELDS = {"event_id", "linkedid", "type", "at", "source", "service", "caller", "seat", "data"}


@dataclass(frozen=True)
class Problem:
    field: str
    problem: str
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.index is not None:
            d["index"] = self.index
        return d


def fail(problems: list[Problem], message: str = "request failed validation") -> None:
    if problems:
        raise ValidationFailed(message, details=[p.to_json() for p in problems])


MAX_DATA_DEPTH = 16


def _bad_text(v: Any) -> bool:
    """A string that cannot be stored and read back: a lone surrogate (from JSON "\\ud800") cannot
    be encoded, and PostgreSQL refuses NUL."""
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\x00" in v


def _depth(v: Any, limit: int) -> int:
    """How deeply ``v`` nests (stops counting past ``limit``), without recursion."""
    deepest, stack = 0, [(v, 1)]
    while stack:
        item, d = stack.pop()
        if d > limit:
            return d
        deepest = max(deepest, d)
        if isinstance(item, dict):
            stack.extend((x, d + 1) for x in item.values())
            if any(_bad_text(k) for k in item):
                return -1
        elif isinstance(item, list):
            stack.extend((x, d + 1) for x in item)
        elif _bad_text(item):
            return -1
    return deepest


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_outcome(
    outcome: Any, detail: Any, problems: list[Problem], index: int | None = None
) -> Outcome | None:
    """Validate an outcome and its detail. An unknown outcome raises :class:`UnknownOutcome`."""
    if not isinstance(outcome, str):
        problems.append(Problem("outcome", "required string", index))
        return None
    try:
        oc = Outcome(outcome)
    except ValueError:
        raise UnknownOutcome(
            f"unknown outcome {outcome[:64]!r}", details={"allowed": [o.value for o in Outcome]}
        ) from None
    if detail is not None and (not isinstance(detail, str) or len(detail) > MAX_DETAIL or _bad_text(detail)):
        problems.append(Problem("detail", f"must be a string of at most {MAX_DETAIL} characters", index))
    elif oc is Outcome.THREE_WAY and detail not in (Service.HOTLINE_12345.value, Service.POLICE_110.value):
        problems.append(Problem("detail", "three_way needs the accepting platform: '12345' or '110'", index))
    elif oc is Outcome.EMERGENCY_LINKED and detail not in LINKAGE_HOTLINES:
        problems.append(
            Problem("detail", f"emergency_linked needs one of {', '.join(LINKAGE_HOTLINES)}", index)
        )
    return oc


def _event(raw: Any, index: int | None, problems: list[Problem]) -> CallEvent | None:
    before = len(problems)

    def bad(field: str, problem: str) -> None:
        problems.append(Problem(field, problem, index))

    if not isinstance(raw, dict):
        bad("", "an event must be a JSON object")
        return None
    for extra in sorted(set(raw) - _EVENT_FIELDS):
        bad(str(extra)[:64], "unknown field")
    event_id: Any = raw.get("event_id")
    linkedid: Any = raw.get("linkedid")
    if not isinstance(event_id, str) or not EVENT_ID_RE.fullmatch(event_id):
        bad("event_id", "required; 1-128 characters of A-Z a-z 0-9 . _ : @ -")
    if not isinstance(linkedid, str) or not LINKEDID_RE.fullmatch(linkedid):
        bad("linkedid", "required; 1-64 characters of A-Z a-z 0-9 . _ : -")
    etype: CallEventType | None = None
    try:
        etype = CallEventType(str(raw.get("type")))
    except ValueError:
        bad("type", f"required; one of {', '.join(t.value for t in CallEventType)}")
    at: Any = raw.get("at")
    if not _is_number(at) or not MIN_AT <= at <= MAX_AT:
        bad("at", "required; epoch seconds (number) between 2000 and 2100")
    source = raw.get("source", "ami")
    if source not in EVENT_SOURCES:
        bad("source", f"one of {', '.join(EVENT_SOURCES)}")
    service = raw.get("service")
    if service is not None and service not in (s.value for s in Service):
        bad("service", "null, '12345' or '110'")
    caller = raw.get("caller")
    if caller is not None and (not isinstance(caller, str) or len(caller) > MAX_RAW_CALLER
                               or _bad_text(caller)):
        bad("caller", f"null or a string of at most {MAX_RAW_CALLER} characters")
    seat = raw.get("seat")
    if seat is not None and (not isinstance(seat, str) or not SEAT_RE.fullmatch(seat)):
        bad("seat", "null or 1-64 characters of A-Z a-z 0-9 . _ @ / -")
    data = raw.get("data", {})
    if not isinstance(data, dict):
        bad("data", "must be a JSON object")
    elif (depth := _depth(data, MAX_DATA_DEPTH)) < 0:
        bad("data", "text must be valid Unicode without NUL")
    elif depth > MAX_DATA_DEPTH:
        bad("data", f"must nest at most {MAX_DATA_DEPTH} levels")
    else:
        try:
            size = len(json.dumps(data, ensure_ascii=False, allow_nan=False).encode())
        except ValueError:
            bad("data", "must not hold NaN or Infinity")
        else:
            if size > MAX_DATA_BYTES:
                bad("data", f"must be at most {MAX_DATA_BYTES} bytes as JSON, got {size}")
        if etype is CallEventType.OUTCOME:
            check_outcome(data.get("outcome"), data.get("detail"), problems, index)
    if len(problems) > before or etype is None:
        return None
    return CallEvent(
        event_id=event_id,
        linkedid=linkedid,
        type=etype,
        at=float(at),
        source=source,
        service=Service(service) if service else None,
        caller=clean_number(caller) if caller is not None else None,
        seat=seat,
        data=data,
    )


def parse_events(body: Any) -> list[CallEvent]:
    """One event object, or ``{"events": [...]}`` with 1..500 events. All valid, or nothing."""
    problems: list[Problem] = []
    if isinstance(body, dict) and "events" in body:
        items = body["events"]
        if set(body) != {"events"}:
            fail([Problem(k, "unknown field") for k in sorted(set(body) - {"events"})])
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            fail([Problem("events", f"must be a list of 1..{MAX_BATCH} events")])
        events = [_event(raw, i, problems) for i, raw in enumerate(items)]
    else:
        events = [_event(body, None, problems)]
    fail(problems)
    return [e for e in events if e is not None]


@dataclass(frozen=True)
class OutcomeRequest:
    outcome: Outcome
    detail: str | None
    note: str | None


def parse_outcome(body: Any) -> OutcomeRequest:
    if not isinstance(body, dict):
        fail([Problem("", "body must be a JSON object")])
    problems = [
        Problem(str(k)[:64], "unknown field") for k in sorted(set(body) - {"outcome", "detail", "note"})
    ]
    oc = check_outcome(body.get("outcome"), body.get("detail"), problems)
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE or _bad_text(note)):
        problems.append(Problem("note", f"null or a string of at most {MAX_NOTE} characters "
                                "(valid Unicode, no NUL)"))
    fail(problems)
    assert oc is not None
    return OutcomeRequest(oc, body.get("detail"), note)

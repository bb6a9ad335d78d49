"""Bodies of the event and call routes: ``POST /api/events``, ``PUT .../outcome``, ``GET /api/calls``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.schemas import MAX_BATCH, Answer, Body
from hotline.contracts import CallEvent, Outcome, check_outcome
from hotline.platforms import Service
from hotline.types import CallId, EpochSeconds, SeatId, Text

MAX_NOTE = 2000
MAX_DETAIL = 256
MAX_LIMIT = 500


class EventBatch(Body):
    events: list[CallEvent] = Field(min_length=1, max_length=MAX_BATCH)


EventsBody = CallEvent | EventBatch


def parse_events(raw: Any) -> list[CallEvent]:
    """One event object, or ``{"events": [...]}`` with 1..500 events: all valid, or a
    :class:`pydantic.ValidationError` (nothing is stored)."""
    if isinstance(raw, dict) and "events" in raw:
        return EventBatch.model_validate(raw).events
    return [CallEvent.model_validate(raw)]


class RecordAnswer(Answer):
    received: int
    new: int
    duplicates: int


class OutcomeBody(Body):
    outcome: Outcome
    detail: Text(MAX_DETAIL) | None = None  # type: ignore[valid-type]
    note: Text(MAX_NOTE) | None = None  # type: ignore[valid-type]

    @field_validator("outcome", mode="before")
    @classmethod
    def _known(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in tuple(Outcome):
            check_outcome(v, None)  # raises unknown_outcome
        return v

    @model_validator(mode="after")
    def _detail(self) -> OutcomeBody:
        check_outcome(self.outcome.value, self.detail)
        return self


def _time(raw: Any) -> Any:
    """ISO-8601 (naive means UTC) or epoch seconds."""
    if not isinstance(raw, str):
        return raw
    try:
        if raw.replace(".", "", 1).isdigit():
            return float(raw)
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise PydanticCustomError("time", "an ISO-8601 date-time or epoch seconds") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


QueryTime = Annotated[EpochSeconds, BeforeValidator(_time)]


class CallsQuery(Body):
    since: QueryTime | None = None
    until: QueryTime | None = None
    service: Service | None = None
    seat: SeatId | None = None
    outcome: Outcome | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class CallSummary(Answer):
    linkedid: CallId
    service: Service | None
    caller: str | None
    seat: str | None
    queue: str | None
    arrived_at: float | None
    queued_at: float | None
    answered_at: float | None
    ended_at: float | None
    wait_s: float | None
    talk_s: float | None
    total_s: float | None
    hangup_cause: str | None
    outcome: Outcome | None
    outcome_detail: str | None
    outcome_source: str | None
    outcome_by: str | None
    outcome_at: float | None
    flags: list[str]
    event_count: int
    rating: str | None = None          # 一次一评 (site [survey.scale]): very_satisfied ... very_unsatisfied
    rating_result: str | None = None   # rated | no_key | invalid | hung_up; None: no rating prompt
    updated_at: float


class CallContextAnswer(Answer):
    routing: dict[str, Any] | None
    work_order: dict[str, Any] | None
    transcript: dict[str, Any]


class CallAnswer(CallSummary):
    timeline: list[CallEvent]
    context: CallContextAnswer


class OutcomeAnswer(CallSummary):
    harassment_listed: bool | None = None


class CallList(Answer):
    calls: list[CallSummary]
    total: int
    limit: int
    offset: int

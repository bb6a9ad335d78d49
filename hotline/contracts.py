"""Contracts several parts share: services, call-event types, outcomes, routing vocabulary.

The AGI server and the AMI listener produce :class:`CallEvent` objects; the app service is the only
one that stores them. The JSON shape is the body of ``POST /api/events``.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hotline.phone import clean_number
from hotline.platforms import LINKAGE_HOTLINES, Service
from hotline.types import CallId, EpochSeconds, EventId, SeatId, Text


class CallEventType(enum.StrEnum):
    ARRIVED = "arrived"          # intake saw the call (FastAGI/AGI) or AMI saw a new inbound channel
    QUEUED = "queued"            # caller joined a queue
    RINGING = "ringing"          # a seat is being rung (data.seat)
    ANSWERED = "answered"        # a seat answered (data.seat)
    BRIDGED = "bridged"          # caller and seat share a bridge
    TRANSFERRED = "transferred"  # blind or attended transfer (data.kind, data.target)
    TRANSFER_FAILED = "transfer_failed"  # nobody answered at the target: the caller came back
    CONFERENCE_JOINED = "conference_joined"  # a party joined the call's three-way bridge (data.party)
    CONFERENCE_LEFT = "conference_left"      # a party left it
    SUPERVISED = "supervised"                # a supervisor listened, whispered or barged (data.mode)
    ROUTED = "routed"                        # the routing engine's answer on the caller's words
    ALERT = "alert"                          # a life threat heard mid-call (data.reason, data.text)
    WORK_ORDER = "work_order"                # the call's draft work order was created / confirmed
    ABANDONED = "abandoned"      # caller hung up while waiting in a queue
    HANGUP = "hangup"            # the caller's channel is gone (data.cause, data.cause_txt)
    OUTCOME = "outcome"          # an outcome was set (operator or flow)
    RATED = "rated"              # 一次一评: the caller's key after the seat hung up (data.rating, .result)
    SURVEYED = "surveyed"        # 回访: the answers on an outbound survey call (data.task, data.answers)
    CALLBACK = "callback"        # an outbound callback attempt about this call (data.task, data.result)


class Outcome(enum.StrEnum):
    RESOLVED_ON_CALL = "resolved_on_call"
    TICKET_CREATED = "ticket_created"
    TRANSFERRED_110 = "transferred_110"
    TRANSFERRED_12345 = "transferred_12345"
    THREE_WAY = "three_way"              # detail: accepting platform ("12345" | "110")
    EMERGENCY_LINKED = "emergency_linked"  # detail: hotline (119/120/122/water/power/gas/heating)
    GUIDED = "guided"
    ABANDONED = "abandoned"
    HARASSMENT = "harassment"



# Anchored with \Z, so ``.match`` and ``.fullmatch`` both refuse a trailing newline.
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}\Z")
LINKEDID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}\Z")

MAX_DATA_BYTES = 16 * 1024  # an event's ``data`` as UTF-8 JSON
MAX_DATA_DEPTH = 16         # nesting of ``data``: deeper structures fail on storing (recursion)
MAX_RAW_CALLER = 256        # the caller as Asterisk hands it, before cleaning
MAX_DETAIL = 256
EventSource = Literal["agi", "ami", "api", "flow"]
EVENT_SOURCES: tuple[str, ...] = ("agi", "ami", "api", "flow")

StrictEpoch = Annotated[EpochSeconds, Strict()]
Caller = Annotated[Text(MAX_RAW_CALLER), AfterValidator(clean_number)]  # type: ignore[valid-type]


def _check_json(value: Any, depth: int = 0) -> None:
    """Walk a JSON value: bounded depth, valid Unicode (no lone surrogates, no NUL), finite numbers."""
    if depth > MAX_DATA_DEPTH:
        raise PydanticCustomError("data_too_deep", "nested deeper than {max} levels", {"max": MAX_DATA_DEPTH})
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError("invalid_unicode", "text is not valid Unicode (a lone surrogate)") \
                from None
        if "\x00" in value:
            raise PydanticCustomError("invalid_unicode", "text must not contain NUL")
    elif isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("not_finite", "NaN and Infinity are not JSON")
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise PydanticCustomError("bad_key", "object keys must be strings")
            _check_json(k, depth + 1)
            _check_json(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_json(v, depth + 1)
    elif value is not None and not isinstance(value, bool | int | float):
        raise PydanticCustomError("not_json", "not a JSON value")


def _event_data(data: dict[str, Any]) -> dict[str, Any]:
    _check_json(data)
    size = len(json.dumps(data, ensure_ascii=False).encode())
    if size > MAX_DATA_BYTES:
        raise PydanticCustomError("data_too_large", "at most {max} bytes as JSON, got {size}",
                                  {"max": MAX_DATA_BYTES, "size": size})
    return data


EventData = Annotated[dict[str, Any], AfterValidator(_event_data)]


def check_outcome(outcome: Any, detail: Any) -> None:
    """The rules of an outcome and its detail (an outcome event's data, ``PUT .../outcome``).
    An unknown outcome is its own error (``unknown_outcome``)."""
    if not isinstance(outcome, str):
        raise PydanticCustomError("outcome_required", "outcome: a string is required")
    if outcome not in Outcome.__members__.values():
        raise PydanticCustomError("unknown_outcome", "outcome: unknown outcome '{outcome}', one of {allowed}",
                                  {"outcome": outcome[:64], "allowed": ", ".join(Outcome)})
    if detail is not None and (not isinstance(detail, str) or len(detail) > MAX_DETAIL):
        raise PydanticCustomError("bad_detail", "detail: null or a string of at most {max} characters",
                                  {"max": MAX_DETAIL})
    if outcome == Outcome.THREE_WAY and detail not in tuple(Service):
        raise PydanticCustomError("bad_detail", "detail: three_way needs the accepting platform 12345|110")
    if outcome == Outcome.EMERGENCY_LINKED and detail not in LINKAGE_HOTLINES:
        raise PydanticCustomError("bad_detail", "detail: emergency_linked needs one of {allowed}",
                                  {"allowed": ", ".join(LINKAGE_HOTLINES)})


class Contract(BaseModel):
    """A value shared between processes: immutable, and no field that the schema does not name."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CallEvent(Contract):
    """One thing that happened to a call, keyed by Asterisk's ``linkedid``; the body of
    ``POST /api/events``.

    ``event_id`` is the idempotency key: producers derive it from what happened (for AMI events,
    ``linkedid`` + the AMI event's uniqueid + name + timestamp) so that a replay is the same event.
    ``at`` is seconds since the epoch (float, UTC). ``caller`` is cleaned to dial characters.
    """

    event_id: EventId
    linkedid: CallId
    type: CallEventType
    at: StrictEpoch
    source: EventSource = "ami"
    service: Service | None = None
    caller: Caller | None = None  # type: ignore[valid-type]
    seat: SeatId | None = None
    data: EventData = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _outcome_data(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.data.get("type") is CallEventType.OUTCOME:
            check_outcome(data.get("outcome"), data.get("detail"))
        return data

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

# --- Live transcription ------------------------------------------------------------------------


class Speaker(enum.StrEnum):
    """Who a transcript stream hears. Each party of a call is its own stream."""

    CALLER = "caller"
    OPERATOR_12345 = "operator_12345"
    OPERATOR_110 = "operator_110"
    LINKAGE = "linkage"  # a 119/120/122/utility hotline brought into a three-way bridge


class SegmentKind(enum.StrEnum):
    PARTIAL = "partial"  # the words so far of an utterance still being spoken; replaced by the next
    FINAL = "final"      # one finished utterance
    GAP = "gap"          # audio of this stream was not transcribed from start to end (text: reason)


class GapReason(enum.StrEnum):
    RECOGNIZER_DOWN = "recognizer_down"        # the transcriber was not reachable
    RECOGNIZER_STALLED = "recognizer_stalled"  # the transcriber stopped answering (heartbeat lost)
    OVERLOAD = "overload"                      # decoding fell behind real time: audio was dropped
    TAP_LOST = "tap_lost"                      # the media tap ended while its party was still on
    TAP_FAILED = "tap_failed"                  # the media tap could not be started


SEGMENT_TEXT_MAX = 2000
GAP_REASONS: tuple[str, ...] = tuple(GapReason)

Confidence = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
SeqNo = Annotated[int, Strict(), Field(ge=0, lt=1 << 31)]


class Segment(Contract):
    """One piece of a call's live transcript. Publishers: the transcriber (partial, final, overload
    gaps) and the tap controller (gaps). ``tap`` is the stream's id and ``seq`` increases within a
    stream, so ``(tap, seq)`` is the idempotency key of a stored segment. Times are epoch seconds;
    a gap's ``text`` is its :class:`GapReason`."""

    call: CallId
    tap: CallId
    seq: SeqNo
    speaker: Speaker
    kind: SegmentKind
    start: StrictEpoch
    end: StrictEpoch
    text: Text(SEGMENT_TEXT_MAX) = ""  # type: ignore[valid-type]
    confidence: Confidence | None = None
    seat: SeatId | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Segment:
        if self.end < self.start:
            raise PydanticCustomError("end_before_start", "segment.end: before start")
        if self.kind is SegmentKind.GAP and self.text not in GAP_REASONS:
            raise PydanticCustomError("gap_reason", "segment.text: a gap's reason, one of {allowed}",
                                      {"allowed": ", ".join(GAP_REASONS)})
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, raw: Any) -> Segment:
        """Validate a segment received over the wire; raises ``ValueError`` naming the field at fault
        (``segment.seq: ...``)."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(describe(exc, "segment")) from None


def describe(exc: ValidationError, what: str) -> str:
    """One line for a log or an exception: ``what.field: problem`` for the first error (every unknown
    field named at once)."""
    errors = exc.errors(include_url=False)
    unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"{what}: unknown fields {unknown}"
    first = errors[0]
    if first["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"{what}: expected an object"
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if not loc:
        return msg if msg.startswith(f"{what}.") else f"{what}: {msg}"
    return f"{what}.{loc}: {msg}"

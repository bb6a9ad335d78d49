"""Contracts several parts share: services, call-event types, outcomes, routing vocabulary.

The AGI server and the AMI listener produce :class:`CallEvent` objects; the app service is the only
one that stores them. The JSON shape is the body of ``POST /api/events``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field
from typing import Any


class Service(enum.StrEnum):
    HOTLINE_12345 = "12345"
    POLICE_110 = "110"


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


LINKAGE_HOTLINES = ("119", "120", "122", "water", "power", "gas", "heating")

EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
LINKEDID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class CallEvent:
    """One thing that happened to a call, keyed by Asterisk's ``linkedid``.

    ``event_id`` is the idempotency key: producers derive it from what happened (for AMI events,
    ``linkedid`` + the AMI event's uniqueid + name + timestamp) so that a replay is the same event.
    ``at`` is seconds since the epoch (float, UTC).
    """

    event_id: str
    linkedid: str
    type: CallEventType
    at: float
    source: str = "ami"  # "agi" | "ami" | "api" | "flow"
    service: Service | None = None
    caller: str | None = None
    seat: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = self.type.value
        d["service"] = self.service.value if self.service else None
        return d


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


@dataclass(frozen=True)
class Segment:
    """One piece of a call's live transcript. Publishers: the transcriber (partial, final, overload
    gaps) and the tap controller (gaps). ``tap`` is the stream's id and ``seq`` increases within a
    stream, so ``(tap, seq)`` is the idempotency key of a stored segment. Times are epoch seconds."""

    call: str
    tap: str
    seq: int
    speaker: Speaker
    kind: SegmentKind
    start: float
    end: float
    text: str = ""
    confidence: float | None = None
    seat: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["speaker"] = self.speaker.value
        d["kind"] = self.kind.value
        return d

    @classmethod
    def from_json(cls, raw: Any) -> Segment:
        """Validate a segment received over the wire; raises ``ValueError`` with the field at fault."""
        if not isinstance(raw, dict):
            raise ValueError("segment: expected an object")
        raw = _AnyDict(raw)
        unknown = set(raw) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"segment: unknown fields {sorted(unknown)}")
        call, tap = raw.get("call"), raw.get("tap")
        if not isinstance(call, str) or not LINKEDID_RE.fullmatch(call):
            raise ValueError("segment.call: expected a call id")
        if not isinstance(tap, str) or not LINKEDID_RE.fullmatch(tap):
            raise ValueError("segment.tap: expected a stream id")
        seq = raw.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 1 << 31:
            raise ValueError("segment.seq: expected an integer >= 0")
        try:
            speaker = Speaker(raw.get("speaker"))
        except ValueError:
            raise ValueError(f"segment.speaker: one of {[s.value for s in Speaker]}") from None
        try:
            kind = SegmentKind(raw.get("kind"))
        except ValueError:
            raise ValueError(f"segment.kind: one of {[k.value for k in SegmentKind]}") from None
        start, end = raw.get("start"), raw.get("end")
        for name, v in (("start", start), ("end", end)):
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v < 1e11:
                raise ValueError(f"segment.{name}: expected epoch seconds")
        if end < start:  # type: ignore[operator]
            raise ValueError("segment.end: before start")
        text = raw.get("text", "")
        if not isinstance(text, str) or len(text) > SEGMENT_TEXT_MAX:
            raise ValueError(f"segment.text: a string of at most {SEGMENT_TEXT_MAX} characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("segment.text: not valid Unicode (a lone surrogate)") from None
        if "\x00" in text:
            raise ValueError("segment.text: must not contain NUL")
        conf = raw.get("confidence")
        if conf is not None and (not isinstance(conf, int | float) or isinstance(conf, bool)
                                 or not 0 <= conf <= 1):
            raise ValueError("segment.confidence: a number in 0..1 or null")
        seat = raw.get("seat")
        if seat is not None and (not isinstance(seat, str) or not re.fullmatch(r"[0-9]{2,8}", seat)):
            raise ValueError("segment.seat: a seat id or null")
        return cls(call=call, tap=tap, seq=seq, speaker=speaker, kind=kind, start=float(start),
                   end=float(end), text=text, confidence=None if conf is None else float(conf), seat=seat)


class _AnyDict(dict):  # type: ignore[type-arg]
    """A dict whose values mypy treats as Any (wire input, checked field by field)."""

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(key, default)

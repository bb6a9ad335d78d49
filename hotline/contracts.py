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

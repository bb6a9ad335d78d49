"""Turn AMI events into call events keyed by ``linkedid``.

Pure and synchronous: it takes a dict of AMI headers and returns zero or more :class:`CallEvent`.
Event ids are derived from what happened (linkedid, kind, the channel's uniqueid), so replaying the
same AMI text, or resyncing after a reconnect, yields the same ids and the app stores nothing twice.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hotline.contracts import LINKEDID_RE, CallEvent, CallEventType, Service
from hotline.names import (
    CTX_ATXFER,
    CTX_CONF_INVITE,
    CTX_TRANSFER,
    SERVICE_BY_QUEUE,
    UEV_SPY,
    UEV_TRANSFER,
    UEV_TRANSFER_FAILED,
    VAR_LINKEDID,
)
from hotline.phone import clean_number

_SEAT_FROM_CHANNEL = re.compile(r"^PJSIP/([0-9]{2,8})-[0-9a-f]+$")
_SEAT_FROM_IFACE = re.compile(r"^PJSIP/([0-9]{2,8})$")


@dataclass(frozen=True)
class MappingConfig:
    """What the mapper needs to know about the site."""

    trunk_endpoint: str = "trunk"
    numbers: Mapping[str, Service] | None = None  # dialled number -> service
    seats: Mapping[str, Service] | None = None  # seat id -> the platform it belongs to

    def service_of_target(self, target: str) -> Service | None:
        """Which platform a transfer target (a number or a seat) belongs to."""
        if self.seats and target in self.seats:
            return self.seats[target]
        return self.service_of(target)

    def service_of(self, exten: str) -> Service | None:
        if self.numbers and exten in self.numbers:
            return self.numbers[exten]
        try:
            return Service(exten)
        except ValueError:
            return None


def event_time(ev: Mapping[str, str]) -> float:
    ts = ev.get("Timestamp")
    try:
        t = float(ts) if ts else time.time()
    except (ValueError, TypeError):
        return time.time()
    return t if math.isfinite(t) else time.time()


def seat_of(channel: str | None) -> str | None:
    if not channel:
        return None
    m = _SEAT_FROM_CHANNEL.match(channel) or _SEAT_FROM_IFACE.match(channel)
    return m.group(1) if m else None


_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._:@-]")


def _ev(kind: CallEventType, linkedid: str, key: str, ev: Mapping[str, str], **kw: object) -> CallEvent:
    key = _KEY_UNSAFE.sub("_", key)[:48]  # channel names carry '/', which event ids do not allow
    return CallEvent(event_id=f"{linkedid}:{kind.value}:{key}", linkedid=linkedid, type=kind,
                     at=event_time(ev), source="ami", **kw)  # type: ignore[arg-type]


def is_trunk_channel(channel: str, cfg: MappingConfig) -> bool:
    return channel.startswith(f"PJSIP/{cfg.trunk_endpoint}-")


@dataclass(frozen=True)
class _Ctx:
    """What every handler needs to know about the event it maps."""

    ev: Mapping[str, str]
    cfg: MappingConfig
    linkedid: str
    uniqueid: str
    channel: str
    platform_leg: bool  # the channel belongs to a call that reached a platform

    def event(self, kind: CallEventType, key: str, linkedid: str | None = None,
              **kw: object) -> list[CallEvent]:
        return [_ev(kind, linkedid or self.linkedid, key, self.ev, **kw)]


_Handler = Callable[[_Ctx], list[CallEvent]]


def _on_newchannel(c: _Ctx) -> list[CallEvent]:
    if c.uniqueid != c.linkedid or not is_trunk_channel(c.channel, c.cfg):
        return []
    exten = c.ev.get("Exten", "")
    return c.event(CallEventType.ARRIVED, "ami", service=c.cfg.service_of(exten),
                   caller=clean_number(c.ev.get("CallerIDNum")),
                   data={"channel": c.channel, "exten": exten[:32]})


def _on_queue_join(c: _Ctx) -> list[CallEvent]:
    q = c.ev.get("Queue", "")
    return c.event(CallEventType.QUEUED, f"{q}:{c.uniqueid}", service=SERVICE_BY_QUEUE.get(q),
                   data={"queue": q, "position": _int(c.ev.get("Position"))})


def _on_agent_called(c: _Ctx) -> list[CallEvent]:
    dest = c.ev.get("DestChannel", "")
    seat = seat_of(c.ev.get("Interface")) or seat_of(dest)
    return c.event(CallEventType.RINGING, c.ev.get("DestUniqueid", dest), seat=seat,
                   data={"queue": c.ev.get("Queue", "")})


def _on_agent_connect(c: _Ctx) -> list[CallEvent]:
    dest = c.ev.get("DestChannel", "")
    seat = seat_of(c.ev.get("Interface")) or seat_of(dest)
    data: dict[str, object] = {"queue": c.ev.get("Queue", ""), "holdtime": _int(c.ev.get("HoldTime")),
                               "channel": dest[:80], "caller_channel": c.channel[:80]}
    # Legs of the call that are not the caller's own: an attended transfer's consultation, a
    # three-way invitation. They answer the seat, not (yet) the caller.
    if f"@{CTX_ATXFER}-" in c.channel:
        data["leg"] = "consultation"
    elif f"@{CTX_CONF_INVITE}-" in c.channel:
        data["leg"] = "invited"
    return c.event(CallEventType.ANSWERED, c.ev.get("DestUniqueid", dest), seat=seat, data=data)


def _on_dial_end(c: _Ctx) -> list[CallEvent]:
    # A seat reached by Dial in the transfer fallback (back to the first seat) answered the caller.
    # Queue's own dials are left to AgentConnect.
    dest = c.ev.get("DestChannel", "")
    seat = seat_of(dest)
    if (c.ev.get("DialStatus") != "ANSWER" or c.uniqueid != c.linkedid or not seat
            or c.ev.get("Context") != CTX_TRANSFER):
        return []
    return c.event(CallEventType.ANSWERED, c.ev.get("DestUniqueid", dest), seat=seat,
                   data={"channel": dest[:80], "caller_channel": c.channel[:80]})


def _on_queue_abandon(c: _Ctx) -> list[CallEvent]:
    return c.event(CallEventType.ABANDONED, c.uniqueid,
                   data={"queue": c.ev.get("Queue", ""), "holdtime": _int(c.ev.get("HoldTime")),
                         "position": _int(c.ev.get("Position"))})


def _on_bridge_enter(c: _Ctx) -> list[CallEvent]:
    if c.uniqueid != c.linkedid or not c.platform_leg or _int(c.ev.get("BridgeNumChannels")) < 2:
        return []
    bridge = c.ev.get("BridgeUniqueid", "")
    return c.event(CallEventType.BRIDGED, bridge, data={"bridge": bridge})


def _on_transfer(c: _Ctx) -> list[CallEvent]:
    ev = c.ev
    kind = "blind" if ev.get("Event") == "BlindTransfer" else "attended"
    target = (ev.get("Extension") or seat_of(ev.get("TransferTargetChannel"))
              or ev.get("TransferTargetExten") or "")
    seat = seat_of(ev.get("TransfererChannel") or ev.get("OrigTransfererChannel"))
    # Our attended transfers consult over Local/<platform>[*<call id>]@hotline-atxfer (the Local
    # channel carries the transferer's variables, so its name is what tells).
    if m := re.match(r"^Local/(110|12345)[-*@]", ev.get("TransferTargetChannel", "")):
        target = m.group(1)
    elif m := re.match(r"^(110|12345)[-*]", target):
        target = m.group(1)
    elif not target and kind == "attended":
        # Asterisk optimised the consultation's Local channel away and names no target: the seat
        # the transferer was talking to is its connected line.
        target = str(ev.get("SecondTransfererConnectedLineNum", ""))
    target = target[:32]
    data = {"kind": kind, "target": target, "result": ev.get("Result", "")}
    if (target_service := c.cfg.service_of_target(target)) is not None:
        data["target_service"] = target_service.value
    return c.event(CallEventType.TRANSFERRED, f"{kind}:{event_time(ev)}", seat=seat, data=data)


def _on_user_event(c: _Ctx) -> list[CallEvent]:
    return _user_event(c.ev, c.linkedid, c.cfg)


def _on_confbridge(c: _Ctx) -> list[CallEvent]:
    room = c.ev.get("Conference", "")
    if not LINKEDID_RE.fullmatch(room):
        return []
    joined = c.ev.get("Event") == "ConfbridgeJoin"
    kind = CallEventType.CONFERENCE_JOINED if joined else CallEventType.CONFERENCE_LEFT
    data = {"party": _party(c.channel, c.cfg), "channel": c.channel[:80]}
    if (p := _platform(c.channel, c.cfg)) is not None:
        data["platform"] = p.value
    if m := re.match(r"^Local/hl-([a-z0-9]+)@", c.channel):
        data["hotline"] = m.group(1)
    return c.event(kind, c.uniqueid, linkedid=room, seat=_conf_seat(c.ev, c.channel, c.cfg), data=data)


def _on_hangup(c: _Ctx) -> list[CallEvent]:
    if c.uniqueid != c.linkedid or not c.platform_leg:
        return []
    return c.event(CallEventType.HANGUP, c.uniqueid,
                   data={"cause": _int(c.ev.get("Cause")), "cause_txt": c.ev.get("Cause-txt", "")[:64]})


# The AMI events that tell something about a call, and who maps each. Anything else maps to [].
HANDLERS: dict[str, _Handler] = {
    "Newchannel": _on_newchannel,
    "QueueCallerJoin": _on_queue_join,
    "AgentCalled": _on_agent_called,
    "AgentConnect": _on_agent_connect,
    "DialEnd": _on_dial_end,
    "QueueCallerAbandon": _on_queue_abandon,
    "BridgeEnter": _on_bridge_enter,
    "BlindTransfer": _on_transfer,
    "AttendedTransfer": _on_transfer,
    "UserEvent": _on_user_event,
    "ConfbridgeJoin": _on_confbridge,
    "ConfbridgeLeave": _on_confbridge,
    "Hangup": _on_hangup,
}


def map_event(ev: Mapping[str, str], cfg: MappingConfig) -> list[CallEvent]:
    """Map one AMI event; unknown or irrelevant events give ``[]``. Never raises on odd input."""
    handler = HANDLERS.get(ev.get("Event", "")) if isinstance(ev.get("Event", ""), str) else None
    if handler is None:
        return []
    # Every leg carries the call's identity in HOTLINE_LINKEDID (manager.conf channelvars), also
    # legs the backend originates (three-way, linkage), whose Asterisk linkedid is their own.
    # Transfer events name the call by the transferer's (blind) or the original transferer's
    # (attended) linkedid; everything else carries Linkedid.
    linkedid = (_chanvar(ev, "ChanVariable", VAR_LINKEDID) or ev.get("Linkedid")
                or ev.get("TransfererLinkedid") or ev.get("OrigTransfererLinkedid") or "")
    if not isinstance(linkedid, str) or not linkedid or len(linkedid) > 64:
        return []
    channel = ev.get("Channel", "")
    # Only calls that reach a platform are calls: the caller's channel comes from the trunk and
    # carries HOTLINE_LINKEDID from intake on. A channel a phone opens itself (a supervisor's
    # listen leg, the *43 echo test, a seat calling a seat) has neither, so its bridge and hangup
    # make no call of their own (a supervisor's leg is recorded on the call it watches, through
    # the HotlineSpy user event).
    platform_leg = bool(_chanvar(ev, "ChanVariable", VAR_LINKEDID)) or is_trunk_channel(channel, cfg)
    ctx = _Ctx(ev, cfg, linkedid, ev.get("Uniqueid", ""), channel, platform_leg)
    try:
        return handler(ctx)
    except (ValueError, TypeError, AttributeError):  # odd input (pydantic's ValidationError is a ValueError)
        return []


def _user_event(ev: Mapping[str, str], linkedid: str, cfg: MappingConfig) -> list[CallEvent]:
    """The dialplan's own events (``UserEvent(Hotline...)``): flows that have no AMI event of their
    own, such as the one-touch transfer (a ChannelRedirect) and its fallback."""
    kind = ev.get("UserEvent", "")
    target = str(ev.get("Target", ""))[:32]
    seat = ev.get("From") if _SEAT_ID.fullmatch(str(ev.get("From", ""))) else None
    if kind == UEV_SPY:
        seat = ev.get("Seat") if _SEAT_ID.fullmatch(str(ev.get("Seat", ""))) else None
    data: dict[str, object] = {"target": target}
    if (svc := cfg.service_of_target(target)) is not None:
        data["target_service"] = svc.value
    if kind == UEV_SPY:
        call = str(ev.get("Call", ""))
        if not LINKEDID_RE.fullmatch(call):
            return []
        sup = str(ev.get("Supervisor", ""))
        mode = str(ev.get("Mode", ""))
        if mode not in ("listen", "whisper", "barge") or not _SEAT_ID.fullmatch(sup):
            return []
        return [_ev(CallEventType.SUPERVISED, call, f"{sup}:{event_time(ev)}", ev, seat=seat,
                    data={"supervisor": sup, "mode": mode,
                          "seat_watched": str(ev.get("Seat", ""))[:16]})]
    if kind == UEV_TRANSFER:
        data["kind"] = str(ev.get("Kind", "blind"))[:16]
        return [_ev(CallEventType.TRANSFERRED, linkedid, f"uev:{event_time(ev)}", ev, seat=seat, data=data)]
    if kind == UEV_TRANSFER_FAILED:
        data["status"] = str(ev.get("Status", ""))[:32]
        return [_ev(CallEventType.TRANSFER_FAILED, linkedid, f"uev:{event_time(ev)}", ev, seat=seat,
                    data=data)]
    return []


_SEAT_ID = re.compile(r"[0-9]{2,8}")


_PLATFORM = re.compile(r"110|12345")


def _chanvar(ev: Mapping[str, Any], header: str, name: str, valid: re.Pattern[str] = LINKEDID_RE) -> str:
    """``ChanVariable: NAME=value`` (one header, or a list when several are configured)."""
    raw = ev.get(header)
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, str) and item.startswith(name + "="):
            value = item[len(name) + 1:]
            return value if valid.fullmatch(value) else ""
    return ""


def _party(channel: str, cfg: MappingConfig) -> str:
    """Who a bridge member is: "caller", a seat id, or "linkage" (a hotline) / "invited"."""
    if is_trunk_channel(channel, cfg):
        return "caller"
    if seat := seat_of(channel):
        return seat
    if channel.startswith("Local/hl-"):
        return "linkage"
    return "invited"


def _conf_seat(ev: Mapping[str, str], channel: str, cfg: MappingConfig) -> str | None:
    """The seat of a bridge member. An invited platform joins as its Local channel
    (``Local/110@hotline-conf-invite-...;1``); Queue passes the answering seat back as that
    channel's caller id, so the seat is named when it is one of the site's."""
    if seat := seat_of(channel):
        return seat
    num = str(ev.get("CallerIDNum", ""))
    if f"@{CTX_CONF_INVITE}-" in channel and cfg.seats and num in cfg.seats:
        return num
    return None


def _platform(channel: str, cfg: MappingConfig) -> Service | None:
    seat = seat_of(channel)
    if seat and cfg.seats and seat in cfg.seats:
        return cfg.seats[seat]
    m = re.match(r"^Local/(110|12345)@", channel)
    return Service(m.group(1)) if m else None


def _int(v: str | None) -> int:
    try:
        return int(v) if v is not None else 0
    except ValueError:
        return 0

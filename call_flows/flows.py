"""The call flows the backend drives through AMI (the API's buttons).

The keys on the phone run the same flows in the dialplan (``hotline-flows``), so they keep working
when the backend is down; here the API asks Asterisk for the same thing. Each flow checks the live
call state first (Redis, written by the AMI listener), so a request for a call that has ended, is
not connected to a seat, or is already being transferred changes nothing and gets a clear error.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any

from call_flows.ami import AmiClient
from call_flows.live_state import LiveCalls
from hotline.contracts import LINKAGE_HOTLINES, Service
from hotline.names import (
    CTX_ATXFER,
    CTX_CONF,
    CTX_CONF_INVITE,
    CTX_SUPERVISORS,
    CTX_TRANSFER,
    LINKAGE_QUEUE,
    QUEUE_BY_SERVICE,
    VAR_CONF,
    VAR_CONF_PROFILE,
    VAR_LINKEDID,
    VAR_TICKET,
)
from hotline.site import Site
from hotline.types import SEAT_RE, fullmatch

log = logging.getLogger(__name__)


class FlowError(Exception):
    status = 409
    error_id = "flow_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownLiveCall(FlowError):
    status = 404
    error_id = "unknown_call"


class CallNotBridged(FlowError):
    error_id = "call_not_bridged"


class TransferInProgress(FlowError):
    error_id = "transfer_in_progress"


class SamePlatform(FlowError):
    status = 400
    error_id = "same_platform"


class FlowsUnavailable(FlowError):
    status = 503
    error_id = "flows_unavailable"


class UnknownHotline(FlowError):
    status = 400
    error_id = "unknown_hotline"


class InvalidSeat(FlowError):
    status = 400
    error_id = "invalid_seat"


class SeatNotInQueue(FlowError):
    status = 404
    error_id = "seat_not_in_queue"


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


class UnknownSupervisor(FlowError):
    status = 400
    error_id = "unknown_supervisor"


class FlowService:
    def __init__(self, ami: Callable[[], AmiClient | None], live: LiveCalls, site: Site) -> None:
        self._ami = ami
        self._live = live
        self._site = site

    async def _state(self, linkedid: str, *, live: bool = True) -> dict[str, str]:
        """The call's live state; with ``live``, refuse a call that has ended."""
        try:
            state = await self._live.get(linkedid)
        except Exception as exc:  # noqa: BLE001 - Redis down: we cannot know the call's state
            raise FlowsUnavailable(f"live call state unavailable: {exc}") from None
        if not state:
            raise UnknownLiveCall(f"no live call {linkedid}")
        if live and state.get("state") == "ended":
            raise CallNotBridged("the call has ended")
        return state

    async def tag_ticket(self, linkedid: str, ticket: str) -> None:
        """Put the call's work-order ticket on the caller's channel (``__HOTLINE_TICKET``): every seat
        leg created from it afterwards (a transfer, the queue again) inherits it, and the seat leg's
        INVITE carries it as ``X-Hotline-Ticket``. Best effort: a call without it loses nothing."""
        try:
            state = await self._state(linkedid)
            channel = state.get("caller_channel", "")
            if channel:
                await self._client().action({"Action": "Setvar", "Channel": channel,
                                             "Variable": f"__{VAR_TICKET}", "Value": ticket})
        except Exception as exc:  # noqa: BLE001
            log.info("ticket %s not put on call %s: %s", ticket, linkedid, exc)

    def _client(self) -> AmiClient:
        client = self._ami()
        if client is None or not client.connected:
            raise FlowsUnavailable("not connected to Asterisk (AMI)")
        return client

    async def pause(self, seat: str, paused: bool, reason: str = "") -> None:
        """Pause (示忙) or unpause (示闲) a seat in every queue it is a member of (QueuePause without a
        queue): a paused seat is not rung. ``reason`` is shown on the wallboard (PausedReason); it is
        checked by the AMI guard like every header value."""
        if not SEAT_RE.fullmatch(seat):
            raise FlowError(f"not a seat: {seat!r}")
        action = {"Action": "QueuePause", "Interface": f"PJSIP/{seat}",
                  "Paused": "true" if paused else "false"}
        if paused and reason:
            action["Reason"] = reason
        resp = await self._client().action(action)
        if str(resp.get("Response", "")).lower() != "success":
            raise SeatNotInQueue(f"seat {seat} is in no queue: {resp.get('Message', '')}")

    async def floor(self) -> dict[str, Any]:
        """Every queue's members and waiting callers, as Asterisk has them now (QueueStatus)."""
        events = await self._client().action({"Action": "QueueStatus"}, as_list=True, timeout=5.0)
        queues: dict[str, dict[str, Any]] = {}
        for ev in events if isinstance(events, list) else []:
            kind, name = str(ev.get("Event", "")), str(ev.get("Queue", ""))
            if not name:
                continue
            q = queues.setdefault(name, {"queue": name, "members": [], "waiting": []})
            if kind == "QueueParams":
                q.update(completed=_int(ev.get("Completed")), abandoned=_int(ev.get("Abandoned")),
                         holdtime_s=_int(ev.get("Holdtime")), talktime_s=_int(ev.get("TalkTime")))
            elif kind == "QueueMember":
                interface = str(ev.get("StateInterface") or ev.get("Location") or ev.get("Name") or "")
                q["members"].append({
                    "seat": interface.rsplit("/", 1)[-1], "status": _int(ev.get("Status")),
                    "paused": str(ev.get("Paused", "0")) == "1",
                    "paused_reason": str(ev.get("PausedReason", "") or ""),
                    "in_call": str(ev.get("InCall", "0")) == "1",
                    "calls_taken": _int(ev.get("CallsTaken")), "last_call": _int(ev.get("LastCall")),
                    "last_pause": _int(ev.get("LastPause")), "login_time": _int(ev.get("LoginTime"))})
            elif kind == "QueueEntry":
                q["waiting"].append({"position": _int(ev.get("Position")), "wait_s": _int(ev.get("Wait")),
                                     "channel": str(ev.get("Channel", ""))})
        return {"queues": sorted(queues.values(), key=lambda q: q["queue"])}

    async def originate(self, action: dict[str, Any], wait_s: float) -> list[dict[str, str]]:
        """An async Originate (outbound callbacks): Asterisk's answer and, once the called side
        answered or failed, its OriginateResponse (waited for up to ``wait_s``)."""
        if action.get("Action") != "Originate" or action.get("Async") != "true":
            raise FlowError("only an async Originate goes through here")
        resp = await self._client().action(action, timeout=wait_s, whole=True)
        return [dict(m) for m in resp] if isinstance(resp, list) else [dict(resp)]

    async def transfer(self, linkedid: str, target: Service | None = None,
                       mode: str = "blind") -> dict[str, Any]:
        """One-touch transfer of the caller to the other platform.

        ``blind``: the caller is moved at once (ringback, fallback to the seat, then its queue).
        ``attended``: the seat is put through to the other side first (the caller hears music);
        ``complete_attended`` hands the caller over, ``cancel_attended`` returns it to the seat.
        """
        if mode not in ("blind", "attended"):
            raise FlowError("mode must be 'blind' or 'attended'")
        state = await self._state(linkedid)
        if state.get("transfer") or state.get("attended") or state.get("state") == "transferring":
            raise TransferInProgress("a transfer of this call is already under way")
        seat, caller_channel = state.get("seat", ""), state.get("caller_channel", "")
        if state.get("state") != "talking" or not seat or not caller_channel:
            raise CallNotBridged("the caller is not connected to a seat")
        here = self._site.service_of_seat(seat)
        if here is None:
            raise CallNotBridged(f"seat {seat} belongs to no platform")
        other = Service.POLICE_110 if here is Service.HOTLINE_12345 else Service.HOTLINE_12345
        target = other if target is None else target
        if target is here:
            raise SamePlatform(f"the call is already at {here.value}")
        client = self._client()
        await self._claim(linkedid, f"{mode}:{seat}:{target.value}")
        if mode == "attended":
            try:
                return await self._attended(client, linkedid, state, target)
            except BaseException:
                await self._live.release(linkedid)
                raise
        await self._live.mark(linkedid, state="transferring", transfer="pending")
        try:
            resp = await client.action({"Action": "Redirect", "Channel": caller_channel,
                                        "Context": CTX_TRANSFER, "Exten": f"{target.value}-{seat}",
                                        "Priority": "1"})
        except Exception as exc:  # noqa: BLE001
            await self._unclaim(linkedid)
            raise FlowsUnavailable(f"AMI Redirect failed: {exc}") from None
        if resp.get("Response") != "Success":
            await self._unclaim(linkedid)
            raise FlowError(f"Asterisk refused the transfer: {resp.get('Message', '?')}")
        log.info("transfer of %s from seat %s to %s requested", linkedid, seat, target.value)
        return {"linkedid": linkedid, "from_seat": seat, "target": target.value, "mode": "blind"}

    async def _claim(self, linkedid: str, owner: str) -> None:
        """The one request that may act on this call's transfer now (two at once: one 409)."""
        try:
            claimed = await self._live.claim(linkedid, owner)
        except Exception as exc:  # noqa: BLE001
            raise FlowsUnavailable(f"live call state unavailable: {exc}") from None
        if not claimed:
            raise TransferInProgress("a transfer of this call is already under way")

    async def _unclaim(self, linkedid: str) -> None:
        with contextlib.suppress(Exception):
            await self._live.mark(linkedid, state="talking", transfer="")
        await self._live.release(linkedid)

    async def _attended(self, client: AmiClient, linkedid: str, state: dict[str, str],
                        target: Service) -> dict[str, Any]:
        # Async: panoramisk looks for it on every "...successfully queued" answer.
        resp = await client.action({"Action": "Atxfer", "Channel": state["seat_channel"],
                                    "Exten": f"{target.value}*{linkedid}", "Context": CTX_ATXFER,
                                    "Async": "false"})
        if resp.get("Response") != "Success":
            raise FlowError(f"Asterisk refused the attended transfer: {resp.get('Message', '?')}")
        await self._live.mark(linkedid, attended=state["seat_channel"])  # the seat that consults
        return {"linkedid": linkedid, "from_seat": state.get("seat"), "target": target.value,
                "mode": "attended"}


    async def complete_attended(self, linkedid: str) -> dict[str, Any]:
        """The seat drops out: Asterisk bridges the caller with the other side."""
        state = await self._state(linkedid)
        if not state.get("attended"):
            raise CallNotBridged("no attended transfer of this call is under way")
        resp = await self._client().action({"Action": "Hangup", "Channel": state["attended"]})
        if resp.get("Response") != "Success":
            raise FlowError(f"could not complete: {resp.get('Message', '?')}")
        await self._live.mark(linkedid, attended="")
        await self._live.release(linkedid)
        return {"linkedid": linkedid, "completed": True}


    async def cancel_attended(self, linkedid: str) -> dict[str, Any]:
        """End the consultation leg: Asterisk returns the caller to the seat."""
        state = await self._state(linkedid)
        if not state.get("attended"):
            raise CallNotBridged("no attended transfer of this call is under way")
        pattern = rf"/^Local\/(110|12345)\*{re.escape(linkedid)}@{CTX_ATXFER}-/"
        resp = await self._client().action({"Action": "Hangup", "Channel": pattern})
        if resp.get("Response") != "Success":
            raise FlowError(f"could not cancel: {resp.get('Message', '?')}")
        await self._live.mark(linkedid, attended="")
        await self._live.release(linkedid)
        return {"linkedid": linkedid, "cancelled": True}


SPY_MODES = ("listen", "whisper", "barge")


class ConferenceFlows:
    """Three-way calls (三方通话), emergency/utility linkage, supervisors: all through AMI."""

    def __init__(self, flows: FlowService) -> None:
        self._f = flows

    async def _bridge_caller_and_seat(self, client: AmiClient, linkedid: str, state: dict[str, str]) -> None:
        """Move the caller and the seat into the call's bridge (named by the call's linkedid)."""
        if state.get("conference"):
            return
        seat_channel, caller_channel = state.get("seat_channel", ""), state.get("caller_channel", "")
        if state.get("state") != "talking" or not seat_channel or not caller_channel:
            raise CallNotBridged("the caller is not connected to a seat")
        for chan, profile in ((caller_channel, "party"), (seat_channel, "operator")):
            for var, value in ((VAR_CONF, linkedid), (VAR_CONF_PROFILE, profile)):
                await client.action({"Action": "Setvar", "Channel": chan, "Variable": var, "Value": value})
        resp = await client.action({"Action": "Redirect", "Channel": caller_channel,
                                    "ExtraChannel": seat_channel, "Context": CTX_CONF, "Exten": "join",
                                    "Priority": "1", "ExtraContext": CTX_CONF, "ExtraExten": "join",
                                    "ExtraPriority": "1"})
        if resp.get("Response") != "Success":
            raise FlowError(f"Asterisk refused to move the call into a bridge: {resp.get('Message', '?')}")
        await self._f._live.mark(linkedid, conference=linkedid)

    async def _invite(self, client: AmiClient, linkedid: str, exten: str, extra: list[str],
                      caller: str) -> None:
        variables = [f"__{VAR_LINKEDID}={linkedid}", f"{VAR_CONF}={linkedid}",
                     f"{VAR_CONF_PROFILE}=operator", *extra]
        resp = await client.action({"Action": "Originate", "Channel": f"Local/{exten}@{CTX_CONF_INVITE}",
                                    "Context": CTX_CONF, "Exten": "join", "Priority": "1", "Async": "true",
                                    "CallerID": caller or "hotline", "Variable": variables,
                                    "Timeout": "60000"})
        if resp.get("Response") != "Success":
            raise FlowError(f"Asterisk refused to ring {exten}: {resp.get('Message', '?')}")

    async def three_way(self, linkedid: str, with_: Service | None = None) -> dict[str, Any]:
        """Caller, this seat and the other platform (linkage seats first) in one bridge."""
        state = await self._f._state(linkedid)
        if state.get("transfer") or state.get("attended"):
            raise TransferInProgress("a transfer of this call is under way")
        here = self._f._site.service_of_seat(state.get("seat", ""))
        if here is None:
            raise CallNotBridged("the caller is not connected to a seat")
        other = Service.POLICE_110 if here is Service.HOTLINE_12345 else Service.HOTLINE_12345
        target = other if with_ is None else with_
        if target is here:
            raise SamePlatform(f"the call is already at {here.value}")
        client = self._f._client()
        # Held while the bridge is set up: a transfer or a second three-way at the same moment is 409.
        await self._f._claim(linkedid, f"three_way:{state.get('seat', '')}:{target.value}")
        try:
            await self._bridge_caller_and_seat(client, linkedid, state)
            await self._invite(client, linkedid, target.value,
                               [f"HOTLINE_INVITE_QUEUE={QUEUE_BY_SERVICE[target]}",
                                f"HOTLINE_INVITE_LINKAGE={LINKAGE_QUEUE[target]}"], state.get("caller", ""))
        finally:
            await self._f._live.release(linkedid)
        log.info("three-way for %s: seat %s invites %s", linkedid, state.get("seat"), target.value)
        return {"linkedid": linkedid, "bridge": linkedid, "invited": target.value}

    async def linkage(self, linkedid: str, hotline: str) -> dict[str, Any]:
        """Bring an emergency or utility hotline (119/120/122/water/...) into the call's bridge."""
        if hotline not in LINKAGE_HOTLINES:
            raise UnknownHotline(f"unknown hotline {hotline!r}")
        dial = self._f._site.linkage_dial.get(hotline)
        if not dial:
            raise UnknownHotline(f"no destination configured for {hotline} (site.toml [linkage])")
        state = await self._f._state(linkedid)
        client = self._f._client()
        await self._bridge_caller_and_seat(client, linkedid, state)
        await self._invite(client, linkedid, f"hl-{hotline}", [f"HOTLINE_LINKAGE_DIAL={dial}"],
                           state.get("caller", ""))
        log.info("linkage for %s: %s via %s", linkedid, hotline, dial)
        return {"linkedid": linkedid, "bridge": linkedid, "hotline": hotline}

    async def spy(self, linkedid: str, supervisor: str, mode: str, seat: str | None = None) -> dict[str, Any]:
        """Ring the supervisor's phone; on answer it listens to, whispers to or barges into the seat."""
        if supervisor not in self._f._site.supervisors:
            raise UnknownSupervisor(f"{supervisor!r} is not a supervisor seat")
        if mode not in SPY_MODES:
            raise FlowError(f"mode must be one of {SPY_MODES}")
        state = await self._f._state(linkedid)
        seat = seat or state.get("seat", "")
        if not seat:
            raise CallNotBridged("no seat is on this call")
        if not fullmatch(SEAT_RE, seat):  # it becomes the Originate's Exten: digits only
            raise InvalidSeat(f"not a seat id: {seat[:16]!r}")
        client = self._f._client()
        code = self._f._site.supervisor_codes[mode]
        resp = await client.action({"Action": "Originate", "Channel": f"PJSIP/{supervisor}",
                                    "Context": CTX_SUPERVISORS, "Exten": f"{code}{seat}", "Priority": "1",
                                    "Async": "true", "CallerID": f"{mode} <{supervisor}>",
                                    "Timeout": "30000"})
        if resp.get("Response") != "Success":
            raise FlowError(f"Asterisk refused to ring supervisor {supervisor}: {resp.get('Message', '?')}")
        return {"linkedid": linkedid, "supervisor": supervisor, "mode": mode, "seat": seat}

"""The call flows the backend drives through AMI (the API's buttons).

The keys on the phone run the same flows in the dialplan (``hotline-flows``), so they keep working
when the backend is down; here the API asks Asterisk for the same thing. Each flow checks the live
call state first (Redis, written by the AMI listener), so a request for a call that has ended, is
not connected to a seat, or is already being transferred changes nothing and gets a clear error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from call_flows.ami import AmiClient
from call_flows.live_state import LiveCalls
from hotline.contracts import Service
from hotline.names import CTX_TRANSFER
from hotline.site import Site

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


class FlowService:
    def __init__(self, ami: Callable[[], AmiClient | None], live: LiveCalls, site: Site) -> None:
        self._ami = ami
        self._live = live
        self._site = site

    async def _state(self, linkedid: str) -> dict[str, str]:
        try:
            state = await self._live.get(linkedid)
        except Exception as exc:  # noqa: BLE001 - Redis down: we cannot know the call's state
            raise FlowsUnavailable(f"live call state unavailable: {exc}") from None
        if not state:
            raise UnknownLiveCall(f"no live call {linkedid}")
        return state

    def _client(self) -> AmiClient:
        client = self._ami()
        if client is None or not client.connected:
            raise FlowsUnavailable("not connected to Asterisk (AMI)")
        return client

    async def transfer(self, linkedid: str, target: Service | None = None) -> dict[str, Any]:
        """One-touch transfer of the caller to the other platform (blind, with fallback)."""
        state = await self._state(linkedid)
        if state.get("state") == "ended":
            raise CallNotBridged("the call has ended")
        if state.get("transfer") or state.get("state") == "transferring":
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
        await self._live.mark(linkedid, state="transferring", transfer="pending")
        try:
            resp = await client.action({"Action": "Redirect", "Channel": caller_channel,
                                        "Context": CTX_TRANSFER, "Exten": f"{target.value}-{seat}",
                                        "Priority": "1"})
        except Exception as exc:  # noqa: BLE001
            await self._live.mark(linkedid, state="talking", transfer="")
            raise FlowsUnavailable(f"AMI Redirect failed: {exc}") from None
        if resp.get("Response") != "Success":
            await self._live.mark(linkedid, state="talking", transfer="")
            raise FlowError(f"Asterisk refused the transfer: {resp.get('Message', '?')}")
        log.info("transfer of %s from seat %s to %s requested", linkedid, seat, target.value)
        return {"linkedid": linkedid, "from_seat": seat, "target": target.value, "mode": "blind"}

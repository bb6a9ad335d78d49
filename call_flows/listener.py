"""The AMI listener: AMI events -> call events -> the app service (via the sink) and Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from call_flows.ami import AmiClient
from call_flows.live_state import LiveCalls
from call_flows.mapping import MappingConfig, is_trunk_channel, map_event
from hotline.contracts import CallEvent, CallEventType, Service
from hotline.names import SERVICE_BY_QUEUE, UEV_FLOW_REQUEST
from hotline.phone import clean_number, mask_number

log = logging.getLogger(__name__)


class AmiListener:
    def __init__(self, *, host: str, port: int, username: str, secret: str, sink: Any,
                 live: LiveCalls, mapping: MappingConfig) -> None:
        self._sink = sink
        self._live = live
        self._mapping = mapping
        self.events_seen = 0
        self.observers: list[Callable[[dict[str, str]], None]] = []  # raw AMI events (taps, benchmarks)
        # mapped call events, after they are recorded (the media taps follow the parties with these)
        self.call_observers: list[Callable[[CallEvent], Awaitable[None]]] = []
        self.conference_flows: Any = None  # call_flows.flows.ConferenceFlows, for the seats' keys
        self.events_mapped = 0
        self.resyncs = 0
        self.client = AmiClient(host=host, port=port, username=username, secret=secret,
                                on_event=self.on_ami_event, on_login=self.resync)

    async def start(self, wait: float | None = None) -> None:
        await self.client.start(wait)

    async def close(self) -> None:
        await self.client.close()

    async def on_ami_event(self, ev: dict[str, str]) -> None:
        self.events_seen += 1
        for observe in self.observers:
            observe(ev)
        if ev.get("Event") == "UserEvent" and ev.get("UserEvent") == UEV_FLOW_REQUEST:
            await self._flow_request(ev)
        for call_ev in map_event(ev, self._mapping):
            await self._publish(call_ev)

    async def _flow_request(self, ev: dict[str, str]) -> None:
        """A seat pressed a key whose flow the backend runs (three-way). Errors are the seat's to
        see in the timeline, never the caller's: the call goes on as it was."""
        call = str(ev.get("Call", ""))
        if self.conference_flows is None or ev.get("Flow") != "three_way" or not call:
            return
        try:
            await self.conference_flows.three_way(call)
        except Exception as exc:  # noqa: BLE001
            log.warning("three-way for %s not started: %s", call, exc)

    async def _publish(self, call_ev: CallEvent) -> None:
        self.events_mapped += 1
        log.debug("call %s %s caller=%s seat=%s", call_ev.linkedid, call_ev.type.value,
                  mask_number(call_ev.caller), call_ev.seat)
        self._sink.emit(call_ev)
        await self._live.apply(call_ev)
        for observe in self.call_observers:
            try:
                await observe(call_ev)
            except Exception:  # an observer's failure must not stop the recording of calls
                log.exception("call-event observer failed on %s", call_ev.event_id)

    async def resync(self) -> None:
        """After (re)login: record calls that started while we were away, end calls that vanished."""
        self.resyncs += 1
        try:
            msgs = await self.client.action({"Action": "CoreShowChannels"}, as_list=True, timeout=10)
        except Exception as exc:  # noqa: BLE001
            log.warning("AMI resync failed: %s", exc)
            return
        now = time.time()
        present: set[str] = set()
        for m in msgs if isinstance(msgs, list) else []:
            if m.get("Event") != "CoreShowChannel":
                continue
            linkedid = m.get("Linkedid", "")
            present.add(linkedid)
            if m.get("Uniqueid") == linkedid and is_trunk_channel(m.get("Channel", ""), self._mapping):
                await self._publish(CallEvent(
                    event_id=f"{linkedid}:arrived:ami", linkedid=linkedid, type=CallEventType.ARRIVED,
                    at=now - _duration(m.get("Duration")), source="ami",
                    service=self._mapping.service_of(m.get("Exten", "")) or _queue_service(m),
                    caller=clean_number(m.get("CallerIDNum")), data={"resync": True}))
        for linkedid in await self._live.live_linkedids() - present:
            await self._publish(CallEvent(
                event_id=f"{linkedid}:hangup:{linkedid}", linkedid=linkedid, type=CallEventType.HANGUP,
                at=now, source="ami", data={"cause": 0, "cause_txt": "ended while AMI was disconnected",
                                            "resync": True}))
        log.info("AMI resync: %d channels live", len(present))


def _duration(v: str | None) -> float:
    """CoreShowChannel Duration is HH:MM:SS."""
    try:
        h, m, s = (int(x) for x in (v or "0:0:0").split(":"))
        return h * 3600 + m * 60 + s
    except ValueError:
        return 0.0


def _queue_service(m: dict[str, str]) -> Service | None:
    """After intake the channel sits in ``Queue(<queue>,...)``: the queue names the platform."""
    if m.get("Application") == "Queue":
        return SERVICE_BY_QUEUE.get(m.get("ApplicationData", "").split(",", 1)[0])
    return None

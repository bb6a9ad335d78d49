"""AMI events -> call events, replayed from a recorded Asterisk 22 stream (no Asterisk needed).

The fixture is one answered call: trunk caller dials 12345 -> queue hotline-12345 -> seat 1201
answers -> the caller hangs up. The listener's resync runs against a fake AMI client and a fake
live-call store.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from ami_raw import ami_events

from app.calls.schemas import parse_events
from call_flows.listener import AmiListener, _duration
from call_flows.mapping import MappingConfig, map_event, seat_of
from hotline.contracts import CallEvent, CallEventType, Service

CFG = MappingConfig()
LINKEDID = "hotline-rec-8756c2-1796199762.0"


def recorded() -> list[dict[str, Any]]:
    """An answered call recorded raw from Asterisk 22 (channelvars on), as panoramisk parses it."""
    return ami_events("answered_call")


def replay(events: list[dict[str, Any]], cfg: MappingConfig = CFG) -> list[CallEvent]:
    return [call_ev for ev in events for call_ev in map_event(ev, cfg)]


def accepted_by_api(ev: CallEvent) -> bool:
    """The app's POST /api/events validation: an event it refuses is dropped by the sink."""
    try:
        parse_events(json.loads(json.dumps(ev.to_json())))
    except Exception:  # noqa: BLE001 - any refusal counts
        return False
    return True


# --- the recorded call ----------------------------------------------------------------------------

def test_recorded_call_gives_one_event_of_each_kind_in_order() -> None:
    out = replay(recorded())
    assert [e.type for e in out] == [
        CallEventType.ARRIVED, CallEventType.QUEUED, CallEventType.RINGING,
        CallEventType.ANSWERED, CallEventType.BRIDGED, CallEventType.HANGUP,
    ]
    assert {e.linkedid for e in out} == {LINKEDID}
    assert all(e.source == "ami" for e in out)
    assert [e.at for e in out] == sorted(e.at for e in out)
    assert all(accepted_by_api(e) for e in out)


def test_recorded_call_event_details() -> None:
    by_type = {e.type: e for e in replay(recorded())}
    arrived = by_type[CallEventType.ARRIVED]
    assert arrived.service is Service.HOTLINE_12345
    assert arrived.caller == "13800138000"
    assert arrived.data["channel"] == "PJSIP/trunk-00000000"
    queued = by_type[CallEventType.QUEUED]
    assert queued.data["queue"] == "hotline-12345"
    assert queued.service is Service.HOTLINE_12345
    assert queued.data["position"] == 1
    assert by_type[CallEventType.RINGING].seat == "1201"
    assert by_type[CallEventType.ANSWERED].seat == "1201"
    assert by_type[CallEventType.BRIDGED].data["bridge"] == "fccaaec1-d9a3-4888-a769-4f922c619b62"
    hangup = by_type[CallEventType.HANGUP]
    assert hangup.data["cause"] == 16
    assert hangup.data["cause_txt"] == "Normal Clearing"


def test_timestamps_come_from_the_ami_timestamp_header() -> None:
    events = recorded()
    stamps = {(ev["Event"], ev.get("Uniqueid")): float(ev["Timestamp"]) for ev in events}
    by_type = {e.type: e for e in replay(events)}
    assert by_type[CallEventType.ARRIVED].at == stamps[("Newchannel", LINKEDID)]
    assert by_type[CallEventType.QUEUED].at == stamps[("QueueCallerJoin", LINKEDID)]
    assert by_type[CallEventType.RINGING].at == stamps[("AgentCalled", LINKEDID)]
    assert by_type[CallEventType.ANSWERED].at == stamps[("AgentConnect", LINKEDID)]
    assert by_type[CallEventType.HANGUP].at == stamps[("Hangup", LINKEDID)]
    assert by_type[CallEventType.HANGUP].at - by_type[CallEventType.ARRIVED].at == pytest.approx(3.0, abs=0.1)


def test_replaying_the_stream_twice_gives_identical_events() -> None:
    first = replay(recorded())
    second = replay(recorded())
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert [e.to_json() for e in first] == [e.to_json() for e in second]
    assert len({e.event_id for e in first}) == len(first)


def test_the_seats_own_channel_does_not_hang_up_the_call() -> None:
    seat_events = [ev for ev in recorded() if str(ev.get("Channel", "")).startswith("PJSIP/1201-")]
    assert any(ev["Event"] == "Hangup" for ev in seat_events)  # the fixture has the seat's hangup
    assert [e for e in replay(seat_events) if e.type is CallEventType.HANGUP] == []
    # the seat's Newchannel is not a new call either
    assert [e for e in replay(seat_events) if e.type is CallEventType.ARRIVED] == []


def test_seat_hangup_before_caller_still_gives_exactly_one_hangup() -> None:
    events = recorded()
    hangups = [e for e in replay(events) if e.type is CallEventType.HANGUP]
    assert len(hangups) == 1 and hangups[0].event_id == f"{LINKEDID}:hangup:{LINKEDID}"


# --- hand-written events --------------------------------------------------------------------------

def base(event: str, **headers: str) -> dict[str, str]:
    ev = {"Event": event, "Timestamp": "1795940600.250000", "Linkedid": "pbx-1795940600.7",
          "Uniqueid": "pbx-1795940600.7", "Channel": "PJSIP/trunk-0000000a"}
    ev.update(headers)
    return ev


def test_newchannel_cleans_the_caller_number() -> None:
    (ev,) = map_event(base("Newchannel", Exten="110", CallerIDNum='"Wang" <139-0000-1111>\r\nX: y'), CFG)
    assert ev.type is CallEventType.ARRIVED
    assert ev.service is Service.POLICE_110
    assert ev.caller == "13900001111"


def test_newchannel_without_caller_id_is_anonymous() -> None:
    (ev,) = map_event(base("Newchannel", Exten="12345", CallerIDNum="<unknown>"), CFG)
    assert ev.caller == "anonymous"


def test_site_numbers_map_dialled_numbers_to_a_service() -> None:
    cfg = MappingConfig(trunk_endpoint="carrier", numbers={"96110": Service.POLICE_110})
    ev = base("Newchannel", Exten="96110", Channel="PJSIP/carrier-00000001")
    (arrived,) = map_event(ev, cfg)
    assert arrived.service is Service.POLICE_110
    # an unknown dialled number still records the call, without a service
    (unknown,) = map_event({**ev, "Exten": "4321"}, cfg)
    assert unknown.service is None
    # with trunk_endpoint="carrier", the default "trunk" endpoint is not the trunk
    assert map_event(base("Newchannel", Exten="110"), cfg) == []


def test_queue_caller_abandon_is_abandoned() -> None:
    (ev,) = map_event(base("QueueCallerAbandon", Queue="police-110", Position="2", OriginalPosition="3",
                           HoldTime="41"), CFG)
    assert ev.type is CallEventType.ABANDONED
    assert ev.linkedid == "pbx-1795940600.7"
    assert ev.data == {"queue": "police-110", "holdtime": 41, "position": 2}
    assert accepted_by_api(ev)


def blind_transfer() -> dict[str, str]:
    """BlindTransfer as documented for Asterisk 22 (Transferer*/Transferee* headers)."""
    return {
        "Event": "BlindTransfer", "Timestamp": "1795940610.500000", "Result": "Success",
        "TransfererChannel": "PJSIP/1201-00000001", "TransfererUniqueid": "pbx-1795940600.8",
        "TransfererLinkedid": "pbx-1795940600.7",
        "TransfereeChannel": "PJSIP/trunk-0000000a", "TransfereeUniqueid": "pbx-1795940600.7",
        "TransfereeLinkedid": "pbx-1795940600.7",
        "BridgeUniqueid": "b1", "BridgeNumChannels": "2", "IsExternal": "No",
        "Context": "from-seats", "Extension": "1101",
    }


def attended_transfer() -> dict[str, str]:
    """AttendedTransfer as documented for Asterisk 22: OrigTransferer*/SecondTransferer* headers,
    no plain ``Linkedid`` or ``TransfererLinkedid``. Seat 1201 consulted seat 1101, then transferred."""
    return {
        "Event": "AttendedTransfer", "Timestamp": "1795940620.750000", "Result": "Success",
        "OrigTransfererChannel": "PJSIP/1201-00000001", "OrigTransfererUniqueid": "pbx-1795940600.8",
        "OrigTransfererLinkedid": "pbx-1795940600.7", "OrigBridgeUniqueid": "b1",
        "SecondTransfererChannel": "PJSIP/1201-00000002", "SecondTransfererUniqueid": "pbx-1795940615.9",
        "SecondTransfererLinkedid": "pbx-1795940615.9", "SecondTransfererExten": "1101",
        "SecondBridgeUniqueid": "b2",
        "TransfereeChannel": "PJSIP/trunk-0000000a", "TransfereeUniqueid": "pbx-1795940600.7",
        "TransfereeLinkedid": "pbx-1795940600.7",
        "TransferTargetChannel": "PJSIP/1101-00000003", "TransferTargetUniqueid": "pbx-1795940615.10",
        "TransferTargetLinkedid": "pbx-1795940615.9",
        "IsExternal": "No", "DestType": "Bridge", "DestBridgeUniqueid": "b2",
    }


def test_blind_transfer_is_transferred_with_kind_target_and_seat() -> None:
    (ev,) = map_event(blind_transfer(), CFG)
    assert ev.type is CallEventType.TRANSFERRED
    assert ev.linkedid == "pbx-1795940600.7"
    assert ev.seat == "1201"
    assert ev.data == {"kind": "blind", "target": "1101", "result": "Success"}
    assert ev.at == 1795940610.5
    assert accepted_by_api(ev)
    assert map_event(blind_transfer(), CFG) == [ev]  # replay gives the same id


ATTENDED_BUG = (
    "map_event reads Linkedid/TransfererLinkedid/TransfererChannel, which Asterisk's AttendedTransfer "
    "event does not have (it sends OrigTransferer*/SecondTransferer*/Transferee*): real attended "
    "transfers (*2) map to [] and are never recorded"
)


def test_attended_transfer_is_transferred_with_kind() -> None:
    out = map_event(attended_transfer(), CFG)
    assert len(out) == 1
    (ev,) = out
    assert ev.type is CallEventType.TRANSFERRED
    assert ev.linkedid == "pbx-1795940600.7"  # the caller's call, not the consultation call
    assert ev.data["kind"] == "attended"
    assert ev.seat == "1201"


# --- odd input ------------------------------------------------------------------------------------

ODD_INPUTS = {
    "empty dict": {},
    "no Event": {"Linkedid": "a.1", "Uniqueid": "a.1"},
    "missing Linkedid": {k: v for k, v in base("Hangup", Cause="16").items() if k != "Linkedid"},
    "empty Linkedid": base("Hangup", Linkedid="", Cause="16"),
    "10 KB linkedid": base("Hangup", Linkedid="9" * 10240, Uniqueid="9" * 10240, Cause="16"),
    "linkedid not a call id": base("Newchannel", Linkedid="a 1\nEvent: x", Uniqueid="a 1\nEvent: x",
                                   Exten="12345"),
    "unknown event": base("SomethingAsterisk23Adds", Foo="bar"),
    "non-numeric Cause": base("Hangup", Cause="sixteen", **{"Cause-txt": "x" * 500}),
    "non-numeric Position": base("QueueCallerJoin", Queue="hotline-12345", Position="first"),
    "non-numeric HoldTime": base("AgentConnect", Queue="hotline-12345", Interface="PJSIP/1201",
                                 DestUniqueid="pbx-1795940600.8", HoldTime="a while"),
    "non-numeric Timestamp": base("Hangup", Timestamp="yesterday", Cause="16"),
    "non-numeric BridgeNumChannels": base("BridgeEnter", BridgeUniqueid="b1", BridgeNumChannels="two"),
    "Newchannel from a seat": base("Newchannel", Channel="PJSIP/1201-00000001", Exten="12345"),
    "Newchannel from Local": base("Newchannel", Channel="Local/1201@from-seats-00000001;1", Exten="12345"),
    "Newchannel trunk-like name": base("Newchannel", Channel="PJSIP/trunk2-00000001", Exten="12345"),
    "Newchannel of a second trunk leg": base("Newchannel", Uniqueid="pbx-1795940600.9", Exten="12345"),
    "Newchannel with a list header": base("Newchannel", Exten=["12345", "110"]),  # type: ignore[arg-type]
    "TestEvent with a list header": {"Event": "TestEvent", "State": ["CallIDChange", "CallIDChange"],
                                     "Linkedid": "a.1"},
    "AgentCalled with odd Interface": base("AgentCalled", Interface="DAHDI/1", DestChannel="",
                                           DestUniqueid="pbx-1795940600.8"),
}


@pytest.mark.parametrize("ev", ODD_INPUTS.values(), ids=ODD_INPUTS.keys())
def test_odd_input_gives_nothing_or_an_event_the_api_accepts(ev: dict[str, Any]) -> None:
    out = map_event(ev, CFG)
    assert all(accepted_by_api(e) for e in out), [e.to_json() for e in out]


@pytest.mark.parametrize("name", ["missing Linkedid", "empty Linkedid", "10 KB linkedid", "empty dict",
                                  "linkedid not a call id",
                                  "unknown event", "Newchannel from a seat", "Newchannel from Local",
                                  "Newchannel trunk-like name", "Newchannel of a second trunk leg",
                                  "non-numeric BridgeNumChannels"])
def test_irrelevant_or_unusable_events_give_nothing(name: str) -> None:
    assert map_event(ODD_INPUTS[name], CFG) == []


def test_non_numeric_fields_default_to_zero_and_now() -> None:
    (hangup,) = map_event(ODD_INPUTS["non-numeric Cause"], CFG)
    assert hangup.data["cause"] == 0 and len(hangup.data["cause_txt"]) == 64
    (queued,) = map_event(ODD_INPUTS["non-numeric Position"], CFG)
    assert queued.data["position"] == 0
    before = time.time()
    (late,) = map_event(ODD_INPUTS["non-numeric Timestamp"], CFG)
    assert before <= late.at <= time.time()


NON_FINITE_BUG = (
    "event_time() accepts 'nan'/'inf' (float() parses them): the event gets a non-finite `at`, which "
    "POST /api/events refuses, so the sink drops the call's hangup"
)


@pytest.mark.parametrize("stamp", ["nan", "inf"])
def test_non_finite_timestamp_gives_an_event_the_api_accepts(stamp: str) -> None:
    out = map_event(base("Hangup", Timestamp=stamp, Cause="16"), CFG)
    assert out and all(accepted_by_api(e) for e in out)


DEST_CHANNEL_KEY_BUG = (
    "AgentCalled/AgentConnect without DestUniqueid fall back to DestChannel as the id key; channel names "
    "contain '/', which EVENT_ID_RE forbids, so the API refuses the ringing/answered event"
)


def test_agent_called_without_dest_uniqueid_gives_an_event_the_api_accepts() -> None:
    ev = base("AgentCalled", Queue="hotline-12345", Interface="PJSIP/1201", DestChannel="PJSIP/1201-00000001")
    out = map_event(ev, CFG)
    assert out and all(accepted_by_api(e) for e in out)


@pytest.mark.parametrize(("channel", "seat"), [
    ("PJSIP/1201-00000001", "1201"),
    ("PJSIP/1201", "1201"),
    ("PJSIP/12345678-0000abcd", "12345678"),
    ("PJSIP/trunk-00000000", None),
    ("PJSIP/1-00000000", None),
    ("PJSIP/123456789-00000000", None),
    ("SIP/1201-00000001", None),
    ("Local/1201@from-seats-00000001;1", None),
    ("PJSIP/1201-00000001\r\nEvent: Hangup", None),
    ("", None),
    (None, None),
])
def test_seat_of(channel: str | None, seat: str | None) -> None:
    assert seat_of(channel) == seat


# --- listener helpers: CoreShowChannel duration and resync ----------------------------------------

@pytest.mark.parametrize(("raw", "seconds"), [
    ("00:00:00", 0), ("00:01:05", 65), ("01:00:00", 3600), ("27:00:01", 97201),
    (None, 0), ("", 0), ("abc", 0), ("1:2", 0), ("1:2:3:4", 0), ("aa:bb:cc", 0),
])
def test_duration(raw: str | None, seconds: float) -> None:
    assert _duration(raw) == seconds


class FakeAmi:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.actions: list[dict[str, str]] = []

    async def action(self, action: dict[str, str], *, as_list: bool | None = None,
                     timeout: float = 5.0) -> Any:
        self.actions.append(action)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def close(self) -> None:
        return None


class FakeLive:
    def __init__(self, live: set[str]) -> None:
        self.live = live
        self.applied: list[CallEvent] = []

    async def apply(self, ev: CallEvent) -> None:
        self.applied.append(ev)

    async def live_linkedids(self) -> set[str]:
        return set(self.live)


class FakeSink:
    def __init__(self) -> None:
        self.emitted: list[CallEvent] = []

    def emit(self, ev: CallEvent) -> None:
        self.emitted.append(ev)


async def make_listener(answer: Any, live: set[str]) -> tuple[AmiListener, FakeSink, FakeLive, FakeAmi]:
    sink, store = FakeSink(), FakeLive(live)
    listener = AmiListener(host="127.0.0.1", port=1, username="u", secret="s", sink=sink, live=store,
                           mapping=CFG)
    await listener.client.close()  # never connected; closes panoramisk's manager cleanly
    fake = FakeAmi(answer)
    listener.client = fake  # type: ignore[assignment]
    return listener, sink, store, fake


def core_show_channel(channel: str, uniqueid: str, linkedid: str, *, exten: str = "12345",
                      duration: str = "00:00:10", caller: str = "13800138000") -> dict[str, str]:
    return {"Event": "CoreShowChannel", "Channel": channel, "Uniqueid": uniqueid, "Linkedid": linkedid,
            "Context": "from-trunk", "Exten": exten, "CallerIDNum": caller, "Duration": duration,
            "Application": "Queue", "ApplicationData": "hotline-12345,t"}


async def test_resync_records_live_trunk_calls_and_ends_vanished_ones() -> None:
    msgs = [
        {"Response": "Success", "EventList": "start", "Message": "Channels will follow"},
        core_show_channel("PJSIP/trunk-00000007", "pbx-100.7", "pbx-100.7", duration="00:01:05"),
        core_show_channel("PJSIP/1202-00000008", "pbx-100.8", "pbx-100.7"),  # seat leg of that call
        {"Event": "CoreShowChannelsComplete", "EventList": "Complete", "ListItems": "2"},
    ]
    listener, sink, store, fake = await make_listener(msgs, live={"pbx-100.7", "pbx-90.1"})
    before = time.time()
    await listener.resync()
    assert fake.actions == [{"Action": "CoreShowChannels"}]
    assert listener.resyncs == 1
    assert sink.emitted == store.applied
    by_type = {e.type: e for e in sink.emitted}
    assert sorted(by_type) == [CallEventType.ARRIVED, CallEventType.HANGUP]

    arrived = by_type[CallEventType.ARRIVED]
    newchannel = {"Event": "Newchannel", "Channel": "PJSIP/trunk-00000007", "Uniqueid": "pbx-100.7",
                  "Linkedid": "pbx-100.7", "Exten": "12345", "CallerIDNum": "13800138000",
                  "Timestamp": "1795940000.0"}
    (from_ami,) = map_event(newchannel, CFG)
    assert arrived.event_id == from_ami.event_id == "pbx-100.7:arrived:ami"
    assert arrived.linkedid == "pbx-100.7"
    assert arrived.service is Service.HOTLINE_12345
    assert arrived.caller == "13800138000"
    assert arrived.data == {"resync": True}
    assert before - 65 - 1 <= arrived.at <= time.time() - 65 + 1

    hangup = by_type[CallEventType.HANGUP]
    assert hangup.linkedid == "pbx-90.1"
    assert hangup.event_id == "pbx-90.1:hangup:pbx-90.1"  # same id a real Hangup would have had
    assert hangup.data["resync"] is True and hangup.data["cause"] == 0
    assert all(accepted_by_api(e) for e in sink.emitted)


async def test_resync_with_nothing_live_and_nothing_known_publishes_nothing() -> None:
    listener, sink, _, _ = await make_listener([], live=set())
    await listener.resync()
    assert sink.emitted == []


async def test_resync_when_ami_fails_publishes_nothing_and_ends_no_call() -> None:
    listener, sink, store, _ = await make_listener(TimeoutError("no answer"), live={"pbx-90.1"})
    await listener.resync()
    assert sink.emitted == [] and store.applied == []
    assert listener.resyncs == 1


async def test_on_ami_event_publishes_mapped_events() -> None:
    listener, sink, store, _ = await make_listener([], live=set())
    for ev in recorded():
        await listener.on_ami_event(ev)
    assert listener.events_seen == len(recorded())
    assert listener.events_mapped == 6
    assert [e.type for e in store.applied] == [e.type for e in sink.emitted]


def test_transfer_to_a_seat_of_the_other_platform_names_its_service() -> None:
    cfg = MappingConfig(seats={"1201": Service.HOTLINE_12345, "1101": Service.POLICE_110})
    (ev,) = map_event(blind_transfer(), cfg)
    assert ev.data["target_service"] == "110"
    (ev,) = map_event(attended_transfer(), cfg)
    assert ev.data["target_service"] == "110" and ev.data["target"] == "1101"


def test_dialplan_user_events_become_transfer_events() -> None:
    cfg = MappingConfig(seats={"1201": Service.HOTLINE_12345, "1101": Service.POLICE_110})
    base_ev = {"Event": "UserEvent", "Timestamp": "1795940630.250000", "Channel": "PJSIP/trunk-0000000a",
               "Uniqueid": "pbx-1795940600.7", "Linkedid": "pbx-1795940600.7"}
    (xfer,) = map_event({**base_ev, "UserEvent": "HotlineTransfer", "Target": "110", "From": "1201",
                         "Kind": "blind"}, cfg)
    assert xfer.type is CallEventType.TRANSFERRED and xfer.seat == "1201"
    assert xfer.data == {"target": "110", "target_service": "110", "kind": "blind"}
    (failed,) = map_event({**base_ev, "UserEvent": "HotlineTransferFailed", "Target": "110", "From": "1201",
                           "Status": "TIMEOUT", "Timestamp": "1795940650.0"}, cfg)
    assert failed.type is CallEventType.TRANSFER_FAILED and failed.data["status"] == "TIMEOUT"
    assert accepted_by_api(xfer) and accepted_by_api(failed)
    assert map_event({**base_ev, "UserEvent": "SomethingElse"}, cfg) == []
    odd = map_event({**base_ev, "UserEvent": "HotlineTransfer", "From": "x\r\nEvent: Hangup"}, cfg)
    assert odd and odd[0].seat is None


def test_fallback_dial_answer_is_an_answer_but_queue_dials_are_not() -> None:
    ev = {"Event": "DialEnd", "Timestamp": "1795940660.0", "Channel": "PJSIP/trunk-0000000a",
          "Uniqueid": "pbx-1795940600.7", "Linkedid": "pbx-1795940600.7", "Context": "hotline-transfer",
          "DestChannel": "PJSIP/1201-0000000c", "DestUniqueid": "pbx-1795940659.12", "DialStatus": "ANSWER"}
    (answered,) = map_event(ev, CFG)
    assert answered.type is CallEventType.ANSWERED and answered.seat == "1201"
    assert map_event({**ev, "Context": "hotline-intake"}, CFG) == []  # Queue's dial: AgentConnect's job
    assert map_event({**ev, "DialStatus": "NOANSWER"}, CFG) == []


def test_attended_transfer_names_the_platform_from_the_consultation_leg() -> None:
    cfg = MappingConfig(seats={"1201": Service.HOTLINE_12345, "1101": Service.POLICE_110})
    base_ev = {"Event": "AttendedTransfer", "Timestamp": "1795946474.4", "Result": "Success",
               "OrigTransfererChannel": "PJSIP/1201-00000001", "OrigTransfererLinkedid": "pbx-1.0"}
    (ev,) = map_event({**base_ev, "TransferTargetChannel": "Local/110-pbx-1.0@hotline-atxfer-00000000;1",
                       "TransferTargetExten": "110-pbx-1.0"}, cfg)
    assert ev.data["target"] == "110" and ev.data["target_service"] == "110"
    # The Local channel optimised away: no target fields, the connected line names the seat.
    (ev,) = map_event({**base_ev, "SecondTransfererConnectedLineNum": "1101"}, cfg)
    assert ev.data["target_service"] == "110" and ev.seat == "1201"

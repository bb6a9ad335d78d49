"""Raw AMI sessions recorded from the real Asterisk 22 (``tests/fixtures/ami/*.txt``, re-recorded with
``tests/fixtures/ami/record.py``), replayed through panoramisk's own parser into the mapping: the
call events a user would see for each scenario."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from ami_raw import ami_events

from call_flows.mapping import MappingConfig, map_event
from hotline.contracts import CallEvent, CallEventType, Service
from hotline.settings import Settings
from hotline.site import load_site


def _config() -> MappingConfig:
    site = load_site(Settings.from_env().site_file)
    numbers = {n: svc for svc in Service for n in site.numbers[svc]}
    seats = {s: svc for svc in Service for s in (*site.operators[svc], *site.linkage[svc])}
    return MappingConfig(numbers=numbers, seats=seats)


def replay(name: str) -> dict[str, list[CallEvent]]:
    """The call events of one recorded session, by call id, as the listener would store them."""
    cfg = _config()
    calls: dict[str, list[CallEvent]] = defaultdict(list)
    seen: set[str] = set()
    for msg in ami_events(name):
        for ev in map_event(msg, cfg):
            if ev.event_id not in seen:  # the app stores an event id once
                seen.add(ev.event_id)
                calls[ev.linkedid].append(ev)
    return calls


def _types(events: list[CallEvent]) -> Counter[CallEventType]:
    return Counter(e.type for e in events)


def test_answered_call_is_one_call_with_its_seat() -> None:
    calls = replay("answered_call")
    assert len(calls) == 1
    (events,) = calls.values()
    types = _types(events)
    for t in (CallEventType.ARRIVED, CallEventType.QUEUED, CallEventType.RINGING,
              CallEventType.ANSWERED, CallEventType.BRIDGED, CallEventType.HANGUP):
        assert types[t] >= 1, t
    arrived = next(e for e in events if e.type is CallEventType.ARRIVED)
    assert arrived.service is Service.HOTLINE_12345
    answered = next(e for e in events if e.type is CallEventType.ANSWERED)
    assert answered.seat in ("1201", "1202", "1203")


def test_abandoned_call() -> None:
    calls = replay("abandoned_call")
    assert len(calls) == 1
    (events,) = calls.values()
    assert _types(events)[CallEventType.ABANDONED] == 1
    assert _types(events)[CallEventType.ANSWERED] == 0


@pytest.mark.parametrize("name", ["echo_test", "seat_to_seat"])
def test_calls_a_phone_places_itself_are_not_calls(name: str) -> None:
    assert replay(name) == {}


@pytest.mark.parametrize("name", ["supervisor_listen_api", "supervisor_listen_phone"])
def test_a_supervisors_leg_belongs_to_the_call_it_watches(name: str) -> None:
    calls = replay(name)
    assert len(calls) == 1, sorted(calls)
    (events,) = calls.values()
    assert _types(events)[CallEventType.ARRIVED] == 1
    supervised = [e for e in events if e.type is CallEventType.SUPERVISED]
    assert supervised and supervised[0].data["supervisor"] == "1901"
    assert supervised[0].data["mode"] == "listen"


def test_one_touch_transfer_is_recorded_on_the_call() -> None:
    calls = replay("one_touch_transfer")
    assert len(calls) == 1
    (events,) = calls.values()
    transfers = [e for e in events if e.type is CallEventType.TRANSFERRED]
    assert transfers and transfers[0].data.get("target_service") == "110"


def test_three_way_names_the_invited_110_seat() -> None:
    calls = replay("three_way_110")
    assert len(calls) == 1
    (events,) = calls.values()
    joined = [e for e in events if e.type is CallEventType.CONFERENCE_JOINED]
    parties = {e.data["party"] for e in joined}
    assert "caller" in parties
    invited = [e for e in joined if e.data.get("platform") == "110"]
    assert invited, [e.data for e in joined]
    assert all(e.seat in ("1101", "1102", "1103", "1191") for e in invited), [e.seat for e in invited]

"""The call summary is a pure function of the events: any arrival order gives the same result."""

from __future__ import annotations

import itertools
import random

import pytest

from app.calls.summary import summarise

T0 = 1_760_000_000.0


def ev(type_: str, dt: float, n: int = 0, **kw) -> dict:
    base = {
        "event_id": f"e{dt}-{type_}-{n}",
        "linkedid": "1",
        "type": type_,
        "at": T0 + dt,
        "source": "ami",
        "service": None,
        "caller": None,
        "seat": None,
        "data": {},
    }
    return {**base, **kw}


CALL = [
    ev("arrived", 0, service="110", caller="13800000000"),
    ev("queued", 2, data={"queue": "police-110"}),
    ev("ringing", 3, seat="seat-110-01"),
    ev("answered", 5, seat="seat-110-01"),
    ev("transferred", 20, data={"target_service": "12345"}),
    ev("hangup", 65, data={"cause": "16"}),
]


def test_every_order_gives_the_same_summary() -> None:
    expected = summarise(CALL)
    assert expected["outcome"] == "transferred_12345"
    assert (expected["wait_s"], expected["talk_s"], expected["total_s"]) == (5.0, 60.0, 65.0)
    for perm in itertools.permutations(CALL):
        assert summarise(perm) == expected


def test_arrival_falls_back_to_the_first_event() -> None:
    s = summarise([ev("hangup", 30), ev("ringing", 4), ev("answered", 10)])
    assert s["arrived_at"] == T0 + 4 and s["wait_s"] == 6.0 and s["total_s"] == 26.0


def test_latest_operator_outcome_wins_and_auto_never_overrides() -> None:
    oc1 = ev("outcome", 70, data={"outcome": "guided", "outcome_source": "operator", "by": "ann"})
    oc2 = ev(
        "outcome",
        80,
        data={"outcome": "three_way", "detail": "110", "outcome_source": "operator", "by": "bo"},
    )
    for events in (CALL + [oc1, oc2], [oc2, oc1] + CALL[::-1]):
        s = summarise(events)
        assert (s["outcome"], s["outcome_detail"], s["outcome_by"], s["outcome_source"]) == (
            "three_way",
            "110",
            "bo",
            "operator",
        )


@pytest.mark.parametrize("seed", range(20))
def test_random_calls_are_order_independent(seed: int) -> None:
    rnd = random.Random(seed)
    types = [
        "arrived",
        "queued",
        "ringing",
        "answered",
        "bridged",
        "transferred",
        "abandoned",
        "hangup",
        "outcome",
    ]
    events = []
    for n in range(rnd.randint(1, 12)):
        t = rnd.choice(types)
        data = (
            {"outcome": "guided"}
            if t == "outcome"
            else {"target_service": rnd.choice(["110", "12345", None])}
        )
        events.append(ev(t, rnd.uniform(0, 100), n, data=data, seat=rnd.choice([None, "s1", "s2"])))
    expected = summarise(events)
    for _ in range(10):
        rnd.shuffle(events)
        assert summarise(events) == expected


def test_empty_is_an_error() -> None:
    with pytest.raises(ValueError):
        summarise([])


def test_transfer_within_the_same_platform_is_not_a_hand_over() -> None:
    same = [e if e["type"] != "transferred" else {**e, "data": {"target_service": "110"}} for e in CALL]
    assert summarise(same)["outcome"] == "resolved_on_call", "110 seat to another 110 seat"


def test_a_failed_hand_over_leaves_the_call_with_its_platform() -> None:
    failed = CALL[:-1] + [ev("transfer_failed", 40, data={"target_service": "12345"}), CALL[-1]]
    assert summarise(failed)["outcome"] == "resolved_on_call"


def test_queue_timeout_during_a_transfer_is_not_an_abandon_but_hanging_up_waiting_is() -> None:
    came_back = CALL[:-1] + [ev("transferred", 30, data={"target_service": "12345"}),
                             ev("abandoned", 34), ev("transfer_failed", 34.1), ev("bridged", 36),
                             CALL[-1]]
    assert summarise(came_back)["outcome"] == "resolved_on_call"
    hung_up_waiting = CALL[:-1] + [ev("transferred", 30, data={"target_service": "12345"}),
                                   ev("abandoned", 33), CALL[-1]]
    assert summarise(hung_up_waiting)["outcome"] == "abandoned"

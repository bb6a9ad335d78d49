"""Recording call events: idempotency, order independence, automatic outcomes."""

from __future__ import annotations

import asyncio
import random


async def test_events_are_recorded_with_durations(api) -> None:
    status, body = await api.post_events({"events": api.answered_call("1700.1")})
    assert (status, body) == (200, {"received": 6, "new": 6, "duplicates": 0})
    status, call = await api.get_call("1700.1")
    assert status == 200
    assert call["caller"] == "13812345678"
    assert call["service"] == "12345"
    assert call["seat"] == "1201"
    assert call["queue"] == "hotline-12345"
    assert (call["wait_s"], call["talk_s"], call["total_s"]) == (10.0, 60.0, 70.0)
    assert call["hangup_cause"] == "16"
    assert call["flags"] == ["repeat"]
    assert call["outcome"] == "resolved_on_call" and call["outcome_source"] == "auto"
    assert [e["type"] for e in call["timeline"]] == [
        "arrived",
        "queued",
        "ringing",
        "answered",
        "bridged",
        "hangup",
    ]


async def test_same_event_twice_is_stored_once(api) -> None:
    ev = api.event("1700.2", "arrived", 0, caller="13800000001")
    assert (await api.post_events(ev))[1]["new"] == 1
    status, body = await api.post_events(ev)
    assert (status, body) == (200, {"received": 1, "new": 0, "duplicates": 1})
    batch = {"events": [ev, ev, api.event("1700.2", "hangup", 5)]}
    assert (await api.post_events(batch))[1] == {"received": 3, "new": 1, "duplicates": 2}
    _, call = await api.get_call("1700.2")
    assert call["event_count"] == 2 and len(call["timeline"]) == 2


async def test_out_of_order_events_give_the_same_summary(api) -> None:
    events = api.answered_call("1700.3")
    shuffled = [dict(e, linkedid="1700.4", event_id=e["event_id"] + "-b") for e in events]
    random.Random(7).shuffle(shuffled)
    shuffled.sort(key=lambda e: e["type"] != "hangup")  # hangup first, the worst case
    await api.post_events({"events": events})
    for e in shuffled:  # one request per event, in the wrong order
        assert (await api.post_events(e))[0] == 200
    _, a = await api.get_call("1700.3")
    _, b = await api.get_call("1700.4")
    keep = (
        "arrived_at",
        "answered_at",
        "ended_at",
        "wait_s",
        "talk_s",
        "total_s",
        "outcome",
        "seat",
        "caller",
        "queue",
        "hangup_cause",
        "outcome_source",
    )
    assert {k: a[k] for k in keep} == {k: b[k] for k in keep}
    assert [e["type"] for e in b["timeline"]] == [e["type"] for e in a["timeline"]]


async def test_never_answered_is_abandoned(api) -> None:
    await api.post_events(
        {
            "events": [
                api.event("1700.5", "hangup", 42),
                api.event("1700.5", "arrived", 0),
                api.event("1700.5", "queued", 2),
            ]
        }
    )
    _, call = await api.get_call("1700.5")
    assert call["outcome"] == "abandoned" and call["outcome_source"] == "auto"
    assert (call["wait_s"], call["talk_s"], call["total_s"]) == (42.0, 0.0, 42.0)
    assert call["answered_at"] is None


async def test_abandoned_event_wins_over_answer(api) -> None:
    events = api.answered_call("1700.6") + [api.event("1700.6", "abandoned", 69)]
    await api.post_events({"events": events})
    assert (await api.get_call("1700.6"))[1]["outcome"] == "abandoned"


async def test_transfers_give_transferred_outcomes(api) -> None:
    # A call at one platform handed to the other; a transfer within a platform is no hand-over.
    for lid, service, target, outcome in (
        ("1700.7", "12345", "110", "transferred_110"),
        ("1700.8", "110", "12345", "transferred_12345"),
        ("1700.81", "12345", "12345", "resolved_on_call"),
    ):
        events = [{**e, "service": service} for e in api.answered_call(lid)] + [
            api.event(
                lid, "transferred", 30, data={"kind": "blind", "target": "8110", "target_service": target}
            )
        ]
        await api.post_events({"events": events})
        assert (await api.get_call(lid))[1]["outcome"] == outcome


async def test_no_outcome_before_hangup(api) -> None:
    await api.post_events({"events": api.answered_call("1700.9")[:4]})
    _, call = await api.get_call("1700.9")
    assert call["outcome"] is None and call["ended_at"] is None and call["wait_s"] == 10.0


async def test_operator_outcome_wins_over_auto(api) -> None:
    lid = "1700.10"
    await api.post_events({"events": api.answered_call(lid)[:4]})
    status, call = await api.call(
        "PUT",
        f"/api/calls/{lid}/outcome",
        "operator",
        json={"outcome": "ticket_created", "detail": "WO-1", "note": "pothole"},
    )
    assert status == 200, call
    assert (call["outcome"], call["outcome_source"], call["outcome_by"]) == (
        "ticket_created",
        "operator",
        "test-operator",
    )
    await api.post_events(api.answered_call(lid)[5])  # hangup arrives later: auto must not overwrite
    _, call = await api.get_call(lid)
    assert (call["outcome"], call["outcome_detail"], call["outcome_source"]) == (
        "ticket_created",
        "WO-1",
        "operator",
    )
    assert call["total_s"] == 70.0
    assert "outcome" in [e["type"] for e in call["timeline"]]


async def test_service_outcome_is_a_flow_outcome(api) -> None:
    lid = "1700.11"
    await api.post_events({"events": api.answered_call(lid)})
    status, call = await api.call(
        "PUT", f"/api/calls/{lid}/outcome", "service", json={"outcome": "three_way", "detail": "110"}
    )
    assert status == 200
    assert (call["outcome"], call["outcome_detail"], call["outcome_source"]) == ("three_way", "110", "flow")


async def test_outcome_event_posted_by_a_flow(api) -> None:
    lid = "1700.12"
    events = api.answered_call(lid) + [
        api.event(lid, "outcome", 71, source="flow", data={"outcome": "emergency_linked", "detail": "120"})
    ]
    await api.post_events({"events": events})
    _, call = await api.get_call(lid)
    assert (call["outcome"], call["outcome_detail"], call["outcome_source"]) == (
        "emergency_linked",
        "120",
        "flow",
    )


async def test_concurrent_writers_converge(api) -> None:
    calls = [f"1701.{n}" for n in range(6)]
    events = [e for lid in calls for e in api.answered_call(lid)]
    random.Random(3).shuffle(events)
    results = await asyncio.gather(*(api.post_events(e) for e in events + events[:10]))
    assert all(status == 200 for status, _ in results)
    assert sum(body["new"] for _, body in results) == len(events)
    for lid in calls:
        _, call = await api.get_call(lid)
        assert (call["event_count"], call["total_s"], call["outcome"]) == (6, 70.0, "resolved_on_call")


async def test_a_supervisor_listening_from_the_phone_is_audited(api) -> None:
    from sqlalchemy import select

    from app import keys
    from app.models import AuditRow

    lid = "1700.77"
    spy = api.event(lid, "supervised", 20,
                    data={"supervisor": "1901", "mode": "whisper", "seat_watched": "1201"})
    await api.post_events({"events": api.answered_call(lid)[:4] + [spy]})
    db = api.client.app[keys.DATABASE]
    async with db.read() as conn:
        rows = (await conn.execute(select(AuditRow.who, AuditRow.action, AuditRow.target)
                                   .where(AuditRow.target == lid))).all()
    assert ("supervisor 1901", "spy_whisper", lid) in [tuple(r) for r in rows]

"""Reading calls: filters and paging, audit of every read, harassment list and outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from app import keys
from app.models import AuditRow
from hotline.redis_keys import HARASSMENT_SET


async def audit_rows(api) -> list[dict]:
    async with api.client.server.app[keys.DATABASE].read() as conn:
        res = await conn.execute(select(AuditRow.__table__).order_by(AuditRow.id))
        return [dict(r) for r in res.mappings()]


async def seed(api) -> None:
    """Four calls an hour apart: 12345 resolved (seat A), 110 abandoned, 12345 transferred (seat B), live."""
    events = []
    events += api.answered_call("2000.1", seat="1301")
    lid = "2000.2"
    events += [
        api.event(lid, "arrived", 3600, service="110"),
        api.event(lid, "hangup", 3630, service="110"),
    ]
    lid = "2000.3"
    events += [
        dict(e, at=e["at"] + 7200, event_id=e["event_id"] + "x")
        for e in api.answered_call(lid, seat="1302")
    ]
    events.append(api.event(lid, "transferred", 7230, data={"target_service": "110"}))
    events += api.answered_call("2000.4", seat="1301")[:3]
    events = [dict(e, at=e["at"] + 10800) if e["linkedid"] == "2000.4" else e for e in events]
    status, body = await api.post_events({"events": events})
    assert status == 200 and body["duplicates"] == 0


def ids(body: dict) -> list[str]:
    return [c["linkedid"] for c in body["calls"]]


async def test_list_and_filters(api) -> None:
    await seed(api)
    t0 = api.T0
    get = lambda q: api.call("GET", f"/api/calls?{q}", "supervisor")  # noqa: E731
    status, body = await get("")
    assert status == 200 and ids(body) == ["2000.4", "2000.3", "2000.2", "2000.1"] and body["total"] == 4
    assert ids((await get("service=110"))[1]) == ["2000.2"]
    assert ids((await get("seat=1301"))[1]) == ["2000.1"]  # 2000.4 is only ringing 1301
    assert ids((await get("outcome=abandoned"))[1]) == ["2000.2"]
    assert ids((await get("outcome=transferred_110"))[1]) == ["2000.3"]
    assert ids((await get(f"since={t0 + 3600}&until={t0 + 7200}"))[1]) == ["2000.2"]
    iso = datetime.fromtimestamp(t0 + 7200, UTC).isoformat().replace("+00:00", "Z")
    assert ids((await get(f"since={iso}"))[1]) == ["2000.4", "2000.3"]
    naive = datetime.fromtimestamp(t0 + 7200, UTC).replace(tzinfo=None).isoformat()
    assert ids((await get(f"until={naive}"))[1]) == ["2000.2", "2000.1"]
    page = (await get("limit=2&offset=1"))[1]
    assert ids(page) == ["2000.3", "2000.2"] and (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert ids((await get("service=12345&outcome=resolved_on_call&seat=1301"))[1]) == ["2000.1"]


async def test_every_read_of_caller_data_is_audited(api) -> None:
    await seed(api)
    assert await audit_rows(api) == []  # writing events is not a read
    await api.get_call("2000.1", role="operator")
    await api.call("GET", "/api/calls?service=110", "supervisor")
    await api.call(
        "PUT", "/api/calls/2000.1/outcome", "admin", json={"outcome": "guided", "note": "go to court"}
    )
    rows = await audit_rows(api)
    got = [(r["who"], r["role"], r["action"], r["target"]) for r in rows]
    assert got == [
        ("test-operator", "operator", "read_call", "2000.1"),
        ("test-supervisor", "supervisor", "list_calls", "calls"),
        ("test-admin", "admin", "set_outcome", "2000.1"),
    ]
    assert rows[1]["detail"]["query"]["service"] == "110" and rows[1]["detail"]["returned"] == 1
    assert all(abs(r["at"] - datetime.now(UTC).timestamp()) < 60 for r in rows)


async def test_correcting_an_outcome_keeps_the_history(api) -> None:
    await seed(api)
    put = "/api/calls/2000.1/outcome"
    await api.call("PUT", put, "operator", json={"outcome": "three_way", "detail": "12345"})
    status, call = await api.call(
        "PUT", put, "supervisor", json={"outcome": "emergency_linked", "detail": "water"}
    )
    assert status == 200
    assert (call["outcome"], call["outcome_detail"], call["outcome_by"]) == (
        "emergency_linked",
        "water",
        "test-supervisor",
    )
    _, call = await api.get_call("2000.1")
    outcomes = [e["data"]["outcome"] for e in call["timeline"] if e["type"] == "outcome"]
    assert outcomes == ["three_way", "emergency_linked"]


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_harassment_outcome_lists_the_caller(api, redis) -> None:
    number = "13866660001"
    await api.post_events({"events": api.answered_call("2000.9", caller=number)})
    try:
        status, call = await api.call(
            "PUT", "/api/calls/2000.9/outcome", "operator", json={"outcome": "harassment"}
        )
        assert status == 200 and call["harassment_listed"] is True
        assert await redis.sismember(HARASSMENT_SET, number)
    finally:
        await redis.srem(HARASSMENT_SET, number)


async def test_admin_manages_the_harassment_list(api, redis) -> None:
    number = "13866660002"
    try:
        status, body = await api.call(
            "POST", "/api/harassment", "admin", json={"number": f'"Pest" <{number}>'}
        )
        assert (status, body) == (201, {"number": number, "added": True})
        assert (await api.call("POST", "/api/harassment", "admin", json={"number": number}))[0] == 200
        status, body = await api.call("GET", "/api/harassment", "admin")
        assert status == 200 and number in body["numbers"]
        status, body = await api.call("DELETE", "/api/harassment", "admin", json={"number": number})
        assert (status, body) == (200, {"number": number, "removed": True})
        assert not await redis.sismember(HARASSMENT_SET, number)
        for bad in ({"number": "no digits"}, {"number": 5}, {}, {"number": "1", "x": 1}):
            status, body = await api.call("POST", "/api/harassment", "admin", json=bad)
            assert (status, body["error_id"]) == (400, "validation_failed"), bad
        actions = [(r["action"], r["target"]) for r in await audit_rows(api)]
        assert ("harassment_add", number) in actions and ("harassment_remove", number) in actions
    finally:
        await redis.srem(HARASSMENT_SET, number)

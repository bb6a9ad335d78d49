"""Bad input gets a 4xx JSON error with a stable error_id, never a 500 and never a partial write."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from app import keys
from app.models import AuditRow, Call, CallEventRow


async def counts(api) -> tuple[int, int]:
    db = api.client.server.app[keys.DATABASE]
    async with db.read() as conn:
        calls = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
        events = (await conn.execute(select(func.count()).select_from(CallEventRow))).scalar_one()
    return calls, events


async def raw_post(
    api, path: str, data: bytes | io.BytesIO, content_type: str = "application/json", method: str = "POST"
):
    headers = {**api.headers("service"), "Content-Type": content_type}
    async with api.client.request(method, path, data=data, headers=headers) as resp:
        return resp.status, await resp.json()


def good(api, n: int = 0) -> dict:
    return api.event("1800.1", "arrived", n, event_id=f"good-{n}", caller="13800000000")


BAD_EVENTS = [
    ("missing event_id", lambda e: e.pop("event_id"), "event_id"),
    ("event_id with a space", lambda e: e.update(event_id="a b"), "event_id"),
    ("event_id too long", lambda e: e.update(event_id="x" * 129), "event_id"),
    ("linkedid with a quote", lambda e: e.update(linkedid='17"00'), "linkedid"),
    ("linkedid not a string", lambda e: e.update(linkedid=1700.1), "linkedid"),
    ("unknown type", lambda e: e.update(type="exploded"), "type"),
    ("at as a string", lambda e: e.update(at="yesterday"), "at"),
    ("at as a bool", lambda e: e.update(at=True), "at"),
    ("at in milliseconds", lambda e: e.update(at=1_760_000_000_000), "at"),
    ("unknown source", lambda e: e.update(source="sms"), "source"),
    ("unknown service", lambda e: e.update(service="119"), "service"),
    ("caller not a string", lambda e: e.update(caller=13800000000), "caller"),
    ("caller huge", lambda e: e.update(caller="1" * 10_000), "caller"),
    ("seat with a newline", lambda e: e.update(seat="seat\n1"), "seat"),
    ("data a list", lambda e: e.update(data=[1, 2]), "data"),
    ("data over 16 KiB", lambda e: e.update(data={"blob": "x" * 17_000}), "data"),
    ("unknown field", lambda e: e.update(colour="red"), "colour"),
    ("outcome event without outcome", lambda e: e.update(type="outcome", data={}), "outcome"),
    (
        "three_way without platform",
        lambda e: e.update(type="outcome", data={"outcome": "three_way"}),
        "detail",
    ),
]


@pytest.mark.parametrize(("case", "spoil", "field"), BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS])
async def test_bad_event_in_a_batch_writes_nothing(api, case, spoil, field) -> None:
    bad = good(api, 99)
    spoil(bad)
    status, body = await api.post_events({"events": [good(api, 1), good(api, 2), bad]})
    assert status == 400, body
    assert body["error_id"] == "validation_failed"
    # The envelope's details name the place: ["body", "events", <index>, <field>]; an outcome's
    # rules are checked on the event's data, and the message names the field.
    locs = [d["loc"] for d in body["details"]]
    if field in ("outcome", "detail"):
        assert any(d["loc"] == ["body", "events", 2, "data"] and d["msg"].startswith(field)
                   for d in body["details"]), body
    else:
        assert ["body", "events", 2, field] in [loc[:4] for loc in locs], locs
    assert await counts(api) == (0, 0)


async def test_unknown_outcome_in_an_outcome_event(api) -> None:
    ev = api.event("1800.2", "outcome", 1, data={"outcome": "solved_by_magic"})
    status, body = await api.post_events({"events": [good(api), ev]})
    assert (status, body["error_id"]) == (400, "unknown_outcome")
    assert await counts(api) == (0, 0)


@pytest.mark.parametrize(
    ("body", "error_id"),
    [
        ({"events": []}, "validation_failed"),
        ({"events": "nope"}, "validation_failed"),
        ({"events": [], "more": 1}, "validation_failed"),
        ([1, 2, 3], "validation_failed"),
        ("just a string", "validation_failed"),
        (0, "validation_failed"),
    ],
)
async def test_bad_shapes(api, body, error_id) -> None:
    status, resp = await api.post_events(body)
    assert (status, resp["error_id"]) == (400, error_id)
    assert set(resp) == {"error_id", "message", "details"}


async def test_batch_limit(api) -> None:
    events = [api.event("1800.3", "ringing", i, event_id=f"r{i}") for i in range(501)]
    status, body = await api.post_events({"events": events})
    assert (status, body["error_id"]) == (400, "validation_failed")
    status, body = await api.post_events({"events": events[:500]})
    assert (status, body["new"]) == (200, 500)


@pytest.mark.parametrize(
    "data", [b"{", b"", b"\xff\xfe", b'{"event_id": NaN}', b"[" * 100_000, b'{"a": 1} trailing']
)
async def test_malformed_json(api, data) -> None:
    status, body = await raw_post(api, "/api/events", data)
    assert (status, body["error_id"]) == (400, "malformed_json")
    assert await counts(api) == (0, 0)


async def test_json_null_and_no_body(api) -> None:
    status, body = await raw_post(api, "/api/events", b"null")
    assert (status, body["error_id"]) == (400, "validation_failed")
    status, body = await api.call("POST", "/api/events", "service")
    assert (status, body["error_id"]) == (415, "unsupported_media_type")


async def test_wrong_content_type(api) -> None:
    status, body = await raw_post(api, "/api/events", json.dumps(good(api)).encode(), "text/plain")
    assert (status, body["error_id"]) == (415, "unsupported_media_type")
    assert await counts(api) == (0, 0)


async def test_body_too_large(api) -> None:
    events = [
        api.event("1800.4", "ringing", i, event_id=f"big{i}", data={"p": "x" * 3000}) for i in range(400)
    ]
    data = json.dumps({"events": events}).encode()
    assert len(data) > 1024 * 1024
    status, body = await raw_post(api, "/api/events", io.BytesIO(data))
    assert (status, body["error_id"]) == (413, "body_too_large")

    async def chunks():  # no Content-Length: the limit still holds while reading
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    headers = {**api.headers("service"), "Content-Type": "application/json"}
    async with api.client.post("/api/events", data=chunks(), headers=headers) as resp:
        assert resp.status == 413
        assert (await resp.json())["error_id"] == "body_too_large"
    assert await counts(api) == (0, 0)


async def test_unknown_route_and_method(api) -> None:
    status, body = await api.call("GET", "/api/nothing-here", None)
    assert (status, body["error_id"]) == (404, "not_found")
    status, body = await api.call("DELETE", "/api/events", "service")
    assert (status, body["error_id"]) == (405, "method_not_allowed")
    assert "POST" in body["details"]["allowed"]


async def test_outcome_errors(api) -> None:
    await api.post_events({"events": api.answered_call("1800.5")})
    before = await counts(api)
    put = "/api/calls/1800.5/outcome"
    cases = [
        ({"outcome": "solved_by_magic"}, 400, "unknown_outcome"),
        ({"outcome": 7}, 400, "validation_failed"),
        ({}, 400, "validation_failed"),
        ({"outcome": "three_way"}, 400, "validation_failed"),
        ({"outcome": "three_way", "detail": "119"}, 400, "validation_failed"),
        ({"outcome": "emergency_linked", "detail": "911"}, 400, "validation_failed"),
        ({"outcome": "guided", "note": 5}, 400, "validation_failed"),
        ({"outcome": "guided", "who": "me"}, 400, "validation_failed"),
        (["guided"], 400, "validation_failed"),
    ]
    for body, status, error_id in cases:
        got = await api.call("PUT", put, "operator", json=body)
        assert (got[0], got[1]["error_id"]) == (status, error_id), body
    status, body = await api.call(
        "PUT", "/api/calls/no.such.call/outcome", "operator", json={"outcome": "guided"}
    )
    assert (status, body["error_id"]) == (404, "unknown_call")
    status, body = await api.get_call("no.such.call")
    assert (status, body["error_id"]) == (404, "unknown_call")
    status, body = await api.get_call("bad'id")  # malformed: 400 on every route (issue 9)
    assert (status, body["error_id"]) == (400, "invalid_call_id")
    assert await counts(api) == before


async def test_list_filter_errors(api) -> None:
    for query in (
        "since=yesterday",
        "limit=501",
        "limit=0",
        "offset=-1",
        "outcome=magic",
        "service=119",
        "colour=red",
        "limit=1&limit=2",
        "limit=abc",
    ):
        status, body = await api.call("GET", f"/api/calls?{query}", "supervisor")
        assert (status, body["error_id"]) == (400, "validation_failed"), query


async def test_failed_requests_leave_no_audit_rows(api) -> None:
    await api.call("GET", "/api/calls?limit=0", "supervisor")
    await api.get_call("no.such.call")
    db = api.client.server.app[keys.DATABASE]
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(AuditRow))).scalar_one() == 0

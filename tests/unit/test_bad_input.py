"""Bad input the outside review found (issue 9, "Medium"): each gets a clear 4xx with an error id,
nothing is written, and the data already stored still reads back (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.access_log import mask_tokens

LONE = "\ud800"


async def raw_post(api, path: str, text: str, role: str) -> tuple[int, Any]:
    """A JSON body written by hand: ``json.dumps`` escapes a lone surrogate as ``\\ud800``, which
    the server's JSON parser turns back into one."""
    headers = {**api.headers(role), "Content-Type": "application/json"}
    async with api.client.request("POST" if "events" in path or "transcripts" in path else "PUT", path,
                                  data=text.encode(), headers=headers) as resp:
        return resp.status, await resp.json()


async def stored_call(api) -> None:
    status, body = await api.post_events({"events": api.answered_call("2100.1")})
    assert status == 200


async def test_a_lone_surrogate_in_an_outcome_note_or_detail_is_refused(api) -> None:
    await stored_call(api)
    for body in ({"outcome": "guided", "note": LONE}, {"outcome": "guided", "detail": "x" + LONE},
                 {"outcome": "guided", "note": "a\x00b"}):
        status, answer = await raw_post(api, "/api/calls/2100.1/outcome", json.dumps(body), "admin")
        assert status == 400 and answer["error_id"] == "validation_failed", answer
    status, call = await api.get_call("2100.1")
    assert status == 200 and call["outcome"] != "guided"


async def test_a_lone_surrogate_in_event_data_or_transcript_text_is_refused(api) -> None:
    ev = api.event("2100.2", "arrived", 0, data={"note": LONE})
    status, answer = await raw_post(api, "/api/events", json.dumps(ev), "service")
    assert status == 400 and answer["error_id"] == "validation_failed", answer
    seg = {"call": "2100.2", "tap": "t-1", "seq": 0, "speaker": "caller", "kind": "final",
           "start": api.T0, "end": api.T0 + 1, "text": "你好" + LONE, "confidence": 0.9, "seat": None}
    status, answer = await raw_post(api, "/api/transcripts", json.dumps({"segments": [seg]}), "service")
    assert status == 400, answer
    assert (await api.get_call("2100.2"))[0] == 404, "nothing was stored"


async def test_an_id_with_a_trailing_newline_is_not_a_second_call(api) -> None:
    await stored_call(api)
    ev = api.event("2100.1\n", "hangup", 90)
    status, answer = await api.post_events(ev)
    assert status == 400 and answer["error_id"] == "validation_failed", answer
    status, body = await api.call("GET", "/api/calls", "supervisor")
    assert status == 200 and [c["linkedid"] for c in body["calls"]] == ["2100.1"]


async def test_event_data_nested_deeply_is_refused(api) -> None:
    ev = json.dumps(api.event("2100.3", "arrived", 0, data={"x": "HOLE"}))
    text = ev.replace('"HOLE"', '{"x": ' * 900 + "{}" + "}" * 900)  # parses, then 500'd on storing
    status, answer = await raw_post(api, "/api/events", text, "service")
    assert status == 400 and answer["error_id"] == "validation_failed", answer
    assert "nest" in json.dumps(answer)
    assert (await api.get_call("2100.3"))[0] == 404


async def test_a_non_utf8_authorization_header_is_401_not_500(api) -> None:
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /api/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x80\r\n"
                 b"Connection: close\r\n\r\n")
    await writer.drain()
    head = (await reader.read(200)).split(b"\r\n", 1)[0]
    writer.close()
    assert head.startswith(b"HTTP/1.1 401"), head


def test_every_spelling_of_the_token_parameter_is_masked_in_the_access_log() -> None:
    for line in ("GET /api/live?access_token=SECRET HTTP/1.1", "GET /api/live?access%5Ftoken=SECRET&a=1",
                 "GET /api/live?a=1&access%5ftoken=SECRET",
                 "GET /api/live?access_token=SECRET&access_token=x"):
        assert "SECRET" not in mask_tokens(line), line
    assert mask_tokens("GET /api/calls?seat=1201") == "GET /api/calls?seat=1201"


# --- one envelope, one status per case ---------------------------------------------------------------

class RecordingFlows:
    """Stands in for the flow services: records what reached it; a call it does not know is 404, as
    the real one answers from the live state."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        async def flow(linkedid: str, *args: Any) -> dict[str, Any]:
            from call_flows.flows import UnknownLiveCall

            self.asked.append((name, (linkedid, *args)))
            if linkedid != "2100.9":
                raise UnknownLiveCall(f"no live call {linkedid}")
            return {"linkedid": linkedid}

        return flow


FLOW_ROUTES = [("transfer", {}), ("transfer/complete", {}), ("transfer/cancel", {}),
               ("conference", {"with": "110"}), ("linkage", {"hotline": "119"}),
               ("spy", {"supervisor": "1901"})]
CALL_ROUTES = [("GET", "", None), ("PUT", "/outcome", {"outcome": "guided"}), ("GET", "/transcript", None),
               ("GET", "/work-order", None), ("POST", "/route", {"text": "路灯坏了"})]
ENVELOPE = {"error_id", "message", "details"}


@pytest.fixture
async def flow_api(db_url: str, redis_url: str, app_client: Any, api_secrets: Any, api_class: Any) -> Any:
    flows = RecordingFlows()
    api = api_class(await app_client(db_url, redis_url, flows=flows, conference_flows=flows), api_secrets)
    api.flows = flows
    return api


async def test_a_malformed_call_id_is_400_and_an_unknown_one_404_on_every_route(flow_api) -> None:
    api = flow_api
    for bad in ("bad'id", "a%20b", "x" * 65, "1700000000.1%0A"):
        for method, tail, body in CALL_ROUTES:
            status, answer = await api.call(method, f"/api/calls/{bad}{tail}", "admin", json=body)
            assert (status, answer["error_id"]) == (400, "invalid_call_id"), (bad, tail, answer)
            assert set(answer) == ENVELOPE and answer["details"][0]["loc"] == ["path", "linkedid"]
        for tail, body in FLOW_ROUTES:
            status, answer = await api.call("POST", f"/api/calls/{bad}/{tail}", "admin", json=body)
            assert (status, answer["error_id"]) == (400, "invalid_call_id"), (bad, tail, answer)
    assert api.flows.asked == [], "a malformed id never reaches a flow"
    for method, tail, body in CALL_ROUTES[:4] + CALL_ROUTES[4:]:
        status, answer = await api.call(method, f"/api/calls/2100.404{tail}", "admin", json=body)
        expected = "work_order.not_found" if tail == "/work-order" else "unknown_call"
        assert (status, answer["error_id"]) == (404, expected), (tail, answer)
    for tail, body in FLOW_ROUTES:
        status, answer = await api.call("POST", f"/api/calls/2100.404/{tail}", "admin", json=body)
        assert (status, answer["error_id"]) == (404, "unknown_call"), (tail, answer)
        assert set(answer) == ENVELOPE


@pytest.mark.parametrize(("tail", "body", "loc"), [
    ("spy", {"supervisor": "1${SHELL(id>/tmp/x)}"}, ["body", "supervisor"]),
    ("spy", {"supervisor": "1901", "seat": "1101\r\nAction: Originate"}, ["body", "seat"]),
    ("spy", {"supervisor": "1901", "mode": "record"}, ["body", "mode"]),
    ("spy", {"supervisor": "1901\n"}, ["body", "supervisor"]),
    ("transfer", {"mode": "sideways"}, ["body", "mode"]),
    ("transfer", {"target": "119"}, ["body", "target"]),
    ("transfer", {"target": "110", "extra": 1}, ["body", "extra"]),
    ("conference", {"with": 110}, ["body", "with"]),
    ("linkage", {}, ["body", "hotline"]),
    ("linkage", {"hotline": 119}, ["body", "hotline"]),
    ("transfer/complete", {"now": True}, ["body", "now"]),
])
async def test_a_bad_flow_body_is_refused_before_any_flow_runs(flow_api, tail, body, loc) -> None:
    status, answer = await flow_api.call("POST", f"/api/calls/2100.9/{tail}", "admin", json=body)
    assert (status, answer["error_id"]) == (400, "validation_failed"), answer
    assert answer["details"][0]["loc"] == loc and set(answer) == ENVELOPE
    assert flow_api.flows.asked == []
    status, answer = await flow_api.call("POST", "/api/calls/2100.9/spy", "admin",
                                         json={"supervisor": "1901", "seat": "1101"})
    assert status == 202 and flow_api.flows.asked == [("spy", ("2100.9", "1901", "listen", "1101"))]


async def test_an_unknown_hotline_keeps_its_id(flow_api) -> None:
    body = {"hotline": "fire"}
    status, answer = await flow_api.call("POST", "/api/calls/2100.9/linkage", "admin", json=body)
    assert (status, answer["error_id"]) == (400, "unknown_hotline") and flow_api.flows.asked == []


async def test_routing_errors_use_the_one_envelope(api) -> None:
    for body, error_id in (({"text": "", "at": "12345"}, "route.empty_text"),
                           ({"text": 5, "at": "12345"}, "route.invalid_text"),
                           ({"text": "路灯坏了", "at": "119"}, "route.invalid_at"),
                           ({"text": "路灯坏了", "at": "110", "more": 1}, "route.invalid_body")):
        status, answer = await api.call("POST", "/api/route", "operator", json=body)
        assert (status, answer["error_id"]) == (400, error_id), answer
        assert set(answer) == ENVELOPE, answer


async def test_json_answers_are_utf8_with_chinese_readable(api) -> None:
    async with api.client.post("/api/route", json={"text": "楼顶上站着一个人，看样子要往下跳", "at": "12345"},
                               headers=api.headers("operator")) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        raw = await resp.read()
    text = raw.decode("utf-8")
    assert "\\u" not in text and any("\u4e00" <= ch <= "\u9fff" for ch in text), text[:200]
    async with api.client.get("/api/openapi.json") as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    status, answer = await api.call("GET", "/api/calls/bad'id", "admin")
    assert status == 400 and answer["message"]


async def test_bad_queries_and_bodies_write_nothing_and_reads_still_work(api) -> None:
    await stored_call(api)
    for path in ("/api/calls?seat=1201%0A", "/api/calls?limit=1e3", "/api/work-orders?status=open",
                 "/api/work-orders/corrections?ticket=12345-20261202-000001%0A"):
        status, answer = await api.call("GET", path, "admin")
        assert (status, answer["error_id"]) == (400, "validation_failed"), (path, answer)
        assert answer["details"][0]["loc"][0] == "query"
    for body in ({"outcome": "guided", "note": "x" * 2001}, {"outcome": "three_way", "detail": "120"},
                 {"outcome": "guided", "by": "me"}):
        status, answer = await api.call("PUT", "/api/calls/2100.1/outcome", "admin", json=body)
        assert (status, answer["error_id"]) == (400, "validation_failed"), answer
    status, answer = await api.call("POST", "/api/harassment", "admin", json={"number": "abc"})
    assert (status, answer["error_id"]) == (400, "validation_failed")
    status, answer = await api.call("POST", "/api/work-orders/12345-1/confirm", "operator", json={})
    assert (status, answer["error_id"]) == (400, "work_order.invalid_ticket")
    status, call = await api.get_call("2100.1")
    assert status == 200 and call["outcome"] == "resolved_on_call" and call["outcome_source"] == "auto"
    assert [e["type"] for e in call["timeline"]].count("outcome") == 0

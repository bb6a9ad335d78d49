"""The work-order creator and the operators' work-order API, through POST /api/transcripts with real
Chinese caller sentences (from tests/routing_cases), the real routing engine, SQLite and PostgreSQL,
and Redis pub/sub."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete

from app import keys
from app.models import TranscriptSegmentRow, WorkOrderCorrectionRow, WorkOrderRow
from call_flows.flows import CallNotBridged
from hotline.contracts import Service
from hotline.redis_keys import EVENTS_CHANNEL, TRANSCRIPTS_CHANNEL, transcript_channel
from hotline.site import load_site
from routing.engine import Router

REPO = Path(__file__).resolve().parents[2]
T0 = 1_760_000_000.0
TICKET_RE = re.compile(r"^(12345|110)-\d{8}-\d{6,}$")
STREETLIGHT = "你好，我们这条街的路灯晚上全不亮，走夜路心里发毛"     # dev-002: A01, accept at 12345
ROOFTOP = "楼顶上站着一个人，看样子要往下跳"                          # dev-103: danger to life
KNIFE = "有人拿着刀在我家门口，说要杀了我"                            # dev-085: B1, danger to life


def seg(call: str, seq: int, text: str, *, speaker: str = "caller", kind: str = "final") -> dict[str, Any]:
    start = T0 + 20 + 3 * seq
    return {"call": call, "tap": f"{call}-{speaker}", "seq": seq, "speaker": speaker, "kind": kind,
            "start": start, "end": start + 2.5, "text": text, "confidence": 0.8, "seat": None}


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


async def prepare(api, router: Router):
    """Share one loaded routing engine; empty this feature's tables (PostgreSQL keeps one database)."""
    app = api.client.server.app
    app[keys.ROUTER]._router = router
    async with app[keys.DATABASE].write() as conn:
        for table in (TranscriptSegmentRow, WorkOrderRow, WorkOrderCorrectionRow):
            await conn.execute(delete(table))
    return api


@pytest.fixture
async def wapi(api, router):
    return await prepare(api, router)


async def arrive(api, call: str, service: str = "12345") -> None:
    status, _ = await api.post_events(api.event(call, "arrived", 0, service=service, caller="13800000001"))
    assert status == 200


async def say(api, segments: list[dict]) -> dict:
    status, body = await api.call("POST", "/api/transcripts", "service", json={"segments": segments})
    assert status == 200, body
    return body


async def work_order(api, call: str, role: str = "operator") -> dict:
    status, body = await api.call("GET", f"/api/calls/{call}/work-order", role)
    assert status == 200, body
    return body


async def timeline(api, call: str) -> list[dict]:
    return (await api.get_call(call))[1]["timeline"]


class Listener:
    """Everything published on some channels, read after the fact."""

    def __init__(self, redis_url: str, *channels: str) -> None:
        self.client = Redis.from_url(redis_url, decode_responses=True)
        self.pubsub = self.client.pubsub()
        self.channels = channels

    async def __aenter__(self) -> Listener:
        await self.pubsub.subscribe(*self.channels)
        for _ in self.channels:  # the confirmations: subscribed from here on
            assert (await self.pubsub.get_message(timeout=2))["type"] == "subscribe"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()

    async def drain(self, quiet_s: float = 0.5) -> list[tuple[str, dict]]:
        got = []
        while (msg := await self.pubsub.get_message(timeout=quiet_s)) is not None:
            if msg["type"] == "message":
                got.append((msg["channel"], json.loads(msg["data"])))
        return got


async def test_the_draft_appears_from_caller_finals_and_follows_them(wapi) -> None:
    await arrive(wapi, "w1")
    body = await say(wapi, [seg("w1", 0, STREETLIGHT)])
    assert [w["call"] for w in body["work_orders"]] == ["w1"] and body["work_orders"][0]["status"] == "draft"
    wo = await work_order(wapi, "w1")
    assert TICKET_RE.match(wo["ticket"]) and wo["ticket"].startswith("12345-")
    assert (wo["kind"], wo["service"], wo["status"]) == ("工单", "12345", "draft")
    assert wo["category"] == {"code": "A01", "name": "公共设施类"} and wo["action"] == "accept"
    assert wo["life_threat"] is False and wo["dispatch"] == [] and wo["alert"] is None
    assert wo["summary"] == "公共设施类：我们这条街的路灯晚上全不亮，走夜路心里发毛"
    assert wo["transcript"] == "/api/calls/w1/transcript" and wo["caller_segments"] == 1
    assert wo["rules_version"] == wapi.client.server.app[keys.ROUTER]._router.version

    # the operator's words are not the caller's: nothing changes
    body = await say(wapi, [seg("w1", 0, "好的，请问是哪条街，我给您记一下", speaker="operator_12345")])
    assert body["work_orders"] == [] and (await work_order(wapi, "w1")) == wo

    body = await say(wapi, [seg("w1", 1, "就在胜利路上，已经好几天了")])
    later = await work_order(wapi, "w1")
    assert later["ticket"] == wo["ticket"] and later["caller_segments"] == 2
    assert "胜利路" in later["address"] and later["updated_at"] >= wo["updated_at"]
    events = [e for e in await timeline(wapi, "w1") if e["type"] == "work_order"]
    assert [e["data"] for e in events] == [{"ticket": wo["ticket"], "status": "draft", "action": "accept",
                                            "category": "A01"}]


async def test_the_call_need_not_be_known_yet(wapi) -> None:
    await say(wapi, [seg("w2", 0, STREETLIGHT)])
    wo = await work_order(wapi, "w2")
    assert wo["service"] == "12345" and wo["kind"] == "工单"
    status, call = await wapi.get_call("w2")  # the work_order event made the call known
    assert status == 200 and [e["type"] for e in call["timeline"]] == ["work_order"]


async def test_alert_and_work_order_events_are_taken_like_any_other(wapi) -> None:
    status, body = await wapi.post_events({"events": [
        wapi.event("w0", "arrived", 0),
        wapi.event("w0", "alert", 5, source="flow", data={"reason": "life_threat", "text": "救命",
                                                          "flags": ["life_threat"]}),
        wapi.event("w0", "work_order", 6, source="api", data={"ticket": "12345-20251009-000001",
                                                              "status": "draft"}),
    ]})
    assert status == 200 and body["new"] == 3
    _, call = await wapi.get_call("w0")
    assert [e["type"] for e in call["timeline"]] == ["arrived", "alert", "work_order"]
    assert call["flags"] == ["life_threat"] and call["event_count"] == 3


async def test_at_110_it_is_a_police_order(wapi) -> None:
    await arrive(wapi, "w3", service="110")
    await say(wapi, [seg("w3", 0, KNIFE)])
    wo = await work_order(wapi, "w3")
    assert wo["kind"] == "警单" and wo["ticket"].startswith("110-") and wo["service"] == "110"
    assert wo["life_threat"] is True and wo["action"] in ("accept", "handle_then_transfer")
    assert [d["to"] for d in wo["dispatch"]] == ["110", "local_government", "department"]
    assert wo["alert"]["auto_handover"] == {"status": "off"}


async def test_a_life_threat_raises_exactly_one_alert(wapi, redis_url: str) -> None:
    await arrive(wapi, "w4")
    async with Listener(redis_url, transcript_channel("w4"), TRANSCRIPTS_CHANNEL) as heard:
        await say(wapi, [seg("w4", 0, "我家在临河区胜利路")])
        await say(wapi, [seg("w4", 1, ROOFTOP)])
        await say(wapi, [seg("w4", 2, "他还在上面站着，快点来人")])
        messages = await heard.drain()
    alerts = [e for e in await timeline(wapi, "w4") if e["type"] == "alert"]
    assert len(alerts) == 1
    wo = await work_order(wapi, "w4")
    data = alerts[0]["data"]
    assert data["reason"] == "life_threat" and "楼顶" in data["text"] and data["ticket"] == wo["ticket"]
    assert data["category"] == wo["alert"]["category"]["code"] and data["auto_handover"] == "off"
    assert (await wapi.get_call("w4"))[1]["flags"] == ["life_threat"]
    assert wo["life_threat"] is True and wo["action"] in ("transfer_110", "handover_110")
    assert wo["dispatch"][1]["name"] == "临河区人民政府" and wo["dispatch"][2]["name"]
    for channel in (transcript_channel("w4"), TRANSCRIPTS_CHANNEL):
        # drafted, then the alert ahead of the update that raised it, then one more update
        assert [m["type"] for ch, m in messages if ch == channel] == ["work_order", "alert", "work_order",
                                                                     "work_order"]
    alert = next(m for _, m in messages if m["type"] == "alert")
    assert alert["call"] == "w4" and alert["ticket"] == wo["ticket"] and "楼顶" in alert["text"]
    assert alert["auto_handover"] == {"status": "off"}


async def test_the_call_context_carries_the_work_order(wapi) -> None:
    await arrive(wapi, "w5")
    gap = seg("w5", 1, "recognizer_down", kind="gap", speaker="operator_12345")
    await say(wapi, [seg("w5", 0, ROOFTOP), gap])
    status, call = await wapi.get_call("w5", role="operator")
    wo = await work_order(wapi, "w5")
    assert status == 200
    assert call["context"]["routing"] is None
    shown = ("ticket", "kind", "status", "category", "action", "life_threat", "dispatch")
    assert call["context"]["work_order"] == {k: wo[k] for k in shown}
    assert call["context"]["transcript"] == {"link": "/api/calls/w5/transcript", "finals": 1, "gaps": 1}
    status, body = await wapi.call("GET", "/api/calls/nobody.2/work-order", "operator")
    assert (status, body["error_id"]) == (404, "work_order.not_found")


async def test_handover_events_are_published_with_the_context(wapi, redis_url: str) -> None:
    await arrive(wapi, "w6")
    await say(wapi, [seg("w6", 0, ROOFTOP)])
    ticket = (await work_order(wapi, "w6"))["ticket"]
    async with Listener(redis_url, EVENTS_CHANNEL) as heard:
        await wapi.post_events({"events": [
            wapi.event("w6", "ringing", 30, seat="1101"),
            wapi.event("w6", "transferred", 40, data={"kind": "blind", "target_service": "110"}),
            wapi.event("w6", "conference_joined", 41, data={"party": "110", "platform": "110"}),
        ]})
        got = {m["type"]: m for _, m in await heard.drain()}
    assert "context" not in got["ringing"]
    for kind in ("transferred", "conference_joined"):
        ctx = got[kind]["context"]
        assert ctx["work_order"]["ticket"] == ticket and ctx["work_order"]["life_threat"] is True
        assert ctx["transcript"] == {"link": "/api/calls/w6/transcript", "finals": 1, "gaps": 0}
        assert "routing" in ctx
    stored = {e["type"]: e for e in await timeline(wapi, "w6")}
    assert "context" not in stored["transferred"] and stored["conference_joined"]["data"]["party"] == "110"


async def test_confirm_with_corrections_keeps_them_and_refuses_a_second_time(wapi) -> None:
    await wapi.post_events({"events": wapi.answered_call("w7")[:-1]})
    await say(wapi, [seg("w7", 0, STREETLIGHT)])
    draft = await work_order(wapi, "w7")
    fixes = {"category": "A02", "summary": "胜利路路灯不亮", "address": "胜利路88号", "life_threat": False}
    status, body = await wapi.call("POST", f"/api/work-orders/{draft['ticket']}/confirm", "operator",
                                   json={"corrections": fixes})
    assert status == 200, body
    wo = body["work_order"]
    assert (wo["status"], wo["confirmed_by"]) == ("accepted", "test-operator") and wo["confirmed_at"]
    assert wo["category"] == {"code": "A02", "name": "市容环境类"}
    assert (wo["summary"], wo["address"], wo["life_threat"]) == ("胜利路路灯不亮", "胜利路88号", False)
    got = {c["field"]: (c["engine_value"], c["operator_value"], c["by"]) for c in body["corrections"]}
    assert got == {"category": ("A01", "A02", "test-operator"),
                   "summary": (draft["summary"], "胜利路路灯不亮", "test-operator"),
                   "address": (draft["address"], "胜利路88号", "test-operator")}  # life_threat: unchanged

    status, again = await wapi.call("POST", f"/api/work-orders/{draft['ticket']}/confirm", "supervisor")
    assert (status, again["error_id"]) == (409, "work_order.already_confirmed")
    assert again["details"]["confirmed_by"] == "test-operator"

    status, listed = await wapi.call("GET", "/api/work-orders/corrections", "supervisor")
    assert status == 200
    assert sorted(c["field"] for c in listed["corrections"]) == ["address", "category", "summary"]
    status, listed = await wapi.call("GET", "/api/work-orders/corrections?field=category", "admin")
    assert [c["operator_value"] for c in listed["corrections"]] == ["A02"]
    assert (await wapi.call("GET", "/api/work-orders/corrections", "operator"))[0] == 403

    # later words do not overwrite the operator's version; the engine's answer is kept beside it
    await say(wapi, [seg("w7", 1, ROOFTOP)])
    after = await work_order(wapi, "w7")
    assert after["status"] == "accepted" and after["category"]["code"] == "A02"
    assert after["summary"] == "胜利路路灯不亮" and after["caller_segments"] == 2
    assert after["suggestion"]["life_threat"] is True and after["suggestion"]["caller_segments"] == 2
    assert after["suggestion"]["category"]["code"] != "A02"

    events = [e["data"] for e in await timeline(wapi, "w7") if e["type"] == "work_order"]
    assert [e["status"] for e in events] == ["draft", "accepted"]
    await wapi.post_events(wapi.answered_call("w7")[-1])  # hangup: the call ended with a ticket
    _, call = await wapi.get_call("w7")
    assert (call["outcome"], call["outcome_detail"], call["outcome_source"]) == (
        "ticket_created", draft["ticket"], "auto")


@pytest.mark.parametrize(("body", "error_id", "field"), [
    ({"corrections": {"priority": "high"}}, "work_order.invalid_correction", "priority"),
    ({"corrections": {"category": "Z9"}}, "work_order.invalid_correction", "category"),
    ({"corrections": {"action": "transfer_12345"}}, "work_order.invalid_correction", "action"),
    ({"corrections": {"action": ["accept"]}}, "work_order.invalid_correction", "action"),
    ({"corrections": {"life_threat": "yes"}}, "work_order.invalid_correction", "life_threat"),
    ({"corrections": {"linkage": ["fire"]}}, "work_order.invalid_correction", "linkage"),
    ({"corrections": {"linkage": [["120"]]}}, "work_order.invalid_correction", "linkage"),
    ({"corrections": {"summary": "  "}}, "work_order.invalid_correction", "summary"),
    ({"corrections": {"address": "路" * 257}}, "work_order.invalid_correction", "address"),
    ({"corrections": []}, "work_order.invalid_correction", "corrections"),
    ({"fix": {}}, "validation_failed", None),
])
async def test_bad_corrections_are_refused_and_change_nothing(wapi, body, error_id, field) -> None:
    await say(wapi, [seg("w8", 0, STREETLIGHT)])
    ticket = (await work_order(wapi, "w8"))["ticket"]
    status, answer = await wapi.call("POST", f"/api/work-orders/{ticket}/confirm", "operator", json=body)
    assert (status, answer["error_id"]) == (400, error_id)
    if field:
        assert any(field in p["loc"] for p in answer["details"])  # ["body", "corrections", field, ...]
    assert (await work_order(wapi, "w8"))["status"] == "draft"


async def test_who_may_confirm_and_unknown_tickets(wapi) -> None:
    await say(wapi, [seg("w9", 0, STREETLIGHT)])
    ticket = (await work_order(wapi, "w9"))["ticket"]
    for role in ("service", "admin"):
        assert (await wapi.call("POST", f"/api/work-orders/{ticket}/confirm", role, json={}))[0] == 403
    status, body = await wapi.call("POST", "/api/work-orders/12345-20261129-999999/confirm", "operator")
    assert (status, body["error_id"]) == (404, "work_order.not_found")
    status, body = await wapi.call("POST", f"/api/work-orders/{ticket}/confirm", "supervisor")  # no body
    assert status == 200 and body["corrections"] == []
    assert body["work_order"]["confirmed_by"] == "test-supervisor"


async def test_listing_work_orders(wapi) -> None:
    await arrive(wapi, "w10")
    await arrive(wapi, "w11", service="110")
    await say(wapi, [seg("w10", 0, STREETLIGHT), seg("w11", 0, KNIFE)])
    ticket = (await work_order(wapi, "w10"))["ticket"]
    await wapi.call("POST", f"/api/work-orders/{ticket}/confirm", "operator")

    async def listed(query: str, role: str = "supervisor") -> list[str]:
        status, body = await wapi.call("GET", f"/api/work-orders{query}", role)
        assert status == 200, body
        return [w["call"] for w in body["work_orders"]]

    assert sorted(await listed("")) == ["w10", "w11"]
    assert await listed("?status=accepted") == ["w10"]
    assert await listed("?service=110&status=draft", "admin") == ["w11"]
    assert len(await listed("?limit=1")) == 1
    for bad in ("?status=open", "?service=119", "?limit=0", "?sort=new"):
        status, body = await wapi.call("GET", f"/api/work-orders{bad}", "supervisor")
        assert (status, body["error_id"]) == (400, "validation_failed"), bad
    assert (await wapi.call("GET", "/api/work-orders", "operator"))[0] == 403


async def test_a_failed_update_answers_503_and_the_replay_finishes_it(wapi, router) -> None:
    app = wapi.client.server.app

    class Broken:
        version = "broken"

        def route(self, text: str, at: str) -> None:
            raise RuntimeError("rules unreadable")

    app[keys.ROUTER]._router = Broken()
    batch = [seg("w12", 0, STREETLIGHT)]
    status, body = await wapi.call("POST", "/api/transcripts", "service", json={"segments": batch})
    assert (status, body["error_id"]) == (503, "work_order.not_updated")
    assert (body["details"]["stored"], body["details"]["call"]) == (1, "w12")
    app[keys.ROUTER]._router = router
    body = await say(wapi, batch)
    assert (body["stored"], body["duplicates"]) == (0, 1) and body["work_orders"][0]["call"] == "w12"


# --- the automatic handover to 110 (site option) -------------------------------------------------------
class StubConferenceFlows:
    """Stands in for call_flows.flows.ConferenceFlows.three_way (Asterisk is not in a unit test)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, Service | None]] = []
        self.error = error

    async def three_way(self, linkedid: str, with_: Service | None = None) -> dict:
        self.calls.append((linkedid, with_))
        if self.error:
            raise self.error
        return {"linkedid": linkedid, "bridge": linkedid, "invited": "110"}


async def alert_of(api, call: str, settled: bool = True) -> dict:
    for _ in range(100):
        alert = (await work_order(api, call))["alert"]
        if not settled or alert["auto_handover"]["status"] not in ("starting",):
            return alert
        await asyncio.sleep(0.05)
    raise AssertionError("the automatic handover never finished")


NOT_BRIDGED = CallNotBridged("the caller is not connected to a seat")


@pytest.mark.parametrize(("enabled", "service", "stub", "status", "called"), [
    (True, "12345", True, "started", True),
    (True, "12345", NOT_BRIDGED, "failed", True),
    (False, "12345", True, "off", False),
    (True, "110", True, "not_at_12345", False),
    (True, "12345", None, "flows_unavailable", False),
], ids=["started", "flow-error", "off", "at-110", "no-flows"])
async def test_auto_handover_to_110(app_client, api_secrets, api_class, redis_url, router, tmp_path,
                                    enabled, service, stub, status, called) -> None:
    flows = None if stub is None else StubConferenceFlows(stub if isinstance(stub, Exception) else None)
    site = dataclasses.replace(load_site(REPO / "site.toml"), auto_handover_110=enabled)
    client = await app_client(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}", redis_url, site=site,
                              conference_flows=flows)
    api = await prepare(api_class(client, api_secrets), router)
    await arrive(api, "h1", service=service)
    body = await say(api, [seg("h1", 0, ROOFTOP if service == "12345" else KNIFE)])
    assert body["work_orders"][0]["call"] == "h1"  # the POST never waits for, or fails with, the flow
    alert = await alert_of(api, "h1")
    assert alert["auto_handover"]["status"] == status
    assert (flows.calls if flows else []) == ([("h1", Service.POLICE_110)] if called else [])
    if status == "failed":
        assert alert["auto_handover"]["error_id"] == "call_not_bridged"
    alerts = [e for e in await timeline(api, "h1") if e["type"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["data"]["auto_handover"] == ("starting" if called else status)
    await say(api, [seg("h1", 1, "他还在上面")])
    assert (flows.calls if flows else []) == ([("h1", Service.POLICE_110)] if called else [])  # once

"""The closed loop through the API on SQLite and PostgreSQL, with Redis: accept, dispatch to 110, a
district government and a department, each handler's steps, extensions, returns and re-dispatch,
deadlines and 督办 from the sweep, callback and close or reopen, repeats and merging, and what each
role may see and do. One installation holding both platforms: its 12345 ⇄ 110 exchange runs
through its own signed receiver (the same path two installations use; see
tests/integration/test_exchange_two_installations.py)."""

from __future__ import annotations

import asyncio
import secrets as _secrets
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from app import keys
from app.factory import create_app
from app.models import InboxRow, OutboxRow, WorkOrderHistoryRow
from hotline.redis_keys import WORK_ORDERS_CHANNEL
from hotline.secrets import Secrets
from hotline.settings import Settings
from hotline.site import load_site
from routing.engine import Router
from tests.unit.test_work_orders import KNIFE, STREETLIGHT, Listener, seg

REPO = Path(__file__).resolve().parents[2]
T0 = 1_760_000_000.0
ROLES = ("service", "operator", "supervisor", "admin")
DEPARTMENTS = ("housing", "urban", "linhe")


def make_secrets() -> Secrets:
    tokens = {f"tok-{r}-{_secrets.token_hex(6)}": {"name": f"test-{r}", "role": r} for r in ROLES}
    tokens |= {
        f"tok-dep-{d}-{_secrets.token_hex(6)}": {"name": f"{d}-clerk", "role": "department", "handler": d}
        for d in DEPARTMENTS
    }
    return Secrets(ami_secret="x", sip_passwords={}, api_tokens=tokens, exchange_keys={"local": "k" * 43})


class LoopApi:
    def __init__(self, client: TestClient, secrets: Secrets) -> None:
        self.client = client
        self.secrets = secrets
        self.app = client.server.app

    def token(self, who: str) -> str:
        if who in DEPARTMENTS:
            return self.secrets.token_for("department", who)
        return self.secrets.token_for(who)

    async def call(self, method: str, path: str, who: str = "operator", **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token(who)}"}
        async with self.client.request(method, path, headers=headers, **kw) as resp:
            return resp.status, await resp.json()

    async def ok(self, method: str, path: str, who: str = "operator", **kw: Any) -> Any:
        status, body = await self.call(method, path, who, **kw)
        assert status == 200, body
        return body

    async def order(self, ticket: str, who: str = "supervisor") -> dict[str, Any]:
        return await self.ok("GET", f"/api/work-orders/{ticket}", who)

    async def step(self, ticket: str, part: int, step: str, who: str, **body: Any) -> tuple[int, Any]:
        return await self.call("POST", f"/api/work-orders/{ticket}/parts/{part}/{step}", who, json=body)

    async def deliver(self) -> None:
        """Let the exchange sender deliver what is due (it also runs on its own; this waits for it)."""
        for _ in range(50):
            await self.app[keys.SENDER].run_once()
            async with self.app[keys.DATABASE].read() as conn:
                pending = (
                    await conn.execute(
                        select(func.count()).select_from(OutboxRow).where(OutboxRow.delivered_at.is_(None))
                    )
                ).scalar_one()
            if pending == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("outbox not drained")

    async def new_order(
        self,
        call: str,
        text: str,
        *,
        service: str = "12345",
        caller: str = "13800000001",
        confirm: bool = True,
    ) -> dict[str, Any]:
        ev = {
            "event_id": f"{call}-arrived",
            "linkedid": call,
            "type": "arrived",
            "at": T0,
            "source": "agi",
            "service": service,
            "caller": caller,
            "seat": None,
            "data": {},
        }
        await self.ok("POST", "/api/events", "service", json={"events": [ev]})
        await self.ok("POST", "/api/transcripts", "service", json={"segments": [seg(call, 0, text)]})
        wo = await self.ok("GET", f"/api/calls/{call}/work-order", "operator")
        if confirm:
            wo = (await self.ok("POST", f"/api/work-orders/{wo['ticket']}/confirm", "operator"))["work_order"]
        return wo


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


@pytest.fixture
async def lapi(db_url: str, redis_url: str, tmp_path: Path, router: Router) -> Any:
    secrets = make_secrets()
    settings = Settings(state_dir=tmp_path, database_url=db_url, redis_url=redis_url)
    client = TestClient(TestServer(create_app(settings, secrets, site=load_site(REPO / "site.toml"))))
    await client.start_server()
    client.server.app[keys.ROUTER]._router = router
    try:
        yield LoopApi(client, secrets)
    finally:
        await client.close()


async def test_a_12345_order_goes_to_110_a_district_and_a_department_and_comes_back(
    lapi: LoopApi, redis_url: str
) -> None:
    wo = await lapi.new_order("L1", STREETLIGHT + "，在临河区胜利路")
    assert (wo["status"], wo["request_kind"], wo["caller"]) == ("accepted", "help", "13800000001")
    t = wo["ticket"]
    async with Listener(redis_url, WORK_ORDERS_CHANNEL) as listener:
        view = await lapi.ok(
            "POST",
            f"/api/work-orders/{t}/dispatch",
            "operator",
            json={"handlers": ["110", "linhe", "housing"], "note": "路灯与治安一并处理"},
        )
        published = await listener.drain()
    assert view["work_order"]["status"] == "dispatched"
    parts = {p["handler"]["id"]: p for p in view["parts"]}
    assert [p["no"] for p in view["parts"]] == [1, 2, 3] and {p["state"] for p in parts.values()} == {
        "dispatched"
    }
    assert (
        parts["110"]["handler"]["kind"] == "platform" and parts["housing"]["handler"]["kind"] == "department"
    )
    # help: 10 working days; signing: 2 hours
    assert parts["housing"]["sign_due_at"] - parts["housing"]["dispatched_at"] == pytest.approx(7200)
    assert parts["housing"]["due_at"] - parts["housing"]["dispatched_at"] >= 10 * 86400
    steps = [m for _, m in published if m["type"] == "work_order_step" and m["ticket"] == t]
    assert [(m["part"], m["step"]) for m in steps] == [
        (1, "dispatch"),
        (2, "dispatch"),
        (3, "dispatch"),
        (None, "dispatch"),
    ]

    # the 110 part travels through the exchange and becomes a 警单 linked both ways
    await lapi.deliver()
    mine = await lapi.order(t)
    link = next(p for p in mine["parts"] if p["no"] == 1)["peer"]
    assert link["platform"] == "110" and link["ticket"].startswith("110-") and link["part"] == 1
    police = await lapi.order(link["ticket"])
    assert (police["work_order"]["kind"], police["work_order"]["origin"]) == ("警单", "12345")
    assert police["work_order"]["peer_ticket"] == t and police["work_order"]["words"].startswith("你好")
    assert police["parts"][0]["peer"] == {"platform": "12345", "ticket": t, "part": 1}

    # 110 signs and replies on its side; 12345 sees the feedback on its part
    assert (await lapi.step(link["ticket"], 1, "sign", "operator"))[0] == 200
    status, body = await lapi.step(link["ticket"], 1, "reply", "operator", result="已出警，现场无治安问题")
    assert status == 200 and body["work_order"]["status"] == "replied"
    await lapi.deliver()
    part110 = next(p for p in (await lapi.order(t))["parts"] if p["no"] == 1)
    assert (part110["state"], part110["result"]) == ("replied", "已出警，现场无治安问题")

    # the district and the department answer on their own parts
    for who, no in (("linhe", 2), ("housing", 3)):
        assert (await lapi.step(t, no, "sign", who))[0] == 200
        assert (await lapi.step(t, no, "progress", who, note="已安排人员"))[0] == 200
    assert (await lapi.step(t, 2, "reply", "linhe", result="已协调街道"))[1]["work_order"][
        "status"
    ] == "dispatched"
    last = await lapi.step(t, 3, "reply", "housing", result="路灯已修复")
    assert last[1]["work_order"]["status"] == "replied"  # every part answered

    # follow-up: callback, not satisfied -> reopened (重办), the parts open again
    await lapi.ok("POST", f"/api/work-orders/{t}/callback", "operator")
    again = await lapi.ok(
        "POST", f"/api/work-orders/{t}/close", "operator", json={"satisfied": False, "note": "路灯又坏了"}
    )
    assert again["work_order"]["status"] == "reopened"
    assert {p["state"] for p in again["parts"]} == {"reopened"}
    await lapi.deliver()  # 110 is told its part was reopened
    assert (await lapi.order(link["ticket"]))["parts"][0]["state"] == "reopened"
    for who, no in (("linhe", 2), ("housing", 3)):
        assert (await lapi.step(t, no, "reply", who, result="已再次处理"))[0] == 200
    await lapi.step(link["ticket"], 1, "reply", "operator", result="复查无异常")
    await lapi.deliver()
    assert (await lapi.order(t))["work_order"]["status"] == "replied"
    await lapi.ok("POST", f"/api/work-orders/{t}/callback", "operator")
    closed = await lapi.ok("POST", f"/api/work-orders/{t}/close", "operator", json={"satisfied": True})
    assert closed["work_order"]["status"] == "closed" and closed["work_order"]["closed_at"]

    history = [(h["part"], h["step"], h["to"]) for h in closed["history"]]
    assert history[0] == (None, "accept", "accepted") and history[-1] == (None, "close", "closed")
    assert (1, "sign", "signed") in history and (None, "all_replied", "replied") in history


async def test_a_department_signs_asks_for_an_extension_and_returns_another_order(lapi: LoopApi) -> None:
    a = (await lapi.new_order("L2", STREETLIGHT))["ticket"]
    await lapi.ok("POST", f"/api/work-orders/{a}/dispatch", json={"handlers": ["housing"]})
    assert (await lapi.step(a, 1, "sign", "housing"))[0] == 200
    status, body = await lapi.step(a, 1, "extension", "housing", working_days=11, reason="材料未齐")
    assert (status, body["error_id"]) == (400, "work_order.extension_too_long")
    status, body = await lapi.step(a, 1, "extension", "housing", working_days=5, reason="需协调供电")
    assert status == 200 and body["parts"][0]["state"] == "extension_requested"
    due_before = body["parts"][0]["due_at"]
    # an operator may not approve it; a supervisor may
    status, body = await lapi.call(
        "POST", f"/api/work-orders/{a}/parts/1/extension/approve", "operator", json={}
    )
    assert (status, body["error_id"]) == (403, "forbidden")
    body = await lapi.ok("POST", f"/api/work-orders/{a}/parts/1/extension/approve", "supervisor", json={})
    part = body["parts"][0]
    assert part["state"] == "extended" and part["due_at"] >= due_before + 5 * 86400
    assert part["extension"]["approved_by"] == "test-supervisor"
    assert (await lapi.step(a, 1, "reply", "housing", result="已修复"))[1]["work_order"][
        "status"
    ] == "replied"

    b = (await lapi.new_order("L3", STREETLIGHT, caller="13900000002"))["ticket"]
    await lapi.ok("POST", f"/api/work-orders/{b}/dispatch", json={"handlers": ["urban"]})
    status, body = await lapi.step(
        b, 1, "return", "urban", reason="非本单位职责", basis="《城市照明管理规定》第二条"
    )
    assert status == 200 and body["parts"][0]["state"] == "returned"
    assert body["parts"][0]["returned"]["basis"] == "《城市照明管理规定》第二条"
    # 改派: the dispatcher gives it to the right department
    again = await lapi.ok(
        "POST", f"/api/work-orders/{b}/dispatch", json={"handlers": ["housing"], "note": "改派"}
    )
    assert [(p["handler"]["id"], p["state"]) for p in again["parts"]] == [
        ("urban", "returned"),
        ("housing", "dispatched"),
    ]


async def test_deadlines_warn_mark_overdue_and_urge_once_each(lapi: LoopApi, redis_url: str) -> None:
    t = (await lapi.new_order("L4", STREETLIGHT))["ticket"]
    part = (await lapi.ok("POST", f"/api/work-orders/{t}/dispatch", json={"handlers": ["housing"]}))["parts"][
        0
    ]
    sweep = lapi.app[keys.SWEEP]
    assert await sweep.run_once(now=part["dispatched_at"] + 60) == []
    fired = await sweep.run_once(now=part["sign_due_at"] + 1)
    assert [a["kind"] for a in fired] == ["sign_overdue"]
    assert (await lapi.step(t, 1, "sign", "housing"))[0] == 200
    assert [a["kind"] for a in await sweep.run_once(now=part["warn_at"] + 1)] == ["warning"]
    async with Listener(redis_url, WORK_ORDERS_CHANNEL) as listener:
        late = await sweep.run_once(now=part["due_at"] + 25 * 3600)
        published = [m for _, m in await listener.drain() if m["type"] == "deadline_alert"]
    assert sorted((a["kind"], a["level"]) for a in late) == [("overdue", 0), ("urge", 1), ("urge", 2)]
    assert {a.get("to") for a in late if a["kind"] == "urge"} == {"handler", "handler's supervisor"}
    assert len(published) == 3
    # a second sweep (another instance, or after a restart) fires nothing again
    assert await sweep.run_once(now=part["due_at"] + 25 * 3600) == []
    assert [(a["kind"], a["level"]) for a in await sweep.run_once(now=part["due_at"] + 73 * 3600)] == [
        ("urge", 3)
    ]
    view = await lapi.order(t)
    assert view["parts"][0]["overdue_at"] is not None and len(view["alerts"]) == 6
    # replied late (the app's clock a day past the deadline): the record shows it
    lapi.app[keys.LOOP].clock = lambda: part["due_at"] + 86400
    body = (await lapi.step(t, 1, "reply", "housing", result="迟复"))[1]
    assert body["parts"][0]["replied_at"] > body["parts"][0]["due_at"]


async def test_roles_a_department_sees_only_its_own_orders_masked(lapi: LoopApi) -> None:
    t = (await lapi.new_order("L5", STREETLIGHT, caller="13812345678"))["ticket"]
    await lapi.ok("POST", f"/api/work-orders/{t}/dispatch", json={"handlers": ["housing", "linhe"]})
    seen = await lapi.order(t, "housing")
    assert seen["work_order"]["caller"] == "138****5678" and "transcript" not in seen["work_order"]
    assert [p["handler"]["id"] for p in seen["parts"]] == ["housing"]
    # a caller who asked for confidentiality: the department sees the matter, nothing of the caller
    c = await lapi.new_order("L5c", STREETLIGHT, caller="13812345679", confirm=False)
    body = await lapi.ok("POST", f"/api/work-orders/{c['ticket']}/confirm", "operator",
                         json={"corrections": {"confidential": True}})
    assert body["corrections"][0]["field"] == "confidential"
    await lapi.ok("POST", f"/api/work-orders/{c['ticket']}/dispatch", json={"handlers": ["housing"]})
    hidden = (await lapi.order(c["ticket"], "housing"))["work_order"]
    assert (hidden["caller"], hidden["contact"], hidden["words"]) == ("保密", "保密", "保密")
    assert hidden["summary"] and (await lapi.order(c["ticket"], "supervisor"))["work_order"]["caller"]
    # another department: as if the order did not exist, and it cannot act on it
    status, body = await lapi.call("GET", f"/api/work-orders/{t}", "urban")
    assert (status, body["error_id"]) == (404, "work_order.not_found")
    assert (await lapi.step(t, 1, "sign", "urban"))[0] == 404
    # nor on the other department's part of an order it shares
    assert (await lapi.step(t, 2, "sign", "housing"))[0] == 404
    mine = await lapi.ok("GET", "/api/handler/orders", "housing")
    assert [o["work_order"]["ticket"] for o in mine["orders"]] == [c["ticket"], t]
    assert (await lapi.ok("GET", "/api/handler/orders", "urban"))["orders"] == []
    # operators do not take a department's steps
    assert (await lapi.step(t, 1, "sign", "operator"))[0] == 403
    # a department cannot dispatch, nor read the exchange log
    assert (
        await lapi.call("POST", f"/api/work-orders/{t}/dispatch", "housing", json={"handlers": ["urban"]})
    )[0] == 403
    assert (await lapi.call("GET", "/api/exchange/log", "housing"))[0] == 403


async def test_an_invalid_step_is_refused_with_an_id_and_writes_nothing(lapi: LoopApi) -> None:
    wo = await lapi.new_order("L6", KNIFE, confirm=False)
    t = wo["ticket"]
    status, body = await lapi.call("POST", f"/api/work-orders/{t}/dispatch", json={"handlers": ["housing"]})
    assert (status, body["error_id"]) == (409, "work_order.invalid_transition")  # a draft: accept first
    await lapi.ok("POST", f"/api/work-orders/{t}/confirm", "operator")
    assert (await lapi.order(t))["suggested_handlers"] == ["110"]  # the routing's dispatch suggestion
    for handlers, error in (
        (["nobody"], "work_order.unknown_handler"),
        (["12345"], "work_order.unknown_handler"),
        (["housing", "housing"], "validation_failed"),
    ):
        status, body = await lapi.call("POST", f"/api/work-orders/{t}/dispatch", json={"handlers": handlers})
        assert (status, body["error_id"]) == (400, error), body
    await lapi.ok("POST", f"/api/work-orders/{t}/dispatch", json={"handlers": ["housing"]})
    async with lapi.app[keys.DATABASE].read() as conn:
        before = (await conn.execute(select(func.count()).select_from(WorkOrderHistoryRow))).scalar_one()
    for step, body_ in (("reply", {"result": "x"}), ("extension/approve", {}), ("progress", {})):
        status, body = await lapi.step(
            t, 1, step, "housing" if step != "extension/approve" else "supervisor", **body_
        )
        assert (status, body["error_id"]) == (409, "work_order.invalid_transition"), (step, body)
        assert body["details"]["state"] == "dispatched"
    assert (await lapi.step(t, 9, "sign", "housing"))[0] == 404
    status, body = await lapi.call("POST", f"/api/work-orders/{t}/close", json={"satisfied": True})
    assert (status, body["error_id"]) == (409, "work_order.invalid_transition")
    async with lapi.app[keys.DATABASE].read() as conn:
        assert (
            await conn.execute(select(func.count()).select_from(WorkOrderHistoryRow))
        ).scalar_one() == before


async def test_a_repeat_is_proposed_and_merged_by_the_operator(lapi: LoopApi) -> None:
    first = (await lapi.new_order("L7", STREETLIGHT, caller="13700000007"))["ticket"]
    second = (await lapi.new_order("L8", STREETLIGHT + "，还是没人修", caller="13700000007"))["ticket"]
    other = (await lapi.new_order("L9", "新华街88号门口的路灯晚上全不亮", caller="13700000009"))["ticket"]
    found = await lapi.ok("GET", f"/api/work-orders/{second}/repeats")
    assert [c["ticket"] for c in found["candidates"]] == [first] and found["candidates"][0]["same_caller"]
    assert other not in [c["ticket"] for c in found["candidates"]]
    assert (await lapi.order(second, "operator"))["repeats"] == [first]  # proposed with the order itself
    merged = await lapi.ok("POST", f"/api/work-orders/{second}/merge", json={"into": first})
    assert (merged["work_order"]["status"], merged["work_order"]["merged_into"]) == ("merged", first)
    target = await lapi.order(first)
    assert ("merged_in", {"from": second}) in [(h["step"], h["data"]) for h in target["history"]]


async def test_resolved_on_call_closes_without_dispatch(lapi: LoopApi) -> None:
    t = (await lapi.new_order("L10", "请问一下社保卡补办需要什么材料", confirm=False))["ticket"]
    await lapi.ok(
        "POST", f"/api/work-orders/{t}/confirm", "operator"
    )  # accepted, then answered? no: draft only
    status, body = await lapi.call("POST", f"/api/work-orders/{t}/resolve-on-call", json={})
    assert (status, body["error_id"]) == (409, "work_order.invalid_transition")
    u = (await lapi.new_order("L11", "请问一下社保卡补办需要什么材料", confirm=False))["ticket"]
    done = await lapi.ok("POST", f"/api/work-orders/{u}/resolve-on-call", json={"note": "已告知所需材料"})
    assert done["work_order"]["status"] == "resolved_on_call" and done["parts"] == []
    assert (await lapi.ok("POST", f"/api/work-orders/{u}/callback"))["work_order"]["status"] == "callback"


async def test_the_exchange_refuses_unsigned_and_tampered_messages(lapi: LoopApi) -> None:
    from hotline.exchange import PATH, signed_headers

    await lapi.app[keys.SENDER].stop()  # this test plays the sender itself
    t = (await lapi.new_order("L12", STREETLIGHT))["ticket"]
    await lapi.ok("POST", f"/api/work-orders/{t}/dispatch", json={"handlers": ["110"]})
    async with lapi.app[keys.DATABASE].read() as conn:
        body = (await conn.execute(select(OutboxRow.body))).scalar_one().encode()
    async with lapi.client.post(PATH, data=body) as resp:
        assert (resp.status, (await resp.json())["error_id"]) == (401, "exchange.unsigned")
    headers = signed_headers("wrong-key", "12345", body, time.time())
    async with lapi.client.post(PATH, data=body, headers=headers) as resp:
        assert (resp.status, (await resp.json())["error_id"]) == (401, "exchange.bad_signature")
    headers = signed_headers("k" * 43, "12345", body, time.time() - 3600)
    async with lapi.client.post(PATH, data=body, headers=headers) as resp:
        assert (resp.status, (await resp.json())["error_id"]) == (401, "exchange.stale_timestamp")
    good = signed_headers("k" * 43, "12345", body, time.time())
    async with lapi.client.post(PATH, data=body, headers=good) as resp:
        first = await resp.json()
        assert resp.status == 200 and first["duplicate"] is False
    async with lapi.client.post(PATH, data=body, headers=good) as resp:  # the very same request again
        assert (resp.status, (await resp.json())["error_id"]) == (409, "exchange.replayed")
    again = signed_headers("k" * 43, "12345", body, time.time())  # a retry: fresh nonce
    async with lapi.client.post(PATH, data=body, headers=again) as resp:
        second = await resp.json()
        assert resp.status == 200 and second["duplicate"] is True and second["ticket"] == first["ticket"]
    await lapi.deliver()  # the sender's own delivery of the same message: applied once, still one 警单
    async with lapi.app[keys.DATABASE].read() as conn:
        outcomes = [r[0] for r in await conn.execute(select(InboxRow.outcome).order_by(InboxRow.id))]
    assert outcomes.count("applied") == 1 and outcomes.count("refused") == 4
    async with lapi.app[keys.DATABASE].read() as conn:
        kept = {r.error_id: r.body for r in await conn.execute(
            select(InboxRow.error_id, InboxRow.body).where(InboxRow.outcome == "refused"))}
    # a stranger's bytes are not stored; a signed message's are
    strangers = ("exchange.unsigned", "exchange.bad_signature", "exchange.stale_timestamp")
    assert {kept[e] for e in strangers} == {""}
    assert kept["exchange.replayed"].startswith("{")
    log = await lapi.ok("GET", "/api/exchange/log?direction=in", "admin")
    assert len(log["messages"]) == len(outcomes)


async def test_a_call_handed_to_110_under_annex_part_3_also_goes_to_the_district_and_department(
        lapi: LoopApi) -> None:
    from hotline.platforms import Service

    wo = await lapi.new_order("L13", "我朋友住在临河区，刚才打电话说他不想活了，一直在哭", confirm=False)
    assert (wo["category"]["code"], wo["action"]) == ("C1", "handover_110"), wo
    call = {"service": "12345", "caller": "13800000001", "outcome": "transferred_110", "outcome_detail": None}
    handed = await lapi.app[keys.HANDOVER].hand_over("L13", call, Service.POLICE_110)
    assert handed is not None
    view = await lapi.order(wo["ticket"])
    assert view["work_order"]["status"] == "dispatched" and view["history"][0]["who"] == "system"
    assert [p["handler"]["id"] for p in view["parts"]] == ["110", "linhe", "health"]
    assert view["parts"][0]["due_at"] - view["parts"][0]["dispatched_at"] == pytest.approx(7200)  # emergency
    # the same call's later events hand nothing over twice
    assert await lapi.app[keys.HANDOVER].hand_over("L13", call, Service.POLICE_110) is None
    assert len((await lapi.order(wo["ticket"]))["parts"]) == 3

"""Two installations exchange orders over HTTP (工单 ⇄ 警单): a 12345 one (the whole stack: Asterisk 22,
FastAGI, the app on SQLite, in this process) and a 110 one (`hotline api` in a process of its own, on
PostgreSQL), each with its own database and secrets, sharing only the exchange key.

- a 12345 call is moved to 110 with the one-touch key on the real phones: the 警单 appears at 110,
  linked both ways; 110 signs and replies and the 12345 side shows the feedback;
- annex part 4: 110 handles a matter first, then passes it to 12345, and hears back;
- faults: the 110 installation is down for a while (the order waits in the outbox and arrives once,
  when it is back); it restarts between writing an order and sending it; forged, expired, replayed,
  unknown and out-of-order messages are refused with an error id and change nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets as _secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from e2e_support import new_caller

from agents.sipp import Seat, place_call
from hotline.contracts import Service
from hotline.exchange import PATH, Message, new_message_id, signed_headers
from hotline.loop_site import ExchangeTable, PeerTable
from hotline.private import private_dir, write_private
from hotline.settings import Settings
from operations.ports import free_port
from operations.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REPO = Path(__file__).resolve().parents[2]
ROLES = ("service", "operator", "supervisor", "admin")
STREETLIGHT = "你好，我们这条街的路灯晚上全不亮，走夜路心里发毛"
NOISE_110 = "楼下烧烤摊天天半夜还在营业，吵得睡不着，我们报过警了"


class Http:
    """An installation's API as a role sees it."""

    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        self.base = base
        self.tokens = tokens

    async def call(self, method: str, path: str, role: str = "operator", **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kw.pop("headers", {})}
        async with aiohttp.ClientSession() as s, \
                s.request(method, self.base + path, headers=headers, **kw) as r:
            return r.status, await r.json()

    async def ok(self, method: str, path: str, role: str = "operator", **kw: Any) -> Any:
        status, body = await self.call(method, path, role, **kw)
        assert status == 200, (path, body)
        return body

    async def until(self, path: str, pred: Any, role: str = "supervisor", timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, last = await self.call("GET", path, role)
            if status == 200 and pred(last):
                return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"{path}: condition not met in {timeout}s; last answer {last}")

    async def new_order(self, call: str, text: str, service: str, caller: str) -> dict[str, Any]:
        """A call recorded and transcribed (as the AGI and the transcriber would post it), then accepted."""
        t0 = time.time()
        ev = {"event_id": f"{call}-arrived", "linkedid": call, "type": "arrived", "at": t0, "source": "agi",
              "service": service, "caller": caller, "seat": None, "data": {}}
        await self.ok("POST", "/api/events", "service", json={"events": [ev]})
        seg = {"call": call, "tap": f"{call}-caller", "seq": 0, "speaker": "caller", "kind": "final",
               "start": t0 + 1, "end": t0 + 3, "text": text, "confidence": 0.9, "seat": None}
        await self.ok("POST", "/api/transcripts", "service", json={"segments": [seg]})
        wo = await self.ok("GET", f"/api/calls/{call}/work-order")
        return (await self.ok("POST", f"/api/work-orders/{wo['ticket']}/confirm"))["work_order"]


class PoliceInstallation:
    """The 110 installation: `hotline api` alone, its own state directory, site and database."""

    def __init__(self, root: Path, port: int, database_url: str, peer_url: str, key: str) -> None:
        self.root = root
        self.port = port
        self.database_url = database_url
        self.base = f"http://127.0.0.1:{self.port}"
        self.tokens = {role: f"tok110-{role}-{_secrets.token_hex(8)}" for role in ROLES}
        private_dir(root)
        write_private(root / "secrets.json", json.dumps({
            "ami_secret": "unused", "ami_admin_secret": "unused", "sip_passwords": {},
            "api_tokens": {t: {"name": f"110-{r}", "role": r} for r, t in self.tokens.items()},
            "exchange_keys": {"12345": key, "local": _secrets.token_urlsafe(32)}}))
        site = (REPO / "site.toml").read_text(encoding="utf-8")
        both = 'platforms = ["12345", "110"]'
        assert both in site
        peer = f'platforms = ["110"]\n\n[exchange.peers.12345]\nurl = "{peer_url}"\nretry_max_s = 1\n'
        self.site_on = root / "site-110.toml"
        self.site_on.write_text(site.replace(both, peer), encoding="utf-8")
        # The same site with the exchange sender and sweep off: orders are written, nothing is sent.
        self.site_off = root / "site-110-sender-off.toml"
        self.site_off.write_text(site.replace(both, peer.replace('platforms = ["110"]',
                                                                  'platforms = ["110"]\nenabled = false')),
                                 encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = Http(self.base, self.tokens)

    async def start(self, *, sending: bool = True) -> None:
        ours = ("HOTLINE_", "DATABASE_URL", "REDIS_URL")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        env.update({"HOTLINE_STATE_DIR": str(self.root), "HOTLINE_SITE": str(self.site_on if sending else
                                                                              self.site_off),
                    "DATABASE_URL": self.database_url, "REDIS_URL": "", "HOTLINE_API_PORT": str(self.port),
                    "HOTLINE_API_URL": self.base})
        with (self.root / "api.log").open("ab") as log:  # the child keeps its own descriptor
            self.proc = await asyncio.to_thread(subprocess.Popen,
                                                [sys.executable, "-m", "operations.cli", "api"],
                                                env=env, cwd=REPO, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"110 installation exited; see {self.root / 'api.log'}"
                try:
                    async with s.get(f"{self.base}/ready") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError("110 installation not ready in 60 s")

    async def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
            await asyncio.to_thread(self.proc.wait, 20)
        self.proc = None


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def installations(tmp_path_factory: pytest.TempPathFactory,
                        postgres_url: str) -> AsyncIterator[tuple[Stack, PoliceInstallation]]:
    env = Settings.from_env()
    port110 = free_port()
    peer_url = f"http://127.0.0.1:{port110}{PATH}"
    state = tmp_path_factory.mktemp("state-12345")
    settings = Settings(state_dir=state, site_file=env.site_file, conf_dir=env.conf_dir, database_url="",
                        asterisk_rootfs=env.asterisk_rootfs, agi_budget_ms=400)
    exchange = ExchangeTable(platforms=(Service.HOTLINE_12345,),
                             peers={Service.POLICE_110: PeerTable(url=peer_url, retry_max_s=1)})
    stack = Stack.for_tests(settings, instance_name=f"x12345-{uuid.uuid4().hex[:6]}", transcribe=False,
                            exchange=exchange, transfer_timeout_s=8, transfer_back_timeout_s=8)
    await stack.start()
    assert stack.secrets is not None
    police = PoliceInstallation(tmp_path_factory.mktemp("state-110"), port110, postgres_url,
                                f"{stack.api_url}{PATH}", stack.secrets.exchange_keys["110"])
    try:
        await police.start()
        yield stack, police
    finally:
        await police.stop()
        await stack.stop()
        if stack.asterisk is not None:
            shutil.rmtree(stack.asterisk.paths.host, ignore_errors=True)


def hotline_http(stack: Stack) -> Http:
    assert stack.secrets is not None
    return Http(stack.api_url, {r: stack.secrets.token_for(r) for r in ROLES})


def linked_order(orders: dict[str, Any], peer_ticket: str) -> list[dict[str, Any]]:
    return [o for o in orders["work_orders"] if o["peer_ticket"] == peer_ticket]


async def test_a_one_touch_transfer_sends_the_order_to_110_and_the_feedback_comes_back(
        installations: tuple[Stack, PoliceInstallation]) -> None:
    stack, police = installations
    h12345 = hotline_http(stack)
    assert stack.secrets is not None
    presser = stack.site.operators[Service.HOTLINE_12345][0]
    taker = stack.site.operators[Service.POLICE_110][0]
    keyed = Seat(presser, stack.secrets.sip_passwords[presser], stack.sip_address,
                 dtmf=stack.site.feature_codes["one_touch_transfer"], dtmf_after_ms=1000).start()
    answering = Seat(taker, stack.secrets.sip_passwords[taker], stack.sip_address).start()
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=6000,
                         local_ip=stack.site.trunk_hosts[0])
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
    finally:
        keyed.stop()
        answering.stop()
    calls = await h12345.until("/api/calls?limit=50", lambda b: any(
        c["caller"] == caller and c["outcome"] == "transferred_110" for c in b["calls"]))
    linkedid = next(c["linkedid"] for c in calls["calls"] if c["caller"] == caller)
    wo = await h12345.until(f"/api/calls/{linkedid}/work-order", lambda w: w["status"] == "dispatched")
    ticket = wo["ticket"]
    order = await h12345.until(f"/api/work-orders/{ticket}", lambda o: o["parts"][0]["peer"]["ticket"])
    police_ticket = order["parts"][0]["peer"]["ticket"]
    assert order["parts"][0]["handler"]["id"] == "110" and police_ticket.startswith("110-")
    assert [h["step"] for h in order["history"]][:2] == ["accept", "dispatch"]  # by the system, saying why
    assert order["history"][0]["who"] == "system" and "transferred_110" in order["history"][0]["note"]

    # at 110: a 警单 linked to the 工单, with the caller's number (police see it), waiting to be signed
    jd = await police.http.ok("GET", f"/api/work-orders/{police_ticket}", "supervisor")
    assert (jd["work_order"]["kind"], jd["work_order"]["origin"], jd["work_order"]["peer_ticket"]) == (
        "警单", "12345", ticket)
    assert jd["work_order"]["caller"] == caller and jd["parts"][0]["state"] == "dispatched"
    assert linked_order(await police.http.ok("GET", "/api/work-orders?service=110", "supervisor"), ticket)

    await police.http.ok("POST", f"/api/work-orders/{police_ticket}/parts/1/sign")
    await police.http.ok("POST", f"/api/work-orders/{police_ticket}/parts/1/reply",
                         json={"result": "民警已到场处置，来电人安全"})
    back = await h12345.until(f"/api/work-orders/{ticket}", lambda o: o["parts"][0]["state"] == "replied")
    assert back["parts"][0]["result"] == "民警已到场处置，来电人安全"
    assert back["work_order"]["status"] == "replied"  # the platform that took the call follows up
    assert [h["step"] for h in back["history"] if h["part"] == 1] == ["dispatch", "sign", "reply"]
    assert {h["role"] for h in back["history"] if h["part"] == 1 and h["step"] != "dispatch"} == {"peer"}
    log = await h12345.ok("GET", "/api/exchange/log?direction=in", "admin")
    assert {m["kind"] for m in log["messages"] if m["ticket"] == ticket} == {"part.step"}


async def test_annex_part_4_goes_from_110_to_12345_and_back(installations: tuple[Stack, PoliceInstallation]
                                                            ) -> None:
    stack, police = installations
    h12345 = hotline_http(stack)
    jd = await police.http.new_order(f"p4-{uuid.uuid4().hex[:8]}", NOISE_110, "110", "13600000004")
    await police.http.ok("POST", f"/api/work-orders/{jd['ticket']}/dispatch",
                         json={"handlers": ["12345"], "note": "已出警制止，后续噪音治理转12345"})
    part = (await police.http.until(f"/api/work-orders/{jd['ticket']}",
                                    lambda o: o["parts"][0]["peer"]["ticket"]))["parts"][0]
    gd = await h12345.ok("GET", f"/api/work-orders/{part['peer']['ticket']}", "supervisor")
    assert (gd["work_order"]["kind"], gd["work_order"]["origin"]) == ("工单", "110")
    assert gd["work_order"]["words"].startswith(NOISE_110) and gd["work_order"]["peer_ticket"] == jd["ticket"]
    t = gd["work_order"]["ticket"]
    await h12345.ok("POST", f"/api/work-orders/{t}/parts/1/sign")
    await h12345.ok("POST", f"/api/work-orders/{t}/parts/1/reply", json={"result": "城管已约谈摊主"})
    done = await police.http.until(f"/api/work-orders/{jd['ticket']}",
                                   lambda o: o["parts"][0]["state"] == "replied")
    assert done["parts"][0]["result"] == "城管已约谈摊主"


async def test_the_peer_down_then_back_gets_the_order_once(installations: tuple[Stack, PoliceInstallation]
                                                           ) -> None:
    stack, police = installations
    h12345 = hotline_http(stack)
    await police.stop()
    try:
        wo = await h12345.new_order(f"down-{uuid.uuid4().hex[:8]}", STREETLIGHT, "12345", "13500000005")
        await h12345.ok("POST", f"/api/work-orders/{wo['ticket']}/dispatch", json={"handlers": ["110"]})
        out = await h12345.until("/api/exchange/log?direction=out", lambda b: any(
            m["ticket"] == wo["ticket"] and m["attempts"] >= 2 for m in b["messages"]), role="admin")
        sent = next(m for m in out["messages"] if m["ticket"] == wo["ticket"])
        assert sent["state"] == "pending" and sent["last_error"].startswith("0 ")  # unreachable, waiting
    finally:
        await police.start()
    await h12345.until("/api/exchange/log?direction=out", lambda b: any(
        m["ticket"] == wo["ticket"] and m["state"] == "delivered" for m in b["messages"]), role="admin")
    orders = await police.http.ok("GET", "/api/work-orders?service=110&limit=500", "supervisor")
    assert len(linked_order(orders, wo["ticket"])) == 1


async def test_a_restart_between_writing_an_order_and_sending_it_loses_nothing(
        installations: tuple[Stack, PoliceInstallation]) -> None:
    stack, police = installations
    h12345 = hotline_http(stack)
    await police.stop()
    await police.start(sending=False)  # orders are written, the sender does not run
    jd = await police.http.new_order(f"rs-{uuid.uuid4().hex[:8]}", NOISE_110, "110", "13600000006")
    await police.http.ok("POST", f"/api/work-orders/{jd['ticket']}/dispatch", json={"handlers": ["12345"]})
    out = await police.http.ok("GET", "/api/exchange/log?direction=out", "admin")
    assert next(m for m in out["messages"] if m["ticket"] == jd["ticket"])["state"] == "pending"
    await police.stop(kill=True)  # no clean shutdown
    await police.start()
    await police.http.until("/api/exchange/log?direction=out", lambda b: any(
        m["ticket"] == jd["ticket"] and m["state"] == "delivered" for m in b["messages"]), role="admin")
    arrived = await h12345.ok("GET", "/api/work-orders?service=12345&limit=500", "supervisor")
    assert len(linked_order(arrived, jd["ticket"])) == 1


async def test_forged_stale_replayed_unknown_and_out_of_order_messages_change_nothing(
        installations: tuple[Stack, PoliceInstallation]) -> None:
    stack, police = installations
    assert stack.secrets is not None
    key = stack.secrets.exchange_keys["110"]
    h12345 = hotline_http(stack)
    wo = await h12345.new_order(f"bad-{uuid.uuid4().hex[:8]}", STREETLIGHT, "12345", "13500000007")
    await h12345.ok("POST", f"/api/work-orders/{wo['ticket']}/dispatch", json={"handlers": ["110"]})
    order = await h12345.until(f"/api/work-orders/{wo['ticket']}", lambda o: o["parts"][0]["peer"]["ticket"])
    jd_ticket = order["parts"][0]["peer"]["ticket"]
    before = await police.http.ok("GET", f"/api/work-orders/{jd_ticket}", "supervisor")

    def step(step: str, ticket: str = jd_ticket, **extra: Any) -> bytes:
        return Message.model_validate({
            "schema": "hotline.exchange/1", "message_id": new_message_id(), "kind": "part.step",
            "sent_at": time.time(), "sender": "12345", "recipient": "110",
            "step": {"ticket": ticket, "part": 1, "sender_ticket": wo["ticket"], "sender_part": 1,
                     "step": step,
                     "state": "x_state", "at": time.time(), "by": {"name": "tester", "role": "supervisor"},
                     **extra}}).body()

    async def post(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s, s.post(police.base + PATH, data=body, headers=headers) as r:
            return r.status, (await r.json())["error_id"] if r.status >= 400 else "ok"

    good = step("approve_extension", due_at=time.time() + 86400)
    cases = [
        (good, {"Content-Type": "application/json"}, (401, "exchange.unsigned")),
        (good, signed_headers("not-the-key", "12345", good, time.time()), (401, "exchange.bad_signature")),
        (good, signed_headers(key, "12345", good, time.time() - 3600), (401, "exchange.stale_timestamp")),
        (good, signed_headers(key, "12345", good + b" ", time.time()), (401, "exchange.bad_signature")),
        (step("sign", ticket="110-20990101-000001"), None, (404, "exchange.unknown_order")),
        (good, None, (409, "work_order.invalid_transition")),  # no extension was asked for
        (b'{"schema": "hotline.exchange/1"}', None, (400, "exchange.invalid_message")),
    ]
    for body, headers, want in cases:
        assert await post(body, headers or signed_headers(key, "12345", body, time.time())) == want, want
    # a message that is applied, then the very same request again (same nonce): refused as a replay
    handed = Message.model_validate({
        "schema": "hotline.exchange/1", "message_id": new_message_id(), "kind": "order.dispatch",
        "sent_at": time.time(), "sender": "12345", "recipient": "110",
        "order": {"ticket": "12345-20261203-999999", "part": 1, "kind": "工单", "call": None,
                  "received_at": time.time(), "caller": None, "confidential": True, "request_kind": "help",
                  "summary": "测试", "words": "测试", "urgency": "normal", "life_threat": False,
                  "linkage": [],
                  "due_at": time.time() + 86400, "handler": {"id": "110", "name": "110报警服务台"}}}).body()
    replay = signed_headers(key, "12345", handed, time.time())
    assert await post(handed, replay) == (200, "ok")
    assert await post(handed, replay) == (409, "exchange.replayed")
    after = await police.http.ok("GET", f"/api/work-orders/{jd_ticket}", "supervisor")
    assert after["history"] == before["history"] and after["parts"] == before["parts"]
    inbox = await police.http.ok("GET", "/api/exchange/log?direction=in&limit=50", "admin")
    assert {m["error_id"] for m in inbox["messages"] if m["outcome"] == "refused"} >= {
        "exchange.unsigned", "exchange.bad_signature", "exchange.stale_timestamp", "exchange.unknown_order",
        "work_order.invalid_transition", "exchange.invalid_message", "exchange.replayed"}


async def test_a_department_signs_extends_returns_and_replies_on_time_and_late(
        installations: tuple[Stack, PoliceInstallation]) -> None:
    """On the 12345 installation, with the department tokens `hotline setup` made for its handlers."""
    from app import keys

    stack, _ = installations
    assert stack.secrets is not None and stack._runner is not None
    app = stack._runner.app
    h = hotline_http(stack)
    h.tokens |= {d: stack.secrets.token_for("department", d) for d in ("housing", "urban")}
    a = await h.new_order(f"dep-{uuid.uuid4().hex[:8]}", STREETLIGHT, "12345", "13500000011")
    b = await h.new_order(f"dep-{uuid.uuid4().hex[:8]}", STREETLIGHT + "，新华街", "12345", "13500000012")
    for wo, who in ((a, "housing"), (b, "urban")):
        await h.ok("POST", f"/api/work-orders/{wo['ticket']}/dispatch", json={"handlers": [who]})
    ta, tb = a["ticket"], b["ticket"]

    # A: signed, an extension asked for and approved by a supervisor (not by an operator), replied on time
    await h.ok("POST", f"/api/work-orders/{ta}/parts/1/sign", "housing")
    await h.ok("POST", f"/api/work-orders/{ta}/parts/1/extension", "housing",
               json={"working_days": 3, "reason": "需供电公司配合"})
    status, body = await h.call("POST", f"/api/work-orders/{ta}/parts/1/extension/approve", "operator")
    assert (status, body["error_id"]) == (403, "forbidden")
    extended = await h.ok("POST", f"/api/work-orders/{ta}/parts/1/extension/approve", "supervisor")
    assert extended["parts"][0]["state"] == "extended"
    done = await h.ok("POST", f"/api/work-orders/{ta}/parts/1/reply", "housing", json={"result": "已修复"})
    assert done["parts"][0]["replied_at"] < done["parts"][0]["due_at"]
    assert done["work_order"]["status"] == "replied"
    # the department sees its order masked, the other department does not see it at all
    seen = await h.ok("GET", f"/api/work-orders/{ta}", "housing")
    assert seen["work_order"]["caller"] == "135****0011"
    assert (await h.call("GET", f"/api/work-orders/{ta}", "urban"))[0] == 404

    # B: returned with its basis, re-dispatched (改派), then replied late: overdue and 督办 first
    await h.ok("POST", f"/api/work-orders/{tb}/parts/1/return", "urban",
               json={"reason": "路灯属住建部门管理", "basis": "市政府职责分工文件"})
    again = await h.ok("POST", f"/api/work-orders/{tb}/dispatch", "operator", json={"handlers": ["housing"]})
    part = again["parts"][1]
    await h.ok("POST", f"/api/work-orders/{tb}/parts/2/sign", "housing")
    fired = await app[keys.SWEEP].run_once(now=part["due_at"] + 1)
    assert {(x["kind"], x["level"]) for x in fired if x["ticket"] == tb} == {("overdue", 0), ("urge", 1)}
    late = await h.ok("GET", f"/api/work-orders/{tb}", "supervisor")
    assert late["parts"][1]["overdue_at"] and [x["kind"] for x in late["alerts"]][-2:] == ["overdue", "urge"]
    loop = app[keys.LOOP]
    real_clock = loop.clock
    loop.clock = lambda: part["due_at"] + 3600  # an hour late
    try:
        body = await h.ok("POST", f"/api/work-orders/{tb}/parts/2/reply", "housing",
                          json={"result": "已修复"})
    finally:
        loop.clock = real_clock
    mine = body["parts"]  # the department sees its own part only
    assert [p["no"] for p in mine] == [2] and mine[0]["replied_at"] > mine[0]["due_at"]

"""The console in a real browser (Debian's chromium, headless, through chromium-driver) on the real
stack: Asterisk, SIPp callers and seats, Redis, the app. People log in with their accounts; the
desk, the wallboard, the admin and department pages are driven as a person would, and what they do
is checked in Asterisk and through the API. Each page's screenshot is saved in
``$HOTLINE_SCREENSHOTS`` (default ``var/screenshots``) for a reviewer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from e2e_support import Api, caller_says, count_datagrams, new_caller, pause_seats, supervisor_phone
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from sqlalchemy import select

from agents.sipp import SAMPLE_AUDIO_PCAP, place_call
from app import keys
from app.console.api import KPI_TTL_S
from app.models import AuditRow
from hotline.contracts import Service
from operations.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("HOTLINE_SCREENSHOTS", REPO / "var" / "screenshots"))
PASSWORD = "desk password 2026"


class Browser:
    """One headless Chromium. Every WebDriver call runs in a thread: the stack serves the pages from
    this test's event loop, which must keep running while the browser waits for it."""

    def __init__(self, base: str) -> None:
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1300",
                    "--lang=zh-CN", "--autoplay-policy=no-user-gesture-required"):
            opts.add_argument(arg)
        self.driver = webdriver.Chrome(service=ChromeService("/usr/bin/chromedriver"), options=opts)
        self.base = base

    async def do(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def get(self, path: str) -> None:
        await self.do(self.driver.get, self.base + path)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.do(self.driver.execute_script, script, *args)

    async def login(self, login: str, password: str = PASSWORD) -> None:
        await self.do(self.driver.delete_all_cookies)
        await self.get("/console/login")

        def fill() -> None:
            self.driver.find_element(By.ID, "login").send_keys(login)
            self.driver.find_element(By.ID, "password").send_keys(password)
            self.driver.find_element(By.ID, "submit").click()
        await self.do(fill)

    async def text(self, css: str) -> str:
        return str(await self.js("const e = document.querySelector(arguments[0]);"
                                 "return e ? e.textContent : null", css))

    async def click(self, css: str) -> None:
        await self.do(lambda: self.driver.find_element(By.CSS_SELECTOR, css).click())

    async def wait(self, script: str, *args: Any, timeout: float = 15.0, what: str = "") -> Any:
        """Until ``script`` (a JS expression's body returning a value) gives something truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = await self.js(script, *args)
            except WebDriverException:
                got = None
            if got:
                return got
            await asyncio.sleep(0.05)
        await self.shot(f"failed-{int(time.time())}")
        logs = await self.do(self.driver.get_log, "browser")
        raise AssertionError(f"browser: {what or script} not true within {timeout}s "
                             f"at {self.driver.current_url}; console: {logs[-10:]}")

    async def wait_text(self, css: str, needle: str, timeout: float = 15.0) -> None:
        await self.wait("const e = document.querySelector(arguments[0]);"
                        "return e && e.textContent.includes(arguments[1])", css, needle, timeout=timeout,
                        what=f"{css} shows {needle!r}")

    async def shot(self, name: str) -> Path:
        path = SHOTS / f"{name}.png"

        def save() -> None:
            SHOTS.mkdir(parents=True, exist_ok=True)
            self.driver.execute_script("window.scrollTo(0, 0)")
            self.driver.save_screenshot(str(path))
        await self.do(save)
        return path

    def close(self) -> None:
        self.driver.quit()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def people(stack: Stack) -> dict[str, str]:
    """Console accounts on the stack's database: login -> role."""
    store = stack.app[keys.ACCOUNTS]
    ops = stack.site.operators
    made = {"desk.op": ("operator", dict(platform="12345", seat=ops[Service.HOTLINE_12345][0],
                                         display_name="王芳")),
            "floor.sup": ("supervisor", dict(display_name="李班长")),
            "site.admin": ("admin", dict(display_name="系统管理员")),
            "linhe.clerk": ("department", dict(handler="linhe", display_name="临河区政府办")),
            "lock.me": ("operator", dict(platform="110", seat=ops[Service.POLICE_110][2]))}
    for login, (role, kw) in made.items():
        if await store.get(login) is None:
            await store.add(login, PASSWORD, role, **kw)
    return {login: role for login, (role, _) in made.items()}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(stack: Stack, people: dict[str, str]) -> AsyncIterator[Browser]:
    b = await asyncio.to_thread(Browser, stack.api_url)
    try:
        yield b
    finally:
        await asyncio.to_thread(b.close)


async def _as(stack: Stack, role: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert stack.secrets is not None
    headers = {"Authorization": f"Bearer {stack.secrets.token_for(role)}"}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.request(method, stack.api_url + path, json=body) as r:
        return r.status, await r.json()


async def _channels_of(stack: Stack, linkedid: str) -> list[dict[str, str]]:
    """Asterisk's own view: the channels of the call (CoreShowChannels)."""
    assert stack.ami is not None
    events = await stack.ami.client.action({"Action": "CoreShowChannels"}, as_list=True)
    return [dict(e) for e in events if e.get("Event") == "CoreShowChannel" and e.get("Linkedid") == linkedid]


async def test_an_operator_takes_a_call_at_the_desk_confirms_the_order_and_transfers_to_110(
        stack: Stack, seats: dict, api: Api, browser: Browser) -> None:
    seat = stack.site.operators[Service.HOTLINE_12345][0]
    await browser.login("desk.op")
    await browser.wait("return location.pathname === '/console/desk' && "
                       "document.getElementById('conn').classList.contains('up')", what="desk connected")
    await browser.click("#pause")
    await browser.wait_text("#seat-state", "示忙")
    await browser.click("#ready")
    await browser.wait_text("#seat-state", "就绪")
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat=seat)
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=30000,
                         local_ip=stack.site.trunk_hosts[0])
        await browser.wait_text("#caller", caller, timeout=20)  # the operator sees the full number
        lid = await browser.text("#linkedid")
        async with caller_says(stack, lid) as say:
            say("你好，我家楼下的路灯坏了好几天了")
            await browser.wait_text("#transcript", "路灯坏了")
            await browser.wait("return document.getElementById('ticket').textContent.length > 0",
                               what="draft")
            say("在临河区胜利路和新华街路口")
            await browser.wait_text("#transcript", "胜利路")
            await browser.wait("return document.getElementById('wo-address').value.includes('胜利路')",
                               what="the draft's address fills itself")
            await browser.wait_text("#suggestion", "路由建议")  # the engine's answer, with its reasons
            assert "A01" in await browser.text("#suggestion")
        ticket = await browser.text("#ticket")
        await browser.js("const s = document.getElementById('wo-summary');"
                         "s.value = '胜利路与新华街路口路灯不亮'; s.dispatchEvent(new Event('input'));")
        await browser.click("#confirm-order")
        await browser.wait_text("#order-msg", "已确认")
        status, order = await _as(stack, "supervisor", "GET", f"/api/work-orders/{ticket}")
        assert status == 200 and order["work_order"]["status"] == "accepted", order
        assert order["work_order"]["summary"] == "胜利路与新华街路口路灯不亮"
        assert order["work_order"]["confirmed_by"] == "desk.op"
        # 派单 from the desk: the caller named 临河区, so its government is proposed; the operator keeps it
        await browser.wait("return !document.getElementById('dispatch').disabled", what="dispatch enabled")
        proposed = await browser.js("return [...document.getElementById('dispatch-to').selectedOptions]"
                                    ".map(o => o.value)")
        assert "linhe" in proposed, proposed
        await browser.js("for (const o of document.getElementById('dispatch-to').options)"
                         " o.selected = o.value === 'linhe';")
        await browser.click("#dispatch")
        await browser.wait_text("#dispatch-msg", "已派单")
        status, order = await _as(stack, "supervisor", "GET", f"/api/work-orders/{ticket}")
        assert [p["handler"]["id"] for p in order["parts"]] == ["linhe"], order["parts"]
        assert order["work_order"]["status"] == "dispatched"
        await browser.shot("desk")
        await browser.click("#btn-transfer")
        await browser.wait_text("#flow-log", "一键转接已发起")
        police = stack.site.operators[Service.POLICE_110]
        await browser.wait("const t = document.getElementById('flow-log').textContent;"
                           "return arguments[0].some(s => t.includes(s + ' 已接听'))", list(police),
                           timeout=20, what="the desk shows a 110 seat answering")
        # In Asterisk: the caller's call now has a 110 seat's channel, up and bridged
        deadline = time.monotonic() + 10
        at_110: list[dict[str, str]] = []
        while time.monotonic() < deadline and not at_110:
            at_110 = [c for c in await _channels_of(stack, lid)
                      if any(c.get("Channel", "").startswith(f"PJSIP/{s}-") for s in police)
                      and c.get("ChannelStateDesc") == "Up" and c.get("BridgeId")]
            await asyncio.sleep(0.2)
        assert at_110, await _channels_of(stack, lid)
        status, call = await _as(stack, "supervisor", "GET", f"/api/calls/{lid}")
        assert [e["seat"] for e in call["timeline"] if e["type"] == "answered"][-1] in police
        await browser.shot("desk-transferred")
        assert await asyncio.to_thread(run.wait, 45) == 0, run.errors()
    finally:
        await pause_seats(stack, Service.HOTLINE_12345, False)
    c = await api.call_of(caller)
    assert c["outcome"] == "transferred_110"
    # The desk's read of the caller is audited with the operator's login and name
    async with stack.app[keys.DATABASE].read() as conn:
        reads = (await conn.execute(select(AuditRow.who, AuditRow.detail).where(
            AuditRow.action == "read_caller", AuditRow.target == lid))).all()
    assert [(who, detail.get("person")) for who, detail in reads][:1] == [("desk.op", "王芳")], reads


async def test_a_paused_seat_is_not_rung(stack: Stack, seats: dict, api: Api, browser: Browser) -> None:
    mine, other = stack.site.operators[Service.HOTLINE_12345][:2]
    # Every 12345 seat but the desk's and one other on a break; then the desk pauses its own seat
    await pause_seats(stack, Service.HOTLINE_12345, True, except_seat=mine)
    assert stack.ami is not None
    await stack.ami.client.action({"Action": "QueuePause", "Interface": f"PJSIP/{other}", "Paused": "false"})
    await browser.login("desk.op")
    await browser.wait("return document.getElementById('conn').classList.contains('up')", what="desk up")
    await browser.click("#pause")
    await browser.wait_text("#seat-state", "示忙")
    try:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=3000,
                         local_ip=stack.site.trunk_hosts[0])
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
        c = await api.call_of(caller)
    finally:
        await browser.click("#ready")
        await pause_seats(stack, Service.HOTLINE_12345, False)
    rung = {e["seat"] for e in c["timeline"] if e["type"] == "ringing"}
    assert mine not in rung and other in rung, rung
    await browser.wait_text("#seat-state", "就绪")


async def test_the_wallboard_shows_calls_live_listens_alerts_and_its_kpis_match_the_api(
        stack: Stack, seats: dict, api: Api, browser: Browser) -> None:
    sup = stack.site.supervisors[0]
    await browser.login("floor.sup")
    await browser.wait("return location.pathname === '/console/wallboard' && "
                       "document.getElementById('conn').classList.contains('up') && "
                       "document.querySelectorAll('#seats tr').length > 0", what="wallboard up")
    # When each call row appears, in the browser's clock (the machine's, as Asterisk's event times)
    await browser.js("window.__seen = {}; new MutationObserver(() => {"
                     " for (const r of document.querySelectorAll('#calls tr[data-linkedid]')) {"
                     "  const id = r.dataset.linkedid;"
                     "  if (!(id in window.__seen)) window.__seen[id] = Date.now() / 1000; }"
                     "}).observe(document.getElementById('calls'), {childList: true, subtree: true});")
    async with supervisor_phone(stack, sup) as rtp:
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=20000,
                         local_ip=stack.site.trunk_hosts[0], audio_pcap=SAMPLE_AUDIO_PCAP)
        live = await api.call_of(caller, until="answered_at")
        lid = live["linkedid"]
        seen = await browser.wait("return window.__seen[arguments[0]]", lid, what="the call's row")
        first = min(e["at"] for e in live["timeline"])
        assert seen - first < 1.0, f"the call reached the wallboard {seen - first:.3f}s after its first event"
        masked = await browser.text(f"#calls tr[data-linkedid='{lid}'] td:nth-child(2)")
        assert caller not in masked and masked.endswith(caller[-4:]), masked
        await browser.wait(f"return document.querySelector(\"#calls tr[data-linkedid='{lid}'] "
                           "button[data-mode='listen']\").disabled === false", what="listen enabled")
        await browser.js("document.getElementById('supervisor-seat').value = arguments[0]", sup)
        await browser.click(f"#calls tr[data-linkedid='{lid}'] button[data-mode='listen']")
        await browser.wait_text("#bar-msg", "监听")
        received = await count_datagrams(rtp, want=20, within_s=8)
        assert received > 20, f"the listen button rang the supervisor's phone: {received} RTP packets"
        async with caller_says(stack, lid) as say:
            say("有人拿着刀在砍人，快来人啊")
            await browser.wait("return !document.getElementById('alert-banner').classList.contains('hidden')",
                               timeout=20, what="the life-threat banner")
        assert "生命危险" in await browser.text("#alert-banner")
        assert await browser.js("return window.__hotlineAlarms || 0") >= 1, "the alarm sounded"
        await browser.shot("wallboard")
        assert await asyncio.to_thread(run.wait, 40) == 0, run.errors()
    await api.call_of(caller)
    # KPIs: once no call is live, the wallboard's tiles are the API's figures for the same day
    for _ in range(100):
        if not (await api.get("/api/wallboard"))["calls"]:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(KPI_TTL_S + 0.5)  # the wallboards' shared KPI computation is at most this old
    await browser.get("/console/wallboard")
    await browser.wait("return document.querySelectorAll('#tiles .tile').length > 0", what="tiles")
    status, k = await _as(stack, "supervisor", "GET", "/api/kpis")
    f = k["figures"]
    tiles = await browser.js("const o = {}; for (const t of document.querySelectorAll('#tiles .tile'))"
                             " o[t.dataset.kpi] = t.querySelector('.value').textContent; return o")

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v * 100:.1f}%"
    assert tiles["offered"] == str(f["offered"]) and f["offered"] >= 3
    assert tiles["answered"] == str(f["answered"])
    assert tiles["answer_rate"] == pct(f["answer_rate"])
    assert tiles["answer_15s_rate"] == pct(f["answer_15s_rate"])
    assert tiles["transfers_to_110"] == str(f["transfers_to_110"]) and f["transfers_to_110"] >= 1
    await browser.shot("wallboard-kpis")


async def test_departments_see_only_their_orders_csrf_and_roles_are_enforced_lockout_works(
        stack: Stack, seats: dict, api: Api, browser: Browser) -> None:
    # Two orders of calls taken now, confirmed and dispatched: one to 临河区 (linhe), one to 五原县 (wuyuan)
    tickets = []
    for words in ("我们小区门口的垃圾好几天没人清运了", "楼上邻居装修天天晚上十一点还在砸墙"):
        caller = new_caller()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=caller, talk_ms=6000,
                         local_ip=stack.site.trunk_hosts[0])
        lid = (await api.call_of(caller, until="answered_at"))["linkedid"]
        async with caller_says(stack, lid) as say:
            say(words)
            for _ in range(100):
                status, found = await _as(stack, "supervisor", "GET", f"/api/calls/{lid}/work-order")
                if status == 200:
                    break
                await asyncio.sleep(0.2)
        assert status == 200, found
        tickets.append(found["ticket"])
        assert await asyncio.to_thread(run.wait, 30) == 0, run.errors()
    for ticket, handler in zip(tickets, ("linhe", "wuyuan"), strict=True):
        status, done = await _as(stack, "operator", "POST", f"/api/work-orders/{ticket}/confirm", {})
        assert status == 200, done
        status, moved = await _as(stack, "supervisor", "POST", f"/api/work-orders/{ticket}/dispatch",
                                  {"handlers": [handler]})
        assert status == 200, moved
    await browser.login("linhe.clerk")
    await browser.wait(f"return document.querySelector(\"#orders tr[data-ticket='{tickets[0]}']\")",
                       what="its own order")
    assert await browser.js(f"return !document.querySelector(\"#orders tr[data-ticket='{tickets[1]}']\")")
    number_cell = await browser.text(f"#orders tr[data-ticket='{tickets[0]}'] td:nth-child(4)")
    assert "*" in number_cell or number_cell in ("—", "保密"), number_cell
    # A post without the session's CSRF token is refused; the page's own form (with it) signs
    refused = await browser.js("return fetch(arguments[0], {method: 'POST', credentials: 'same-origin'})"
                               ".then(r => r.json().then(j => [r.status, j.error_id]))",
                               f"/api/work-orders/{tickets[0]}/parts/1/sign")
    assert refused == [403, "csrf_refused"], refused
    await browser.click(f"#orders tr[data-ticket='{tickets[0]}'] button")
    await browser.click("form[data-step='sign'] button")
    await browser.wait_text("#detail-msg", "已提交")
    status, order = await _as(stack, "supervisor", "GET", f"/api/work-orders/{tickets[0]}")
    assert [p["state"] for p in order["parts"] if p["handler"]["id"] == "linhe"] == ["signed"], order["parts"]
    await browser.shot("department")
    # Someone else's order through the API, and another role's page: refused
    other = await browser.js("return fetch(arguments[0]).then(r => r.status)",
                             f"/api/work-orders/{tickets[1]}")
    assert other in (403, 404), other
    await browser.get("/console/wallboard")
    assert "无权访问" in await browser.text("body")
    # Lockout: five wrong passwords, then even the right one is refused
    for _ in range(stack.settings.login_max_failures):
        await browser.login("lock.me", "not my password at all")
        await browser.wait("return document.getElementById('login-error')", what="login error")
    assert "锁定" in await browser.text("#login-error")
    await browser.login("lock.me")
    await browser.wait("return document.getElementById('login-error')", what="refused")
    assert "锁定" in await browser.text("#login-error") and "/console/login" in browser.driver.current_url
    await browser.shot("login-locked")


async def test_the_admin_page_reloads_and_lists_what_the_site_renders(stack: Stack, browser: Browser) -> None:
    await browser.login("site.admin")
    await browser.wait("return document.querySelectorAll('#users tr').length >= 5", what="users listed")
    assert "12345" in await browser.text("#site") and "linkage" in await browser.text("#site")
    await browser.click("#rules-reload")
    await browser.wait_text("#ops-output", "完成")
    await browser.click("#dialplan-reload")
    await browser.wait_text("#ops-output", "Success", timeout=30)
    await browser.shot("admin")

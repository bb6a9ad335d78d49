"""Console accounts and sessions through the real app (SQLite and PostgreSQL): argon2id hashes,
login/logout, lockout, CSRF on every state change, role pages, disabled accounts, the user CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app import keys
from app.accounts.store import AccountError, AccountStore, LoginRefused
from app.db import Database, make_engine, upgrade_engine

PASSWORD = "correct horse 42"


async def _store(url: str, **kw: Any) -> tuple[AccountStore, Any]:
    engine = make_engine(url)
    await upgrade_engine(engine)
    return AccountStore(Database(engine), **kw), engine


async def test_passwords_are_argon2id_and_the_binding_is_checked(db_url: str) -> None:
    store, engine = await _store(db_url)
    try:
        await store.add("wang.fang", PASSWORD, "operator", platform="12345", seat="1201", display_name="王芳")
        async with store.db.read() as conn:
            stored = (await conn.exec_driver_sql("SELECT password_hash FROM users")).scalar()
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        for bad, why in (
            (dict(login="x", password=PASSWORD, role="operator", platform="12345", seat="1202"), "login"),
            (dict(login="li.lei", password="short", role="admin"), "at least 10"),
            (dict(login="li.lei", password="aaaaaaaaaaaa", role="admin"), "4 different"),
            (dict(login="li.lei", password=PASSWORD, role="operator", platform="12345"),
             "platform and a seat"),
            (dict(login="li.lei", password=PASSWORD, role="operator", platform="12345", seat="1201"),
             "bound to wang.fang"),
            (dict(login="li.lei", password=PASSWORD, role="department"), "handler"),
            (dict(login="li.lei", password=PASSWORD, role="admin", platform="110"), "no platform"),
            (dict(login="li.lei", password=PASSWORD, role="root"), "role must be"),
            (dict(login="wang.fang", password=PASSWORD, role="admin"), "exists"),
        ):
            with pytest.raises(AccountError, match=why):
                await store.add(**bad)
    finally:
        await engine.dispose()


async def test_lockout_after_repeated_failures_then_unlock_by_time(db_url: str) -> None:
    store, engine = await _store(db_url, max_failures=3, lockout_s=60)
    try:
        await store.add("zhao.min", PASSWORD, "supervisor", platform="110")
        t = 1_800_000_000.0
        for i in range(2):
            with pytest.raises(LoginRefused) as exc:
                await store.login("zhao.min", "wrong password", now=t + i)
            assert exc.value.locked_until is None
        with pytest.raises(LoginRefused) as exc:
            await store.login("zhao.min", "wrong password", now=t + 2)
        assert exc.value.locked_until == t + 62
        with pytest.raises(LoginRefused, match="锁定"):  # locked: the right password is refused too
            await store.login("zhao.min", PASSWORD, now=t + 30)
        session = await store.login("zhao.min", PASSWORD, now=t + 63)  # the lock ran out
        assert session.account.role == "supervisor" and session.account.platform == "110"
        # An unknown login answers exactly as a wrong password does
        with pytest.raises(LoginRefused, match="用户名或密码错误"):
            await store.login("nobody", PASSWORD, now=t + 64)
    finally:
        await engine.dispose()


async def test_sessions_end_when_idle_too_long_disabled_or_password_changed(db_url: str) -> None:
    store, engine = await _store(db_url, idle_s=600, max_s=3600)
    try:
        await store.add("chen.jing", PASSWORD, "admin")
        t = 1_800_000_000.0
        s = await store.login("chen.jing", PASSWORD, now=t)
        assert (await store.session(s.token, now=t + 500)) is not None
        assert (await store.session(s.token, now=t + 1099)) is not None  # seen at +500: idle from there
        assert (await store.session(s.token, now=t + 1800)) is None       # 701 s idle: gone
        s = await store.login("chen.jing", PASSWORD, now=t)
        assert (await store.session(s.token, now=t + 3601)) is None       # past the absolute limit
        s = await store.login("chen.jing", PASSWORD)
        await store.set_password("chen.jing", "another good one 7")
        assert await store.session(s.token) is None
        s = await store.login("chen.jing", "another good one 7")
        await store.set_disabled("chen.jing", True)
        assert await store.session(s.token) is None
        with pytest.raises(LoginRefused):
            await store.login("chen.jing", "another good one 7")
        assert await store.session("not-a-token") is None
    finally:
        await engine.dispose()


# --- through HTTP -------------------------------------------------------------------------------------

async def _login(client: TestClient, login: str, password: str = PASSWORD,
                 *, follow: bool = False) -> Any:
    form = await client.get("/console/login")
    token = re.search(r'name="token" value="([^"]+)"', await form.text())
    assert token, "the login form carries its token"
    return await client.post("/console/login", data={"login": login, "password": password,
                                                      "token": token.group(1)}, allow_redirects=follow)


def _csrf(page: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', page)
    assert found
    return found.group(1)


@pytest.fixture
async def console(app_client: Any, db_url: str) -> TestClient:
    client = await app_client(db_url, settings_kw={"login_max_failures": 3})
    store = client.app[keys.ACCOUNTS]
    await store.add("op1", PASSWORD, "operator", platform="12345", seat="1201", display_name="王芳")
    await store.add("sup1", PASSWORD, "supervisor", platform="12345", display_name="李班长")
    await store.add("admin1", PASSWORD, "admin")
    await store.add("dept1", PASSWORD, "department", handler="housing")
    return client


async def test_login_sets_a_hardened_session_cookie_and_sends_each_role_home(console: TestClient) -> None:
    for login, home in (("op1", "/console/desk"), ("sup1", "/console/wallboard"),
                        ("admin1", "/console/admin"), ("dept1", "/console/department")):
        console.session.cookie_jar.clear()
        resp = await _login(console, login)
        assert resp.status == 303 and resp.headers["Location"] == home
        cookie = resp.cookies["hotline_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        page = await console.get(home)
        assert page.status == 200, login
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"


async def test_no_session_redirects_pages_and_refuses_the_api(console: TestClient) -> None:
    resp = await console.get("/console/wallboard", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login?next=/console/wallboard"
    resp = await console.get("/api/wallboard")
    assert resp.status == 401 and (await resp.json())["error_id"] == "unauthorized"


async def test_wrong_role_pages_and_api_are_refused(console: TestClient) -> None:
    await _login(console, "dept1")
    for path in ("/console/wallboard", "/console/desk", "/console/admin"):
        resp = await console.get(path, allow_redirects=False)
        assert resp.status == 403, path
        assert "无权访问" in await resp.text()
    for path in ("/api/wallboard", "/api/kpis", "/api/users", "/api/calls"):
        resp = await console.get(path)
        assert resp.status == 403 and (await resp.json())["error_id"] == "forbidden", path
    assert (await console.get("/api/handler/orders")).status == 200  # its own page's data


async def test_state_changes_need_the_sessions_csrf_token(console: TestClient) -> None:
    await _login(console, "admin1")
    csrf = _csrf(await (await console.get("/console/admin")).text())
    body = {"login": "new.person", "password": PASSWORD, "role": "admin"}
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        resp = await console.post("/api/users", json=body, headers=headers)
        assert resp.status == 403 and (await resp.json())["error_id"] == "csrf_refused", headers
    assert (await console.get("/api/users")).status == 200  # reads need none
    resp = await console.post("/api/users", json=body, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201, await resp.text()
    # logout is a state change too: a bare form post is refused, the page's form (with csrf) works
    assert (await console.post("/console/logout", data={}, allow_redirects=False)).status == 403
    resp = await console.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert (await console.get("/api/users")).status == 401


async def test_login_without_the_forms_cookie_is_refused(console: TestClient) -> None:
    resp = await console.post("/console/login", data={"login": "admin1", "password": PASSWORD, "token": "x"})
    assert resp.status == 403 and "过期" in await resp.text()


async def test_lockout_through_the_form_and_the_audit_names_the_person(console: TestClient) -> None:
    for _ in range(3):
        resp = await _login(console, "sup1", "not the password")
        assert resp.status == 401
    assert "锁定" in await resp.text()
    resp = await _login(console, "sup1")
    assert resp.status == 401 and "锁定" in await resp.text()
    await _login(console, "op1")
    resp = await console.get("/api/me")
    me = await resp.json()
    assert me == {"name": "op1", "role": "operator", "display_name": "王芳", "platform": "12345",
                  "seat": "1201", "handler": None}
    async with console.app[keys.DATABASE].read() as conn:
        rows = (await conn.exec_driver_sql(
            "SELECT who, action FROM audit_log WHERE action LIKE 'login%' ORDER BY id")).all()
    assert [r[1] for r in rows].count("login_failed") == 4 and ("op1", "login") in [tuple(r) for r in rows]


async def test_an_operator_pauses_only_their_own_seat(console: TestClient) -> None:
    await _login(console, "op1")
    csrf = _csrf(await (await console.get("/console/desk")).text())
    resp = await console.post("/api/seats/1202/pause", json={"paused": True}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 403 and (await resp.json())["error_id"] == "seat_not_yours"
    resp = await console.post("/api/seats/1201/pause", json={"paused": True}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 503  # no Asterisk in this test: the flows are unavailable, nothing pretends


async def test_static_files_are_a_fixed_list(console: TestClient) -> None:
    assert (await console.get("/console/static/console.js")).status == 200
    for name in ("..%2Fpages.py", "pages.py", "templates", "..%2F..%2F..%2Fsite.toml", "vendor"):
        assert (await console.get(f"/console/static/{name}")).status == 404, name


async def test_a_platforms_people_see_its_calls_and_those_exchanged_with_it(console: TestClient,
                                                                            api_secrets: Any) -> None:
    store = console.app[keys.ACCOUNTS]
    await store.add("police.op", PASSWORD, "operator", platform="110", seat="1101")
    service = {"Authorization": f"Bearer {api_secrets.token_for('service')}"}

    def call(lid: str, svc: str) -> list[dict[str, Any]]:
        base = {"source": "ami", "service": svc, "caller": "13800000009", "seat": None, "data": {}}
        return [{**base, "event_id": f"{lid}-a", "linkedid": lid, "type": "arrived", "at": 1_800_000_000.0},
                {**base, "event_id": f"{lid}-h", "linkedid": lid, "type": "hangup", "at": 1_800_000_060.0}]
    events = call("only-12345", "12345") + call("to-110", "12345") + call("only-110", "110")
    assert (await console.post("/api/events", json={"events": events}, headers=service)).status == 200
    resp = await console.put("/api/calls/to-110/outcome", json={"outcome": "transferred_110"},
                             headers=service)
    assert resp.status == 200, await resp.text()
    await _login(console, "police.op")
    listed = await (await console.get("/api/calls")).json()
    assert sorted(c["linkedid"] for c in listed["calls"]) == ["only-110", "to-110"]
    assert (await console.get("/api/calls/only-12345")).status == 404
    assert (await console.get("/api/calls/only-12345/caller")).status == 404
    assert (await console.get("/api/calls/to-110")).status == 200
    # work orders: one of each platform's
    from sqlalchemy import insert

    from app.models import WorkOrderRow

    order = {"kind": "工单", "status": "accepted", "category_code": "A01", "category_name": "城乡建设",
             "action": "accept", "life_threat": False, "linkage": [], "address": None, "slots": {},
             "summary": "s", "dispatch": [], "rules_version": "t", "caller_segments": 0,
             "created_at": 1_800_000_000.0, "updated_at": 1_800_000_000.0}
    async with console.app[keys.DATABASE].write() as conn:
        await conn.execute(insert(WorkOrderRow), [
            {**order, "ticket": "12345-20270115-0001", "service": "12345", "linkedid": "only-12345"},
            {**order, "ticket": "110-20270115-0001", "service": "110", "linkedid": "only-110"}])
    assert (await console.get("/api/work-orders/12345-20270115-0001")).status == 404
    assert (await console.get("/api/calls/only-12345/work-order")).status == 404
    assert (await console.get("/api/work-orders/110-20270115-0001")).status == 200
    console.session.cookie_jar.clear()
    await _login(console, "op1")  # 12345
    listed = await (await console.get("/api/calls")).json()
    assert sorted(c["linkedid"] for c in listed["calls"]) == ["only-12345", "to-110"]
    assert (await console.get("/api/work-orders/110-20270115-0001")).status == 404
    console.session.cookie_jar.clear()
    await _login(console, "sup1")  # a 12345 supervisor lists 12345's orders only
    listed = await (await console.get("/api/work-orders")).json()
    seen = {w["ticket"] for w in listed["work_orders"]}
    assert "12345-20270115-0001" in seen and "110-20270115-0001" not in seen
    assert all(w["service"] == "12345" for w in listed["work_orders"])


def test_the_user_command_adds_lists_and_disables(tmp_path: Any) -> None:
    env = {"HOTLINE_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "operations.cli", "user", *args], input=stdin, env=env,
                              capture_output=True, text=True, timeout=120)

    added = run("add", "liu.yang", "--role", "operator", "--platform", "110", "--seat", "1101",
                "--name", "刘洋", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    short = run("add", "short.pw", "--role", "admin", stdin="abc\n")
    assert short.returncode == 1 and "at least 10" in short.stderr
    assert run("disable", "liu.yang").returncode == 0
    listed = run("list")
    assert "liu.yang\toperator\t110\t1101\t-\tdisabled\t刘洋" in listed.stdout
    assert run("passwd", "nobody", stdin=PASSWORD + "\n").returncode == 1

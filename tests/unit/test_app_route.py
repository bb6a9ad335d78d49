"""POST /api/route and POST /api/route/reload on the app service (the routing engine wired in)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app import keys
from routing.engine import Router
from routing.rules import DATA_DIR


async def test_route_answers_with_action_and_reasons(app_client, api_secrets, tmp_path) -> None:
    # a file, not :memory: (one connection shared by the app's background tasks and the request)
    client = await app_client(f"sqlite+aiosqlite:///{tmp_path / 'route.db'}")
    token = api_secrets.token_for("operator")
    async with client.post("/api/route", json={"text": "楼顶上站着一个人，看样子要往下跳", "at": "12345"},
                           headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["life_threat"] is True
    assert body["action"] in ("transfer_110", "handover_110")
    assert body["reasons"]


async def test_route_needs_a_token_and_rejects_bad_input(app_client, api_secrets, tmp_path) -> None:
    # a file, not :memory: (one connection shared by the app's background tasks and the request)
    client = await app_client(f"sqlite+aiosqlite:///{tmp_path / 'route.db'}")
    async with client.post("/api/route", json={"text": "路灯坏了", "at": "12345"}) as r:
        assert r.status == 401
    token = api_secrets.token_for("operator")
    for body, error_id in (({"text": "   ", "at": "12345"}, "route.empty_text"),
                           ({"text": "路灯坏了", "at": "119"}, "route.invalid_at")):
        async with client.post("/api/route", json=body, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 400
            assert (await r.json())["error_id"] == error_id


async def test_reload_is_admin_only_and_bad_rules_keep_the_old_ones(app_client, api_secrets,
                                                                    tmp_path: Path) -> None:
    data = tmp_path / "rules"
    shutil.copytree(DATA_DIR, data)
    client = await app_client(f"sqlite+aiosqlite:///{tmp_path / 'route.db'}")
    client.app[keys.ROUTER]._router = Router(data)
    op = {"Authorization": f"Bearer {api_secrets.token_for('operator')}"}
    admin = {"Authorization": f"Bearer {api_secrets.token_for('admin')}"}
    async with client.post("/api/route/reload", headers=op) as r:
        assert r.status == 403
    async with client.post("/api/route/reload", headers=admin) as r:
        assert r.status == 200
        good = await r.json()
    (data / "categories.yaml").write_text("version: [broken", encoding="utf-8")
    async with client.post("/api/route/reload", headers=admin) as r:
        assert r.status == 400
        assert (await r.json())["error_id"] == "route.reload_failed"
    async with client.post("/api/route", json={"text": "小区路灯坏了好几天了", "at": "12345"},
                           headers=op) as r:
        assert r.status == 200, "the old rules still answer"
    assert client.app[keys.ROUTER]._router.version == good["version"]


async def test_routing_a_call_keeps_the_answer_as_its_context(app_client, api_secrets, tmp_path) -> None:
    # a file, not :memory: (one connection shared by the app's background tasks and the request)
    client = await app_client(f"sqlite+aiosqlite:///{tmp_path / 'route.db'}")
    svc = {"Authorization": f"Bearer {api_secrets.token_for('service')}"}
    op = {"Authorization": f"Bearer {api_secrets.token_for('operator')}"}
    ev = {"event_id": "c1:arrived", "linkedid": "c1", "type": "arrived", "at": 1_760_000_000.0,
          "source": "agi", "service": "12345", "caller": "13800000000", "seat": None, "data": {}}
    async with client.post("/api/events", json=ev, headers=svc) as r:
        assert r.status in (200, 201, 202)
    async with client.post("/api/calls/nope.1/route", json={"text": "路灯坏了"}, headers=op) as r:
        assert r.status == 404 and (await r.json())["error_id"] == "unknown_call"
    async with client.post("/api/calls/c1/route", json={"text": 5}, headers=op) as r:
        assert r.status == 400
    async with client.post("/api/calls/c1/route", json={"text": "楼顶上站着一个人，看样子要往下跳"},
                           headers=op) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["at"] == "12345" and answer["life_threat"] is True
    async with client.get("/api/calls/c1", headers=op) as r:
        call = await r.json()
    ctx = call["context"]["routing"]
    assert ctx["action"] == answer["action"] and ctx["life_threat"] is True and ctx["reasons"]
    assert [e["type"] for e in call["timeline"]] == ["arrived", "routed"]

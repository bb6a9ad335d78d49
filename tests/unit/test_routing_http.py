"""POST /api/route handler (routing.http) through a real aiohttp server and client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from routing import MAX_TEXT_CHARS, Router
from routing.http import make_route_handler


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


@pytest.fixture
async def client(router: Router) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    app.router.add_post("/api/route", make_route_handler(router))
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_routes_text(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post("/api/route", json={"text": "楼顶上站着一个人，看样子要往下跳", "at": "12345"})
    assert resp.status == 200
    body = await resp.json()
    assert body["action"] == "transfer_110" and body["life_threat"] is True
    assert body["category"]["code"] == "B5"


async def test_long_text_is_routed_off_the_loop(client: TestClient[web.Request, web.Application]) -> None:
    text = ("我们小区门口的井盖没了。" * 2000)[:MAX_TEXT_CHARS]
    resp = await client.post("/api/route", json={"text": text, "at": "110"})
    assert resp.status == 200
    assert (await resp.json())["action"] == "handle_then_transfer"


async def test_non_chinese_is_guided(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post("/api/route", json={"text": "help me please", "at": "110"})
    assert resp.status == 200
    body = await resp.json()
    assert body["action"] == "guide" and body["reasons"]


@pytest.mark.parametrize(
    ("data", "status", "error_id"),
    [
        (b'{"text": "", "at": "12345"}', 400, "route.empty_text"),
        (b'{"text": "  \\n\\t ", "at": "12345"}', 400, "route.empty_text"),
        (b'{"text": "\\u0000\\u0007", "at": "12345"}', 400, "route.empty_text"),
        ('{"text": "路灯坏了", "at": "119"}'.encode(), 400, "route.invalid_at"),
        ('{"text": "路灯坏了"}'.encode(), 400, "route.invalid_at"),
        (b'{"at": "12345"}', 400, "route.invalid_text"),
        (b'{"text": 5, "at": "12345"}', 400, "route.invalid_text"),
        (b'["text"]', 400, "route.invalid_body"),
        (b"not json", 400, "route.invalid_json"),
        (b"", 400, "route.invalid_json"),
        (b'{"text": "\xff\xfe\xb7", "at": "12345"}', 400, "route.invalid_utf8"),
        (f'{{"text": "{"中" * (MAX_TEXT_CHARS + 1)}", "at": "110"}}'.encode(), 413, "route.text_too_long"),
    ],
)
async def test_bad_input_gets_a_stable_error_id(
    client: TestClient[web.Request, web.Application], data: bytes, status: int, error_id: str
) -> None:
    resp = await client.post("/api/route", data=data, headers={"Content-Type": "application/json"})
    assert resp.status == status
    body = await resp.json()
    assert body["error_id"] == error_id and body["message"]


async def test_oversized_body_is_a_clear_error(router: Router) -> None:
    app = web.Application(client_max_size=1024)
    app.router.add_post("/api/route", make_route_handler(router))
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/api/route", data=b'{"text": "' + b"a" * 4096 + b'", "at": "12345"}')
        assert resp.status == 413
        assert (await resp.json())["error_id"] == "route.body_too_large"

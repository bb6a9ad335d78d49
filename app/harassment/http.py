"""Admin views over the harassment list. Numbers travel in JSON bodies, never in URLs (access logs)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app import keys
from app.auth import ADMIN, requires
from app.http_util import json_response, read_json
from app.validation import Problem, fail
from hotline.phone import clean_number


def _number(body: Any) -> str:
    if not isinstance(body, dict) or set(body) != {"number"} or not isinstance(body["number"], str):
        fail([Problem("number", 'body must be {"number": "<caller number>"}')])
    number = clean_number(body["number"][:256])
    if number == "anonymous":
        fail([Problem("number", "no dialable digits")])
    return number


@requires(ADMIN)
async def list_numbers(request: web.Request) -> web.Response:
    numbers = await request.app[keys.HARASSMENT].numbers()
    await request.app[keys.CALLS].audit(
        request[keys.PRINCIPAL], "harassment_list", "harassment", {"count": len(numbers)}
    )
    return json_response({"numbers": numbers})


@requires(ADMIN)
async def add_number(request: web.Request) -> web.Response:
    number = _number(await read_json(request))
    added = await request.app[keys.HARASSMENT].add(number)
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "harassment_add", number, {})
    return json_response({"number": number, "added": added}, status=201 if added else 200)


@requires(ADMIN)
async def remove_number(request: web.Request) -> web.Response:
    number = _number(await read_json(request))
    removed = await request.app[keys.HARASSMENT].remove(number)
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "harassment_remove", number, {})
    return json_response({"number": number, "removed": removed})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/harassment", list_numbers)
    app.router.add_post("/api/harassment", add_number)
    app.router.add_delete("/api/harassment", remove_number)

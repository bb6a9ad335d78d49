"""Admin views over the harassment list. Numbers travel in JSON bodies, never in URLs (access logs)."""

from __future__ import annotations

from aiohttp import web
from pydantic import field_validator
from pydantic_core import PydanticCustomError

from app import keys
from app.auth import ADMIN, requires
from app.endpoint import endpoint
from app.errors import RedisUnavailable
from app.http_util import json_response, parse_body
from app.schemas import Answer, Body
from hotline.phone import clean_number
from hotline.types import Text


class NumberBody(Body):
    number: Text(256, min_length=1)  # type: ignore[valid-type]

    @field_validator("number")
    @classmethod
    def _dialable(cls, v: str) -> str:
        number = clean_number(v)
        if number == "anonymous":
            raise PydanticCustomError("no_digits", "no dialable digits")
        return number


class NumberList(Answer):
    numbers: list[str]


class NumberAdded(Answer):
    number: str
    added: bool


class NumberRemoved(Answer):
    number: str
    removed: bool


@endpoint("The harassment list (audited)", response=NumberList, errors=(RedisUnavailable,))
@requires(ADMIN)
async def list_numbers(request: web.Request) -> web.Response:
    numbers = await request.app[keys.HARASSMENT].numbers()
    await request.app[keys.CALLS].audit(
        request[keys.PRINCIPAL], "harassment_list", "harassment", {"count": len(numbers)}
    )
    return json_response({"numbers": numbers})


@endpoint("Add a number to the harassment list (201 when new, 200 when already listed)", body=NumberBody,
          response=NumberAdded, status=201, extra_statuses={200: "already listed"},
          errors=(RedisUnavailable,))
@requires(ADMIN)
async def add_number(request: web.Request) -> web.Response:
    number = (await parse_body(request, NumberBody)).number
    added = await request.app[keys.HARASSMENT].add(number)
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "harassment_add", number, {})
    return json_response({"number": number, "added": added}, status=201 if added else 200)


@endpoint("Remove a number from the harassment list", body=NumberBody, response=NumberRemoved,
          errors=(RedisUnavailable,))
@requires(ADMIN)
async def remove_number(request: web.Request) -> web.Response:
    number = (await parse_body(request, NumberBody)).number
    removed = await request.app[keys.HARASSMENT].remove(number)
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "harassment_remove", number, {})
    return json_response({"number": number, "removed": removed})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/harassment", list_numbers)
    app.router.add_post("/api/harassment", add_number)
    app.router.add_delete("/api/harassment", remove_number)

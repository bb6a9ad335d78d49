"""aiohttp handler for ``POST /api/route``: {"text": "...", "at": "12345"|"110"} -> RouteResult JSON.

The app wires it (``app.router.add_post("/api/route", make_route_handler(router))``); the router is
built once at start-up and passed in. The body is :class:`RouteRequest`; bad input gets a 4xx with a
stable ``error_id`` (:data:`routing.errors.INPUT_ERRORS`) in the API's error envelope. Text with no
Chinese in it is not an error: the answer is ``guide`` with a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hotline.platforms import Service

from .engine import MAX_TEXT_CHARS, Router
from .errors import RoutingInputError

INLINE_LIMIT = 2_000  # longer texts are routed in the default executor, off the event loop

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteRequest(BaseModel):
    """The body of ``POST /api/route``. Longer texts are refused with 413 ``route.text_too_long``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(strict=True, description=f"the caller's words, at most {MAX_TEXT_CHARS} characters")
    at: Service = Field(description="the platform the call is at")


# Which field's error is which stable id.
_FIELD_ERRORS = {"text": "route.invalid_text", "at": "route.invalid_at"}


def _error(exc: RoutingInputError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status, dumps=_dumps)


async def _read_body(request: web.Request) -> RouteRequest:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RoutingInputError("route.body_too_large", "request body is too large", 413) from None
    try:
        body_text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RoutingInputError("route.invalid_utf8", f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(body_text)
    except json.JSONDecodeError as exc:
        raise RoutingInputError("route.invalid_json", f"body is not JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise RoutingInputError("route.invalid_body", 'body must be a JSON object {"text": ..., "at": ...}')
    try:
        return RouteRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise RoutingInputError(_FIELD_ERRORS.get(field, "route.invalid_body"),
                                f"{field or 'body'}: {first['msg']}") from None


def make_route_handler(router: Router) -> Handler:
    async def route_handler(request: web.Request) -> web.StreamResponse:
        try:
            body = await _read_body(request)
            if len(body.text) > INLINE_LIMIT:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(None, router.route, body.text, body.at.value)
            else:
                result = router.route(body.text, body.at.value)
        except RoutingInputError as exc:
            return _error(exc)
        return web.json_response(result.to_json(), dumps=_dumps)

    return route_handler


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)

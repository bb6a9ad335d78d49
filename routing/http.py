"""aiohttp handler for ``POST /api/route``: {"text": "...", "at": "12345"|"110"} -> RouteResult JSON.

The app wires it (``app.router.add_post("/api/route", make_route_handler(router))``); the router is
built once at start-up and passed in. Bad input gets a 4xx with a stable ``error_id``:
``route.invalid_utf8``, ``route.invalid_json``, ``route.invalid_body``, ``route.invalid_text``,
``route.empty_text``, ``route.invalid_at`` (400) and ``route.text_too_long``, ``route.body_too_large``
(413). Text with no Chinese in it is not an error: the answer is ``guide`` with a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .engine import Router
from .errors import RoutingInputError

INLINE_LIMIT = 2_000  # longer texts are routed in the default executor, off the event loop

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(exc: RoutingInputError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status)


async def _read_body(request: web.Request) -> dict[str, Any]:
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
    if "text" not in body or not isinstance(body["text"], str):
        raise RoutingInputError("route.invalid_text", "'text' is required and must be a string")
    if not isinstance(body.get("at"), str):
        raise RoutingInputError("route.invalid_at", "'at' is required: \"12345\" or \"110\"")
    return body


def make_route_handler(router: Router) -> Handler:
    async def route_handler(request: web.Request) -> web.StreamResponse:
        try:
            body = await _read_body(request)
            text, at = body["text"], body["at"]
            if len(text) > INLINE_LIMIT:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(None, router.route, text, at)
            else:
                result = router.route(text, at)
        except RoutingInputError as exc:
            return _error(exc)
        return web.json_response(result.to_json(), dumps=_dumps)

    return route_handler


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)

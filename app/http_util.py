"""Request-body and query helpers shared by the views."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from app.errors import BodyTooLarge, MalformedJson, UnknownCall, UnsupportedMediaType
from app.validation import Problem, fail
from hotline.contracts import LINKEDID_RE

MAX_BODY = 1024 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(details={"got": request.content_type})
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge(details={"max_bytes": MAX_BODY})
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(details={"max_bytes": MAX_BODY}) from None
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(details={"reason": str(exc)[:200]}) from None


def call_id(request: web.Request) -> str:
    """The ``{linkedid}`` of the URL; a malformed one is an unknown call (404), never a lookup."""
    linkedid = request.match_info["linkedid"]
    if not LINKEDID_RE.fullmatch(linkedid):
        raise UnknownCall(details={"linkedid": linkedid[:64]})
    return linkedid


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def parse_time(name: str, raw: str, problems: list[Problem]) -> float | None:
    """ISO-8601 (naive means UTC) or epoch seconds."""
    try:
        return float(raw) if raw.replace(".", "", 1).isdigit() else _iso(raw)
    except ValueError:
        problems.append(Problem(name, "ISO-8601 date-time or epoch seconds"))
        return None


def _iso(raw: str) -> float:
    dt = datetime.fromisoformat(raw)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_int(name: str, raw: str | None, default: int, lo: int, hi: int, problems: list[Problem]) -> int:
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        n = lo - 1
    if not lo <= n <= hi:
        problems.append(Problem(name, f"integer {lo}..{hi}"))
        return default
    return n


def check_query(request: web.Request, allowed: set[str]) -> None:
    problems = [Problem(k[:64], "unknown query parameter") for k in sorted(set(request.query) - allowed)]
    problems += [
        Problem(k[:64], "given more than once")
        for k in sorted(set(request.query))
        if len(request.query.getall(k)) > 1
    ]
    fail(problems)

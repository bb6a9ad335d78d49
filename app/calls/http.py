"""Thin views for events and calls: parse, call :class:`CallService`, answer."""

from __future__ import annotations

from aiohttp import web

from app import keys
from app.auth import ADMIN, OPERATOR, READERS, SERVICE, SUPERVISOR, requires
from app.calls.services import CallFilter
from app.http_util import call_id, check_query, json_response, parse_int, parse_time, read_json
from app.validation import Problem, fail, parse_events, parse_outcome
from hotline.contracts import Outcome, Service

MAX_LIMIT = 500


@requires(SERVICE)
async def post_events(request: web.Request) -> web.Response:
    events = parse_events(await read_json(request))
    result = await request.app[keys.CALLS].record(events)
    return json_response(result.to_json())


@requires(SERVICE, OPERATOR, SUPERVISOR, ADMIN)
async def put_outcome(request: web.Request) -> web.Response:
    linkedid = call_id(request)
    req = parse_outcome(await read_json(request))
    call = await request.app[keys.CALLS].set_outcome(linkedid, req, request[keys.PRINCIPAL])
    if req.outcome is Outcome.HARASSMENT:
        call["harassment_listed"] = await request.app[keys.HARASSMENT].flag_quietly(call["caller"])
    return json_response(call)


@requires(*READERS)
async def get_call(request: web.Request) -> web.Response:
    call = await request.app[keys.CALLS].get_call(call_id(request), request[keys.PRINCIPAL])
    return json_response(call)


@requires(*READERS)
async def list_calls(request: web.Request) -> web.Response:
    q = request.query
    check_query(request, {"since", "until", "service", "seat", "outcome", "limit", "offset"})
    problems: list[Problem] = []
    since = parse_time("since", q["since"], problems) if "since" in q else None
    until = parse_time("until", q["until"], problems) if "until" in q else None
    service = q.get("service")
    if service is not None and service not in (s.value for s in Service):
        problems.append(Problem("service", "'12345' or '110'"))
    outcome = q.get("outcome")
    if outcome is not None and outcome not in (o.value for o in Outcome):
        problems.append(Problem("outcome", f"one of {', '.join(o.value for o in Outcome)}"))
    seat = q.get("seat")
    if seat is not None and not 1 <= len(seat) <= 64:
        problems.append(Problem("seat", "1..64 characters"))
    limit = parse_int("limit", q.get("limit"), 100, 1, MAX_LIMIT, problems)
    offset = parse_int("offset", q.get("offset"), 0, 0, 1_000_000_000, problems)
    fail(problems)
    f = CallFilter(since, until, service, seat, outcome, limit, offset)
    return json_response(await request.app[keys.CALLS].list_calls(f, request[keys.PRINCIPAL]))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/events", post_events)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{linkedid}", get_call)
    app.router.add_put("/api/calls/{linkedid}/outcome", put_outcome)

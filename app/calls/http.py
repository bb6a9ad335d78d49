"""Thin views for events and calls: parse with the route's model, call :class:`CallService`, answer."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from app import keys
from app.auth import ADMIN, OPERATOR, READERS, SERVICE, SUPERVISOR, requires
from app.calls.schemas import (
    CallAnswer,
    CallList,
    CallsQuery,
    EventsBody,
    OutcomeAnswer,
    OutcomeBody,
    RecordAnswer,
    parse_events,
)
from app.calls.services import CallFilter
from app.endpoint import endpoint
from app.errors import UnknownCall, UnknownOutcome
from app.http_util import call_id, json_response, parse_body, parse_query, read_json, refuse
from hotline.contracts import Outcome


@endpoint("Store call events (one, or a batch of 1..500): all or nothing, idempotent on event_id",
          body=EventsBody, response=RecordAnswer, errors=(UnknownOutcome,))
@requires(SERVICE)
async def post_events(request: web.Request) -> web.Response:
    raw = await read_json(request)
    try:
        events = parse_events(raw)
    except ValidationError as exc:
        raise refuse(exc, prefix=("body",)) from None
    result = await request.app[keys.CALLS].record(events)
    return json_response(result.to_json())


@endpoint("Set the call's outcome (a harassment outcome also lists the caller)", body=OutcomeBody,
          response=OutcomeAnswer, errors=(UnknownOutcome, UnknownCall))
@requires(SERVICE, OPERATOR, SUPERVISOR, ADMIN)
async def put_outcome(request: web.Request) -> web.Response:
    linkedid = call_id(request)
    req = await parse_body(request, OutcomeBody)
    call = await request.app[keys.CALLS].set_outcome(linkedid, req, request[keys.PRINCIPAL])
    if req.outcome is Outcome.HARASSMENT:
        call["harassment_listed"] = await request.app[keys.HARASSMENT].flag_quietly(call["caller"])
    return json_response(call)


@endpoint("One call: its summary, timeline and context (audited)", response=CallAnswer, errors=(UnknownCall,))
@requires(*READERS)
async def get_call(request: web.Request) -> web.Response:
    call = await request.app[keys.CALLS].get_call(call_id(request), request[keys.PRINCIPAL])
    return json_response(call)


@endpoint("List calls, newest first (audited)", query=CallsQuery, response=CallList)
@requires(*READERS)
async def list_calls(request: web.Request) -> web.Response:
    q = parse_query(request, CallsQuery)
    f = CallFilter(q.since, q.until, q.service.value if q.service else None, q.seat,
                   q.outcome.value if q.outcome else None, q.limit, q.offset)
    return json_response(await request.app[keys.CALLS].list_calls(f, request[keys.PRINCIPAL]))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/events", post_events)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{linkedid}", get_call)
    app.router.add_put("/api/calls/{linkedid}/outcome", put_outcome)

"""The callback API: list and filter tasks, place one now, cancel one, read a call's rating and an
order's 回访 result, the do-not-call list. Numbers are masked for operators; every read is audited."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from app import keys
from app.auth import ADMIN, DEPARTMENT, OPERATOR, SERVICE, SUPERVISOR, requires
from app.callbacks.store import KINDS, STATES, TASK_COLUMNS, attempts_of, dialable
from app.endpoint import endpoint
from app.errors import (
    NotCallable,
    NotFound,
    TaskNotOpen,
    UnknownCall,
    UnknownSeat,
    ValidationFailed,
    WorkOrderNotFound,
)
from app.http_util import call_id, json_response, parse_body, parse_query, ticket
from app.models import Call, NoCallRow
from app.models import CallbackTaskRow as K
from app.schemas import Answer, Body
from hotline.callback_site import Rating
from hotline.phone import clean_number, mask_number
from hotline.types import CallId, SeatId, Text


class RequestBody(Body):
    linkedid: CallId
    position: int = Field(1, ge=1, le=99_999)  # QUEUEPOSITION: the place the caller left


class TaskQuery(Body):
    state: Literal[STATES] | None = None  # type: ignore[valid-type]
    kind: Literal[KINDS] | None = None  # type: ignore[valid-type]
    platform: Literal["12345", "110"] | None = None
    ticket: Text(32) | None = None  # type: ignore[valid-type]
    limit: int = Field(100, ge=1, le=1000)


class PlaceBody(Body):
    seat: SeatId | None = None  # ring this seat first (the operator places it and enters the result)


class CancelBody(Body):
    note: Text(256) | None = None  # type: ignore[valid-type]


class ResultBody(Body):
    resolved: bool | None = None  # the caller says the matter is resolved (None: not asked / no answer)
    rating: Rating                # the caller's satisfaction on the site's scale
    note: Text(256) | None = None  # type: ignore[valid-type]


class NoCallBody(Body):
    number: Text(64, min_length=3)  # type: ignore[valid-type]
    reason: Text(256) | None = None  # type: ignore[valid-type]


class TaskList(Answer):
    tasks: list[dict[str, Any]]
    total: int


class TaskAnswer(Answer):
    task: dict[str, Any]


class RatingAnswer(Answer):
    linkedid: str
    rating: str | None
    rating_result: str | None


class OrderCallbacks(Answer):
    ticket: str
    tasks: list[dict[str, Any]]


def _shown(task: dict[str, Any], role: str, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {k: task[k] for k in TASK_COLUMNS if k not in ("owner", "lease_until")}
    if role not in (SUPERVISOR, ADMIN):
        out["number"] = mask_number(task["number"])
    if attempts is not None:
        out["attempts_log"] = attempts
    return out


@endpoint("Callback tasks (回访, missed calls, callbacks asked for in the queue), newest due first",
          query=TaskQuery, response=TaskList)
@requires(OPERATOR, SUPERVISOR, ADMIN)
async def list_tasks(request: web.Request) -> web.Response:
    q = parse_query(request, TaskQuery)
    conds = [getattr(K, f) == getattr(q, f) for f in ("state", "kind", "platform", "ticket")
             if getattr(q, f) is not None]
    db = request.app[keys.DATABASE]
    async with db.read() as conn:
        total = (await conn.execute(select(func.count()).select_from(K).where(*conds))).scalar_one()
        rows = [dict(r) for r in (await conn.execute(
            select(*(getattr(K, c) for c in TASK_COLUMNS)).where(*conds)
            .order_by(K.due_at.desc(), K.id.desc()).limit(q.limit))).mappings()]
        logs = await attempts_of(conn, [r["id"] for r in rows])
    who = request[keys.PRINCIPAL]
    await request.app[keys.CALLS].audit(who, "list_callbacks", "callbacks",
                                        {"query": q.model_dump(exclude_none=True), "returned": len(rows)})
    shown = [_shown(r, who.role, logs.get(r["id"], [])) for r in rows]
    return json_response({"tasks": shown, "total": total})


def _task_id(request: web.Request) -> int:
    raw = request.match_info.get("task", "")
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(details={"task": raw[:32]})
    return int(raw)


@endpoint("Place a callback task now (from a seat, when one is named)", body=PlaceBody, response=TaskAnswer,
          errors=(TaskNotOpen, UnknownSeat))
@requires(OPERATOR, SUPERVISOR)
async def place(request: web.Request) -> web.Response:
    body = await parse_body(request, PlaceBody)
    who = request[keys.PRINCIPAL]
    sched = request.app[keys.CALLBACKS]
    task_id = _task_id(request)
    if body.seat is not None:
        found = await sched.get(task_id)
        platform = request.app[keys.SITE].service_of_seat(body.seat)
        if found is not None and (platform is None or platform.value != found["platform"]):
            raise UnknownSeat(details={"seat": body.seat})
    task = await sched.place_now(task_id, body.seat, who.name)
    if task is None:
        raise TaskNotOpen()
    await request.app[keys.CALLS].audit(who, "callback_place", str(task["id"]), {"seat": body.seat})
    return json_response({"task": _shown(task, who.role)})


@endpoint("Cancel a callback task that is waiting", body=CancelBody, response=TaskAnswer,
          errors=(TaskNotOpen,))
@requires(SUPERVISOR)
async def cancel(request: web.Request) -> web.Response:
    body = await parse_body(request, CancelBody)
    who = request[keys.PRINCIPAL]
    task = await request.app[keys.CALLBACKS].cancel(_task_id(request), body.note)
    if task is None:
        raise TaskNotOpen()
    await request.app[keys.CALLS].audit(who, "callback_cancel", str(task["id"]), {})
    return json_response({"task": _shown(task, who.role)})


@endpoint("排队回拨: a caller waiting in the 12345 queue asked to be called back (FastAGI); the task is "
          "placed at once into the queue at the caller's place", body=RequestBody, response=TaskAnswer,
          status=201, errors=(UnknownCall, NotCallable))
@requires(SERVICE)
async def queue_request(request: web.Request) -> web.Response:
    body = await parse_body(request, RequestBody)
    sched = request.app[keys.CALLBACKS]
    async with request.app[keys.DATABASE].read() as conn:
        call = (await conn.execute(select(Call.caller, Call.service, Call.queued_at, Call.arrived_at)
                                   .where(Call.linkedid == body.linkedid))).mappings().first()
    if call is None:
        raise UnknownCall(details={"linkedid": body.linkedid})
    now = sched.clock()
    number = dialable(call["caller"])
    if number is None or call["service"] != "12345" or not sched.within_hours(now):
        raise NotCallable(details={"linkedid": body.linkedid})
    waited = now - (call["queued_at"] or call["arrived_at"] or now)
    task_id = await sched.request("12345", number, body.linkedid, now, position=body.position,
                                  waited_s=waited)
    task = await sched.get(task_id) if task_id else None
    if task is None:
        raise NotCallable(details={"linkedid": body.linkedid, "reason": "already asked"})
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "callback_requested", body.linkedid,
                                        {"position": body.position})
    return json_response({"task": _shown(task, SERVICE)}, status=201)


@endpoint("Enter the 回访 result of a callback placed from a seat (closes or reopens the order)",
          body=ResultBody, response=TaskAnswer, errors=(TaskNotOpen,))
@requires(OPERATOR, SUPERVISOR)
async def enter_result(request: web.Request) -> web.Response:
    body = await parse_body(request, ResultBody)
    who = request[keys.PRINCIPAL]
    task = await request.app[keys.CALLBACKS].enter_result(_task_id(request), body.resolved, body.rating,
                                                          body.note, who.name)
    if task is None:
        raise TaskNotOpen()
    await request.app[keys.CALLS].audit(who, "callback_result", str(task["id"]), {"rating": body.rating})
    return json_response({"task": _shown(task, who.role)})


@endpoint("A call's end-of-call rating (一次一评)", response=RatingAnswer, errors=(UnknownCall,))
@requires(OPERATOR, SUPERVISOR, ADMIN)
async def rating(request: web.Request) -> web.Response:
    linkedid = call_id(request)
    async with request.app[keys.DATABASE].read() as conn:
        row = (await conn.execute(select(Call.rating, Call.rating_result)
                                  .where(Call.linkedid == linkedid))).first()
    if row is None:
        raise UnknownCall(details={"linkedid": linkedid})
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "read_rating", linkedid, {})
    return json_response({"linkedid": linkedid, "rating": row[0], "rating_result": row[1]})


@endpoint("An order's 回访: its callback tasks, attempts and the caller's answers", response=OrderCallbacks,
          errors=(WorkOrderNotFound,))
@requires(OPERATOR, SUPERVISOR, ADMIN, DEPARTMENT)
async def order_callbacks(request: web.Request) -> web.Response:
    number = ticket(request)
    who = request[keys.PRINCIPAL]
    # the order as this principal may see it (a department: only its own orders; 404 otherwise)
    await request.app[keys.LOOP].get(number, who, request.app[keys.CALLS].audit_in)
    async with request.app[keys.DATABASE].read() as conn:
        rows = [dict(r) for r in (await conn.execute(select(*(getattr(K, c) for c in TASK_COLUMNS))
                                                     .where(K.ticket == number).order_by(K.id))).mappings()]
        logs = await attempts_of(conn, [r["id"] for r in rows])
    shown = [_shown(r, who.role, logs.get(r["id"], [])) for r in rows]
    if who.role == DEPARTMENT:
        for t in shown:
            t.pop("number", None)
    return json_response({"ticket": number, "tasks": shown})


def _no_call_number(raw: str) -> str:
    number = dialable(clean_number(raw))
    if number is None:
        raise ValidationFailed(details=[{"field": "number", "error": "no dialable digits"}])
    return number


@endpoint("Add a number to the do-not-call list (no callback is placed to it)", body=NoCallBody,
          response=Answer, status=201)
@requires(SUPERVISOR, ADMIN)
async def add_no_call(request: web.Request) -> web.Response:
    body = await parse_body(request, NoCallBody)
    number = _no_call_number(body.number)
    who = request[keys.PRINCIPAL]
    insert = postgresql.insert if request.app[keys.DATABASE].dialect == "postgresql" else sqlite.insert
    async with request.app[keys.DATABASE].write() as conn:
        await conn.execute(insert(NoCallRow).values(number=number, reason=body.reason, added_by=who.name,
                                                    added_at=request.app[keys.CALLS].clock())
                           .on_conflict_do_nothing())
    await request.app[keys.CALLS].audit(who, "no_call_add", number, {})
    return json_response({"number": number, "listed": True}, status=201)


@endpoint("Remove a number from the do-not-call list", body=NoCallBody, response=Answer)
@requires(SUPERVISOR, ADMIN)
async def remove_no_call(request: web.Request) -> web.Response:
    number = _no_call_number((await parse_body(request, NoCallBody)).number)
    async with request.app[keys.DATABASE].write() as conn:
        await conn.execute(delete(NoCallRow).where(NoCallRow.number == number))
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "no_call_remove", number, {})
    return json_response({"number": number, "listed": False})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/callbacks", list_tasks)
    app.router.add_post("/api/callbacks/requests", queue_request)
    app.router.add_post("/api/callbacks/{task}/place", place)
    app.router.add_post("/api/callbacks/{task}/cancel", cancel)
    app.router.add_post("/api/callbacks/{task}/result", enter_result)
    app.router.add_get("/api/calls/{linkedid}/rating", rating)
    app.router.add_get("/api/work-orders/{ticket}/callbacks", order_callbacks)
    app.router.add_post("/api/no-call", add_no_call)
    app.router.add_delete("/api/no-call", remove_no_call)

"""Thin views of the closed loop: the order with its parts and history, dispatch, a handler's steps,
the follow-up (callback, close, reopen), merging repeats, and a department's own list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from app import keys
from app.auth import DEPARTMENT, OPERATOR, READERS, SERVICE, SUPERVISOR, requires
from app.endpoint import endpoint
from app.errors import (
    ExtensionTooLong,
    Forbidden,
    InvalidTicket,
    InvalidTransition,
    PartNotFound,
    ReturnWindowClosed,
    StaleWorkOrder,
    UnknownHandler,
    WorkOrderNotFound,
)
from app.http_util import check_query, json_response, parse_body, parse_query, part_number, ticket
from app.work_orders.lifecycle import Step
from app.work_orders.loop import StepInput
from app.work_orders.loop_schemas import (
    CloseBody,
    DispatchBody,
    ExtensionBody,
    HandlerOrdersAnswer,
    HandlerOrdersQuery,
    HandlersAnswer,
    LoopOrderAnswer,
    MergeBody,
    NoteBody,
    ReopenBody,
    RepeatsAnswer,
    ReplyBody,
    ReturnBody,
)

MOVE_ERRORS = (InvalidTicket, WorkOrderNotFound, InvalidTransition, StaleWorkOrder)
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _audit(request: web.Request) -> Any:
    return request.app[keys.CALLS].audit_in


@endpoint(
    "A work order with its parts, history and deadline alerts (audited; departments: theirs only)",
    response=LoopOrderAnswer,
    errors=(InvalidTicket, WorkOrderNotFound),
)
@requires(*READERS, DEPARTMENT)
async def get_work_order(request: web.Request) -> web.Response:
    number = ticket(request)
    check_query(request, set())
    loop = request.app[keys.LOOP]
    return json_response(await loop.get(number, request[keys.PRINCIPAL], _audit(request)))


@endpoint(
    "派单 / 改派: dispatch the order to handlers, each its own part and deadline",
    body=DispatchBody,
    response=LoopOrderAnswer,
    errors=(*MOVE_ERRORS, UnknownHandler),
)
@requires(OPERATOR, SUPERVISOR)
async def dispatch(request: web.Request) -> web.Response:
    number = ticket(request)
    body = await parse_body(request, DispatchBody)
    handlers = [str(h) for h in body.handlers]
    return json_response(
        await request.app[keys.LOOP].dispatch(number, handlers, body.note, request[keys.PRINCIPAL])
    )


def _order_step(
    name: str,
    summary: str,
    body_model: Any,
    roles: tuple[str, ...],
    act: Callable[[Any, str, Any, Any], Awaitable[dict[str, Any]]],
) -> Handler:
    @endpoint(
        summary,
        body=body_model,
        body_optional=body_model is NoteBody,
        response=LoopOrderAnswer,
        errors=(*MOVE_ERRORS, Forbidden),
    )
    @requires(*roles)
    async def view(request: web.Request) -> web.Response:
        number = ticket(request)
        check_query(request, set())
        body = await parse_body(request, body_model, optional=body_model is NoteBody)
        return json_response(await act(request.app[keys.LOOP], number, body, request[keys.PRINCIPAL]))

    view.__name__ = view.__qualname__ = name  # the OpenAPI operation id
    return view


resolve_on_call = _order_step(
    "resolve_on_call",
    "直接答复: answered in the call, closed without dispatch",
    NoteBody,
    (OPERATOR, SUPERVISOR),
    lambda loop, t, b, who: loop.resolve_on_call(t, b.note, who),
)
start_callback = _order_step(
    "start_callback",
    "回访: the callback of a replied order starts",
    NoteBody,
    (OPERATOR, SUPERVISOR, SERVICE),
    lambda loop, t, b, who: loop.start_callback(t, b.note, who),
)
close = _order_step(
    "close",
    "After the callback: satisfied closes (办结归档); not satisfied reopens (重办)",
    CloseBody,
    (OPERATOR, SUPERVISOR, SERVICE),
    lambda loop, t, b, who: loop.close(t, b.satisfied, b.note, who),
)
reopen = _order_step(
    "reopen",
    "重办: a supervisor found the reply poor; every replied part is reopened",
    ReopenBody,
    (SUPERVISOR,),
    lambda loop, t, b, who: loop.reopen(t, b.note, who),
)
merge = _order_step(
    "merge",
    "并单: the order repeats an open one and is merged into it",
    MergeBody,
    (OPERATOR, SUPERVISOR),
    lambda loop, t, b, who: loop.merge(t, b.into, b.note, who),
)


def _part_step(
    name: str,
    summary: str,
    step: Step,
    body_model: Any,
    roles: tuple[str, ...],
    to_input: Callable[[Any], StepInput],
    errors: tuple[Any, ...] = (),
) -> Handler:
    @endpoint(
        summary,
        body=body_model,
        body_optional=body_model is NoteBody,
        response=LoopOrderAnswer,
        errors=(*MOVE_ERRORS, PartNotFound, Forbidden, *errors),
    )
    @requires(*roles)
    async def view(request: web.Request) -> web.Response:
        number, no = ticket(request), part_number(request)
        check_query(request, set())
        body = await parse_body(request, body_model, optional=body_model is NoteBody)
        loop = request.app[keys.LOOP]
        return json_response(await loop.part_step(number, no, step, to_input(body), request[keys.PRINCIPAL]))

    view.__name__ = view.__qualname__ = name  # the OpenAPI operation id
    return view


HANDLING = (DEPARTMENT, OPERATOR, SUPERVISOR)  # operators: on the part the other platform handed here
sign = _part_step(
    "sign",
    "签收: the handler signs for its part",
    Step.SIGN,
    NoteBody,
    HANDLING,
    lambda b: StepInput(note=b.note),
)
progress = _part_step(
    "progress",
    "办理: the handler reports progress",
    Step.PROGRESS,
    NoteBody,
    HANDLING,
    lambda b: StepInput(note=b.note),
)
reply = _part_step(
    "reply",
    "答复: the handler replies with the result",
    Step.REPLY,
    ReplyBody,
    HANDLING,
    lambda b: StepInput(note=b.note, result=b.result),
)
ask_extension = _part_step(
    "ask_extension",
    "申请延期: the handler asks for more working days",
    Step.REQUEST_EXTENSION,
    ExtensionBody,
    HANDLING,
    lambda b: StepInput(extension_wd=b.working_days, reason=b.reason),
    (ExtensionTooLong,),
)
give_back = _part_step(
    "give_back",
    "回退: the handler returns its part, with the reason and the legal basis",
    Step.RETURN,
    ReturnBody,
    HANDLING,
    lambda b: StepInput(reason=b.reason, basis=b.basis, suggested_handler=b.suggested_handler),
    (ReturnWindowClosed,),
)
approve_extension = _part_step(
    "approve_extension",
    "A supervisor approves the extension asked for",
    Step.APPROVE_EXTENSION,
    NoteBody,
    (SUPERVISOR,),
    lambda b: StepInput(note=b.note),
)
refuse_extension = _part_step(
    "refuse_extension",
    "A supervisor refuses the extension asked for",
    Step.REFUSE_EXTENSION,
    NoteBody,
    (SUPERVISOR,),
    lambda b: StepInput(note=b.note),
)


@endpoint(
    "Open orders this one may repeat (并单 candidates: same caller or address, same category)",
    response=RepeatsAnswer,
    errors=(InvalidTicket, WorkOrderNotFound),
)
@requires(OPERATOR, SUPERVISOR)
async def repeats(request: web.Request) -> web.Response:
    number = ticket(request)
    check_query(request, set())
    loop = request.app[keys.LOOP]
    return json_response(await loop.repeat_candidates(number, request[keys.PRINCIPAL], _audit(request)))


@endpoint(
    "A department's own orders, newest dispatch first (caller numbers masked; audited)",
    query=HandlerOrdersQuery,
    response=HandlerOrdersAnswer,
)
@requires(DEPARTMENT)
async def my_orders(request: web.Request) -> web.Response:
    q = parse_query(request, HandlerOrdersQuery)
    loop = request.app[keys.LOOP]
    states = (q.state,) if q.state else ()
    return json_response(await loop.for_handler(request[keys.PRINCIPAL], states, q.limit, _audit(request)))


@endpoint(
    "The handlers a matter can be dispatched to (site.toml [[handlers]] and the other platform)",
    response=HandlersAnswer,
)
@requires(*READERS, DEPARTMENT)
async def list_handlers(request: web.Request) -> web.Response:
    check_query(request, set())
    return json_response({"handlers": [h.to_json() for h in request.app[keys.LOOP].handlers.all()]})


def setup_routes(app: web.Application) -> None:
    base = "/api/work-orders/{ticket}"
    app.router.add_get(base, get_work_order)
    app.router.add_get(f"{base}/repeats", repeats)
    for name, view in (
        ("dispatch", dispatch),
        ("resolve-on-call", resolve_on_call),
        ("callback", start_callback),
        ("close", close),
        ("reopen", reopen),
        ("merge", merge),
    ):
        app.router.add_post(f"{base}/{name}", view)
    for name, view in (
        ("sign", sign),
        ("progress", progress),
        ("reply", reply),
        ("extension", ask_extension),
        ("return", give_back),
        ("extension/approve", approve_extension),
        ("extension/refuse", refuse_extension),
    ):
        app.router.add_post(f"{base}/parts/{{part}}/{name}", view)
    app.router.add_get("/api/handler/orders", my_orders)
    app.router.add_get("/api/handlers", list_handlers)

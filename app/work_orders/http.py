"""Thin views for work orders: read one, list, confirm (with corrections), list the corrections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from app import keys
from app.auth import ADMIN, OPERATOR, READERS, SUPERVISOR, requires
from app.endpoint import endpoint
from app.errors import (
    ApiError,
    InvalidCorrection,
    InvalidTicket,
    ValidationFailed,
    WorkOrderAlreadyConfirmed,
    WorkOrderNotFound,
)
from app.http_util import call_id, check_query, json_response, parse_body, parse_query, ticket
from app.work_orders.schemas import (
    ConfirmAnswer,
    ConfirmBody,
    CorrectionList,
    CorrectionsQuery,
    WorkOrderAnswer,
    WorkOrderList,
    WorkOrdersQuery,
)
from app.work_orders.services import CorrectionFilter, WorkOrderFilter


def _corrections_at_fault(errors: Sequence[Any]) -> type[ApiError]:
    return InvalidCorrection if errors and all(e["loc"][:1] == ("corrections",) for e in errors) \
        else ValidationFailed


@endpoint("The call's work order (audited)", response=WorkOrderAnswer, errors=(WorkOrderNotFound,))
@requires(*READERS)
async def get_call_work_order(request: web.Request) -> web.Response:
    linkedid = call_id(request)
    check_query(request, set())
    return json_response(await request.app[keys.WORK_ORDERS].get(linkedid, request[keys.PRINCIPAL]))


@endpoint("List work orders, newest first (audited)", query=WorkOrdersQuery, response=WorkOrderList)
@requires(SUPERVISOR, ADMIN)
async def list_work_orders(request: web.Request) -> web.Response:
    q = parse_query(request, WorkOrdersQuery)
    f = WorkOrderFilter(q.status, q.service.value if q.service else None, q.limit)
    return json_response(await request.app[keys.WORK_ORDERS].list(f, request[keys.PRINCIPAL]))


@endpoint("Confirm a draft work order, with the operator's corrections (draft -> confirmed, once)",
          body=ConfirmBody, body_optional=True, response=ConfirmAnswer,
          errors=(InvalidTicket, InvalidCorrection, WorkOrderNotFound, WorkOrderAlreadyConfirmed))
@requires(OPERATOR, SUPERVISOR)
async def confirm_work_order(request: web.Request) -> web.Response:
    number = ticket(request)
    check_query(request, set())
    body = await parse_body(request, ConfirmBody, classify=_corrections_at_fault, optional=True)
    result = await request.app[keys.WORK_ORDERS].confirm(number, body.corrections, request[keys.PRINCIPAL])
    return json_response(result)


@endpoint("The corrections operators made, newest first (audited)", query=CorrectionsQuery,
          response=CorrectionList)
@requires(SUPERVISOR, ADMIN)
async def list_corrections(request: web.Request) -> web.Response:
    q = parse_query(request, CorrectionsQuery)
    f = CorrectionFilter(q.ticket, q.field, q.limit)
    return json_response(await request.app[keys.WORK_ORDERS].corrections(f, request[keys.PRINCIPAL]))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/calls/{linkedid}/work-order", get_call_work_order)
    app.router.add_get("/api/work-orders", list_work_orders)
    app.router.add_get("/api/work-orders/corrections", list_corrections)
    app.router.add_post("/api/work-orders/{ticket}/confirm", confirm_work_order)

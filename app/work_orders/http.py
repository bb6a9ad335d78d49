"""Thin views for work orders: read one, list, confirm (with corrections), list the corrections."""

from __future__ import annotations

import re

from aiohttp import web

from app import keys
from app.auth import ADMIN, OPERATOR, READERS, SUPERVISOR, requires
from app.errors import WorkOrderNotFound
from app.http_util import call_id, check_query, json_response, parse_int, read_json
from app.validation import Problem, fail
from app.work_orders import corrections
from app.work_orders.services import CorrectionFilter, WorkOrderFilter
from app.work_orders.store import STATUSES
from hotline.contracts import Service

MAX_LIMIT = 500
TICKET_RE = re.compile(r"^[0-9A-Za-z-]{1,32}$")


@requires(*READERS)
async def get_call_work_order(request: web.Request) -> web.Response:
    linkedid = call_id(request)
    check_query(request, set())
    return json_response(await request.app[keys.WORK_ORDERS].get(linkedid, request[keys.PRINCIPAL]))


@requires(SUPERVISOR, ADMIN)
async def list_work_orders(request: web.Request) -> web.Response:
    q = request.query
    check_query(request, {"status", "service", "limit"})
    problems: list[Problem] = []
    status, service = q.get("status"), q.get("service")
    if status is not None and status not in STATUSES:
        problems.append(Problem("status", " or ".join(STATUSES)))
    if service is not None and service not in (s.value for s in Service):
        problems.append(Problem("service", "'12345' or '110'"))
    limit = parse_int("limit", q.get("limit"), 100, 1, MAX_LIMIT, problems)
    fail(problems)
    f = WorkOrderFilter(status, service, limit)
    return json_response(await request.app[keys.WORK_ORDERS].list(f, request[keys.PRINCIPAL]))


@requires(OPERATOR, SUPERVISOR)
async def confirm_work_order(request: web.Request) -> web.Response:
    ticket = request.match_info["ticket"]
    if not TICKET_RE.fullmatch(ticket):
        raise WorkOrderNotFound(details={"ticket": ticket[:32]})
    check_query(request, set())
    raw = corrections.parse_confirm_body(await read_json(request) if request.can_read_body else None)
    result = await request.app[keys.WORK_ORDERS].confirm(ticket, raw, request[keys.PRINCIPAL])
    return json_response(result)


@requires(SUPERVISOR, ADMIN)
async def list_corrections(request: web.Request) -> web.Response:
    q = request.query
    check_query(request, {"ticket", "field", "limit"})
    problems: list[Problem] = []
    ticket, field = q.get("ticket"), q.get("field")
    if ticket is not None and not TICKET_RE.fullmatch(ticket):
        problems.append(Problem("ticket", "a ticket number"))
    if field is not None and field not in corrections.FIELDS:
        problems.append(Problem("field", f"one of {', '.join(corrections.FIELDS)}"))
    limit = parse_int("limit", q.get("limit"), 100, 1, MAX_LIMIT, problems)
    fail(problems)
    f = CorrectionFilter(ticket, field, limit)
    return json_response(await request.app[keys.WORK_ORDERS].corrections(f, request[keys.PRINCIPAL]))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/calls/{linkedid}/work-order", get_call_work_order)
    app.router.add_get("/api/work-orders", list_work_orders)
    app.router.add_get("/api/work-orders/corrections", list_corrections)
    app.router.add_post("/api/work-orders/{ticket}/confirm", confirm_work_order)

"""The console's own API: who am I, the operator's desk, the supervisor's wallboard, KPIs and reports,
seats' ready/paused state, and the admin's accounts and Asterisk buttons.

Pages (:mod:`app.console.pages`) call these with the session's cookie and its CSRF token; a script
may call them with a bearer token. Scope follows the person: an operator sees their own seat's
calls, a supervisor bound to a platform that platform's floor and figures, an admin everything;
numbers on the floor are masked (:func:`app.console.floor.floor_event`). Every read of caller data
is audited with the person's name.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import Field, StrictBool
from sqlalchemy import select

from app import keys
from app.accounts.store import PERSON_ROLES, AccountError
from app.auth import ADMIN, DEPARTMENT, OPERATOR, READERS, SUPERVISOR, Principal, requires
from app.callbacks.store import PLACING, SCHEDULED
from app.calls.services import in_scope
from app.console.floor import alerts_and_late, live_calls, queue_rows, seat_rows
from app.endpoint import endpoint
from app.errors import ApiError, FlowsUnavailable, Forbidden, UnknownCall
from app.flows_api import FLOW_REFUSALS, refusal
from app.http_util import call_id, check_query, json_response, parse_body, parse_query
from app.models import Call, CallbackTaskRow, WorkOrderRow
from app.reports.kpis import DEFINITIONS, Period, compute, period_of
from app.schemas import Answer, Body
from app.transcripts.live import WebSocketRequired, stream
from app.work_orders.dispatch import known_districts
from hotline.phone import mask_number
from hotline.platforms import Service
from hotline.redis_keys import EVENTS_CHANNEL
from hotline.types import SEAT_RE, SeatId, Text

log = logging.getLogger(__name__)

TZ = "Asia/Shanghai"
HEARTBEAT_S = 30.0
OPEN_ORDER_STATES = ("draft", "accepted", "dispatched", "replied", "callback", "reopened")


class AccountRefused(ApiError):
    status, error_id, message = 400, "account_refused", "the account request cannot be done"


class AccountUnknown(ApiError):
    status, error_id, message = 404, "unknown_account", "no account with this login"


class SeatNotYours(ApiError):
    status, error_id, message = 403, "seat_not_yours", "an operator pauses and readies their own seat only"


class AdminOpsUnavailable(ApiError):
    status, error_id, message = 503, "admin_ops_unavailable", "Asterisk is not run by this process"


# --- who am I --------------------------------------------------------------------------------------
class Me(Answer):
    name: str
    role: str
    display_name: str | None
    platform: str | None
    seat: str | None
    handler: str | None


@endpoint("Who is calling: the person (or token) behind this request", response=Me)
@requires(*READERS, DEPARTMENT)
async def me(request: web.Request) -> web.Response:
    p = request[keys.PRINCIPAL]
    return json_response({"name": p.name, "role": p.role, "display_name": p.display_name,
                          "platform": p.platform, "seat": p.seat, "handler": p.handler})


# --- seats: ready / paused -------------------------------------------------------------------------
class PauseBody(Body):
    paused: StrictBool
    reason: Text(32) = ""  # type: ignore[valid-type]  # 小休, 培训, 就餐 ... (shown on the wallboard)


class PauseAnswer(Answer):
    seat: str
    paused: bool
    reason: str


@endpoint("Ready (示闲) or pause (示忙) a seat in all its queues: a paused seat is not rung", body=PauseBody,
          response=PauseAnswer, errors=(SeatNotYours, FlowsUnavailable), passes_on=("flows",))
@requires(OPERATOR, SUPERVISOR, ADMIN)
async def pause_seat(request: web.Request) -> web.Response:
    seat = request.match_info["seat"]
    if not SEAT_RE.fullmatch(seat):
        raise Forbidden("not a seat of this site")
    who = request[keys.PRINCIPAL]
    if who.role == OPERATOR and who.session and who.seat != seat:
        raise SeatNotYours(details={"seat": seat, "yours": who.seat})
    body = await parse_body(request, PauseBody)
    flows = request.app.get(keys.FLOWS)
    if flows is None:
        raise FlowsUnavailable()
    reason_text = " ".join(body.reason.split())
    try:
        await flows.pause(seat, body.paused, reason_text)
    except FLOW_REFUSALS as exc:
        raise refusal(exc) from None
    except (TimeoutError, ConnectionError) as exc:  # Asterisk slow or reconnecting: nothing changed
        raise FlowsUnavailable(f"Asterisk did not answer: {exc!r}") from None
    await request.app[keys.CALLS].audit(who, "seat_pause" if body.paused else "seat_ready", seat,
                                        {"reason": reason_text})
    return json_response({"seat": seat, "paused": body.paused, "reason": reason_text})


# --- the wallboard ---------------------------------------------------------------------------------
def _floor_scope(who: Principal) -> str | None:
    """The platform whose floor a person sees: their own when bound to one, else all (None)."""
    return who.platform if who.session else None


# Asterisk cannot say how the floor is: the wallboard shows the rest, the seats as "unknown"
FLOOR_TROUBLE: tuple[type[Exception], ...] = (*FLOW_REFUSALS, FlowsUnavailable, ConnectionError, TimeoutError)


async def _floor(app: web.Application) -> dict[str, Any] | None:
    flows = app.get(keys.FLOWS)
    if flows is None:
        return None
    try:
        return await flows.floor()
    except FLOOR_TROUBLE as exc:
        log.info("wallboard without queue status: %s", exc)
        return None


async def _users_by_seat(app: web.Application) -> dict[str, str]:
    """seat -> the name of the person logged in to the console on it (a live session)."""
    store = app[keys.ACCOUNTS]
    live = await store.logged_in()
    return {a.seat: a.display_name for a in await store.all()
            if a.seat and not a.disabled and a.login in live}


async def wallboard_snapshot(app: web.Application, who: Principal) -> dict[str, Any]:
    service = _floor_scope(who)
    redis = app[keys.REDIS].client
    floor_task = asyncio.create_task(_floor(app))
    try:
        calls = await live_calls(redis)
    except Exception as exc:  # noqa: BLE001 - the wallboard still shows the rest
        log.warning("wallboard without live calls: %s", exc)
        calls = []
    floor = await floor_task
    if service:
        calls = [c for c in calls if c["service"] == service]
    seats = seat_rows(app[keys.SITE], floor, calls, await _users_by_seat(app))
    if service:
        seats = [s for s in seats if s["platform"] in (service, None)]
    kpis = await _today_kpis(app, service)
    return {"type": "snapshot", "at": time.time(), "service": service, "calls": calls,
            "queues": queue_rows(floor), "seats": seats, "asterisk": floor is not None,
            "kpis": kpis, **await alerts_and_late(app[keys.DATABASE], service)}


KPI_CACHE = web.AppKey("console_kpi_cache", dict)
KPI_TTL_S = 5.0  # every open wallboard reads today's KPIs; one computation per scope serves them all


async def _today_kpis(app: web.Application, service: str | None) -> dict[str, Any]:
    cache: dict[str | None, tuple[float, dict[str, Any]]] = app[KPI_CACHE]
    hit = cache.get(service)
    if hit is not None and time.monotonic() - hit[0] < KPI_TTL_S:
        return hit[1]
    today = period_of("day", dt.datetime.now(ZoneInfo(TZ)).date(), TZ)
    kpis = await compute(app[keys.DATABASE], today, service,
                         districts=known_districts(app[keys.SITE].phrases))
    cache[service] = (time.monotonic(), kpis)
    return kpis


@endpoint("The wallboard's data now: live calls, queues, seats, today's KPIs, alerts, late orders")
@requires(SUPERVISOR, ADMIN)
async def wallboard(request: web.Request) -> web.Response:
    # Numbers on the floor are masked; opening the wallboard's socket is audited, not every refresh
    # (50 wallboards every 15 s would write 288,000 audit rows a day saying the same).
    return json_response(await wallboard_snapshot(request.app, request[keys.PRINCIPAL]))


@endpoint("The wallboard over WebSocket: a snapshot, then every call event (numbers masked)",
          websocket=True, errors=(WebSocketRequired,))
@requires(SUPERVISOR, ADMIN)
async def wallboard_live(request: web.Request) -> web.StreamResponse:
    who = request[keys.PRINCIPAL]
    service = _floor_scope(who)
    accept = (lambda ev: ev.get("service") in (service, None)) if service else None
    check_query(request, set())
    return await stream(request, EVENTS_CHANNEL, "watch_floor", "floor",
                        lambda: wallboard_snapshot(request.app, who), accept=accept)


# --- the operator's desk ---------------------------------------------------------------------------
def _my_seat(who: Principal) -> str:
    if not who.seat:
        raise Forbidden("this account has no seat")
    return who.seat


@endpoint("The operator's desk now: seat state, my live call, open orders and callback tasks")
@requires(OPERATOR)
async def desk(request: web.Request) -> web.Response:
    who = request[keys.PRINCIPAL]
    return json_response(await desk_snapshot(request.app, who))


async def desk_snapshot(app: web.Application, who: Principal) -> dict[str, Any]:
    seat = _my_seat(who)
    floor = await _floor(app)
    try:
        calls = [c for c in await live_calls(app[keys.REDIS].client) if c.get("seat") == seat]
    except Exception as exc:  # noqa: BLE001
        log.warning("desk without live calls: %s", exc)
        calls = []
    row = next((s for s in seat_rows(app[keys.SITE], floor, calls, {}) if s["seat"] == seat), None)
    db = app[keys.DATABASE]
    w, t = WorkOrderRow, CallbackTaskRow
    async with db.read() as conn:
        orders = (await conn.execute(
            select(w.ticket, w.status, w.category_name, w.summary, w.created_at, w.linkedid)
            .where(w.confirmed_by == who.name, w.status.in_(OPEN_ORDER_STATES))
            .order_by(w.created_at.desc()).limit(50))).mappings().all()
        tasks = (await conn.execute(
            select(t.id, t.kind, t.state, t.due_at, t.ticket, t.number, t.attempts)
            .where(t.seat == seat, t.state.in_((SCHEDULED, PLACING)))
            .order_by(t.due_at).limit(50))).mappings().all()
    return {"type": "snapshot", "seat": seat, "platform": who.platform, "state": row,
            "asterisk": floor is not None, "calls": calls,
            "orders": [dict(o) for o in orders],
            "callbacks": [{**dict(x), "number": mask_number(x["number"])} for x in tasks]}


@endpoint("The desk over WebSocket: a snapshot, then the events of calls on my seat", websocket=True,
          errors=(WebSocketRequired,))
@requires(OPERATOR)
async def desk_live(request: web.Request) -> web.StreamResponse:
    who = request[keys.PRINCIPAL]
    seat = _my_seat(who)

    followed: dict[str, None] = {}  # calls that rang or reached my seat: all their events follow

    def mine(ev: dict[str, Any]) -> bool:
        linkedid = str(ev.get("linkedid"))
        if ev.get("seat") == seat or (ev.get("data") or {}).get("seat") == seat:
            followed[linkedid] = None
            while len(followed) > 20:
                del followed[next(iter(followed))]
        return linkedid in followed

    check_query(request, set())
    return await stream(request, EVENTS_CHANNEL, "watch_desk", seat, lambda: desk_snapshot(request.app, who),
                        accept=mine)


class CallerAnswer(Answer):
    linkedid: str
    caller: str | None
    calls_24h: int
    recent: list[dict[str, Any]]
    open_orders: list[dict[str, Any]]
    harassment: bool | None


@endpoint("Who is calling: the caller's calls in 24 h, open orders and harassment flag (audited)",
          response=CallerAnswer, errors=(UnknownCall,))
@requires(OPERATOR, SUPERVISOR, ADMIN)
async def caller_history(request: web.Request) -> web.Response:
    linkedid = call_id(request)
    who = request[keys.PRINCIPAL]
    db = request.app[keys.DATABASE]
    row = await request.app[keys.CALLS].exists(linkedid)
    if row is None or not in_scope(who, row):
        raise UnknownCall(details={"linkedid": linkedid})
    number = row.get("caller")
    since = time.time() - 86400
    recent: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    listed: bool | None = None
    if number and number != "anonymous":
        async with db.read() as conn:
            recent = [dict(r) for r in (await conn.execute(
                select(Call.linkedid, Call.service, Call.arrived_at, Call.outcome, Call.seat)
                .where(Call.caller == number, Call.arrived_at >= since, Call.linkedid != linkedid)
                .order_by(Call.arrived_at.desc()).limit(20))).mappings()]
            orders = [dict(r) for r in (await conn.execute(
                select(WorkOrderRow.ticket, WorkOrderRow.status, WorkOrderRow.category_name,
                       WorkOrderRow.summary, WorkOrderRow.created_at)
                .where(WorkOrderRow.caller == number, WorkOrderRow.status.in_(OPEN_ORDER_STATES))
                .order_by(WorkOrderRow.created_at.desc()).limit(20))).mappings()]
        try:
            listed = await request.app[keys.HARASSMENT].listed(number)
        except Exception:  # noqa: BLE001 - Redis down: unknown, not "no"
            listed = None
    await request.app[keys.CALLS].audit(who, "read_caller", linkedid, {"calls_24h": len(recent)})
    return json_response({"linkedid": linkedid, "caller": number, "calls_24h": len(recent), "recent": recent,
                          "open_orders": orders, "harassment": listed})


# --- KPIs and reports -------------------------------------------------------------------------------
class KpiQuery(Body):
    period: Literal["day", "week", "month"] = "day"
    date: dt.date | None = Field(None, description="a day in the period (default: today, Asia/Shanghai)")
    service: Service | None = None


class ReportQuery(KpiQuery):
    format: Literal["csv", "xlsx"] = "csv"


def _period(q: KpiQuery, who: Principal) -> tuple[Period, str | None]:
    day = q.date or dt.datetime.now(ZoneInfo(TZ)).date()
    service = q.service.value if q.service else None
    bound = _floor_scope(who)
    if bound and service not in (None, bound):
        raise Forbidden(f"this account sees platform {bound}'s figures only")
    return period_of(q.period, day, TZ), service or bound


@endpoint("The KPIs of a day, week or month, with their definitions", query=KpiQuery)
@requires(SUPERVISOR, ADMIN)
async def kpis(request: web.Request) -> web.Response:
    q = parse_query(request, KpiQuery)
    period, service = _period(q, request[keys.PRINCIPAL])
    return json_response(await compute(request.app[keys.DATABASE], period, service,
                                       districts=known_districts(request.app[keys.SITE].phrases)))


REPORT_ROWS = ("offered", "answered", "answer_rate", "answered_15s", "answer_15s_rate", "abandoned",
               "abandon_rate", "avg_wait_s", "avg_handle_s", "transfers_to_110", "transfers_to_12345",
               "transfer_ring_p50_ms", "three_way", "emergency_linked", "resolved_on_call",
               "first_time_rate", "sign_on_time_rate", "reply_on_time_rate", "return_rate", "reopen_rate",
               "satisfaction_rate", "survey_satisfaction_rate", "survey_resolved_rate")


@endpoint("The period's KPI report for the monthly 通报, as CSV or Excel (xlsx)", query=ReportQuery)
@requires(SUPERVISOR, ADMIN)
async def report(request: web.Request) -> web.StreamResponse:
    q = parse_query(request, ReportQuery)
    period, service = _period(q, request[keys.PRINCIPAL])
    data = await compute(request.app[keys.DATABASE], period, service,
                         districts=known_districts(request.app[keys.SITE].phrases))
    figures = data["figures"]
    rows = [(k, figures.get(k), DEFINITIONS.get(k, "")) for k in REPORT_ROWS]
    hourly = [(h["hour"], h["offered"], h["answered"], h["answered_15s"], h["answer_15s_rate"])
              for h in data["hourly"]]
    topics = [(t["key"], t["name"], t["count"], t["baseline"], "突发" if t["rise"] else "")
              for t in (data["hot_topics"] or {}).get("categories", [])]
    name = f"kpi-{service or 'all'}-{period.label}"
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "export_report", name, {"format": q.format})
    if q.format == "csv":
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(["指标", "数值", "定义"])
        out.writerows(rows)
        out.writerow([])
        out.writerow(["小时", "呼入", "接听", "15秒接听", "15秒接通率"])
        out.writerows(hourly)
        out.writerow([])
        out.writerow(["类别", "名称", "数量", "近4周基线", "预警"])
        out.writerows(topics)
        body = ("\ufeff" + buf.getvalue()).encode("utf-8")  # the BOM lets Excel read UTF-8 CSV
        ctype = "text/csv; charset=utf-8"
    else:
        body = await asyncio.to_thread(_xlsx, rows, hourly, topics, period.label)
        ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(body=body, headers={
        "Content-Type": ctype, "Content-Disposition": f'attachment; filename="{name}.{q.format}"'})


def _xlsx(rows: list[tuple[Any, ...]], hourly: list[tuple[Any, ...]], topics: list[tuple[Any, ...]],
          label: str) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "指标"
    ws.append(["指标", "数值", "定义"])
    for r in rows:
        ws.append(list(r))
    for title, head, data in (("按小时", ["小时", "呼入", "接听", "15秒接听", "15秒接通率"], hourly),
                              ("热点", ["类别", "名称", "数量", "近4周基线", "预警"], topics)):
        sheet = wb.create_sheet(title)
        sheet.append(head)
        for r in data:
            sheet.append(list(r))
    wb.properties.title = f"12345/110 KPI {label}"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- admin: accounts --------------------------------------------------------------------------------
class UserBody(Body):
    login: Text(32, min_length=2)  # type: ignore[valid-type]
    password: Text(256, min_length=1)  # type: ignore[valid-type]
    role: Literal["operator", "supervisor", "admin", "department"]
    display_name: Text(64) | None = None  # type: ignore[valid-type]
    platform: Service | None = None
    seat: SeatId | None = None
    handler: Text(32) | None = None  # type: ignore[valid-type]


class UserChange(Body):
    disabled: StrictBool | None = None
    password: Text(256, min_length=1) | None = None  # type: ignore[valid-type]


@endpoint("Every console account (admin)")
@requires(ADMIN)
async def list_users(request: web.Request) -> web.Response:
    return json_response({"users": [a.to_json() for a in await request.app[keys.ACCOUNTS].all()],
                          "roles": list(PERSON_ROLES)})


@endpoint("Add a console account (admin)", body=UserBody, status=201, errors=(AccountRefused,))
@requires(ADMIN)
async def add_user(request: web.Request) -> web.Response:
    b = await parse_body(request, UserBody)
    try:
        account = await request.app[keys.ACCOUNTS].add(
            b.login, b.password, b.role, display_name=b.display_name,
            platform=b.platform.value if b.platform else None, seat=b.seat, handler=b.handler)
    except AccountError as exc:
        raise AccountRefused(str(exc)) from None
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "user_add", b.login, {"role": b.role})
    return json_response(account.to_json(), status=201)


@endpoint("Disable, enable or set the password of an account (admin); its sessions end",
          body=UserChange, errors=(AccountRefused, AccountUnknown))
@requires(ADMIN)
async def change_user(request: web.Request) -> web.Response:
    login = request.match_info["login"]
    b = await parse_body(request, UserChange)
    store = request.app[keys.ACCOUNTS]
    if await store.get(login) is None:
        raise AccountUnknown(details={"login": login[:32]})
    try:
        if b.password is not None:
            await store.set_password(login, b.password)
        if b.disabled is not None:
            await store.set_disabled(login, b.disabled)
    except AccountError as exc:
        raise AccountRefused(str(exc)) from None
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], "user_change", login,
                                        {"disabled": b.disabled, "password": b.password is not None})
    account = await store.get(login)
    assert account is not None
    return json_response(account.to_json())


# --- admin: the site and Asterisk -------------------------------------------------------------------
@endpoint("The site as rendered: numbers, seats, queues, linkage destinations (admin)")
@requires(ADMIN)
async def admin_site(request: web.Request) -> web.Response:
    site = request.app[keys.SITE]
    return json_response({
        "name": site.name,
        "numbers": {k.value: list(v) for k, v in site.numbers.items()},
        "operators": {k.value: list(v) for k, v in site.operators.items()},
        "linkage_seats": {k.value: list(v) for k, v in site.linkage.items()},
        "supervisors": list(site.supervisors),
        "queues": {"ring_seat_s": site.ring_seat_s, "retry_s": site.retry_s},
        "linkage": dict(site.linkage_dial),
        "feature_codes": site.feature_codes, "supervisor_codes": site.supervisor_codes,
        "handlers": [{"id": h.id, "name": h.name, "kind": h.kind} for h in site.handlers],
    })


@endpoint("Run an Asterisk admin action: dialplan check or reload (admin)",
          errors=(AdminOpsUnavailable,))
@requires(ADMIN)
async def admin_action(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    ops = request.app.get(keys.ADMIN_OPS)
    if ops is None:
        raise AdminOpsUnavailable()
    started = time.monotonic()
    if action == "dialplan-check":
        problems = await asyncio.to_thread(ops.check_dialplan)
        result: dict[str, Any] = {"ok": not problems, "output": problems or ["dialplan OK"]}
    else:  # dialplan-reload: the route admits only these two
        modules = await ops.reload()
        result = {"ok": all(v == "Success" for v in modules.values()),
                  "output": [f"{m}: {v}" for m, v in modules.items()]}
    result["seconds"] = round(time.monotonic() - started, 2)
    await request.app[keys.CALLS].audit(request[keys.PRINCIPAL], f"admin_{action}", "asterisk",
                                        {"ok": result["ok"]})
    return json_response(result)


def setup_routes(app: web.Application) -> None:
    app[KPI_CACHE] = {}
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/seats/{seat}/pause", pause_seat)
    app.router.add_get("/api/wallboard", wallboard)
    app.router.add_get("/api/wallboard/live", wallboard_live)
    app.router.add_get("/api/desk", desk)
    app.router.add_get("/api/desk/live", desk_live)
    app.router.add_get("/api/calls/{linkedid}/caller", caller_history)
    app.router.add_get("/api/kpis", kpis)
    app.router.add_get("/api/reports/kpis", report)
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", add_user)
    app.router.add_patch("/api/users/{login}", change_user)
    app.router.add_get("/api/admin/site", admin_site)
    app.router.add_post("/api/admin/{action:dialplan-check|dialplan-reload}", admin_action)

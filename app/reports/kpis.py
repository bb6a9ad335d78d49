"""The hotline's KPIs, computed from what was recorded, each with its published definition.

One function, :func:`compute`, reads a period's calls (``calls``: the summary of each call's events),
transfer events (``call_events``), work-order parts and history, and returns figures and their
definitions; the wallboard, the reports (CSV, Excel) and ``GET /api/kpis`` all use it, so a figure
on the wall is the figure in the monthly 通报.

- Calls a phone places itself (a supervisor's listen leg, an echo test, an outbound callback) have no
  platform and are not counted; ``service`` narrows to one platform's calls.
- Rates are ``null`` when their denominator is 0 (no calls is not 100% answered).
- Days, hours and weeks are those of the site's time zone (Asia/Shanghai by default).

Every aggregate is one indexed SQL query (``ix_calls_service_arrived_at``,
``ix_work_order_parts_*``, ``ix_work_orders_service_created``); only the transfer latencies and the
hot topics' districts are finished in Python, on the few rows they concern.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.db import Database
from app.models import (
    Call,
    CallbackTaskRow,
    CallEventRow,
    WorkOrderHistoryRow,
    WorkOrderPartRow,
    WorkOrderRow,
)
from app.work_orders.dispatch import district_of
from hotline.callback_site import SATISFIED_RATINGS

PeriodKind = Literal["day", "week", "month"]
ANSWER_WITHIN_S = 15.0   # GB/T 33358-2016: answer within 15 s; NENA: 90% within 15 s
ANSWER_TARGET = 0.95     # GB/T 33358-2016: at least 95% of answered calls within 15 s
NENA_TARGET = 0.90
BASELINE_DAYS = 28       # hot topics: the day against the 4 weeks before it

DEFINITIONS: dict[str, str] = {
    "offered": "呼入量: calls that reached a platform in the period (a phone's own calls excluded)",
    "answered": "接听量: offered calls a seat answered",
    "answer_rate": "接通率 = answered / offered",
    "answered_15s": "15秒接通: answered calls whose queue and ring time (queue entry, or arrival if it "
                    "never queued, to the seat's answer) was under 15 s",
    "answer_15s_rate": "15秒接通率 = answered within 15 s / answered (GB/T 33358-2016: >= 95%; NENA: "
                       ">= 90%)",
    "abandoned": "放弃量: callers who hung up before a seat answered",
    "abandon_rate": "放弃率 = abandoned / offered",
    "avg_wait_s": "平均等待时长: mean queue and ring time of answered calls, seconds",
    "avg_handle_s": "平均通话时长: mean talk time of answered calls (answer to hang-up), seconds",
    "transfers_to_110": "转110: calls whose outcome is transferred_110",
    "transfers_to_12345": "转12345: calls whose outcome is transferred_12345",
    "transfer_ring_p50_ms": "转接时延: from the recorded transfer (Asterisk carrying out the key press or "
                            "button) to the other platform's seat ringing, median of the period's transfers, "
                            "ms (bench/bench_transfer.py measures from the key press itself)",
    "three_way": "三方通话: calls whose outcome is three_way",
    "emergency_linked": "联动: calls handed to 119/120/122 or a utility hotline",
    "resolved_on_call": "直接办结: calls resolved on the call (outcome resolved_on_call)",
    "first_time_rate": "一次办结率 = orders closed in the period that no handler returned and nobody "
                       "reopened (直接办结 included) / orders closed in the period",
    "sign_on_time_rate": "及时签收率 = parts dispatched in the period signed by their sign deadline / "
                         "parts dispatched",
    "reply_on_time_rate": "按时办结率 = parts replied in the period by their (extended) deadline / parts "
                          "replied",
    "return_rate": "回退率 = parts dispatched in the period that their handler returned / parts dispatched",
    "reopen_rate": "重办率 = orders reopened in the period / orders closed or reopened in the period",
    "satisfaction_rate": "满意率 = calls rated very satisfied or satisfied (一次一评) / calls rated",
    "survey_satisfaction_rate": "回访满意率 = 回访 calls finished in the period whose caller said very "
                                "satisfied or satisfied / 回访 calls finished with an answer to it",
    "survey_resolved_rate": "回访解决率 = 回访 calls finished in the period whose caller said the matter "
                            "was resolved / 回访 calls finished with an answer to it",
}


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    start: float  # epoch seconds, local midnight
    end: float
    label: str

    @property
    def hours(self) -> int:
        return max(1, round((self.end - self.start) / 3600))


def period_of(kind: PeriodKind, day: dt.date, tz: str = "Asia/Shanghai") -> Period:
    """The day, the ISO week (Monday first) or the month holding ``day``, in ``tz``."""
    zone = ZoneInfo(tz)
    if kind == "day":
        first, last = day, day + dt.timedelta(days=1)
        label = day.isoformat()
    elif kind == "week":
        first = day - dt.timedelta(days=day.weekday())
        last = first + dt.timedelta(days=7)
        iso = first.isocalendar()
        label = f"{iso.year}-W{iso.week:02d}"
    else:
        first = day.replace(day=1)
        last = (first + dt.timedelta(days=32)).replace(day=1)
        label = f"{first.year}-{first.month:02d}"

    def midnight(d: dt.date) -> float:
        return dt.datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()

    return Period(kind, midnight(first), midnight(last), label)


def _rate(num: int | float | None, den: int | float | None) -> float | None:
    return round(float(num or 0) / float(den), 4) if den else None


def _count(cond: ColumnElement[bool]) -> Any:
    return func.sum(case((cond, 1), else_=0))


async def compute(db: Database, period: Period, service: str | None = None, *,
                  districts: tuple[str, ...] = (), hot_topics: bool = True) -> dict[str, Any]:
    """Every KPI of ``period`` (one platform's with ``service``), with the definitions."""
    start, end = period.start, period.end
    in_period = [Call.arrived_at >= start, Call.arrived_at < end, Call.service.is_not(None)]
    if service:
        in_period.append(Call.service == service)
    ring_start = func.coalesce(Call.queued_at, Call.arrived_at)
    waited = Call.answered_at - ring_start
    answered = Call.answered_at.is_not(None)
    hour = _hour_index(db.dialect, Call.arrived_at, start)
    # One pass over the period's calls, grouped by hour: the day's figures are the hours' sums.
    sums = {
        "offered": func.count(),
        "answered": _count(answered),
        "answered_15s": _count(and_(answered, waited < ANSWER_WITHIN_S)),
        "abandoned": _count(Call.outcome == "abandoned"),
        "wait_sum": func.sum(case((answered, waited), else_=0.0)),
        "talk_sum": func.sum(case((answered, Call.talk_s), else_=0.0)),
        "talk_n": _count(and_(answered, Call.talk_s.is_not(None))),
        "transfers_to_110": _count(Call.outcome == "transferred_110"),
        "transfers_to_12345": _count(Call.outcome == "transferred_12345"),
        "three_way": _count(Call.outcome == "three_way"),
        "emergency_linked": _count(Call.outcome == "emergency_linked"),
        "resolved_on_call": _count(Call.outcome == "resolved_on_call"),
        "rated": _count(Call.rating.is_not(None)),
        "satisfied": _count(Call.rating.in_(sorted(SATISFIED_RATINGS))),
    }
    calls_q = select(hour.label("h"), *(v.label(k) for k, v in sums.items())).where(*in_period) \
        .group_by(hour).order_by(hour)
    async with db.read() as conn:
        hourly_rows = (await conn.execute(calls_q)).mappings().all()
        latencies = await _transfer_latencies(conn, start, end, service)
        parts = await _part_kpis(conn, start, end, service)
        orders = await _order_kpis(conn, start, end, service)
        surveys = await _survey_kpis(conn, start, end, service)
        topics = await _hot_topics(conn, period, service, districts) if hot_topics else None
    c: dict[str, float] = {k: 0.0 for k in sums}
    hourly: list[dict[str, Any]] = [{"hour": h, "offered": 0, "answered": 0, "answered_15s": 0}
                                    for h in range(period.hours)]
    for r in hourly_rows:
        for k in sums:
            c[k] += float(r[k] or 0)
        h = int(r["h"])
        if 0 <= h < len(hourly):
            hourly[h].update(offered=int(r["offered"]), answered=int(r["answered"] or 0),
                             answered_15s=int(r["answered_15s"] or 0))
    offered, ans = int(c["offered"]), int(c["answered"])
    resolved = int(c["resolved_on_call"])
    c["avg_wait_s"] = c["wait_sum"] / ans if ans else None  # type: ignore[assignment]
    c["avg_handle_s"] = c["talk_sum"] / c["talk_n"] if c["talk_n"] else None  # type: ignore[assignment]
    for row in hourly:
        row["answer_15s_rate"] = _rate(row["answered_15s"], row["answered"])
    figures = {
        "offered": offered, "answered": ans, "answer_rate": _rate(ans, offered),
        "answered_15s": int(c["answered_15s"] or 0),
        "answer_15s_rate": _rate(c["answered_15s"], ans),
        "abandoned": int(c["abandoned"] or 0), "abandon_rate": _rate(c["abandoned"], offered),
        "avg_wait_s": _round(c["avg_wait_s"]), "avg_handle_s": _round(c["avg_handle_s"]),
        "transfers_to_110": int(c["transfers_to_110"] or 0),
        "transfers_to_12345": int(c["transfers_to_12345"] or 0),
        "transfer_ring_p50_ms": _percentile(latencies, 50),
        "transfer_ring_p95_ms": _percentile(latencies, 95),
        "three_way": int(c["three_way"] or 0), "emergency_linked": int(c["emergency_linked"] or 0),
        "resolved_on_call": resolved,
        "first_time_rate": _rate(orders["closed_clean"], orders["closed"]),
        "sign_on_time_rate": _rate(parts["signed_on_time"], parts["dispatched"]),
        "reply_on_time_rate": _rate(parts["replied_on_time"], parts["replied"]),
        "return_rate": _rate(parts["returned"], parts["dispatched"]),
        "reopen_rate": _rate(orders["reopened"], orders["closed"] + orders["reopened"]),
        "satisfaction_rate": _rate(c["satisfied"], c["rated"]),
        "rated": int(c["rated"] or 0),
        "survey_satisfaction_rate": _rate(surveys["satisfied"], surveys["rated"]),
        "survey_resolved_rate": _rate(surveys["resolved"], surveys["asked_resolved"]),
        "surveys": surveys["done"],
        "parts_dispatched": parts["dispatched"], "parts_replied": parts["replied"],
        "orders_closed": orders["closed"], "orders_reopened": orders["reopened"],
    }
    return {
        "period": {"kind": period.kind, "label": period.label, "start": start, "end": end},
        "service": service,
        "figures": figures,
        "targets": {"answer_15s_rate": ANSWER_TARGET, "answer_15s_rate_nena": NENA_TARGET,
                    "answer_within_s": ANSWER_WITHIN_S},
        "hourly": hourly,
        "hot_topics": topics,
        "definitions": DEFINITIONS,
    }


def _round(v: Any) -> float | None:
    return round(float(v), 1) if v is not None else None


def _percentile(values: list[float], p: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return round(ordered[k], 1)


def _hour_index(dialect: str, at: Any, start: float) -> Any:
    offset = (at - literal(start)) / 3600
    # SQLite's CAST truncates toward zero; PostgreSQL's rounds, so it floors first.
    return cast(offset, Integer) if dialect == "sqlite" else cast(func.floor(offset), Integer)


async def _transfer_latencies(conn: Any, start: float, end: float, service: str | None) -> list[float]:
    """ms from each ``transferred`` event in the period to the next ``ringing`` of the same call."""
    t = CallEventRow.__table__.alias("t")
    r = CallEventRow.__table__.alias("r")
    next_ring = (select(func.min(r.c.at)).where(r.c.linkedid == t.c.linkedid, r.c.type == "ringing",
                                                  r.c.at >= t.c.at).scalar_subquery())
    q = select(t.c.at, next_ring.label("rang")).where(t.c.type == "transferred", t.c.at >= start,
                                                       t.c.at < end)
    if service:
        q = q.where(t.c.service == service)
    rows = (await conn.execute(q)).all()
    return [(rang - at) * 1000 for at, rang in rows if rang is not None and rang - at < 600]


def _order_scope(service: str | None) -> list[ColumnElement[bool]]:
    return [WorkOrderRow.service == service] if service else []


async def _part_kpis(conn: Any, start: float, end: float, service: str | None) -> dict[str, int]:
    p = WorkOrderPartRow
    scope = []
    if service:
        scope = [p.ticket.in_(select(WorkOrderRow.ticket).where(WorkOrderRow.service == service))]
    dispatched = (await conn.execute(select(
        func.count(), _count(and_(p.signed_at.is_not(None), p.signed_at <= p.sign_due_at)),
        _count(or_(p.returned.is_not(None), p.state == "returned")))
        .where(p.dispatched_at >= start, p.dispatched_at < end, *scope))).one()
    replied = (await conn.execute(select(func.count(), _count(p.replied_at <= p.due_at)).where(
        p.replied_at >= start, p.replied_at < end, *scope))).one()
    return {"dispatched": int(dispatched[0] or 0), "signed_on_time": int(dispatched[1] or 0),
            "returned": int(dispatched[2] or 0), "replied": int(replied[0] or 0),
            "replied_on_time": int(replied[1] or 0)}


async def _order_kpis(conn: Any, start: float, end: float, service: str | None) -> dict[str, int]:
    h = WorkOrderHistoryRow
    scope = []
    if service:
        scope = [h.ticket.in_(select(WorkOrderRow.ticket).where(WorkOrderRow.service == service))]
    troubled = select(h.ticket).where(h.step.in_(("return", "reopen")))
    closed = (await conn.execute(select(func.count(func.distinct(h.ticket)), func.count(
        func.distinct(case((h.ticket.not_in(troubled), h.ticket))))).where(
        h.step == "close", h.to_state == "closed", h.at >= start, h.at < end, *scope))).one()
    reopened = (await conn.execute(select(func.count(func.distinct(h.ticket))).where(
        h.step == "reopen", h.part.is_(None), h.at >= start, h.at < end, *scope))).scalar()
    return {"closed": int(closed[0] or 0), "closed_clean": int(closed[1] or 0),
            "reopened": int(reopened or 0)}


async def _survey_kpis(conn: Any, start: float, end: float, service: str | None) -> dict[str, int]:
    """The 回访 calls finished in the period and what their callers answered (a few per day: read and
    counted here rather than in JSON SQL that differs between SQLite and PostgreSQL)."""
    t = CallbackTaskRow
    q = select(t.answers).where(t.kind == "survey", t.state == "done", t.updated_at >= start,
                                t.updated_at < end, t.answers.is_not(None))
    if service:
        q = q.where(t.platform == service)
    out = {"done": 0, "rated": 0, "satisfied": 0, "asked_resolved": 0, "resolved": 0}
    for (answers,) in (await conn.execute(q)).all():
        out["done"] += 1
        if not isinstance(answers, dict):
            continue
        if answers.get("rating") is not None:
            out["rated"] += 1
            out["satisfied"] += bool(answers.get("satisfied"))
        if answers.get("resolved") is not None:
            out["asked_resolved"] += 1
            out["resolved"] += bool(answers.get("resolved"))
    return out


async def _hot_topics(conn: Any, period: Period, service: str | None,
                      districts: tuple[str, ...]) -> dict[str, Any]:
    """Categories and districts of the period against the daily mean of the 4 weeks before it; a
    count above mean + 3·sqrt(mean) (and at least 3) is flagged as a sudden rise (突发预警)."""
    w = WorkOrderRow
    base_start = period.start - BASELINE_DAYS * 86400
    days = max(1.0, (period.end - period.start) / 86400)
    q = select(w.category_code, w.category_name, w.address, w.created_at).where(
        w.created_at >= base_start, w.created_at < period.end, w.status != "merged", *_order_scope(service))
    now_cat: Counter[str] = Counter()
    base_cat: Counter[str] = Counter()
    now_dist: Counter[str] = Counter()
    base_dist: Counter[str] = Counter()
    names: dict[str, str] = {}
    for code, name, address, created in (await conn.execute(q)).all():
        current = created >= period.start
        if code:
            (now_cat if current else base_cat)[code] += 1
            names.setdefault(code, name or code)
        district = district_of([address], districts) if address else None
        if district:
            (now_dist if current else base_dist)[district] += 1

    def rows(now: Counter[str], base: Counter[str], label: dict[str, str] | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key in set(now) | set(base):
            expected = base[key] / BASELINE_DAYS * days
            count = now[key]
            rise = count >= 3 and count > expected + 3 * math.sqrt(max(expected, 1.0))
            out.append({"key": key, "name": label.get(key, key) if label else key, "count": count,
                        "baseline": round(expected, 2), "rise": rise})
        out.sort(key=lambda r: (-r["count"], r["key"]))
        return out[:20]

    return {"categories": rows(now_cat, base_cat, names), "districts": rows(now_dist, base_dist, None),
            "baseline_days": BASELINE_DAYS}

"""KPIs from recorded events (SQLite and PostgreSQL): calls stored through ``POST /api/events``, work-order
parts and history written as the loop writes them, figures checked against values worked out by hand
from the same timelines; the CSV and Excel reports carry the same figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert

from app import keys
from app.models import WorkOrderHistoryRow, WorkOrderPartRow, WorkOrderRow
from app.reports.kpis import compute, period_of

T0 = 1_760_000_000.0  # 2025-10-09 16:53:20 Asia/Shanghai
DAY = dt.date(2025, 10, 9)


def ev(linkedid: str, type_: str, t: float, service: str = "12345", **kw: Any) -> dict[str, Any]:
    return {"event_id": f"{linkedid}-{type_}-{t}", "linkedid": linkedid, "type": type_, "at": T0 + t,
            "source": "ami", "service": service, "caller": kw.pop("caller", "13800000001"),
            "seat": kw.pop("seat", None), "data": kw.pop("data", {}), **kw}


def timelines() -> list[dict[str, Any]]:
    return [
        # c1: queued 1 s, answered at 10 s (9 s wait), talks 60 s, resolved on the call, rated satisfied
        ev("c1", "arrived", 0), ev("c1", "queued", 1), ev("c1", "ringing", 2, seat="1201"),
        ev("c1", "answered", 10, seat="1201"), ev("c1", "hangup", 70),
        ev("c1", "rated", 71, data={"rating": "satisfied", "result": "rated"}),
        # c2: 20 s wait (over 15), transferred to 110 at 30 s, 110's seat rings 0.4 s later
        ev("c2", "arrived", 100), ev("c2", "queued", 101), ev("c2", "ringing", 102, seat="1202"),
        ev("c2", "answered", 121, seat="1202"),
        ev("c2", "transferred", 130, data={"kind": "blind", "target": "110"}),
        ev("c2", "ringing", 130.4, seat="1101"), ev("c2", "hangup", 180),
        # c3: abandoned in the queue after 39 s
        ev("c3", "arrived", 200), ev("c3", "queued", 201), ev("c3", "abandoned", 240),
        ev("c3", "hangup", 240),
        # c4: at 110, answered after 3 s, a three-way call, rated unsatisfied
        ev("c4", "arrived", 300, service="110"), ev("c4", "queued", 301, service="110"),
        ev("c4", "answered", 304, service="110", seat="1101"), ev("c4", "hangup", 364, service="110"),
        ev("c4", "rated", 365, service="110", data={"rating": "unsatisfied", "result": "rated"}),
        # c5: yesterday: not in the day
        ev("c5", "arrived", -86400), ev("c5", "hangup", -86300),
    ]


async def _record(api: Any) -> None:
    status, body = await api.post_events({"events": timelines()})
    assert status == 200, body
    for linkedid, outcome in (("c1", "resolved_on_call"), ("c2", "transferred_110"), ("c4", "three_way")):
        status, body = await api.call("PUT", f"/api/calls/{linkedid}/outcome", "service",
                                      json={"outcome": outcome, **({"detail": "110"} if outcome == "three_way"
                                                                   else {})})
        assert status == 200, body


async def _orders(db: Any) -> None:
    """Three parts dispatched in the day: one signed in time and replied in time, one signed late and
    returned, one replied late. Order A closed clean, order B closed after a reopen."""
    t = T0
    base = {"handler_kind": "department", "dispatched_by": "op", "warn_at": t, "calendar_covered": True,
            "result": None, "extension": None, "peer": None, "peer_ticket": None, "peer_part": None,
            "updated_at": t, "overdue_at": None}
    parts = [
        {**base, "ticket": "12345-20251009-0001", "no": 1, "handler": "housing", "handler_name": "住建局",
         "state": "replied", "dispatched_at": t, "sign_due_at": t + 3600, "due_at": t + 86400,
         "signed_at": t + 600, "replied_at": t + 7200, "returned": None},
        {**base, "ticket": "12345-20251009-0002", "no": 1, "handler": "water", "handler_name": "水务局",
         "state": "returned", "dispatched_at": t + 10, "sign_due_at": t + 3600, "due_at": t + 86400,
         "signed_at": t + 4000, "replied_at": None, "returned": {"reason": "not ours"}},
        {**base, "ticket": "12345-20251009-0002", "no": 2, "handler": "housing", "handler_name": "住建局",
         "state": "replied", "dispatched_at": t + 20, "sign_due_at": t + 3600, "due_at": t + 3000,
         "signed_at": t + 100, "replied_at": t + 5000, "returned": None},
    ]
    order = {"kind": "工单", "service": "12345", "status": "closed", "category_code": "A01",
             "category_name": "城乡建设", "action": "accept", "life_threat": False, "linkage": [],
             "address": None, "slots": {}, "summary": "s", "dispatch": [], "rules_version": "t",
             "caller_segments": 0, "created_at": t, "updated_at": t, "linkedid": None}
    hist = {"from_state": None, "who": "x", "role": "supervisor", "note": None, "data": {}}
    async with db.write() as conn:
        await conn.execute(insert(WorkOrderPartRow), parts)
        await conn.execute(insert(WorkOrderRow), [{**order, "ticket": "12345-20251009-0001"},
                                                  {**order, "ticket": "12345-20251009-0002"}])
        await conn.execute(insert(WorkOrderHistoryRow), [
            {**hist, "ticket": "12345-20251009-0001", "part": None, "step": "close", "to_state": "closed",
             "at": t + 9000},
            {**hist, "ticket": "12345-20251009-0002", "part": 1, "step": "return", "to_state": "returned",
             "at": t + 4100},
            {**hist, "ticket": "12345-20251009-0002", "part": None, "step": "reopen", "to_state": "reopened",
             "at": t + 6000},
            {**hist, "ticket": "12345-20251009-0002", "part": None, "step": "close", "to_state": "closed",
             "at": t + 9500},
        ])


async def test_call_kpis_match_the_timelines(api: Any) -> None:
    await _record(api)
    await _orders(api.client.app[keys.DATABASE])
    status, body = await api.call("GET", "/api/kpis?period=day&date=2025-10-09&service=12345", "supervisor")
    assert status == 200, body
    f = body["figures"]
    assert (f["offered"], f["answered"], f["answered_15s"], f["abandoned"]) == (3, 2, 1, 1)
    assert f["answer_rate"] == round(2 / 3, 4) and f["answer_15s_rate"] == 0.5
    assert f["abandon_rate"] == round(1 / 3, 4)
    assert f["avg_wait_s"] == 14.5          # (9 + 20) / 2
    assert f["avg_handle_s"] == 59.5        # (60 + 59) / 2
    assert (f["transfers_to_110"], f["three_way"], f["resolved_on_call"]) == (1, 0, 1)
    assert f["transfer_ring_p50_ms"] == 400.0
    assert f["satisfaction_rate"] == 1.0 and f["rated"] == 1
    # parts: 3 dispatched, 2 signed by their sign deadline, 1 returned; 2 replied, 1 by its deadline
    assert f["sign_on_time_rate"] == round(2 / 3, 4) and f["return_rate"] == round(1 / 3, 4)
    assert f["reply_on_time_rate"] == 0.5
    # orders: 2 closed, 1 of them never returned nor reopened; 1 reopened of 2 closed + 1 reopened
    assert f["first_time_rate"] == 0.5 and f["reopen_rate"] == round(1 / 3, 4)
    hour = next(h for h in body["hourly"] if h["offered"])
    assert hour["hour"] == 16 and hour["offered"] == 3 and hour["answer_15s_rate"] == 0.5
    assert len(body["hourly"]) == 24 and body["definitions"]["answer_15s_rate"].startswith("15秒接通率")

    status, both = await api.call("GET", "/api/kpis?period=day&date=2025-10-09", "supervisor")
    g = both["figures"]
    assert (g["offered"], g["answered"], g["answered_15s"], g["three_way"]) == (4, 3, 2, 1)
    assert g["satisfaction_rate"] == 0.5
    status, month = await api.call("GET", "/api/kpis?period=month&date=2025-10-20", "supervisor")
    assert month["figures"]["offered"] == 5 and month["period"]["label"] == "2025-10"  # c5 is Oct 8th
    assert len(month["hourly"]) == 31 * 24


async def test_the_api_and_compute_agree_and_reports_carry_the_same_figures(api: Any) -> None:
    await _record(api)
    db = api.client.app[keys.DATABASE]
    direct = await compute(db, period_of("week", DAY), "12345", hot_topics=False)
    status, body = await api.call("GET", "/api/kpis?period=week&date=2025-10-09&service=12345", "admin")
    assert body["figures"] == direct["figures"]
    async with api.client.get("/api/reports/kpis?period=week&date=2025-10-09&service=12345&format=csv",
                              headers=api.headers("supervisor")) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
        assert "kpi-12345-2025-W41.csv" in resp.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    table = {r[0]: r[1] for r in rows[1:] if len(r) == 3}
    assert table["offered"] == "4" and table["answer_15s_rate"] == "0.5"  # c5 (Oct 8th) is in the week
    async with api.client.get("/api/reports/kpis?period=week&date=2025-10-09&service=12345&format=xlsx",
                              headers=api.headers("supervisor")) as resp:
        assert resp.status == 200
        wb = load_workbook(io.BytesIO(await resp.read()))
    sheet = {r[0]: r[1] for r in wb["指标"].iter_rows(min_row=2, values_only=True)}
    assert sheet["offered"] == 4 and sheet["answered"] == 2 and sheet["answer_15s_rate"] == 0.5


async def test_callback_survey_answers_give_the_callback_satisfaction(api: Any) -> None:
    from sqlalchemy import update

    from app.callbacks.store import add_task
    from app.models import CallbackTaskRow

    db = api.client.app[keys.DATABASE]
    answers = [{"resolved": True, "rating": "very_satisfied", "satisfied": True},
               {"resolved": False, "rating": "unsatisfied", "satisfied": False},
               {"resolved": True, "rating": None, "satisfied": False},  # hung up before the rating
               {"resolved": True, "rating": "satisfied", "satisfied": True}]
    async with db.write() as conn:
        for i, a in enumerate(answers):
            task = await add_task(conn, kind="survey", platform="12345" if i < 3 else "110",
                                  number="13800000001", due_at=T0, now=T0, max_attempts=3,
                                  dedupe_key=f"s{i}", ticket=f"12345-20251009-{i:04d}")
            await conn.execute(update(CallbackTaskRow).where(CallbackTaskRow.id == task).values(
                state="done", answers=a, updated_at=T0 + 60))
    status, body = await api.call("GET", "/api/kpis?period=day&date=2025-10-09&service=12345", "supervisor")
    f = body["figures"]
    assert f["surveys"] == 3 and f["survey_satisfaction_rate"] == 0.5
    assert f["survey_resolved_rate"] == round(2 / 3, 4)
    status, body = await api.call("GET", "/api/kpis?period=day&date=2025-10-09", "supervisor")
    assert body["figures"]["survey_satisfaction_rate"] == round(2 / 3, 4)


@pytest.mark.parametrize("query", ["period=year", "date=2025-13-01", "service=119", "period=day&x=1"])
async def test_bad_queries_are_refused_clearly(api: Any, query: str) -> None:
    status, body = await api.call("GET", f"/api/kpis?{query}", "admin")
    assert status == 400 and body["error_id"] == "validation_failed"


async def test_operators_and_departments_do_not_read_kpis(api: Any) -> None:
    for role in ("operator", "service"):  # departments: tests/unit/test_console_accounts.py
        status, body = await api.call("GET", "/api/kpis", role)
        assert status == 403, role

"""The console's speed: a call event reaching 50 open wallboards, and the KPI query over 1M calls.

1. **Wallboard latency.** The API runs in its own process (``hotline api``, SQLite, a throwaway
   redis-server or ``REDIS_URL``); ``--wallboards`` supervisors' browsers are stood in for by as
   many WebSockets on ``/api/wallboard/live``, each logged in with its own console session (cookie,
   origin). Call events are posted one at a time through ``POST /api/events`` (the AMI listener's
   path); for each, the time from the post to its publication on Redis (a plain subscriber of the
   events channel: the baseline, measured on the same events) and to each wallboard receiving it,
   p50/p95.
2. **KPI query.** ``--calls`` stored calls spread over 30 days (a metropolis' month at 1M) in SQLite
   and in PostgreSQL (a throwaway database on 127.0.0.1:5432 or ``DATABASE_URL``'s server): the last
   whole day's, week's and month's KPIs (:func:`app.reports.kpis.compute`) beside a bare
   ``count(*)`` over the same rows and index (the baseline) in the same run.

    .venv/bin/python -m bench.bench_console [--wallboards 50 --events 200 --calls 1000000]
    .venv/bin/python -m bench.bench_console --quick     # 10 wallboards, 30 events, 20k calls
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets as _secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from app.db import Database, make_engine, upgrade_engine
from app.models import Call
from app.reports.kpis import compute, period_of
from bench.common import percentile, require_measured, write_result
from hotline.redis_keys import EVENTS_CHANNEL
from hotline.secrets import ensure_secrets
from operations.redis_server import RedisServer, free_port

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench password 2026"
DAY_S = 86400.0


# --- 1. wallboard latency -------------------------------------------------------------------------------

async def _wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(base + "/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the API did not come up")


async def _session(base: str) -> aiohttp.ClientSession:
    """A logged-in supervisor's browser: its cookie jar holds the session."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get(base + "/console/login") as r:
        token = re.search(r'name="token" value="([^"]+)"', await r.text())
    assert token
    async with http.post(base + "/console/login", allow_redirects=False,
                         data={"login": "bench.sup", "password": PASSWORD, "token": token.group(1)}) as r:
        if r.status != 303:
            raise RuntimeError(f"login refused: {r.status} {await r.text()}")
    return http


async def wallboards(n_boards: int, n_events: int, redis_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        state = Path(tmp)
        port = free_port()
        secrets = ensure_secrets(state / "secrets.json", ())
        service = secrets.token_for("service")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")},
               "HOTLINE_STATE_DIR": str(state), "REDIS_URL": redis_url, "HOTLINE_API_PORT": str(port),
               "HOTLINE_LOG_LEVEL": "WARNING", "DATABASE_URL": "", "HOTLINE_LIVE_MAX_PER_TOKEN": "1000"}
        cli = [sys.executable, "-m", "operations.cli"]
        await asyncio.to_thread(subprocess.run, [*cli, "user", "add", "bench.sup", "--role", "supervisor"],
                                input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True,
                                cwd=REPO)
        api = await asyncio.create_subprocess_exec(*cli, "api", env=env, cwd=REPO,
                                                   stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_ready(base)
            return await _measure_boards(base, service, n_boards, n_events, redis_url)
        finally:
            api.terminate()
            await asyncio.wait_for(api.wait(), 10)


async def _measure_boards(base: str, service: str, n_boards: int, n_events: int,
                          redis_url: str) -> dict[str, Any]:
    received: dict[str, list[float]] = {}   # linkedid -> arrival times on the wallboards
    on_redis: dict[str, float] = {}
    sessions = [await _session(base) for _ in range(n_boards)]
    url = base.replace("http", "ws") + "/api/wallboard/live"
    sockets = [await s.ws_connect(url, headers={"Origin": base}) for s in sessions]
    for ws in sockets:  # each first gets its snapshot
        first = await ws.receive_json(timeout=30)
        assert first["type"] == "snapshot", first

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                ev = json.loads(msg.data)
                if ev.get("kind") == "event":
                    received.setdefault(ev["linkedid"], []).append(time.perf_counter())

    redis = Redis.from_url(redis_url, decode_responses=True)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(EVENTS_CHANNEL)

    async def listen() -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg and msg.get("type") == "message":
                on_redis.setdefault(json.loads(msg["data"])["linkedid"], time.perf_counter())

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    listener = asyncio.create_task(listen())
    posted: dict[str, float] = {}
    run = _secrets.token_hex(3)
    headers = {"Authorization": f"Bearer {service}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for i in range(n_events):
            lid = f"bench-{run}-{i}"
            event = {"event_id": f"{lid}-arrived", "linkedid": lid, "type": "arrived", "at": time.time(),
                     "source": "ami", "service": "12345", "caller": f"1380000{i:04d}", "seat": None,
                     "data": {}}
            posted[lid] = time.perf_counter()
            async with http.post(base + "/api/events", json=event) as r:
                assert r.status == 200, await r.text()
            await asyncio.sleep(0.05)
    for _ in range(200):  # up to 10 s for the last deliveries
        if len(on_redis) >= n_events and all(len(received.get(lid, ())) >= n_boards for lid in posted):
            break
        await asyncio.sleep(0.05)
    listener.cancel()
    for t in readers:
        t.cancel()
    await asyncio.gather(listener, *readers, return_exceptions=True)
    for ws in sockets:
        await ws.close()
    for s in sessions:
        await s.close()
    await pubsub.aclose()
    await redis.aclose()
    redis_ms = [(on_redis[lid] - t) * 1000 for lid, t in posted.items() if lid in on_redis]
    board_ms = [(at - t) * 1000 for lid, t in posted.items() for at in received.get(lid, ())]
    extra_ms = [(at - on_redis[lid]) * 1000 for lid in posted if lid in on_redis
                for at in received.get(lid, ())]
    deliveries = sum(len(received.get(lid, ())) for lid in posted)
    return {
        "redis": {"events": len(redis_ms), "p50_ms": round(percentile(redis_ms, 0.5), 2),
                  "p95_ms": round(percentile(redis_ms, 0.95), 2)},
        "wallboards": {"events": n_events, "measured": deliveries, "wallboards": n_boards,
                       "lost": n_events * n_boards - deliveries,
                       "p50_ms": round(percentile(board_ms, 0.5), 2),
                       "p95_ms": round(percentile(board_ms, 0.95), 2),
                       "after_redis_p50_ms": round(percentile(extra_ms, 0.5), 2),
                       "after_redis_p95_ms": round(percentile(extra_ms, 0.95), 2)},
    }


# --- 2. KPI query over stored calls ---------------------------------------------------------------------

async def _fill(db: Database, n: int, end: float) -> float:
    """``n`` calls over the 30 days before ``end``: 85% answered (a quarter after 15 s), 8%
    abandoned, outcomes and ratings mixed as a hotline's are."""
    import random

    rng = random.Random(12345)
    outcomes = ["resolved_on_call"] * 50 + ["ticket_created"] * 30 + ["transferred_110"] * 6 + \
        ["transferred_12345"] * 3 + ["three_way"] * 3 + ["guided"] * 8
    started = time.perf_counter()
    chunk = 5000
    for base in range(0, n, chunk):
        rows: list[dict[str, Any]] = []
        for i in range(base, min(n, base + chunk)):
            arrived = end - rng.random() * 30 * DAY_S
            queued = arrived + 1
            answered = rng.random() < 0.92
            abandoned = not answered and rng.random() < 0.9
            wait = rng.expovariate(1 / 8.0)
            ans_at = queued + wait if answered else None
            talk = rng.expovariate(1 / 180.0) if answered else 0.0
            ended = (ans_at or queued + wait) + talk
            rows.append({
                "linkedid": f"k{i}", "service": "12345" if i % 4 else "110", "caller": f"139{i:08d}",
                "seat": f"12{i % 30:02d}" if answered else None, "queue": "hotline-12345",
                "arrived_at": arrived, "queued_at": queued, "answered_at": ans_at, "ended_at": ended,
                "wait_s": (ans_at or ended) - arrived, "talk_s": talk, "total_s": ended - arrived,
                "hangup_cause": "16", "outcome": "abandoned" if abandoned else rng.choice(outcomes),
                "outcome_detail": None, "outcome_source": "operator", "outcome_by": None, "outcome_at": ended,
                "flags": [], "event_count": 6, "updated_at": ended,
                "rating": rng.choice(["very_satisfied", "satisfied", "satisfied", "unsatisfied", None]),
                "rating_result": None})
        async with db.write() as conn:
            await conn.execute(insert(Call), rows)
    return time.perf_counter() - started


async def _timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def kpi_query(url: str, n_calls: int, repeat: int) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        await upgrade_engine(engine)
        db = Database(engine)
        end = time.time()
        fill_s = await _fill(db, n_calls, end)
        if db.dialect == "postgresql":  # what autovacuum does on a live database (visibility map, stats)
            async with engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.exec_driver_sql("VACUUM ANALYZE calls")
        import datetime as dt
        from zoneinfo import ZoneInfo

        today = dt.datetime.fromtimestamp(end, ZoneInfo("Asia/Shanghai")).date()
        # the last whole day, week and month (what a report is run on), all within the 30 days filled
        # for the day and the week; the month is as much of it as the 30 days cover
        last = {"day": today - dt.timedelta(days=1), "week": today - dt.timedelta(days=7),
                "month": today.replace(day=1) - dt.timedelta(days=1)}
        row: dict[str, Any] = {"calls": n_calls, "fill_s": round(fill_s, 1)}
        for kind in ("day", "week", "month"):
            period = period_of(kind, last[kind])  # type: ignore[arg-type]

            async def kpis(p: Any = period) -> None:
                await compute(db, p, "12345", hot_topics=False)

            async def bare(p: Any = period) -> None:
                async with db.read() as conn:
                    await conn.execute(select(func.count()).where(
                        Call.arrived_at >= p.start, Call.arrived_at < p.end, Call.service == "12345"))

            await kpis()
            await bare()  # warm the caches once, as a running wallboard has them
            k_ms, b_ms = await _timed(kpis, repeat), await _timed(bare, repeat)
            async with db.read() as conn:
                in_period = (await conn.execute(select(func.count()).where(
                    Call.arrived_at >= period.start, Call.arrived_at < period.end,
                    Call.service == "12345"))).scalar()
            row[kind] = {"label": period.label, "rows": int(in_period or 0),
                         "kpi_p50_ms": round(percentile(k_ms, 0.5), 1),
                         "count_p50_ms": round(percentile(b_ms, 0.5), 1)}
        return row
    finally:
        await engine.dispose()


async def _pg_database(admin_url: str) -> tuple[str, Any]:
    import asyncpg

    u = make_url(admin_url)
    name = f"bench_console_{_secrets.token_hex(4)}"
    conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                 database=u.database)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()

    async def drop() -> None:
        c = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                  database=u.database)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()
    return u.set(database=name).render_as_string(hide_password=False), drop


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wallboards", type=int, default=50)
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.wallboards, args.events, args.calls, args.repeat = 10, 30, 20_000, 3
    server = None
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        server = RedisServer()
        server.start()
        redis_url = server.url
    try:
        boards = await wallboards(args.wallboards, args.events, redis_url)
    finally:
        if server is not None:
            server.stop()
    with tempfile.TemporaryDirectory(prefix="bench-kpi-") as tmp:
        sqlite = await kpi_query(f"sqlite+aiosqlite:///{tmp}/kpi.db", args.calls, args.repeat)
    pg: dict[str, Any] | None = None
    admin = os.environ.get("DATABASE_URL", "") or DEFAULT_PG
    try:
        url, drop = await _pg_database(admin.replace("postgresql://", "postgresql+asyncpg://"))
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: say so, measure SQLite
        print(f"PostgreSQL NOT MEASURED: {admin} unreachable ({exc!r})")
    else:
        try:
            pg = await kpi_query(url, args.calls, args.repeat)
        finally:
            await drop()
    result = {"wallboard": boards, "kpi_sqlite": sqlite, "kpi_postgresql": pg,
              "args": {k: v for k, v in vars(args).items()}}
    w, r = boards["wallboards"], boards["redis"]
    print(f"\n| measure | p50 | p95 |\n|---|---|---|\n"
          f"| event published on Redis (baseline) | {r['p50_ms']} ms | {r['p95_ms']} ms |\n"
          f"| event on {w['wallboards']} wallboards | {w['p50_ms']} ms | {w['p95_ms']} ms |\n"
          f"| of which after Redis | {w['after_redis_p50_ms']} ms | {w['after_redis_p95_ms']} ms |\n"
          f"lost deliveries: {w['lost']} of {w['events'] * w['wallboards']}")
    print("\n| database | calls | period | rows | KPIs p50 | count(*) p50 (baseline) |")
    print("|---|---|---|---|---|---|")
    for name, row in (("SQLite", sqlite), ("PostgreSQL", pg)):
        if row is None:
            continue
        for kind in ("day", "week", "month"):
            k = row[kind]
            print(f"| {name} | {row['calls']:,} | {kind} {k['label']} | {k['rows']:,} |"
                  f" {k['kpi_p50_ms']} ms | {k['count_p50_ms']} ms |")
    require_measured({"wallboards": {"measured": w["measured"]}, "redis": {"events": r["events"]},
                      "sqlite": {"calls": sqlite["calls"]}})
    if w["lost"]:
        print(f"FAIL: {w['lost']} deliveries lost")
        return 1
    write_result("console", result, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

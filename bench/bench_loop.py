"""The work-order closed loop under load: transitions through the API, the 12345 -> 110 exchange
between two installations, and the deadline sweep over a large table, each beside a baseline
measured in the same run.

1. Transitions: N orders, inserted as accepted ``help`` orders (no routing: it has its own
   benchmark) and dispatched to one department over the API, are driven sign -> progress -> reply
   by the department's token over HTTP (the app served on a loopback TCP port with
   ``web.AppRunner``, the aiohttp client in the same process), C requests in flight, on SQLite and
   on PostgreSQL (a throwaway database on 127.0.0.1:5432, or DATABASE_URL's server). Baseline: the
   same number of ``GET /api/handlers`` (a trivial authenticated read) against the same app at the
   same concurrency.
2. Exchange: a 12345 installation (this process, SQLite) dispatches orders to handler "110", a 110
   installation in a second process (this script's ``--serve``: the app as ``hotline api`` builds
   it, plus one bare echo route for the baseline); both hold the same exchange key in their own
   ``secrets.json``. Latency is the outbox row's ``delivered_at - created_at`` (``created_at`` is
   the dispatch transaction's clock; ``delivered_at`` is written once 110 has acknowledged), first
   one order at a time, then M orders dispatched back to back (messages/s: M over first dispatch to
   last acknowledgement; its latency is mostly the queue behind the sender). Baseline: the same
   payload bytes POSTed one at a time, on one kept-alive connection as the sender does, to the echo
   route of the 110 process (it reads the body, answers 200).
3. Deadline sweep: P live parts bulk-inserted (a few percent past a deadline), then
   ``DeadlineSweep.run_once`` timed: the first sweep fires what is due, the second (run three times)
   must fire nothing. Baseline: ``SELECT count(*)`` of the live parts with ``due_at <= now`` on the
   same table. SQLite and PostgreSQL (ANALYZEd after the load, as autovacuum would).

    .venv/bin/python bench/bench_loop.py                 # N=300, M=300, P=100,000: ~40 s
    .venv/bin/python bench/bench_loop.py --quick         # N=30, M=20, P=10,000 (~7 s); not written

Prints a markdown table and writes ``bench/results/loop.json``. Exits 1 (``bench.loop_broken``)
when the feature misbehaves: a transition refused or landing in the wrong state, an order never
acknowledged by 110 or refused by it, the sweep firing other than what is due or anything on its
second run, an ERROR logged by either process; and (``bench.nothing_measured``) when a row measured
nothing. PostgreSQL unreachable is a failure too: every row must be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import secrets as _secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import keys  # noqa: E402
from app.auth import public  # noqa: E402
from app.db import Database, make_engine, upgrade_engine  # noqa: E402
from app.exchange.outbox import REFUSED_FOR_GOOD, Sender  # noqa: E402
from app.factory import create_app  # noqa: E402
from app.models import DeadlineAlertRow, OutboxRow, WorkOrderHistoryRow, WorkOrderPartRow, WorkOrderRow  # noqa: E402
from app.work_orders.drafting import ticket_number  # noqa: E402
from app.work_orders.sweep import LIVE, DeadlineSweep  # noqa: E402
from bench.common import Trouble, percentile, require_measured, write_result  # noqa: E402
from hotline.exchange import PATH  # noqa: E402
from hotline.private import write_private  # noqa: E402
from hotline.secrets import API_ROLES, Secrets, ensure_secrets, load_secrets  # noqa: E402
from hotline.settings import Settings  # noqa: E402

NAME = "loop"
ERROR_ID = "bench.loop_broken"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ECHO_PATH = "/bench/echo"  # only in the --serve process: the bare-POST baseline
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEPARTMENT = "housing"
URGE_AFTER_H = (0.0, 24.0, 72.0)  # the site default, which the bench site keeps
QUICK = {"orders": 30, "messages": 20, "parts": 10_000}
FULL = {"orders": 300, "messages": 300, "parts": 100_000}
HOUR, DAY = 3600.0, 86400.0

log = logging.getLogger("bench.loop")


class Broken(Exception):
    """The feature misbehaved: the message says how."""


# --- sites, secrets, databases -------------------------------------------------------------------

def site_toml(platforms: Iterable[str], peers: dict[str, str]) -> str:
    lines = [
        "[site]", 'name = "closed-loop bench"',
        "[trunk]", 'hosts = ["127.0.0.2"]',
        "[numbers]", '"12345" = ["12345"]', '"110" = ["110"]',
        "[seats]", '"12345" = ["1201"]', '"110" = ["1101"]',
        "[[handlers]]", f'id = "{DEPARTMENT}"', 'kind = "department"', 'name = "住房和城乡建设局"',
        'categories = ["A01", "A04"]',
        "[exchange]", "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
    ]
    for peer, url in peers.items():
        lines += [f'[exchange.peers."{peer}"]', f'url = "{url}"']
    return "\n".join(lines) + "\n"


def bench_secrets() -> Secrets:
    tokens = {f"bench-{r}-{_secrets.token_hex(8)}": {"name": f"bench-{r}", "role": r} for r in API_ROLES}
    tokens[f"bench-dep-{_secrets.token_hex(8)}"] = {"name": f"{DEPARTMENT}-clerk", "role": "department",
                                                   "handler": DEPARTMENT}
    return Secrets("bench", {}, tokens)


def installation_secrets(state_dir: Path, peer: str, key: str) -> Secrets:
    """``<state_dir>/secrets.json`` (0600) holding ``key`` as the exchange key shared with ``peer``."""
    path = state_dir / "secrets.json"
    ensure_secrets(path, (), handlers=(DEPARTMENT,), exchange_peers=(peer,))
    data = json.loads(path.read_text(encoding="utf-8"))
    data["exchange_keys"][peer] = key
    write_private(path, json.dumps(data, indent=2, sort_keys=True))
    return load_secrets(path)


def _pg_kw(admin_url: str) -> dict[str, Any]:
    u = make_url(admin_url)
    return {"host": u.host or "127.0.0.1", "port": u.port or 5432, "user": u.username or "postgres",
            "password": u.password, "database": u.database or "postgres", "timeout": 5}


@asynccontextmanager
async def pg_database(admin_url: str) -> AsyncIterator[str]:
    """A throwaway ``hotline_bench_<random>`` database, dropped afterwards."""
    import asyncpg

    name = f"hotline_bench_{_secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(**_pg_kw(admin_url))
    except Exception as exc:
        raise Broken(f"PostgreSQL unreachable at {make_url(admin_url).render_as_string()}: {exc!r}") from None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(**_pg_kw(admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def is_expected(line: str) -> bool:
    """What every app started here logs once, by design (redis_url ""): not lost work."""
    return "REDIS_URL not set: events are stored but not broadcast" in line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    """As app/main.py serves the API (without the access log): a real TCP port on loopback."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    host, bound = runner.addresses[0][:2]
    return runner, f"http://{host}:{bound}"


# --- orders and parts, written straight into the tables ------------------------------------------

WORDS = "你好，胜利路12号门口的路灯坏了好几天了，晚上很黑，老人孩子走路不安全，请尽快派人修一下。"


async def insert_orders(db: Database, service: str, first: int, n: int, now: float) -> list[str]:
    """``n`` accepted 12345 ``help`` orders, as an operator's confirm leaves them (no routing)."""
    tickets = [ticket_number(service, first + i, now) for i in range(n)]
    rows: list[dict[str, Any]] = [{
        "ticket": t, "linkedid": f"{int(now)}.{first + i}", "kind": "工单", "service": service,
        "status": "accepted", "category_code": "A01", "category_name": "城乡建设", "action": "dispatch",
        "life_threat": False, "linkage": [], "address": "临河区胜利路12号", "slots": {},
        "summary": "胜利路12号路灯不亮", "dispatch": [{"to": "department", "category": "A01"}],
        "rules_version": "bench", "caller_segments": 1, "suggestion": None, "alert": None,
        "created_at": now, "updated_at": now, "confirmed_by": "bench-operator", "confirmed_at": now,
        "caller": f"138{first + i:08d}", "contact": None, "confidential": False, "request_kind": "help",
        "words": WORDS, "origin": None, "peer_ticket": None, "peer_transcript": None,
        "merged_into": None, "closed_at": None, "version": 0,
    } for i, t in enumerate(tickets)]
    async with db.write() as conn:
        await conn.execute(insert(WorkOrderRow), rows)
    return tickets


LIVE_MIX = (("dispatched", 15), ("signed", 15), ("in_progress", 50), ("extension_requested", 5),
            ("extended", 10), ("reopened", 5))
HANDLER_IDS = ("housing", "urban", "transport", "ecology", "market", "linhe", "wuyuan", "dengkou")


def make_parts(n: int, now: float, rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``n`` live parts: ~3% past their deadline (0-4 days), ~2% past the warning only, the rest
    dispatched within the last 1.5 h (nothing due). Also what a sweep at ``now`` must fire."""
    states = [s for s, w in LIVE_MIX for _ in range(w)]
    assert set(states) == set(LIVE), "the bench's state mix is not the sweep's live states"
    rows: list[dict[str, Any]] = []
    for i in range(n):
        r = rng.random()
        if r < 0.03:
            due = now - rng.uniform(60, 4 * DAY)
            dispatched = due - 14 * DAY
        elif r < 0.05:
            due = now + rng.uniform(0.1 * DAY, 2.5 * DAY)
            dispatched = due - 14 * DAY
        else:
            dispatched = now - rng.uniform(0, 1.5 * HOUR)
            due = dispatched + 14 * DAY
        rows.append({
            "ticket": f"12345-20261203-{i + 1:07d}", "no": 1, "handler": rng.choice(HANDLER_IDS),
            "handler_kind": "department", "handler_name": "承办单位", "state": rng.choice(states),
            "dispatched_at": dispatched, "dispatched_by": "bench-operator",
            "sign_due_at": dispatched + 2 * HOUR,
            "warn_at": due - 0.2 * (due - dispatched), "due_at": due, "calendar_covered": True,
            "signed_at": None, "replied_at": None, "overdue_at": None, "result": None, "extension": None,
            "returned": None, "peer": None, "peer_ticket": None, "peer_part": None, "updated_at": now,
        })
    expected = {
        # "due soon": not once the deadline has passed (then only overdue and the urges fire)
        "warning": sum(p["warn_at"] <= now < p["due_at"] for p in rows),
        "sign_overdue": sum(p["state"] == "dispatched" and p["sign_due_at"] <= now for p in rows),
        "overdue": sum(p["due_at"] <= now for p in rows),
    }
    for level, after in enumerate(URGE_AFTER_H, 1):
        expected[f"urge{level}"] = sum(p["due_at"] + after * HOUR <= now for p in rows)
    return rows, expected


# --- figures -------------------------------------------------------------------------------------

def latency_figures(seconds: list[float], tail: float) -> dict[str, float]:
    name = f"p{round(tail * 100)}_ms"
    return {"p50_ms": round(percentile(seconds, 0.5) * 1000, 2),
            name: round(percentile(seconds, tail) * 1000, 2)}


async def request(session: ClientSession, method: str, url: str, token: str,
                  body: Any = None) -> tuple[int, Any, float]:
    t = time.perf_counter()
    async with session.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        data = await r.json(content_type=None)
        status = r.status
    return status, data, time.perf_counter() - t


async def in_flight(jobs: list[Callable[[], Awaitable[None]]], concurrency: int) -> float:
    """Run the jobs, ``concurrency`` at a time; the wall time."""
    it = iter(jobs)

    async def worker() -> None:
        for job in it:
            await job()

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t


# --- 1. transitions through the API --------------------------------------------------------------

STEPS: tuple[tuple[str, dict[str, str], str], ...] = (
    ("sign", {}, "signed"),
    ("progress", {"note": "已安排人员到场"}, "in_progress"),
    ("reply", {"result": "路灯已修复，已回复市民"}, "replied"),
)


async def transitions(label: str, url: str, n: int, concurrency: int, tmp: Path,
                      problems: list[str]) -> dict[str, Any]:
    state_dir = tmp / f"transitions-{label}"
    site = state_dir / "site.toml"
    state_dir.mkdir(parents=True)
    site.write_text(site_toml(["12345", "110"], {}), encoding="utf-8")
    secrets = bench_secrets()
    operator, department = secrets.token_for("operator"), secrets.token_for("department", DEPARTMENT)
    settings = Settings(state_dir=state_dir, site_file=site, database_url=url, redis_url="")
    app = create_app(settings, secrets)
    runner, base = await serve(app)
    try:
        db = app[keys.DATABASE]
        tickets = await insert_orders(db, "12345", 1, n, time.time())
        async with ClientSession(connector=TCPConnector(limit=concurrency)) as s:
            for _ in range(20):  # warm-up: connections, the first request's paths
                await request(s, "GET", f"{base}/api/handlers", department)

            refused: list[str] = []
            dispatch_lat: list[float] = []

            def dispatch(t: str) -> Callable[[], Awaitable[None]]:
                async def job() -> None:
                    status, body, dt = await request(s, "POST", f"{base}/api/work-orders/{t}/dispatch",
                                                     operator, {"handlers": [DEPARTMENT]})
                    dispatch_lat.append(dt)
                    if status != 200 or [p["state"] for p in body["parts"]] != ["dispatched"]:
                        refused.append(f"dispatch {t}: {status} {str(body)[:200]}")
                return job

            dispatch_wall = await in_flight([dispatch(t) for t in tickets], concurrency)

            base_lat: list[float] = []

            async def read() -> None:
                status, body, dt = await request(s, "GET", f"{base}/api/handlers", department)
                base_lat.append(dt)
                if status != 200 or not any(h["id"] == DEPARTMENT for h in body["handlers"]):
                    refused.append(f"GET /api/handlers: {status} {str(body)[:200]}")

            base_wall = await in_flight([read] * (len(STEPS) * n), concurrency)

            step_lat: dict[str, list[float]] = {name: [] for name, _, _ in STEPS}

            def drive(t: str) -> Callable[[], Awaitable[None]]:
                async def job() -> None:
                    for name, body_, want in STEPS:
                        status, body, dt = await request(
                            s, "POST", f"{base}/api/work-orders/{t}/parts/1/{name}", department, body_)
                        step_lat[name].append(dt)
                        state = (body.get("parts") or [{}])[0].get("state") if status == 200 else None
                        if state != want:
                            refused.append(f"{name} {t}: {status} {str(body)[:200]}")
                            return
                    if body["work_order"]["status"] != "replied":
                        refused.append(f"{t} is {body['work_order']['status']!r} after its only part replied")
                return job

            wall = await in_flight([drive(t) for t in tickets], concurrency)
        async with db.read() as conn:
            moved = (await conn.execute(
                select(func.count()).select_from(WorkOrderHistoryRow)
                .where(WorkOrderHistoryRow.step.in_([name for name, _, _ in STEPS])))).scalar_one()
            replied = (await conn.execute(
                select(func.count()).select_from(WorkOrderPartRow)
                .where(WorkOrderPartRow.state == "replied"))).scalar_one()
    finally:
        await runner.cleanup()
    problems += [f"transitions on {label}: {r}" for r in refused[:10]]
    if len(refused) > 10:
        problems.append(f"transitions on {label}: {len(refused) - 10} more refused")
    if moved != len(STEPS) * n or replied != n:
        problems.append(f"transitions on {label}: history holds {moved} sign/progress/reply moves and "
                        f"{replied} parts are replied; {len(STEPS) * n} and {n} expected")
    lat = [x for v in step_lat.values() for x in v]
    return {
        "database": label, "orders": n, "concurrency": concurrency,
        "requests": len(lat), "measured": len(lat) - len(refused),
        "transitions_per_s": round(len(lat) / wall, 1), "wall_s": round(wall, 3),
        **latency_figures(lat, 0.99),
        "per_step_p50_ms": {k: round(percentile(v, 0.5) * 1000, 2) for k, v in step_lat.items()},
        "dispatch": {"requests": len(dispatch_lat), "per_s": round(len(dispatch_lat) / dispatch_wall, 1),
                     **latency_figures(dispatch_lat, 0.99)},
        "baseline": {"what": "GET /api/handlers", "requests": len(base_lat),
                     "per_s": round(len(base_lat) / base_wall, 1), **latency_figures(base_lat, 0.99)},
    }


# --- 2. the exchange between two installations ---------------------------------------------------

@public
async def echo(request: web.Request) -> web.Response:
    """The baseline's far end: read the body, answer 200 with an acknowledgement's shape."""
    await request.read()
    return web.json_response({"ticket": "110-20261203-000001", "part": 1, "state": "dispatched",
                              "duplicate": False})


async def serve_peer() -> None:
    """``--serve``: one installation's API as ``hotline api`` runs it (settings from the environment),
    plus the echo route, until SIGTERM."""
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    app = create_app(settings)
    app.router.add_post(ECHO_PATH, echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, settings.api_host, settings.api_port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


class Peer:
    """The 110 installation in a process of its own."""

    def __init__(self, state_dir: Path, site: Path, port: int, log_file: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log_file = log_file
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update(HOTLINE_SITE=str(site), HOTLINE_STATE_DIR=str(state_dir), HOTLINE_API_HOST="127.0.0.1",
                   HOTLINE_API_PORT=str(port), HOTLINE_LOG_LEVEL="WARNING", DATABASE_URL="", REDIS_URL="")
        with log_file.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.bench_loop", "--serve"], cwd=REPO,
                                         env=env, stdout=out, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-1500:]
        except OSError:
            return ""

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with ClientSession(timeout=ClientTimeout(total=2)) as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise Broken(f"the 110 process exited {self.proc.returncode}: {self.tail()}")
                try:
                    async with s.get(f"{self.base}/ready") as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
                await asyncio.sleep(0.1)
        raise Broken(f"the 110 process did not get ready in {timeout:.0f} s: {self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def outbox_rows(db: Database, tickets: list[str]) -> list[dict[str, Any]]:
    async with db.read() as conn:
        res = await conn.execute(select(OutboxRow.__table__).where(OutboxRow.ticket.in_(tickets)))
        return [dict(r) for r in res.mappings()]


async def acknowledged(db: Database, sender: Sender, until: int, tickets: list[str],
                       timeout: float) -> list[dict[str, Any]]:
    """The outbox rows of ``tickets`` once every one is delivered; raises saying what is missing.
    Waits on the sender's own count (``until``: its count once these are delivered), not by polling
    the database the sender writes to; the database is read once it says so (or every 0.2 s)."""
    deadline = time.monotonic() + timeout
    last_read = 0.0
    while True:
        if sender.delivered >= until or time.monotonic() - last_read > 0.2:
            last_read = time.monotonic()
            rows = await outbox_rows(db, tickets)
            if len(rows) == len(tickets) and all(r["delivered_at"] is not None for r in rows):
                return rows
            if refused := [r for r in rows if r["next_at"] >= REFUSED_FOR_GOOD]:
                raise Broken(f"{len(refused)} of {len(tickets)} orders refused for good by 110: "
                             f"{sorted({str(r['last_error']) for r in refused})[:3]}")
        if time.monotonic() > deadline:
            rows = await outbox_rows(db, tickets)
            pending = [r for r in rows if r["delivered_at"] is None]
            errors = sorted({str(r["last_error"]) for r in pending})[:3]
            raise Broken(f"{len(pending) + len(tickets) - len(rows)} of {len(tickets)} orders never "
                         f"acknowledged by 110 within {timeout:.0f} s ({len(rows)} in the outbox; "
                         f"last errors: {errors})")
        await asyncio.sleep(0.001)


def delivery_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [r["delivered_at"] - r["created_at"] for r in rows]
    span = max(r["delivered_at"] for r in rows) - min(r["created_at"] for r in rows)
    return {"messages": len(rows), "measured": len(rows), "messages_per_s": round(len(rows) / span, 1),
            **latency_figures(lat, 0.95), "max_ms": round(max(lat) * 1000, 2),
            "retried": sum(r["attempts"] > 1 for r in rows)}


async def exchange(m: int, tmp: Path, trouble: Trouble, problems: list[str]) -> dict[str, Any]:
    key = _secrets.token_urlsafe(32)
    port_12345, port_110 = free_port(), free_port()
    url_12345, url_110 = f"http://127.0.0.1:{port_12345}", f"http://127.0.0.1:{port_110}"
    dir_a, dir_b = tmp / "inst-12345", tmp / "inst-110"
    installation_secrets(dir_a, "110", key)
    sec_b = installation_secrets(dir_b, "12345", key)
    (dir_a / "site.toml").write_text(site_toml(["12345"], {"110": url_110 + PATH}), encoding="utf-8")
    (dir_b / "site.toml").write_text(site_toml(["110"], {"12345": url_12345 + PATH}), encoding="utf-8")
    settings = Settings(state_dir=dir_a, site_file=dir_a / "site.toml", database_url="", redis_url="",
                        api_host="127.0.0.1", api_port=port_12345)
    app = create_app(settings)  # its secrets: dir_a/secrets.json
    runner, base = await serve(app, port_12345)
    peer = Peer(dir_b, dir_b / "site.toml", port_110, trouble.child_log or tmp / "peer.log")
    try:
        await peer.ready()
        db, sender = app[keys.DATABASE], app[keys.SENDER]
        operator = app[keys.SECRETS].token_for("operator")
        warm, one, burst = 5, m, m
        now = time.time()
        tickets = await insert_orders(db, "12345", 1, warm + one + burst, now)
        t_warm, t_one, t_burst = tickets[:warm], tickets[warm:warm + one], tickets[warm + one:]
        timeout = 30 + 0.2 * m

        async with ClientSession() as s:
            async def dispatch(t: str) -> None:
                status, body, _ = await request(s, "POST", f"{base}/api/work-orders/{t}/dispatch", operator,
                                                {"handlers": ["110"]})
                if status != 200:
                    raise Broken(f"dispatch of {t} to 110 refused: {status} {str(body)[:300]}")

            for t in t_warm:
                await dispatch(t)
            await acknowledged(db, sender, sender.delivered + warm, t_warm, timeout)

            # baseline: the same bytes, one at a time, one kept-alive connection (as HttpTransport)
            bodies = [r["body"].encode() for r in await outbox_rows(db, t_warm)]
            bodies = (bodies * (m // len(bodies) + 1))[:m]
            base_lat: list[float] = []
            for b in bodies[:5]:
                async with s.post(peer.base + ECHO_PATH, data=b,
                                  headers={"Content-Type": "application/json"}) as r:
                    await r.read()
            t0 = time.perf_counter()
            for b in bodies:
                t1 = time.perf_counter()
                async with s.post(peer.base + ECHO_PATH, data=b,
                                  headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    if r.status != 200:
                        raise Broken(f"bare POST to the 110 process: {r.status}")
                base_lat.append(time.perf_counter() - t1)
            base_wall = time.perf_counter() - t0

            # one order at a time: dispatch, wait for 110's acknowledgement, next
            for t in t_one:
                await dispatch(t)
                await acknowledged(db, sender, sender.delivered + 1, [t], timeout)
            one_rows = await outbox_rows(db, t_one)

            # back to back: M dispatches without waiting, then every acknowledgement
            until = sender.delivered + burst
            t0 = time.perf_counter()
            for t in t_burst:
                await dispatch(t)
            dispatch_wall = time.perf_counter() - t0
            burst_rows = await acknowledged(db, sender, until, t_burst, timeout)

        # both sides agree: each 12345 part knows its 警单, each 警单 knows where it came from
        sent = t_warm + t_one + t_burst
        async with db.read() as conn:
            links = {r.ticket: r.peer_ticket for r in await conn.execute(
                select(WorkOrderPartRow.ticket, WorkOrderPartRow.peer_ticket)
                .where(WorkOrderPartRow.ticket.in_(sent), WorkOrderPartRow.handler == "110"))}
        unlinked = [t for t in sent if not str(links.get(t) or "").startswith("110-")]
        if unlinked:
            problems.append(f"exchange: {len(unlinked)} of {len(sent)} 12345 parts have no 110 ticket "
                            f"after the acknowledgement (e.g. {unlinked[:3]})")
        supervisor = sec_b.token_for("supervisor")
        mismatched: list[str] = []
        async with ClientSession(connector=TCPConnector(limit=8)) as s:
            def check(t: str) -> Callable[[], Awaitable[None]]:
                async def job() -> None:
                    status, body, _ = await request(s, "GET", f"{peer.base}/api/work-orders/{links[t]}",
                                                    supervisor)
                    wo = body.get("work_order", {}) if status == 200 else {}
                    seen = (wo.get("origin"), wo.get("peer_ticket"), wo.get("status"))
                    if seen != ("12345", t, "dispatched"):
                        mismatched.append(f"{links[t]}: {status} {str(body)[:200]}")
                return job

            await in_flight([check(t) for t in sent if t not in unlinked], 8)
            status, log_in, _ = await request(
                s, "GET", f"{peer.base}/api/exchange/log?direction=in&limit=500", sec_b.token_for("admin"))
        if mismatched:
            problems.append(f"exchange: {len(mismatched)} 110 orders do not match what 12345 sent: "
                            f"{mismatched[:3]}")
        outcomes = [msg["outcome"] for msg in log_in.get("messages", [])] if status == 200 else ["?"]
        if any(o != "applied" for o in outcomes):
            problems.append(f"exchange: the 110 side's log holds {sorted(set(outcomes))} "
                            f"(only 'applied' expected): {str(log_in)[:300]}")
    finally:
        peer.stop()
        await runner.cleanup()
    one_fig, burst_fig = delivery_figures(one_rows), delivery_figures(burst_rows)
    for name, fig in (("one at a time", one_fig), ("back to back", burst_fig)):
        if fig["retried"]:
            problems.append(f"exchange {name}: {fig['retried']} messages needed a second attempt")
    return {
        "databases": "SQLite on both sides",
        "payload_bytes_p50": int(statistics.median(len(b) for b in bodies)),
        "one_at_a_time": one_fig,
        "back_to_back": {**burst_fig, "dispatch_per_s": round(burst / dispatch_wall, 1)},
        "baseline": {"what": f"bare POST {ECHO_PATH} of the same bytes, one at a time",
                     "messages": len(base_lat), "messages_per_s": round(len(base_lat) / base_wall, 1),
                     **latency_figures(base_lat, 0.95)},
    }


# --- 3. the deadline sweep -----------------------------------------------------------------------

async def sweep(label: str, url: str, n: int, problems: list[str]) -> dict[str, Any]:
    engine = make_engine(url, pool_pre_ping=False)
    try:
        await upgrade_engine(engine)
        db = Database(engine)
        now = time.time()
        rows, expected = make_parts(n, now, random.Random(12345))
        t0 = time.perf_counter()
        for i in range(0, n, 5000):
            async with db.write() as conn:
                await conn.execute(insert(WorkOrderPartRow), rows[i:i + 5000])
        insert_s = time.perf_counter() - t0
        if db.dialect == "postgresql":
            async with db.write() as conn:
                await conn.execute(text("ANALYZE work_order_parts"))

        count_q = select(func.count()).select_from(WorkOrderPartRow).where(
            WorkOrderPartRow.state.in_(LIVE), WorkOrderPartRow.due_at <= now)
        counts: list[float] = []
        for i in range(4):  # the first warms the cache, as the sweep's own first query would not be
            t0 = time.perf_counter()
            async with db.read() as conn:
                due = (await conn.execute(count_q)).scalar_one()
            if i:
                counts.append(time.perf_counter() - t0)
        if due != expected["overdue"]:
            problems.append(f"sweep on {label}: count(*) says {due} parts are due, "
                            f"{expected['overdue']} were made")

        published: list[dict[str, Any]] = []
        sw = DeadlineSweep(db, URGE_AFTER_H, published.append)
        t0 = time.perf_counter()
        fired = await sw.run_once(now=now)
        first_s = time.perf_counter() - t0
        if db.dialect == "postgresql":
            # autovacuum analyzes a table after this many new rows; without fresh statistics the
            # planner scans the new alerts once per part (350 ms here instead of 20)
            async with db.write() as conn:
                await conn.execute(text("ANALYZE deadline_alerts"))
        seconds: list[float] = []
        refired = 0
        for _ in range(3):
            t0 = time.perf_counter()
            refired += len(await sw.run_once(now=now))
            seconds.append(time.perf_counter() - t0)
        async with db.read() as conn:
            stored = (await conn.execute(select(func.count()).select_from(DeadlineAlertRow))).scalar_one()
            marked = (await conn.execute(select(func.count()).select_from(WorkOrderPartRow)
                                         .where(WorkOrderPartRow.overdue_at.is_not(None)))).scalar_one()
    finally:
        await engine.dispose()
    got = {k: 0 for k in expected}
    for a in fired:
        kind = a["kind"] + (str(a["level"]) if a["kind"] == "urge" else "")
        got[kind] = got.get(kind, 0) + 1
    want = sum(expected.values())
    if got != expected:
        problems.append(f"sweep on {label}: the first sweep fired {got}, {expected} were due")
    if refired:
        problems.append(f"sweep on {label}: the second sweep fired {refired} alerts again (duplicates)")
    if stored != want or len(published) != want:
        problems.append(f"sweep on {label}: {stored} alert rows stored, {len(published)} published, "
                        f"{want} due")
    if marked != expected["overdue"]:
        problems.append(f"sweep on {label}: {marked} parts marked overdue, {expected['overdue']} are")
    return {
        "database": label, "parts": n, "insert_s": round(insert_s, 2), "due": expected,
        "first": {"rounds": 1, "fired": len(fired), "ms": round(first_s * 1000, 1),
                  "parts_per_s": round(n / first_s)},
        "second": {"rounds": len(seconds), "fired": refired,
                   "ms": round(statistics.median(seconds) * 1000, 1),
                   "max_ms": round(max(seconds) * 1000, 1),
                   "parts_per_s": round(n / statistics.median(seconds))},
        "baseline": {"what": "SELECT count(*) of live parts with due_at <= now", "rounds": len(counts),
                     "count": due, "ms": round(statistics.median(counts) * 1000, 2),
                     "max_ms": round(max(counts) * 1000, 2),
                     "parts_per_s": round(n / statistics.median(counts))},
    }


# --- the run -------------------------------------------------------------------------------------

async def main_async(sizes: dict[str, int], concurrency: int,
                     trouble: Trouble) -> tuple[dict[str, Any], list[str]]:
    env = Settings.from_env()
    pg_admin = env.database_url if env.database_url.startswith("postgresql") else DEFAULT_PG
    problems: list[str] = []
    res: dict[str, Any] = {
        "benchmark": "work-order closed loop",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "params": {**sizes, "concurrency": concurrency,
                   "client": "aiohttp, in the process of the app it drives (the 110 side: its own process)"},
    }
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as name:
        tmp = Path(name)
        trouble.child_log = tmp / "peer-110.log"
        sections: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("transitions_sqlite", lambda: transitions("SQLite", f"sqlite+aiosqlite:///{tmp}/transitions.db",
                                                       sizes["orders"], concurrency, tmp, problems)),
            ("transitions_postgresql", lambda: _on_pg(pg_admin, lambda url: transitions(
                "PostgreSQL", url, sizes["orders"], concurrency, tmp, problems))),
            ("exchange", lambda: exchange(sizes["messages"], tmp, trouble, problems)),
            ("sweep_sqlite", lambda: sweep("SQLite", f"sqlite+aiosqlite:///{tmp}/sweep.db", sizes["parts"],
                                           problems)),
            ("sweep_postgresql", lambda: _on_pg(pg_admin, lambda url: sweep(
                "PostgreSQL", url, sizes["parts"], problems))),
        ]
        for key, run in sections:
            t0 = time.perf_counter()
            try:
                res[key] = await run()
            except Broken as exc:
                problems.append(f"{key}: {exc}")
            res.setdefault("section_s", {})[key] = round(time.perf_counter() - t0, 1)
            problems += [f"{key}: logged {line}" for line in trouble.take() if not is_expected(line)]
    return res, problems


async def _on_pg(admin: str, run: Callable[[str], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    async with pg_database(admin) as url:
        return await run(url)


def _cost(value: float, baseline: float, rate: float, baseline_rate: float) -> str:
    """How much slower than the baseline: p50 times it, and the share of its throughput."""
    if not (baseline and rate):
        return "-"
    return f"p50 {value / baseline:,.1f}x, rate 1/{baseline_rate / rate:,.1f}"


def table(res: dict[str, Any]) -> str:
    lines = ["| measured | n | throughput | p50 | tail | baseline (same run) | baseline throughput | "
             "baseline p50 | baseline tail | vs baseline |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for key in ("transitions_sqlite", "transitions_postgresql"):
        r = res.get(key)
        if r is None:
            continue
        b = r["baseline"]
        lines.append(
            f"| sign -> progress -> reply over HTTP, {r['database']}, {r['concurrency']} in flight | "
            f"{r['requests']} | {r['transitions_per_s']:,.0f} transitions/s | {r['p50_ms']} ms | "
            f"p99 {r['p99_ms']} ms | GET /api/handlers, same app | {b['per_s']:,.0f} req/s | "
            f"{b['p50_ms']} ms | p99 {b['p99_ms']} ms | "
            f"{_cost(r['p50_ms'], b['p50_ms'], r['transitions_per_s'], b['per_s'])} |")
    if (x := res.get("exchange")) is not None:
        b = x["baseline"]
        for key, name in (("one_at_a_time", "one order at a time"), ("back_to_back", "back to back")):
            r = x[key]
            lines.append(
                f"| exchange 12345 -> 110 (two processes), {name}: dispatch commit to 110's ack | "
                f"{r['messages']} | {r['messages_per_s']:,.0f} messages/s | {r['p50_ms']} ms | "
                f"p95 {r['p95_ms']} ms | bare POST of the same bytes, same processes | "
                f"{b['messages_per_s']:,.0f} messages/s | {b['p50_ms']} ms | p95 {b['p95_ms']} ms | "
                f"{_cost(r['p50_ms'], b['p50_ms'], r['messages_per_s'], b['messages_per_s'])} |")
    for key in ("sweep_sqlite", "sweep_postgresql"):
        r = res.get(key)
        if r is None:
            continue
        b = r["baseline"]
        for run, name in (("first", "first sweep"), ("second", "second sweep")):
            s = r[run]
            tail = f"max {s['max_ms']} ms" if "max_ms" in s else "-"
            lines.append(
                f"| DeadlineSweep.run_once, {name} ({s['fired']:,} fired), {r['database']} | "
                f"{r['parts']:,} parts | {s['parts_per_s']:,} parts/s | {s['ms']} ms | {tail} | "
                f"count(*) of due live parts ({b['count']:,}) | {b['parts_per_s']:,} parts/s | "
                f"{b['ms']} ms | max {b['max_ms']} ms | "
                f"{_cost(s['ms'], b['ms'], s['parts_per_s'], b['parts_per_s'])} |")
    p = res["params"]
    lines.append("")
    lines.append(f"{res['machine']['cpus']} CPUs, Python {res['machine']['python']}; transitions: "
                 f"{p['orders']} orders x 3 steps; exchange: {p['messages']} orders per mode; sweep: "
                 f"{p['parts']:,} live parts. p50 for a sweep is its time (second sweep: median of 3).")
    notes = []
    for key in ("transitions_sqlite", "transitions_postgresql"):
        if (r := res.get(key)) is not None:
            d = r["dispatch"]
            notes.append(f"dispatch to one department on {r['database']}: {d['per_s']:,.0f}/s, p50 "
                         f"{d['p50_ms']} ms, p99 {d['p99_ms']} ms; per step p50 {r['per_step_p50_ms']}")
    if (x := res.get("exchange")) is not None:
        notes.append(f"exchange payload ~{x['payload_bytes_p50']} bytes; back to back, 12345 took "
                     f"{x['back_to_back']['dispatch_per_s']:,.0f} dispatches/s")
    for key in ("sweep_sqlite", "sweep_postgresql"):
        if (r := res.get(key)) is not None:
            notes.append(f"sweep on {r['database']}: due {r['due']}; bulk insert {r['insert_s']} s")
    return "\n".join(lines + [f"- {n}" for n in notes])


def figure_rows(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every measured row and its baseline, for the check that each measured something."""
    rows: dict[str, dict[str, Any]] = {}
    for key in ("transitions_sqlite", "transitions_postgresql", "sweep_sqlite", "sweep_postgresql"):
        if (r := res.get(key)) is None:
            rows[key] = {"note": "not measured"}
            continue
        if key.startswith("transitions"):
            rows[key] = {k: v for k, v in r.items() if k in ("requests", "measured", "transitions_per_s",
                                                              "p50_ms", "p99_ms")}
        else:
            rows[f"{key} first"], rows[f"{key} second"] = r["first"], r["second"]
        rows[f"{key} baseline"] = {k: v for k, v in r["baseline"].items() if k != "count"}
    if (x := res.get("exchange")) is None:
        rows["exchange"] = {"note": "not measured"}
    else:
        rows["exchange one at a time"] = {k: v for k, v in x["one_at_a_time"].items() if k != "retried"}
        rows["exchange back to back"] = {k: v for k, v in x["back_to_back"].items() if k != "retried"}
        rows["exchange baseline"] = x["baseline"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=FULL["orders"], help="orders driven through the steps")
    ap.add_argument("--messages", type=int, default=FULL["messages"], help="orders sent to 110, per mode")
    ap.add_argument("--parts", type=int, default=FULL["parts"], help="live parts the sweep runs over")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (transitions)")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK['orders']} orders, {QUICK['messages']} messages, {QUICK['parts']:,} parts; "
                         "results not written")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here (also for a quick run)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the 110 process
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve_peer())
        return
    sizes = dict(QUICK) if args.quick else {"orders": args.orders, "messages": args.messages,
                                            "parts": args.parts}
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(lambda r: "REDIS_URL not set" not in r.getMessage())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    trouble = Trouble()
    t0 = time.perf_counter()
    with trouble.watching():
        res, problems = asyncio.run(main_async(sizes, args.concurrency, trouble))
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    print(table(res))
    sections = ", ".join(f"{k} {v} s" for k, v in res.get("section_s", {}).items())
    print(f"\nwall {res['wall_s']} s ({sections})")
    if problems:
        for p in problems:
            print(f"PROBLEM: {p}", file=sys.stderr)
        raise SystemExit(f"{ERROR_ID}: " + "; ".join(problems[:10]))
    require_measured(figure_rows(res))
    write_result(NAME, res, quick=args.quick, out=args.out)


if __name__ == "__main__":
    main()

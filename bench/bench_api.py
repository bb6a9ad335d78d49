"""Call-event recording through the API, beside a bare aiohttp handler, in one run.

    .venv/bin/python bench/bench_api.py [--events N] [--concurrency C]

Starts each target in-process on a loopback port (a real server) and drives it over HTTP with one
aiohttp client at a fixed concurrency: POST /api/events, one event per request, on SQLite and on
PostgreSQL (a throwaway database on 127.0.0.1:5432, or DATABASE_URL's server), then the same in
batches of 100. The baseline is a bare aiohttp handler that reads the same body and answers 200 JSON.
Redis is REDIS_URL or a throwaway redis-server, so every stored event is also published.
Prints a markdown table and writes bench/results/api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets as _secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, TCPConnector, web
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.factory import create_app  # noqa: E402
from hotline.secrets import API_ROLES, Secrets  # noqa: E402
from hotline.settings import Settings  # noqa: E402
from operations.redis_server import RedisServer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "api.json"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
T0 = 1_760_000_000.0
CALL_SHAPE = [
    ("arrived", 0.0),
    ("queued", 1.0),
    ("ringing", 2.0),
    ("answered", 9.0),
    ("bridged", 9.5),
    ("hangup", 70.0),
]


def make_events(n: int, run: str) -> list[dict[str, Any]]:
    """``n`` events shaped like real calls: arrived, queued, ringing, answered, bridged, hangup."""
    events = []
    call = 0
    while len(events) < n:
        lid = f"{run}.{call}"
        for etype, dt in CALL_SHAPE:
            events.append(
                {
                    "event_id": f"{lid}-{etype}",
                    "linkedid": lid,
                    "type": etype,
                    "at": T0 + call + dt,
                    "source": "ami",
                    "service": "12345",
                    "caller": f"138{call % 100_000_000:08d}",
                    "seat": "seat-12345-01" if etype in ("ringing", "answered", "bridged") else None,
                    "data": {"queue": "hotline-12345"} if etype == "queued" else {},
                }
            )
        call += 1
    return events[:n]


def bare_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"received": 1, "new": 1, "duplicates": 0})

    app = web.Application()
    app.router.add_post("/api/events", handler)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def drive(
    base: str, bodies: list[Any], concurrency: int, token: str, events_per_body: int
) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    headers = {"Authorization": f"Bearer {token}"}
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:

        async def post(body: Any) -> bool:
            async with session.post(f"{base}/api/events", json=body, headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        for i in range(min(50, len(bodies))):  # warm-up: connections, caches, first-insert paths
            await post(
                {
                    "event_id": f"warm-{i}-{_secrets.token_hex(4)}",
                    "linkedid": f"warm.{i}",
                    "type": "arrived",
                    "at": T0,
                    "data": {},
                }
            )

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                t = time.perf_counter()
                ok = await post(body)
                latencies.append(time.perf_counter() - t)
                failures += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(bodies),
        "events": len(bodies) * events_per_body,
        "failures": failures,
        "wall_s": round(wall, 3),
        "events_per_s": round(len(bodies) * events_per_body / wall, 1),
        "requests_per_s": round(len(bodies) / wall, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


async def pg_database(admin_url: str) -> tuple[str | None, Callable[[], Awaitable[None]], str]:
    import asyncpg

    u = make_url(admin_url)
    kw = {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "password": u.password,
        "timeout": 5,
    }
    name = f"hotline_bench_{_secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(database=u.database or "postgres", **kw)
    except Exception as exc:
        return None, _noop, f"PostgreSQL not measured: {exc!r}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()

    async def drop() -> None:
        c = await asyncpg.connect(database=u.database or "postgres", **kw)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop, ""


async def _noop() -> None:
    return None


async def main(n_events: int, concurrency: int, batch: int) -> dict[str, Any]:
    env = Settings.from_env()
    secrets = Secrets("bench", {}, {f"bench-{r}": {"name": f"bench-{r}", "role": r} for r in API_ROLES})
    token = secrets.token_for("service")
    redis = None if env.redis_url else RedisServer().start()
    redis_url = env.redis_url or (redis.url if redis else "")
    pg_admin = env.database_url if env.database_url.startswith("postgresql") else DEFAULT_PG
    pg_url, drop_pg, pg_note = await pg_database(pg_admin)
    rows: list[dict[str, Any]] = []
    tmp = tempfile.TemporaryDirectory(prefix="hotline-bench-")
    try:
        targets: list[tuple[str, Callable[[], web.Application] | None]] = [
            ("bare aiohttp handler", bare_app),
        ]
        for label, url in (("SQLite", f"sqlite+aiosqlite:///{tmp.name}/bench.db"), ("PostgreSQL", pg_url)):
            settings = Settings(state_dir=Path(tmp.name), database_url=url or "", redis_url=redis_url)
            factory = (lambda s=settings: create_app(s, secrets)) if url else None
            targets.append((f"API on {label}", factory))
        for name, factory in targets:
            if factory is None:
                rows.append({"target": name, "mode": "-", "skipped": pg_note})
                continue
            runner, base = await serve(factory())
            try:
                run = _secrets.token_hex(3)
                events = make_events(n_events, run)
                single = await drive(base, events, concurrency, token, 1)
                rows.append({"target": name, "mode": "1 event/request", **single})
                if name != "bare aiohttp handler":
                    batches = make_events(n_events, run + "b")
                    bodies = [{"events": batches[i : i + batch]} for i in range(0, len(batches), batch)]
                    rows.append(
                        {
                            "target": name,
                            "mode": f"{batch} events/request",
                            **await drive(base, bodies, concurrency, token, batch),
                        }
                    )
            finally:
                await runner.cleanup()
    finally:
        tmp.cleanup()
        await drop_pg()
        if redis:
            redis.stop()
    return {
        "benchmark": "POST /api/events",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "params": {
            "events": n_events,
            "concurrency": concurrency,
            "batch": batch,
            "client": "aiohttp, same process and loop as the server",
        },
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    bare = next((r for r in result["rows"] if r["target"].startswith("bare") and "events_per_s" in r), None)
    lines = [
        "| target | mode | events/s | requests/s | p50 ms | p99 ms | failures | events/s vs bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['target']} | - | - | - | - | - | - | {r['skipped']} |")
            continue
        ratio = f"{r['events_per_s'] / bare['events_per_s']:.2f}x" if bare else "-"
        lines.append(
            f"| {r['target']} | {r['mode']} | {r['events_per_s']:.0f} | {r['requests_per_s']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['failures']} | {ratio} |"
        )
    p = result["params"]
    lines.append(
        f"\n{p['events']} events per row, concurrency {p['concurrency']}, {result['machine']['cpus']} CPUs, "
        f"Python {result['machine']['python']}; client and server share one event loop."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=3000, help="events per row (default 3000)")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    ap.add_argument("--batch", type=int, default=100, help="events per request in the batch rows")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    res = asyncio.run(main(args.events, args.concurrency, args.batch))
    print(table(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")

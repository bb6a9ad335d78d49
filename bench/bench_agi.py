"""Intake over FastAGI versus the same handler as classic AGI (pyst2, one process per call).

Both are driven by the fake Asterisk in ``agents.fake_asterisk``: TCP for FastAGI, the stdin/stdout pipes
of a freshly spawned ``python -m agi.classic`` for classic AGI. Both use real Redis and post their
arrival event to a throwaway local HTTP endpoint standing in for the API. A call's latency is what
Asterisk waits: from connect (or spawn) until the session is closed (and the process has exited).

Also a load mode: ``--concurrency`` FastAGI sessions at once, reporting the intake handler's own p99
(measured inside the server) and the whole session's p99 as Asterisk sees it.

    .venv/bin/python -m bench.bench_agi                  # full run, ~30-60 s on 2 cores
    .venv/bin/python -m bench.bench_agi --quick          # smoke run
    REDIS_URL=redis://127.0.0.1:6380/0 .venv/bin/python -m bench.bench_agi

Prints a markdown table and writes ``bench/results/agi.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from agents.fake_asterisk import call_env, classic_call, fastagi_call
from agi.intake import IntakeDecision, IntakeRequest, IntakeService
from agi.server import start_agi_server
from hotline import redis_keys
from hotline.names import AGI_ROUTE_INTAKE, VAR_INTAKE
from hotline.secrets import ensure_secrets
from hotline.settings import Settings
from hotline.sink import EventSink

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results" / "agi.json"
SERVICES = ("12345", "110")


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    s = sorted(samples)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k] * 1000


def summary(samples: list[float], wall_s: float) -> dict[str, Any]:
    return {
        "calls": len(samples),
        "p50_ms": round(pct(samples, 50), 3),
        "p99_ms": round(pct(samples, 99), 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
        "max_ms": round(max(samples) * 1000, 3),
        "calls_per_s": round(len(samples) / wall_s, 1),
    }


class TimedIntake(IntakeService):
    """The real intake service, timing itself (what the handler costs inside the server)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.durations: list[float] = []

    async def intake(self, req: IntakeRequest) -> IntakeDecision:
        t0 = time.perf_counter()
        try:
            return await super().intake(req)
        finally:
            self.durations.append(time.perf_counter() - t0)


def caller_pool(seed: int, size: int = 500) -> list[str]:
    rng = random.Random(seed)
    return [f"139{rng.randrange(10**8):08d}" for _ in range(size)]


def fastagi_env(numbers: list[str]) -> dict[str, str]:
    lid = f"{time.time():.6f}.{random.randrange(10**6)}"
    return call_env(route=AGI_ROUTE_INTAKE, service=random.choice(SERVICES), linkedid=lid,
                    callerid=random.choice(numbers))


async def drive(port: int, *, concurrency: int, calls: int, rate: float, seed: int) -> dict[str, Any]:
    """The load generator (run in its own process, as Asterisk would be).

    ``rate`` 0: closed loop, ``concurrency`` sessions back to back (saturation). ``rate`` > 0: open
    loop, a new call every 1/rate s, at most ``concurrency`` in flight.
    """
    numbers = caller_pool(seed)
    lat: list[float] = []
    failures = degraded = 0
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal failures, degraded
        try:
            s = await fastagi_call("127.0.0.1", port, fastagi_env(numbers))
        except (OSError, TimeoutError):
            failures += 1
            return
        finally:
            sem.release()
        intake = s.variables.get(VAR_INTAKE)
        failures += intake is None
        degraded += intake == "degraded"
        lat.append(s.elapsed_s)

    t0 = time.perf_counter()
    tasks = []
    for i in range(calls):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await sem.acquire()
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return {"latencies": lat, "wall_s": time.perf_counter() - t0, "failures": failures, "degraded": degraded}


class Bench:
    def __init__(self, redis_url: str, seed: int) -> None:
        self.redis_url = redis_url
        self.seed = seed
        self.numbers = caller_pool(seed)
        self.events_received = 0
        self.failures: list[str] = []   # no answer at all: Asterisk would fall to agi-fail
        self.degraded: list[str] = []   # answered with defaults (e.g. Redis over its timeout)

    def _env(self, route: str | None) -> tuple[dict[str, str], str, str]:
        lid = f"{time.time():.6f}.{random.randrange(10**6)}"
        service = random.choice(SERVICES)
        return (call_env(route=route, service=service, linkedid=lid, callerid=random.choice(self.numbers)),
                service, lid)

    def _check(self, variables: dict[str, str], mode: str) -> None:
        intake = variables.get(VAR_INTAKE)
        if intake is None:
            self.failures.append(f"{mode}: {variables}")
        elif intake != "ok":
            self.degraded.append(f"{mode}: {variables}")

    async def _drive_from_child(self, port: int, concurrency: int, calls: int, rate: float) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.bench_agi", "--drive", str(port), "--concurrency", str(concurrency),
            "--concurrent-calls", str(calls), "--rate", str(rate), "--seed", str(self.seed),
            stdout=asyncio.subprocess.PIPE, cwd=str(REPO_ROOT))
        stdout, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"load driver failed ({proc.returncode})")
        res = json.loads(stdout)
        self.failures += [f"driver: {res['failures']} failed"] if res["failures"] else []
        self.degraded += [f"driver: {res['degraded']} degraded"] if res["degraded"] else []
        load = summary(res["latencies"], res["wall_s"])
        load.update(concurrency=concurrency, offered_rate_per_s=rate or None, failed=res["failures"],
                    degraded=res["degraded"])
        return load

    async def api(self) -> web.AppRunner:
        async def events(request: web.Request) -> web.Response:
            body = await request.json()
            self.events_received += len(body["events"]) if "events" in body else 1
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/api/events", events)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner

    async def run(self, args: argparse.Namespace) -> dict[str, Any]:
        runner = await self.api()
        port = runner.addresses[0][1]
        api_url = f"http://127.0.0.1:{port}"
        state_dir = Path(tempfile.mkdtemp(prefix="bench-agi-"))
        token = ensure_secrets(state_dir / "secrets.json", []).token_for("service")
        settings = Settings().with_(agi_host="127.0.0.1", agi_port=0, api_base_url=api_url,
                                    redis_url=self.redis_url)
        redis = Redis.from_url(self.redis_url, socket_timeout=1)
        await redis.ping()
        sink = EventSink.from_settings(settings, token)
        await sink.start()
        intake = TimedIntake(redis=redis, sink=sink, redis_timeout_s=settings.agi_budget_ms / 2000)
        server = await start_agi_server(settings, redis=redis, sink=sink, intake=intake)
        out: dict[str, Any] = {}
        try:
            # --- FastAGI, one call at a time ---------------------------------------------------
            for _ in range(args.warmup):
                env, _, _ = self._env(AGI_ROUTE_INTAKE)
                await fastagi_call("127.0.0.1", server.port, env)
            intake.durations.clear()
            lat: list[float] = []
            t0 = time.perf_counter()
            for _ in range(args.fastagi_calls):
                env, _, _ = self._env(AGI_ROUTE_INTAKE)
                s = await fastagi_call("127.0.0.1", server.port, env)
                self._check(s.variables, "fastagi")
                lat.append(s.elapsed_s)
            out["fastagi"] = summary(lat, time.perf_counter() - t0)
            out["fastagi"]["intake_handler_p99_ms"] = round(pct(intake.durations, 99), 3)

            # --- classic AGI, one process per call ----------------------------------------------
            proc_env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
            proc_env.update(REDIS_URL=self.redis_url, HOTLINE_API_URL=api_url,
                            HOTLINE_STATE_DIR=str(state_dir))
            for _ in range(args.classic_warmup):
                env, service, lid = self._env(None)
                await classic_call(env, [service, lid], proc_env=proc_env)
            lat = []
            t0 = time.perf_counter()
            for _ in range(args.classic_calls):
                env, service, lid = self._env(None)
                s = await classic_call(env, [service, lid], proc_env=proc_env)
                self._check(s.variables, "classic")
                lat.append(s.elapsed_s)
            out["classic"] = summary(lat, time.perf_counter() - t0)

            # --- FastAGI under load, driven from another process ---------------------------------
            for label, rate in (("fastagi_concurrent", 0.0), ("fastagi_paced", args.rate)):
                if not args.concurrency or (rate == 0.0 and not args.concurrent_calls):
                    continue
                calls = args.concurrent_calls if rate == 0.0 else int(rate * args.paced_seconds)
                intake.durations.clear()
                load = await self._drive_from_child(server.port, args.concurrency, calls, rate)
                load["intake_handler_p50_ms"] = round(pct(intake.durations, 50), 3)
                load["intake_handler_p99_ms"] = round(pct(intake.durations, 99), 3)
                out[label] = load
            await sink.flush(10)
        finally:
            await server.stop()
            await sink.aclose(5)
            await redis.delete(*[redis_keys.caller_history(n) for n in self.numbers])
            await redis.aclose()
            await runner.cleanup()

        f, c = out["fastagi"], out["classic"]
        out["ratio"] = {
            "p50": round(c["p50_ms"] / f["p50_ms"], 1),
            "p99": round(c["p99_ms"] / f["p99_ms"], 1),
            "calls_per_s": round(f["calls_per_s"] / c["calls_per_s"], 1),
        }
        out["failed_calls"] = len(self.failures)
        out["failures"] = self.failures[:20]
        out["degraded_answers"] = self.degraded[:20]
        out["events_received"] = self.events_received
        out["environment"] = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "budget_ms": settings.agi_budget_ms,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        return out


def table(r: dict[str, Any]) -> str:
    f, c, x = r["fastagi"], r["classic"], r["ratio"]
    lines = [
        "| intake handler | calls | p50 ms | p99 ms | calls/s |",
        "|---|---:|---:|---:|---:|",
        f"| FastAGI (panoramisk, one server) | {f['calls']} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} "
        f"| {f['calls_per_s']:.0f} |",
        f"| classic AGI (pyst2, process per call) | {c['calls']} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} "
        f"| {c['calls_per_s']:.1f} |",
        f"| **FastAGI advantage** | | **{x['p50']}×** | **{x['p99']}×** | **{x['calls_per_s']}×** |",
    ]
    loads = [(k, r[k]) for k in ("fastagi_concurrent", "fastagi_paced") if k in r]
    if loads:
        lines += [
            "",
            "| FastAGI under load (driver in its own process) | in flight ≤ | calls | session p50 ms "
            "| session p99 ms | intake handler p50 ms | intake handler p99 ms | calls/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key, k in loads:
            what = ("closed loop, back to back (saturation)" if key == "fastagi_concurrent"
                    else f"open loop, {k['offered_rate_per_s']:.0f} calls/s offered")
            lines.append(f"| {what} | {k['concurrency']} | {k['calls']} | {k['p50_ms']:.2f} "
                         f"| {k['p99_ms']:.2f} | {k['intake_handler_p50_ms']:.2f} "
                         f"| {k['intake_handler_p99_ms']:.2f} | {k['calls_per_s']:.0f} |")
    lines.append("")
    lines.append(f"failed calls: {r['failed_calls']}; degraded answers: {r['degraded_answers'] or 'none'}; "
                 f"arrival events received by the API stand-in: "
                 f"{r['events_received']}; {r['environment']['cpus']} CPUs, Python "
                 f"{r['environment']['python']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fastagi-calls", type=int, default=2000)
    ap.add_argument("--classic-calls", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--classic-warmup", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=100, help="0 to skip the load mode")
    ap.add_argument("--concurrent-calls", type=int, default=3000, help="calls in the closed-loop run")
    ap.add_argument("--rate", type=float, default=200.0, help="offered calls/s in the open-loop run")
    ap.add_argument("--paced-seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--drive", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="a few calls each, to check it runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    if args.drive:
        res = asyncio.run(drive(args.drive, concurrency=args.concurrency, calls=args.concurrent_calls,
                                rate=args.rate, seed=seed))
        print(json.dumps(res))
        return 0
    if args.quick:
        args.fastagi_calls, args.classic_calls, args.warmup = 100, 5, 10
        args.classic_warmup, args.concurrent_calls, args.paced_seconds = 1, 300, 2
    redis_url = Settings.from_env().redis_url or "redis://127.0.0.1:6379/0"
    result = asyncio.run(Bench(redis_url, seed).run(args))
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")
    return 1 if result["failed_calls"] else 0


if __name__ == "__main__":
    sys.exit(main())

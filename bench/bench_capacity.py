"""Capacity: SIPp drives concurrent calls through FastAGI intake, the queue and a seat's answer.

The whole stack runs on real parts (Asterisk 22 in its chroot, Redis, the API on SQLite, FastAGI,
the AMI listener). A bench site gives each platform enough seats (one SIPp UAS answers for all of
them); two SIPp callers (12345 and 110) hold ``C/2`` calls each, ``2C`` calls per level in all.

Per level it reports failed calls (SIPp and the API's records), calls the API recorded with an
answering seat, the highest overlap of answered calls seen in the records, and intake p50/p99 as
Asterisk waits for it (FastAGI session from connect to close, measured by the FastAGI process,
which runs on its own as in ``hotline up``). The baseline in the same run is the
lowest level (10 calls at once).

    .venv/bin/python -m bench.bench_capacity                # levels 10 25 50 100, ~3 minutes
    .venv/bin/python -m bench.bench_capacity --levels 10 50 --talk 4
    .venv/bin/python -m bench.bench_capacity --quick        # levels 2 and 6, 2 s calls, not written

Prints a markdown table and writes ``bench/results/capacity.json``. The run fails (exit 1) when any
part logged lost work while it ran (``bench.common.Trouble``: Redis pool exhausted, a broadcast or
the live state not written, a media tap lost, events dropped, anything at ERROR), when a row
measured nothing, and in a quick run when any call failed. ``BENCH_CHILD_LOG=FILE`` keeps the child
processes' log there (it is otherwise in the run's temp directory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from agents.sipp import SeatBank, place_call
from agi.stats import SessionStats
from bench.common import Trouble, require_measured, write_result
from hotline import redis_keys
from hotline.settings import Settings
from operations.stack import Stack


def bench_site(seats_per_platform: int) -> str:
    ops_12345 = [str(2000 + i) for i in range(seats_per_platform)]
    ops_110 = [str(3000 + i) for i in range(seats_per_platform)]
    q = ", ".join
    return f"""
[site]
name = "capacity bench"
[sip]
bind = "127.0.0.1"
port = 5060
rtp_start = 20000
rtp_end = 21999
qualify_s = 0   # one SIPp UAS answers for every seat, started after they all register (site.toml)
[ami]
bind = "127.0.0.1"
port = 5038
[agi]
host = "127.0.0.1"
port = 4573
[trunk]
hosts = ["127.0.0.2"]
[numbers]
"12345" = ["12345"]
"110" = ["110"]
[seats]
"12345" = [{q(f'"{s}"' for s in ops_12345)}]
"110" = [{q(f'"{s}"' for s in ops_110)}]
linkage_12345 = ["1291"]
linkage_110 = ["1191"]
supervisors = ["1901"]
[queues]
ring_seat_s = 15
retry_s = 1
"""


async def recorded_since(stack: Stack, since: float) -> list[dict[str, Any]]:
    assert stack.secrets is not None
    headers = {"Authorization": f"Bearer {stack.secrets.token_for('supervisor')}"}
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers=headers) as s:
        offset = 0
        while True:
            async with s.get(f"{stack.api_url}/api/calls",
                             params={"since": str(since), "limit": "500", "offset": str(offset)}) as r:
                page = await r.json()
            out += page["calls"]
            if len(page["calls"]) < 500:
                return out
            offset += 500


def max_overlap(calls: list[dict[str, Any]]) -> int:
    edges: list[tuple[float, int]] = []
    for c in calls:
        if c.get("answered_at") and c.get("ended_at"):
            edges += [(c["answered_at"], 1), (c["ended_at"], -1)]
    cur = best = 0
    for _, d in sorted(edges):
        cur += d
        best = max(best, cur)
    return best


async def run_level(stack: Stack, level: int, talk_s: float, trouble: Trouble) -> dict[str, Any]:
    assert stack.redis is not None
    per_side = max(1, level // 2)
    await stack.redis.delete(redis_keys.AGI_SESSION_MS)
    t0 = time.time()
    runs = [place_call(asterisk=stack.sip_address, service=svc, caller=f"1{n}{level:03d}",
                       talk_ms=int(talk_s * 1000), local_ip=stack.site.trunk_hosts[0],
                       calls=2 * per_side, concurrency=per_side,
                       rate=min(50.0, per_side * 2.0), unique_callers=True)
            for n, svc in ((3, "12345"), (5, "110"))]
    rcs = [await asyncio.to_thread(r.wait, talk_s * 4 + 120) for r in runs]
    await asyncio.sleep(2.0)  # let the last hangups reach the API
    calls = await recorded_since(stack, t0 - 1)
    expected = 4 * per_side
    answered = [c for c in calls if c.get("seat") and c.get("outcome") == "resolved_on_call"]
    await asyncio.sleep(1.5)  # the AGI process ships its session figures once a second
    raw = await stack.redis.lrange(redis_keys.AGI_SESSION_MS, 0, -1)
    stats = SessionStats(window=len(raw) + 1)
    for ms in raw:
        stats.record(float(ms) / 1000)
    intake = stats.summary()
    troubles = trouble.take()
    return {
        "level": level, "calls": expected, "measured": len(answered),
        "calls_placed": expected, "sipp_ok": all(rc == 0 for rc in rcs),
        "trouble": len(troubles), "trouble_lines": troubles[:20],
        "recorded": len(calls), "answered_recorded": len(answered),
        "failed": expected - len(answered),
        "max_concurrent_answered": max_overlap(calls),
        "intake_sessions": int(intake["sessions"]), "intake_p50_ms": round(intake["p50_ms"], 2),
        "intake_p99_ms": round(intake["p99_ms"], 2), "wall_s": round(time.time() - t0, 1),
        "sipp_errors": [r.errors()[-400:] for r, rc in zip(runs, rcs, strict=True) if rc != 0],
    }


async def main_async(levels: list[int], talk_s: float, trouble: Trouble) -> dict[str, Any]:
    seats = max(levels) // 2 + 10
    with tempfile.TemporaryDirectory() as tmp:
        site_file = Path(tmp) / "site.toml"
        site_file.write_text(bench_site(seats))
        env = Settings.from_env()
        settings = Settings(state_dir=Path(tmp) / "state", site_file=site_file, conf_dir=env.conf_dir,
                            asterisk_rootfs=env.asterisk_rootfs, log_level="WARNING")
        stack = Stack.for_tests(settings, instance_name=f"bench-{uuid.uuid4().hex[:6]}")
        child_log = os.environ.get("BENCH_CHILD_LOG") or str(Path(tmp) / "children.log")
        stack.child_log = trouble.child_log = Path(child_log)
        await stack.start()
        trouble.take()  # what starting logged is not load
        bank = None
        try:
            assert stack.secrets is not None
            pw = {s: stack.secrets.sip_passwords[s] for svc in stack.site.operators
                  for s in stack.site.operators[svc]}
            bank = await asyncio.to_thread(SeatBank(pw, stack.sip_address).start)
            rows = [await run_level(stack, lvl, talk_s, trouble) for lvl in levels]
        finally:
            if bank:
                bank.stop()
            await stack.stop()
            if stack.asterisk is not None:
                shutil.rmtree(stack.asterisk.paths.host, ignore_errors=True)
    return {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "talk_s": talk_s, "levels": rows}


def table(res: dict[str, Any]) -> str:
    lines = ["| calls at once | placed | answered + recorded | failed | max overlap seen | intake p50 ms | "
             "intake p99 ms | lost work logged |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["levels"]:
        lines.append(f"| {r['level']} | {r['calls_placed']} | {r['answered_recorded']} | {r['failed']} | "
                     f"{r['max_concurrent_answered']} | {r['intake_p50_ms']} | {r['intake_p99_ms']} | "
                     f"{r['trouble']} |")
    ok = [r["level"] for r in res["levels"] if r["failed"] == 0 and r["sipp_ok"]]
    lines.append("")
    lines.append(f"Highest level with zero failed calls: {max(ok) if ok else 'none'} "
                 f"(baseline: level {res['levels'][0]['level']} in the same run).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 25, 50, 100])
    ap.add_argument("--talk", type=float, default=6.0, help="seconds each call talks")
    ap.add_argument("--quick", action="store_true", help="levels 2 and 6, 2 s calls, results not written")
    args = ap.parse_args()
    levels, talk = ([2, 6], 2.0) if args.quick else (args.levels, args.talk)
    trouble = Trouble()
    with trouble.watching():
        res = asyncio.run(main_async(levels, talk, trouble))
    print(table(res))
    problems = [f"level {r['level']}: {line}" for r in res["levels"] for line in r["trouble_lines"]]
    if args.quick:
        problems += [f"level {r['level']}: {r['failed']} of {r['calls_placed']} calls failed"
                     for r in res["levels"] if r["failed"] or not r["sipp_ok"]]
    write_result("capacity", res, quick=args.quick)
    require_measured({f"level {r['level']}": {k: r[k] for k in ("calls", "measured")}
                      for r in res["levels"]})
    if problems:
        raise SystemExit("bench.lost_work: " + "; ".join(problems[:20]))


if __name__ == "__main__":
    main()

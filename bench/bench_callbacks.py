"""Outbound callbacks beside inbound calls: how many the scheduler places, how fast, and what they
cost the callers who are calling in.

Real calls on the whole stack. A SIPp phone on the outbound trunk answers every callback after a
short ring and hangs up 1.5 s later (a 回访 survey call whose caller does not answer the questions,
so each task is one call); SIPp seats answer the 12345 queue; a SIPp caller run dials 12345 at a
steady rate throughout. Two phases in the same run:

- **baseline**: inbound calls alone;
- **with callbacks**: the same inbound calls while ``--tasks`` survey tasks fall due at once, with
  ``max_outbound`` lines (site ``[callbacks]``).

Per phase it reports the inbound answer time (``wait_s`` of each call: queue and ring until a seat
answers, from the API), and for the callbacks: tasks placed per minute, the most outbound calls up
at once (Asterisk's own channels on the trunk, from AMI), failed originations (an Originate that
Asterisk refused or that did not reach the phone), and the time from a task falling due to the
phone ringing (AMI ``Newstate`` Ringing of its channel), p50/p95.

    .venv/bin/python -m bench.bench_callbacks [--tasks 60 --lines 4]
    .venv/bin/python -m bench.bench_callbacks --quick      # 6 tasks, 2 lines; results not written

Exits 1 when nothing was measured, when any origination failed, or when more calls than lines
were up at once.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from sqlalchemy import select

from agents.sipp import Phone, SeatBank, place_call
from app import keys
from app.callbacks.store import SURVEY, add_task
from app.models import CallbackAttemptRow
from bench.common import bench_stack, percentile, require_measured, write_result
from hotline.callback_site import CallbacksTable
from hotline.contracts import Service
from operations.ports import free_port_pair
from operations.stack import Stack

QUICK = {"tasks": 6, "lines": 2, "inbound": 6}
FULL = {"tasks": 60, "lines": 4, "inbound": 30}
INBOUND_RATE = 1.0  # inbound calls a second, in both phases
INBOUND_TALK_MS = 2500


class Trunk:
    """Outbound channels on the trunk, as Asterisk reports them (its own timestamps)."""

    def __init__(self) -> None:
        self.up: set[str] = set()
        self.max_up = 0
        self.ringing: dict[str, float] = {}  # uniqueid (cb-<task>-<n>) -> when the phone rang

    def __call__(self, ev: dict[str, str]) -> None:
        chan = ev.get("Channel", "")
        if not chan.startswith("PJSIP/callback-trunk-"):
            return
        kind = ev.get("Event")
        if kind == "Newchannel":
            self.up.add(chan)
            self.max_up = max(self.max_up, len(self.up))
        elif kind == "Hangup":
            self.up.discard(chan)
        elif kind == "Newstate" and ev.get("ChannelStateDesc") == "Ringing":
            self.ringing.setdefault(ev.get("Uniqueid", ""), float(ev.get("Timestamp") or time.time()))


async def inbound(stack: Stack, calls: int, tag: str) -> list[float]:
    """``calls`` callers at INBOUND_RATE; their wait (queue + ring) as the API recorded it, in ms."""
    prefix = f"1370{tag}"
    import aiohttp  # noqa: PLC0415
    run = place_call(asterisk=stack.sip_address, service="12345", caller=prefix, talk_ms=INBOUND_TALK_MS,
                     local_ip=stack.site.trunk_hosts[0], calls=calls, concurrency=calls, rate=INBOUND_RATE,
                     unique_callers=True)
    rc = await asyncio.to_thread(run.wait, calls / INBOUND_RATE + 60)
    if rc != 0:
        raise RuntimeError(f"inbound SIPp run failed (rc={rc}): {run.errors()}")
    run.close()
    await asyncio.sleep(1.0)
    assert stack.secrets is not None
    waits: list[float] = []
    headers = {"Authorization": f"Bearer {stack.secrets.token_for('supervisor')}"}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.get(f"{stack.api_url}/api/calls", params={"limit": "500"}) as r:
        for c in (await r.json())["calls"]:
            if (c["caller"] or "").startswith(prefix) and c["wait_s"] is not None and c["answered_at"]:
                waits.append(c["wait_s"] * 1000)
    return waits


async def main_async(tasks: int, lines: int, inbound_calls: int) -> dict[str, Any]:
    trunk_port = free_port_pair("127.0.0.4")
    cfg = CallbacksTable(trunk_host="127.0.0.4", trunk_port=trunk_port, max_outbound=lines, attempts=1,
                         ring_s=10, hours=("00:00", "23:59"), missed_within_min=0)
    async with bench_stack(callbacks=cfg) as stack:
        assert stack.secrets is not None and stack.ami is not None and stack._runner is not None
        trunk = Trunk()
        stack.ami.observers.append(trunk)
        seats = stack.site.operators[Service.HOTLINE_12345]
        bank = SeatBank({s: stack.secrets.sip_passwords[s] for s in seats}, stack.sip_address).start()
        phone = Phone("127.0.0.4", trunk_port, "answer", hangup_after_ms=1500).start()
        sched = stack._runner.app[keys.CALLBACKS]
        try:
            base = await inbound(stack, inbound_calls, "1")
            now = time.time()
            ids: list[int] = []
            async with sched.db.write() as conn:
                for n in range(tasks):
                    task = await add_task(conn, kind=SURVEY, platform="12345", number=f"1360000{n:04d}",
                                          due_at=now, now=now, max_attempts=1, dedupe_key=f"bench:{now}:{n}")
                    assert task is not None
                    ids.append(task)
            t0 = time.monotonic()
            loaded = await inbound(stack, inbound_calls, "2")
            deadline = time.monotonic() + tasks * 10 + 60
            while True:
                rows = [await sched.get(i) for i in ids]
                if all(r and r["state"] in ("done", "failed", "cancelled") for r in rows):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("callback tasks did not finish")
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - t0
            async with sched.db.read() as conn:
                attempts = [dict(r) for r in (await conn.execute(
                    select(CallbackAttemptRow.channel_id, CallbackAttemptRow.result)
                    .where(CallbackAttemptRow.task_id.in_(ids)))).mappings()]
        finally:
            phone.close()
            bank.stop()
    reached = {"answered", "hung_up", "no_response"}
    failed = [a for a in attempts if a["result"] not in reached]
    to_ring = [(trunk.ringing[a["channel_id"]] - now) * 1000 for a in attempts
               if a["channel_id"] in trunk.ringing]
    last_ring = max(trunk.ringing.values(), default=now)
    return {
        "baseline": {"inbound_calls": len(base), "answer_p50_ms": round(percentile(base, 0.5), 1),
                     "answer_p95_ms": round(percentile(base, 0.95), 1)},
        "with_callbacks": {
            "inbound_calls": len(loaded), "answer_p50_ms": round(percentile(loaded, 0.5), 1),
            "answer_p95_ms": round(percentile(loaded, 0.95), 1),
            "tasks": tasks, "lines": lines, "placed": len(attempts), "rang": len(to_ring),
            "failed_originations": len(failed) + sched.failed_originations,
            "placed_per_min": round(len(to_ring) / max(0.001, last_ring - now) * 60, 1),
            "max_at_once": trunk.max_up,
            "due_to_ring_p50_ms": round(percentile(to_ring, 0.5), 1),
            "due_to_ring_p95_ms": round(percentile(to_ring, 0.95), 1),
            # the first tasks found a free line: the scheduler's own latency (its tick is 500 ms)
            "free_line_due_to_ring_p50_ms": round(percentile(sorted(to_ring)[:lines], 0.5), 1),
            "elapsed_s": round(elapsed, 1),
            "failures": sorted({a["result"] for a in failed}),
        },
    }


def table(res: dict[str, Any]) -> str:
    b, w = res["baseline"], res["with_callbacks"]
    lines = [
        "| phase | inbound calls | inbound answer p50 / p95 | callbacks placed (lines) | placed per min | "
        "most at once | failed originations | due → phone ringing p50 / p95 (with a free line, p50) |",
        "|---|---|---|---|---|---|---|---|",
        f"| inbound only (baseline) | {b['inbound_calls']} | {b['answer_p50_ms']} / {b['answer_p95_ms']} ms "
        "| – | – | – | – | – |",
        f"| inbound + callbacks | {w['inbound_calls']} | {w['answer_p50_ms']} / {w['answer_p95_ms']} ms | "
        f"{w['rang']} of {w['tasks']} ({w['lines']}) | {w['placed_per_min']} | {w['max_at_once']} | "
        f"{w['failed_originations']} | {w['due_to_ring_p50_ms']} / {w['due_to_ring_p95_ms']} ms "
        f"({w['free_line_due_to_ring_p50_ms']} ms) |",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few tasks, two lines; results not written")
    ap.add_argument("--tasks", type=int)
    ap.add_argument("--lines", type=int)
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    res = asyncio.run(main_async(args.tasks or size["tasks"], args.lines or size["lines"], size["inbound"]))
    print(table(res))
    w = res["with_callbacks"]
    require_measured({"with_callbacks": {"rang": w["rang"], "placed_per_min": w["placed_per_min"]},
                      "baseline": {"inbound_calls": res["baseline"]["inbound_calls"]}})
    if w["failed_originations"] or w["max_at_once"] > w["lines"] or w["rang"] < w["tasks"]:
        print(f"FAILED: {w['failed_originations']} failed originations ({w['failures']}), "
              f"{w['max_at_once']} at once on {w['lines']} lines, {w['rang']} of {w['tasks']} rang")
        raise SystemExit(1)
    write_result("callbacks", res, quick=args.quick)


if __name__ == "__main__":
    main()

"""Key press to the other side: one-touch transfer and three-way beside Asterisk's blind transfer.

Real calls on the whole stack: a SIPp caller dials 12345, a 12345 seat answers and presses keys
as RFC 4733 telephone-events (as phones send them), 110 seats answer. From the end of the last
key (AMI ``DTMFEnd`` on the seat's channel) it measures, per call:

- to ring: until Asterisk starts ringing a 110 seat (``DialBegin`` towards it);
- to bridged: until the caller is bridged with that seat (``BridgeEnter`` of the 110 seat), or for
  the three-way call, until the third party joins the bridge (``ConfbridgeJoin``).

The one-touch transfer is ``*1`` (dialplan only: ChannelRedirect into the 110 queue). The
three-way call is ``*4`` (dialplan asks the backend over AMI; it moves caller and seat into a
ConfBridge and originates the 110 side). The baseline, measured the same way in the same run, is
Asterisk's built-in blind transfer (features.conf ``blindxfer``): ``##`` then the 110 seat.

    .venv/bin/python -m bench.bench_transfer [--calls 20]
    .venv/bin/python -m bench.bench_transfer --quick     # 3 calls a row, results not written

Prints a markdown table and writes ``bench/results/transfer.json``; exits 1 naming the row when a
row measured nothing (no call gave both a ``DialBegin`` and the bridge after the keys).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from agents.sipp import Seat, place_call
from bench.common import bench_stack, percentile, require_measured, write_result
from hotline.contracts import Service
from operations.stack import Stack

QUICK_CALLS = 3


class Recorder:
    """Keeps the AMI events the measurement needs, with Asterisk's own timestamps."""

    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []

    def __call__(self, ev: dict[str, str]) -> None:
        if ev.get("Event") in ("DTMFEnd", "DialBegin", "BridgeEnter", "ConfbridgeJoin"):
            self.events.append(ev)


def measure(events: list[dict[str, str]], seat: str, targets: tuple[str, ...],
            conference: bool = False) -> tuple[float, float] | None:
    dtmf = [float(e["Timestamp"]) for e in events if e.get("Event") == "DTMFEnd"
            and e.get("Channel", "").startswith(f"PJSIP/{seat}-") and e.get("Direction") == "Received"]
    if not dtmf:
        return None
    t0 = max(dtmf)
    ring = [float(e["Timestamp"]) for e in events if e.get("Event") == "DialBegin"
            and any(e.get("DestChannel", "").startswith(f"PJSIP/{t}-") for t in targets)
            and float(e["Timestamp"]) >= t0]
    if conference:
        joins = sorted(float(e["Timestamp"]) for e in events if e.get("Event") == "ConfbridgeJoin"
                       and float(e["Timestamp"]) >= t0)
        bridged = joins[2:3]  # the third party in the bridge
    else:
        bridged = [float(e["Timestamp"]) for e in events if e.get("Event") == "BridgeEnter"
                   and any(e.get("Channel", "").startswith(f"PJSIP/{t}-") for t in targets)
                   and float(e["Timestamp"]) >= t0]
    if not ring or not bridged:
        return None
    return (min(ring) - t0) * 1000, (min(bridged) - t0) * 1000


async def run_mode(stack: Stack, recorder: Recorder, seat: Seat, keys: str, calls: int,
                   targets: tuple[str, ...], conference: bool = False) -> dict[str, Any]:
    assert stack.secrets is not None
    seat.stop()
    seat.dtmf, seat.dtmf_after_ms, seat.dtmf_mode = keys, 600, "rfc4733"
    await asyncio.to_thread(seat.reregister)
    ring_ms: list[float] = []
    bridged_ms: list[float] = []
    failed = 0
    problems: list[str] = []
    for n in range(calls):
        recorder.events.clear()
        run = place_call(asterisk=stack.sip_address, service="12345", caller=f"1380000{n:04d}",
                         talk_ms=3500, local_ip=stack.site.trunk_hosts[0])
        rc = await asyncio.to_thread(run.wait, 30)
        await asyncio.sleep(0.3)
        m = measure(recorder.events, seat.seat, targets, conference)
        if rc != 0 or m is None:
            failed += 1
            kinds = sorted({e.get("Event", "") for e in recorder.events})
            problems.append(f"call {n}: sipp rc={rc}, measured={m is not None}, events={kinds}, "
                            f"{run.errors()[-300:] if rc else ''}")
            continue
        ring_ms.append(m[0])
        bridged_ms.append(m[1])
    return {"keys": keys, "calls": calls, "measured": len(ring_ms), "failed": failed,
            "ring_p50_ms": round(percentile(ring_ms, 0.50), 2),
            "ring_p95_ms": round(percentile(ring_ms, 0.95), 2),
            "bridged_p50_ms": round(percentile(bridged_ms, 0.50), 2),
            "bridged_p95_ms": round(percentile(bridged_ms, 0.95), 2), "problems": problems[:5]}


async def main_async(calls: int) -> dict[str, Any]:
    seats: list[Seat] = []
    async with bench_stack() as stack:
        try:
            assert stack.secrets is not None and stack.ami is not None
            recorder = Recorder()
            stack.ami.observers.append(recorder)
            presser_id = stack.site.operators[Service.HOTLINE_12345][0]
            presser = Seat(presser_id, stack.secrets.sip_passwords[presser_id], stack.sip_address)
            await asyncio.to_thread(presser.start)
            seats.append(presser)
            targets = stack.site.operators[Service.POLICE_110]
            for t in targets:
                seats.append(await asyncio.to_thread(
                    Seat(t, stack.secrets.sip_passwords[t], stack.sip_address).start))
            code = stack.site.feature_codes["one_touch_transfer"]
            ours = await run_mode(stack, recorder, presser, code, calls, targets)
            three = await run_mode(stack, recorder, presser, stack.site.feature_codes["three_way"], calls,
                                   targets, conference=True)
            builtin = await run_mode(stack, recorder, presser, "##" + targets[0], calls, (targets[0],))
        finally:
            for s in seats:
                s.stop()
    return {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "one_touch": ours, "three_way": three, "builtin_blindxfer": builtin}


ROWS = (("one_touch", "one-touch transfer (ours)"),
        ("three_way", "three-way call (ours; bridged = 3 parties)"),
        ("builtin_blindxfer", "Asterisk blindxfer (baseline)"))


def table(res: dict[str, Any]) -> str:
    rows = ["| transfer | keys | calls measured | to ring p50 ms | to ring p95 ms | to bridged p50 ms | "
            "to bridged p95 ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for key, name in ROWS:
        r = res[key]
        rows.append(f"| {name} | `{r['keys']}` | {r['measured']}/{r['calls']} | {r['ring_p50_ms']} | "
                    f"{r['ring_p95_ms']} | {r['bridged_p50_ms']} | {r['bridged_p95_ms']} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_CALLS} calls a row, results not written")
    args = ap.parse_args()
    res = asyncio.run(main_async(QUICK_CALLS if args.quick else args.calls))
    print(table(res))
    for key, _ in ROWS:
        for problem in res[key]["problems"]:
            print(f"{res[key]['keys']}: {problem}")
    require_measured({f"{name} {res[key]['keys']}": res[key] for key, name in ROWS})
    write_result("transfer", res, quick=args.quick)


if __name__ == "__main__":
    main()

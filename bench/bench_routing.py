"""Routing throughput and latency on one core, beside jieba segmentation alone on the same texts.

Texts: every case of the evaluation sets (``tests/routing_cases/*.jsonl``), routed at both platforms.
Baseline, measured in the same run: the router's own jieba tokenizer (same user dictionary) cutting
the same texts, i.e. the floor any jieba-based router pays. The process is pinned to one core.

    .venv/bin/python -m bench.bench_routing            # ~20 s
    .venv/bin/python -m bench.bench_routing --quick    # smoke run

Prints a markdown table and writes ``bench/results/routing.json``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import require_measured, write_result
from routing import Router
from routing.evaluate import CASES_DIR, load_cases

RESULTS = Path(__file__).parent / "results" / "routing.json"


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def _measure(fn: Callable[[str, str], Any], jobs: list[tuple[str, str]], rounds: int) -> dict[str, float]:
    for text, at in jobs[:50]:  # warm-up
        fn(text, at)
    lat: list[int] = []
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(rounds):
            for text, at in jobs:
                t0 = time.perf_counter_ns()
                fn(text, at)
                lat.append(time.perf_counter_ns() - t0)
        total = time.perf_counter_ns() - start
    finally:
        gc.enable()
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    return {
        "calls": len(lat),
        "per_second": round(len(lat) / (total / 1e9), 1),
        "p50_ms": round(q[49] / 1e6, 4),
        "p99_ms": round(q[98] / 1e6, 4),
        "max_ms": round(lat[-1] / 1e6, 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    pinning = _pin_one_core()

    t0 = time.perf_counter()
    router = Router()
    load_s = time.perf_counter() - t0
    texts = [c["text"] for f in sorted(CASES_DIR.glob("*.jsonl")) for c in load_cases(f)]
    jobs = [(t, at) for t in texts for at in ("12345", "110")]
    tokenizer = router._state.tokenizer  # the same tokenizer and user dictionary the router uses

    rows = {
        "route (full engine)": _measure(router.route, jobs, rounds),
        "route + to_json": _measure(lambda t, a: router.route(t, a).to_json(), jobs, rounds),
        "jieba segmentation alone": _measure(lambda t, a: tokenizer.lcut(t), jobs, rounds),
    }
    avg_chars = statistics.mean(len(t) for t in texts)
    result = {
        "benchmark": "routing",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu": pinning,
        "rules_version": router.version,
        "texts": len(texts),
        "avg_chars": round(avg_chars, 1),
        "rounds": rounds,
        "router_load_s": round(load_s, 3),
        "results": rows,
        "aim": {"per_second": 2000, "p99_ms": 5.0},
    }
    print(f"Routing benchmark: {len(texts)} texts (avg {avg_chars:.0f} chars) x 2 platforms x {rounds} "
          f"rounds, one core ({pinning}), rules {router.version}, router load {load_s:.2f} s\n")
    print("| what | calls/s | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['per_second']:,.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
              f"| {r['max_ms']:.2f} |")
    full = rows["route (full engine)"]
    seg = rows["jieba segmentation alone"]
    print(f"\nrouting costs {full['p50_ms'] / seg['p50_ms']:.1f}x jieba alone at p50; aim 2,000/s and "
          f"p99 < 5 ms: {'met' if full['per_second'] >= 2000 and full['p99_ms'] < 5 else 'NOT met'}")
    require_measured(rows)
    if not args.no_write:
        write_result("routing", result, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

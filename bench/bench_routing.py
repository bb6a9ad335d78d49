"""Routing throughput and latency on one core, beside jieba segmentation alone on the same texts.

Texts: every case of the evaluation sets (``tests/routing_cases/*.jsonl`` and the corpus), routed at
both platforms. Baselines, measured in the same run: the rules alone (the engine without the danger
model), and the router's own jieba tokenizer (same user dictionary) cutting the same texts, i.e. the
floor any jieba-based router pays. Also: the danger model alone (features + score), and the danger
model's load time and memory. The process is pinned to one core.

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
from routing.corpus import load_corpus
from routing.evaluate import CASES_DIR, load_cases
from routing.model import CATEGORY_FILE, LINKAGE_FILE, MODEL_FILE, CategoryModel, DangerModel, LinkageModel

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


def _timed_load(load: Callable[[Path], Any], path: Path) -> tuple[Any, dict[str, Any]]:
    """Load a model file; how long it took, the memory it holds and the file's size."""
    import tracemalloc

    tracemalloc.start()
    t0 = time.perf_counter()
    model = load(path)
    stats = {"load_s": round(time.perf_counter() - t0, 4),
             "memory_mb": round(tracemalloc.get_traced_memory()[0] / 2**20, 2),
             "file_kb": path.stat().st_size // 1024}
    tracemalloc.stop()
    return model, stats


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
    rules_only = Router(model=False)
    model_load: dict[str, Any] = {"present": MODEL_FILE.exists()}
    if MODEL_FILE.exists():
        model, stats = _timed_load(DangerModel.load, MODEL_FILE)
        model_load.update(stats, weights=len(model.weights))
    if CATEGORY_FILE.exists():
        category, stats = _timed_load(CategoryModel.load, CATEGORY_FILE)
        model_load.update({f"category_{k}": v for k, v in stats.items()},
                          category_shape=[len(category.classes), len(category.index)])
    if LINKAGE_FILE.exists():
        linkage, stats = _timed_load(LinkageModel.load, LINKAGE_FILE)
        model_load.update({f"linkage_{k}": v for k, v in stats.items()},
                          linkage_shape=[len(linkage.hotlines), len(linkage.index)])
    texts = [c["text"] for f in sorted(CASES_DIR.glob("*.jsonl")) for c in load_cases(f)]
    texts += [c["text"] for c in load_corpus()]
    jobs = [(t, at) for t in texts for at in ("12345", "110")]
    tokenizer = router._state.tokenizer  # the same tokenizer and user dictionary the router uses

    rows = {
        "route (full engine: rules + danger, category and linkage models)": _measure(router.route, jobs,
                                                                                     rounds),
        "route + to_json": _measure(lambda t, a: router.route(t, a).to_json(), jobs, rounds),
        "route, rules alone (baseline)": _measure(rules_only.route, jobs, rounds),
        "jieba segmentation alone (baseline)": _measure(lambda t, a: tokenizer.lcut(t), jobs, rounds),
    }
    if router.danger_model is not None:
        judge = router.danger_model.judge
        rows["danger model alone (features + score)"] = _measure(lambda t, a: judge(t), jobs, rounds)
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
        "danger_model": model_load,
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
    if model_load.get("present"):
        print(f"\ndanger model: {model_load['weights']} weights, {model_load['file_kb']} KB file, loads in "
              f"{model_load['load_s'] * 1000:.0f} ms, {model_load['memory_mb']} MB in memory")
    if "category_shape" in model_load:
        print(f"category model: {model_load['category_shape'][0]} codes x {model_load['category_shape'][1]} "
              f"features, {model_load['category_file_kb']} KB file, loads in "
              f"{model_load['category_load_s'] * 1000:.0f} ms, "
              f"{model_load['category_memory_mb']} MB in memory")
    if "linkage_shape" in model_load:
        print(f"linkage model: {model_load['linkage_shape'][0]} hotlines x {model_load['linkage_shape'][1]} "
              f"features, {model_load['linkage_file_kb']} KB file, loads in "
              f"{model_load['linkage_load_s'] * 1000:.0f} ms, {model_load['linkage_memory_mb']} MB in memory")
    full = rows["route (full engine: rules + danger, category and linkage models)"]
    seg = rows["jieba segmentation alone (baseline)"]
    print(f"\nrouting costs {full['p50_ms'] / seg['p50_ms']:.1f}x jieba alone at p50; aim 2,000/s and "
          f"p99 < 5 ms: {'met' if full['per_second'] >= 2000 and full['p99_ms'] < 5 else 'NOT met'}")
    require_measured(rows)
    if not args.no_write:
        write_result("routing", result, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

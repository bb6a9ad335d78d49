"""Command line: ``route --at 12345 "文本"``, ``route --jsonl FILE``, ``route eval [--floors]``,
``route reload``. ``hotline route ...`` calls :func:`main` with the arguments after ``route``.

Exit codes: 0 ok; 1 evaluation under its floors, or some lines of a JSONL file failed;
2 bad input or invalid rule data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from .corpus import load_corpus, load_frozen2, split
from .engine import PLATFORMS, Router
from .errors import RoutingDataError, RoutingInputError
from .evaluate import (
    CASES_DIR,
    DEV_FILE,
    HELDOUT2_FILE,
    HELDOUT_FILE,
    SET_LABELS,
    evaluate,
    format_report,
    load_cases,
)
from .rules import DATA_DIR, load_rules


def _dump(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _route_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="route", description="Route a call text: who takes it, and why.")
    p.add_argument("text", nargs="?", help="the text (transcript or operator notes)")
    p.add_argument("--at", default="12345", choices=PLATFORMS, help="platform the call arrived at")
    p.add_argument("--jsonl", type=Path, help='file of {"text": ..., "at": ...} lines; one result per line')
    p.add_argument("--data", type=Path, help=f"rules folder (default {DATA_DIR})")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    return p


def _cmd_route(argv: list[str], out: TextIO, err: TextIO) -> int:
    args = _route_parser().parse_args(argv)
    if (args.text is None) == (args.jsonl is None):
        err.write("error: give either a text or --jsonl FILE\n")
        return 2
    try:
        router = Router(args.data)
    except RoutingDataError as exc:
        err.write(f"error: {exc}\n")
        return 2
    if args.text is not None:
        try:
            res = router.route(args.text, args.at)
        except RoutingInputError as exc:
            _dump(exc.to_json(), err)
            return 2
        out.write(json.dumps(res.to_json(), ensure_ascii=False, indent=2 if args.pretty else None) + "\n")
        return 0
    failed = 0
    try:
        lines = args.jsonl.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"error: cannot read {args.jsonl}: {exc}\n")
        return 2
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RoutingInputError("route.invalid_json", f"not JSON: {exc.msg}") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise RoutingInputError("route.invalid_text", 'each line must be {"text": "..."}')
            res = router.route(item["text"], item.get("at", args.at))
            _dump({"line": n, **({"id": item["id"]} if "id" in item else {}), **res.to_json()}, out)
        except RoutingInputError as exc:
            failed += 1
            _dump({"line": n, **exc.to_json()}, out)
    return 1 if failed else 0


def _cmd_eval(argv: list[str], out: TextIO, err: TextIO) -> int:
    p = argparse.ArgumentParser(prog="route eval", description="Evaluate routing on the labelled cases.")
    p.add_argument("--floors", action="store_true", help="exit 1 when a figure is under its floor")
    p.add_argument("--set", choices=("dev", "heldout", "all", "corpus", "corpus-dev", "corpus-test",
                                     "corpus-test2"),
                   default="all",
                   help="all: dev, held-out, the corpus's dev and frozen test splits, the second frozen set")
    p.add_argument("--cases", type=Path, action="append", help="evaluate these JSONL files instead")
    p.add_argument("--data", type=Path, help="rules folder")
    p.add_argument("--misses", action="store_true", help="list every wrong answer")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--no-model", action="store_true", help="the rules alone, without the danger model")
    args = p.parse_args(argv)
    try:
        router = Router(args.data, model=not args.no_model)
    except RoutingDataError as exc:
        err.write(f"error: {exc}\n")
        return 2
    # (label, cases, floors apply)
    sets: list[tuple[str, list[dict], bool]] = []
    if args.cases:
        sets = [(path.name, load_cases(path), True) for path in args.cases]
    else:
        held = [HELDOUT_FILE, HELDOUT2_FILE]
        names = {"dev": [DEV_FILE], "heldout": held, "all": [DEV_FILE, *held]}.get(args.set, [])
        sets = [(SET_LABELS.get(n, n), load_cases(CASES_DIR / n), True) for n in names]
        if args.set in ("all", "corpus", "corpus-dev", "corpus-test"):
            corpus_dev, corpus_test = split(load_corpus())
            # Floors on the corpus come with the danger detector of issue #10; until then its
            # figures are reported, not enforced.
            if args.set != "corpus-test":
                sets.append((f"corpus dev ({len(corpus_dev)})", corpus_dev, False))
            if args.set != "corpus-dev":
                sets.append((f"corpus FROZEN TEST ({len(corpus_test)}; never tuned on)", corpus_test, False))
        if args.set in ("all", "corpus-test2"):
            second = load_frozen2()
            sets.append((f"SECOND FROZEN SET ({len(second)}; new authors, never tuned on)", second, False))
    failures = []
    summary = []
    for label, cases, enforced in sets:
        if not cases:
            continue
        rep = evaluate(router, cases, label)
        summary.append(rep.to_json())
        if not args.json:
            out.write(format_report(rep) + "\n")
            if args.misses:
                out.write("\n".join(rep.misses) + "\n\n")
        if enforced:
            failures += [f"{label}: {f}" for f in rep.failures()]
    if args.json:
        _dump({"rules_version": router.version, "sets": summary}, out)
    if args.floors:
        if failures:
            err.write("FLOORS NOT MET:\n" + "\n".join(failures) + "\n")
            return 1
        out.write("floors met\n") if not args.json else None
    return 0


def _cmd_reload(argv: list[str], out: TextIO, err: TextIO) -> int:
    p = argparse.ArgumentParser(prog="route reload", description="Validate the rule files and report.")
    p.add_argument("--data", type=Path, help="rules folder")
    args = p.parse_args(argv)
    try:
        rules = load_rules(args.data)
    except RoutingDataError as exc:
        err.write(f"error: {exc}\n")
        return 2
    _dump(
        {
            "ok": True,
            "data_dir": str(args.data or DATA_DIR),
            "version": rules.version,
            "lexicon_version": rules.lexicon_version,
            "categories": len(rules.categories),
            "phrases": len(rules.phrases),
            "homophones": len(rules.homophones),
            "userdict_words": len(rules.userdict_words),
            "note": "files are valid; a running service picks them up with Router.reload()",
        },
        out,
    )
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    if argv[:1] == ["route"]:
        argv = argv[1:]
    commands = {"eval": _cmd_eval, "reload": _cmd_reload}
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:], out, err)
    return _cmd_route(argv, out, err)


if __name__ == "__main__":
    raise SystemExit(main())

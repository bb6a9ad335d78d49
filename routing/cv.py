"""Engine-level cross-validation on the corpus's dev split (``python -m routing.cv``).

The trainers (``routing.train``) choose each model's settings by cross-validating that model alone.
What a caller meets is the whole engine: rules, danger model, category model and linkage model
deciding together. This re-trains all three models on four fifths of the corpus's dev cases (plus
the engine's own case files, always), routes the fifth it did not see through the whole engine at
both platforms, and adds up the figures ``hotline route eval`` prints, over the five folds. It also
says, for each plain 12345 matter the engine sent to 110 (a false escalation), what sent it:

- ``rules danger``: the phrase rules found a danger (the rules alone route it so);
- ``model danger``: the danger model did (its probability over its threshold);
- ``category``: no danger, but the category chosen is one of 110's (annex parts 2 and 3), by the
  rules or pulled there by the category model.

Nothing here reads the frozen test sets; the figures are the honest estimate to tune against.

    .venv/bin/python -m routing.cv [--folds 5] [--json docs/routing_runs/cv_<version>.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from .corpus import load_corpus, split
from .engine import TO_110, Router
from .evaluate import CASES_DIR, DEV_FILE, HELDOUT2_FILE, HELDOUT_FILE, Report, evaluate, load_cases
from .model import CATEGORY_FILE, LINKAGE_FILE, MODEL_FILE
from .train import SEED, dump, save_category, train, train_category, train_linkage

DATA_DIR = MODEL_FILE.parent


def _fold_router(train_cases: list[dict[str, Any]], corpus_train: list[dict[str, Any]],
                 where: Path) -> Router:
    """A router whose three models were trained on ``train_cases`` only (rules as committed)."""
    for f in DATA_DIR.iterdir():
        if f.suffix in (".yaml", ".txt"):
            shutil.copy2(f, where / f.name)
    (where / MODEL_FILE.name).write_text(dump(train(train_cases)), encoding="utf-8")
    save_category(train_category(train_cases), where / CATEGORY_FILE.name)
    save_category(train_linkage(corpus_train), where / LINKAGE_FILE.name)
    return Router(where)


def cause_of(router: Router, rules_only: Router, text: str) -> str:
    """Why the engine sent a plain 12345 matter to 110."""
    res = router.route(text, "12345")
    if res.life_threat:
        if rules_only.route(text, "12345").life_threat:
            return "rules danger"
        return "model danger"
    pulled = any(r.startswith("model: category") for r in res.reasons)
    return "category (model)" if pulled else "category (rules)"


def merge(reports: list[Report]) -> Report:
    total = Report("corpus-dev, engine cross-validated")
    for r in reports:
        total.cases += r.cases
        total.action_ok.update(r.action_ok)
        total.category_ok += r.category_ok
        total.life_total += r.life_total
        total.life_ok += r.life_ok
        total.plain_total += r.plain_total
        total.plain_escalated += r.plain_escalated
        total.three_way.update(r.three_way)
        total.matters_total += r.matters_total
        total.matters_ok += r.matters_ok
        total.linkage_total += r.linkage_total
        total.linkage_ok += r.linkage_ok
        total.linkage_labelled += r.linkage_labelled
        total.linkage_extra += r.linkage_extra
        total.misses += r.misses
    return total


def run(folds: int = 5) -> dict[str, Any]:
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    dev, _frozen = split(load_corpus())  # the frozen split is never read past this line
    own: list[dict[str, Any]] = []
    for name in (DEV_FILE, HELDOUT_FILE, HELDOUT2_FILE):
        own += load_cases(CASES_DIR / name)
    labels = np.array([1 if c.get("life_threat") else 0 for c in dev])
    rules_only = Router(model=False)
    reports: list[Report] = []
    causes: Counter[str] = Counter()
    escalated: list[dict[str, Any]] = []
    for k, (train_rows, test_rows) in enumerate(
            StratifiedKFold(folds, shuffle=True, random_state=SEED).split(np.zeros(len(dev)), labels)):
        corpus_train = [dev[i] for i in train_rows]
        held = [dev[i] for i in test_rows]
        with tempfile.TemporaryDirectory(prefix="routing-cv-") as tmp:
            router = _fold_router(own + corpus_train, corpus_train, Path(tmp))
            rep = evaluate(router, held, f"fold {k + 1}")
            for case in held:
                plain = not (set(case["expect"]["12345"]) & TO_110)
                if plain and router.route(case["text"], "12345").action in TO_110:
                    why = cause_of(router, rules_only, case["text"])
                    causes[why] += 1
                    escalated.append({"id": case.get("id"), "cause": why,
                                      "annex_item": case.get("annex_item")})
        reports.append(rep)
        f = rep.figures()
        print(f"fold {k + 1}/{folds}: {rep.cases} cases, life-threat recall {f['life_threat_recall']:.1%}, "
              f"false escalation {f['false_escalation_rate']:.1%}, action {f['action_accuracy_12345']:.1%}",
              file=sys.stderr)
    total = merge(reports)
    return {"set": "corpus-dev (engine cross-validated, 5 folds)", "folds": folds, "seed": SEED,
            **total.to_json(), "false_escalation_causes": dict(causes.most_common()),
            "false_escalations": escalated,
            "per_fold": [r.to_json() | {"set": r.name} for r in reports]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m routing.cv", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    res = run(args.folds)
    keys = ("cases", "life_threat_cases", "plain_12345_cases", "action_accuracy_12345", "action_accuracy_110",
            "category_accuracy", "life_threat_recall", "false_escalation_rate", "linkage_recall",
            "linkage_extra_per_case")
    for k in keys:
        v = res[k]
        print(f"{k:28} {v:.1%}" if isinstance(v, float) else f"{k:28} {v}")
    causes = res["false_escalation_causes"]
    print("false escalations by cause:", ", ".join(f"{k} {v}" for k, v in causes.items()))
    if args.json:
        args.json.write_text(json.dumps(res, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

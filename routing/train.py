"""Train the danger model (``python -m routing.train``) into ``routing/data/danger_model.json``.

Training data: the corpus's dev split (``routing.corpus``) and the engine's own case files
(``tests/routing_cases/{cases,heldout,heldout2}.jsonl``). The corpus's frozen test split is never
read here. Each text is prepared as the engine prepares it (normalised, known ASR variants read as
meant) and turned into features by :func:`routing.model.features`.

The model is an L2 logistic regression (liblinear, fixed seed, balanced class weights); features
seen in fewer than two texts are dropped. Its threshold is chosen for recall, by five-fold
cross-validation on the training data only: the lowest probability at which the *engine* (rules OR
model) catches every danger it can in the held-out folds, raised only as far as keeps the false
escalation of plain 12345 matters within ``MAX_FALSE_ESCALATION``. The notice says 110 acts first:
when unsure, escalate. ``--check`` re-trains and compares with the committed file (the test suite
does this).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from .corpus import load_corpus, split
from .engine import TO_110, Router
from .evaluate import CASES_DIR, DEV_FILE, HELDOUT2_FILE, HELDOUT_FILE, load_cases
from .model import CATEGORY_FILE, CATEGORY_FORMAT, FORMAT, LINKAGE_FILE, LINKAGE_FORMAT, MODEL_FILE, features
from .text import apply_homophones, normalise

SEED = 20261202
C_GRID = (1.0, 4.0, 16.0, 32.0, 64.0)
FOLDS = 5
MIN_DOCS = 3
MAX_FALSE_ESCALATION = 0.04  # the CI ceiling is 0.05: leave room for unseen wording
WEIGHT_DECIMALS = 5


def training_cases() -> list[dict[str, Any]]:
    dev, _test = split(load_corpus())
    cases = list(dev)
    for name in (DEV_FILE, HELDOUT_FILE, HELDOUT2_FILE):
        cases += load_cases(CASES_DIR / name)
    return cases


# What callers say that is no danger on its own, as a live transcript delivers it piece by piece:
# openings, addresses, names. Without them a bare "我家在…路" looked like the start of most danger
# reports ("我家在…" is how many of them begin) and was escalated.
_OPENINGS = ("喂", "喂你好", "你好", "您好", "喂喂", "你好我想反映个事", "我想问一下", "我要反映个情况",
             "我想咨询一下", "那个我说一下啊", "嗯对", "是的", "好的好的", "谢谢你啊", "听得见吗")
_PLACES = ("建设路", "人民路", "解放街", "和平区", "东风小区", "幸福里", "光明村", "城关镇", "新民街",
           "团结路三号楼", "红旗小区五单元", "西环路", "长青街", "北苑小区", "育才路")
_ADDRESS_FORMS = ("我家在{p}", "我住在{p}", "我在{p}这边", "地址是{p}", "就在{p}那块", "{p}这儿",
                  "我是{p}的住户", "我们是{p}的")
_CLAUSE = re.compile(r"[，。！？；,.!?;、\s]+")
_NAMES = ("我姓王", "我姓李叫李建国", "我是张女士", "我叫刘芳", "你叫我老赵就行")


def neutral_texts(cases: list[dict[str, Any]]) -> list[str]:
    """Negatives beside the cases: call openings, addresses and names, and every clause of the
    matters that are no danger (a piece of a plain complaint is no danger either)."""
    out = list(_OPENINGS) + list(_NAMES)
    out += [form.format(p=place) for form in _ADDRESS_FORMS for place in _PLACES]
    for case in cases:
        if not case.get("life_threat"):
            out += [c for c in _CLAUSE.split(case["text"]) if len(c) >= 4]
    return out


def _prepare(router: Router, text: str) -> str:
    clean, _ = apply_homophones(normalise(text), router.rules)
    return clean


def _matrix(router: Router, cases: list[dict[str, Any]]) -> tuple[list[str], Any, Any]:
    """The cases' prepared texts, their feature matrix (features in fewer than MIN_DOCS texts
    dropped) and the vectorizer that names its columns."""
    from sklearn.feature_extraction import DictVectorizer

    texts = [_prepare(router, c["text"]) for c in cases]
    feats = [features(t) for t in texts]
    doc_freq: dict[str, int] = {}
    for f in feats:
        for k in f:
            doc_freq[k] = doc_freq.get(k, 0) + 1
    vec = DictVectorizer(sort=True)
    x = vec.fit_transform([{k: v for k, v in f.items() if doc_freq[k] >= MIN_DOCS} for f in feats])
    return texts, x, vec


def _plain(case: dict[str, Any]) -> bool:
    return not (set(case["expect"]["12345"]) & TO_110)


def _choose_threshold(probs: list[float], labels: list[int], rules: list[bool], plain: list[bool]) -> float:
    """The highest threshold with the best recall of (rules OR p >= t) whose false escalation of
    plain matters stays within the ceiling."""
    candidates = sorted({round(p, 4) for p in probs} | {0.5})
    best: tuple[float, float] | None = None  # (recall, threshold)
    n_danger = sum(labels) or 1
    n_plain = sum(plain) or 1
    for t in candidates:
        caught = sum(1 for p, y, r in zip(probs, labels, rules, strict=True) if y and (r or p >= t))
        escalated = sum(1 for p, r, pl in zip(probs, rules, plain, strict=True) if pl and (r or p >= t))
        if escalated / n_plain > MAX_FALSE_ESCALATION:
            continue
        recall = caught / n_danger
        if best is None or recall > best[0] or (recall == best[0] and t > best[1]):
            best = (recall, t)
    return best[1] if best else 0.5


def train(labelled: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``labelled``: the cases to learn from (default :func:`training_cases`; routing.cv passes folds)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    router = Router(model=False)  # the rules alone: the model learns what they miss
    labelled = training_cases() if labelled is None else labelled
    extra = [{"text": t, "life_threat": False, "expect": {"12345": ["accept"], "110": ["accept"]}}
             for t in dict.fromkeys(neutral_texts(labelled))]
    cases = labelled + extra
    texts, x, vec = _matrix(router, cases)
    labels = np.array([1 if c.get("life_threat") else 0 for c in cases])
    rules_danger = [router.route(c["text"], "12345").life_threat for c in cases]
    plain = [_plain(c) for c in cases]

    def fit(c: float, rows: Any) -> Any:
        model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", random_state=SEED,
                                   max_iter=1000)
        return model.fit(x[rows], labels[rows])

    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(x, labels))
    # The threshold is judged on the corpus's cases: wording the rules were not written from (the
    # engine's own case files are what the rules were tuned on, so the rules catch those anyway).
    judged = [i for i, c in enumerate(cases) if "batch" in c]
    scored: list[tuple[float, float, float, float]] = []  # (recall, -escalation, c, threshold)
    oof_by_c: dict[float, list[float]] = {}
    for c in C_GRID:
        oof = np.zeros(len(cases))
        for train_rows, test_rows in folds:
            oof[test_rows] = fit(c, train_rows).predict_proba(x[test_rows])[:, 1]
        probs = [float(oof[i]) for i in judged]
        ys = [int(labels[i]) for i in judged]
        rs = [rules_danger[i] for i in judged]
        pls = [plain[i] for i in judged]
        t = _choose_threshold(probs, ys, rs, pls)
        caught = sum(1 for p, y, r in zip(probs, ys, rs, strict=True) if y and (r or p >= t))
        esc = sum(1 for p, r, pl in zip(probs, rs, pls, strict=True) if pl and (r or p >= t))
        scored.append((caught / max(1, sum(ys)), -esc / max(1, sum(pls)), c, t))
        oof_by_c[c] = probs
    recall, neg_esc, best_c, threshold = max(scored)
    final = fit(best_c, np.arange(len(cases)))
    names = vec.get_feature_names_out()
    weights = {str(n): round(float(w), WEIGHT_DECIMALS) for n, w in zip(names, final.coef_[0], strict=True)
               if abs(w) >= 10 ** -WEIGHT_DECIMALS}
    judged_dangers = [i for i in judged if labels[i]]
    rules_recall = sum(1 for i in judged_dangers if rules_danger[i]) / max(1, len(judged_dangers))
    import sklearn

    return {
        "format": FORMAT,
        "about": "P(danger) = sigmoid(bias + sum(weights[f] * x_f)), features from routing.model.features",
        "trained_on": {"cases": len(labelled), "neutral_texts": len(extra), "dangers": int(labels.sum()),
                       "plain_12345": sum(plain),
                       "texts_digest": hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]},
        "cross_validation": {"folds": FOLDS, "C": best_c, "judged_on_corpus_cases": len(judged),
                             "rules_alone_recall": round(rules_recall, 4),
                             "rules_or_model_recall": round(recall, 4),
                             "false_escalation": round(-neg_esc, 4),
                             "grid": [{"C": c, "recall": round(r, 4), "false_escalation": round(-e, 4),
                                       "threshold": round(t, 4)} for r, e, c, t in scored]},
        "seed": SEED,
        "scikit_learn": sklearn.__version__,
        "threshold": round(float(threshold), 4),
        "bias": round(float(final.intercept_[0]), WEIGHT_DECIMALS),
        "weights": dict(sorted(weights.items())),
    }


CATEGORY_C_GRID = (16.0, 64.0)
RULES_WEIGHT_GRID = (0.2, 0.3, 0.4)


def train_category(cases: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The category model: multinomial logistic regression on the labelled cases' first category,
    over the same features; C and the weight of the rules' shares beside its probabilities by
    5-fold cross-validation of the blended category's accuracy on the corpus's dev cases."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    router = Router(model=False)
    cases = training_cases() if cases is None else cases
    _texts, x, vec = _matrix(router, cases)
    y = np.array([c["category"][0] for c in cases])
    shares = [{a["code"]: a["share"] for a in router.route(c["text"], "12345").alternatives} for c in cases]
    judged = [i for i, c in enumerate(cases) if "batch" in c]

    def fit(c: float, rows: Any) -> Any:
        return LogisticRegression(C=c, max_iter=3000, random_state=SEED).fit(x[rows], y[rows])

    def blended_ok(probs: dict[str, float], share: dict[str, float], w: float, ok: list[str]) -> bool:
        score = dict(probs)
        for code, v in share.items():
            score[code] = score.get(code, 0.0) + w * v
        return max(sorted(score), key=score.__getitem__) in ok

    folds = list(KFold(FOLDS, shuffle=True, random_state=SEED).split(x))
    grid = []
    for c in CATEGORY_C_GRID:
        probs: list[dict[str, float]] = [{} for _ in cases]
        for train_rows, test_rows in folds:
            model = fit(c, train_rows)
            for row, p in zip(test_rows, model.predict_proba(x[test_rows]), strict=True):
                probs[row] = {str(k): float(v) for k, v in zip(model.classes_, p, strict=True)}
        for w in (0.0, *RULES_WEIGHT_GRID):
            acc = sum(blended_ok(probs[i], shares[i], w, cases[i]["category"]) for i in judged) / len(judged)
            grid.append({"C": c, "rules_weight": w, "accuracy": round(acc, 4)})
    rules_acc = sum((max(shares[i], key=shares[i].__getitem__) if shares[i] else None) in cases[i]["category"]
                    for i in judged) / len(judged)
    best = max(grid, key=lambda g: (g["accuracy"], -g["C"], g["rules_weight"]))
    final = fit(best["C"], np.arange(len(cases)))
    return {
        "vocab": np.array(vec.get_feature_names_out(), dtype=str),
        "classes": np.array(final.classes_, dtype=str),
        "coef": final.coef_.astype(np.float16),
        "intercept": final.intercept_.astype(np.float32),
        "rules_weight": np.float32(best["rules_weight"]),
        "format": np.array(CATEGORY_FORMAT),
        "meta": np.array(json.dumps({
            "trained_on": len(cases), "seed": SEED, "cross_validation": {
                "folds": FOLDS, "rules_alone_accuracy": round(rules_acc, 4), "chosen": best, "grid": grid}},
            sort_keys=True)),
    }


LINKAGE_C_GRID = (4.0, 16.0, 64.0)
MAX_FALSE_LINK = 0.05  # of the corpus's dev cases that need no such hotline, named anyway (CV)
MIN_LINKED = 10        # a hotline with fewer labelled cases is left to the rules
# and at least half of the cases it is named for need it: a rare hotline (gas, heating) named for 5%
# of all matters would be wrong far more often than right
MIN_LINK_PRECISION = 0.5


def train_linkage(cases: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One logistic regression per linkage hotline on the corpus's dev cases (the only ones labelled
    with the hotlines they need), beside openings, addresses and names as negatives; C and each
    threshold by 5-fold cross-validation: the best recall of (rules OR model) at which the hotline is
    named for at most ``MAX_FALSE_LINK`` of the cases that do not need it."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from hotline.platforms import LINKAGE_HOTLINES

    router = Router(model=False)
    # the corpus's dev cases (the only ones labelled with hotlines); routing.cv passes folds
    labelled = [c for c in (cases if cases is not None else split(load_corpus())[0]) if "linkage" in c]
    neutral = [t for t in neutral_texts([]) if t]
    cases = labelled + [{"text": t, "linkage": []} for t in dict.fromkeys(neutral)]
    _texts, x, vec = _matrix(router, cases)
    rules = [set(router.route(c["text"], "12345").linkage) for c in cases]
    judged = np.arange(len(labelled))
    hotlines, coefs, intercepts, thresholds, report = [], [], [], [], []
    for h in LINKAGE_HOTLINES:
        y = np.array([1 if h in (c.get("linkage") or []) else 0 for c in cases])
        if int(y.sum()) < MIN_LINKED:
            continue
        by_rules = np.array([h in r for r in rules])
        folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(x, y))
        best: tuple[float, float, float, float] | None = None  # (recall, -false, C, threshold)
        oofs: dict[float, Any] = {}
        for c in LINKAGE_C_GRID:
            oof = oofs[c] = np.zeros(len(cases))
            for train_rows, test_rows in folds:
                model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear",
                                           random_state=SEED,
                                           max_iter=1000).fit(x[train_rows], y[train_rows])
                oof[test_rows] = model.predict_proba(x[test_rows])[:, 1]
            pos, neg = judged[y[judged] == 1], judged[y[judged] == 0]
            for t in sorted({round(float(p), 4) for p in oof[judged]} | {0.5}):
                named = by_rules | (oof >= t)
                false = float(named[neg].mean()) if len(neg) else 0.0
                named_pos, named_all = int(named[pos].sum()), int(named[judged].sum())
                if false > MAX_FALSE_LINK or (named_all and named_pos / named_all < MIN_LINK_PRECISION):
                    continue
                cand = (float(named[pos].mean()), -false, c, t)
                if best is None or cand[:2] > best[:2] or (cand[:2] == best[:2] and t > best[3]):
                    best = cand
        assert best is not None
        recall, neg_false, c, t = best
        oof_best = oofs[c]
        final = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", random_state=SEED,
                                   max_iter=1000).fit(x[np.arange(len(cases))], y)
        hotlines.append(h)
        coefs.append(final.coef_[0])
        intercepts.append(final.intercept_[0])
        thresholds.append(t)
        report.append({"hotline": h, "cases": int(y[judged].sum()), "C": c, "threshold": t,
                       "rules_alone_recall": round(float(by_rules[judged][y[judged] == 1].mean()), 4),
                       "rules_or_model_recall": round(recall, 4), "false_link": round(-neg_false, 4),
                       "precision": round(float((by_rules | (oof_best >= t))[judged][y[judged] == 1].sum()
                                                / max(1, (by_rules | (oof_best >= t))[judged].sum())), 4)})
    return {
        "vocab": np.array(vec.get_feature_names_out(), dtype=str),
        "hotlines": np.array(hotlines, dtype=str),
        "coef": np.array(coefs).astype(np.float16),
        "intercept": np.array(intercepts, dtype=np.float32),
        "thresholds": np.array(thresholds, dtype=np.float32),
        "format": np.array(LINKAGE_FORMAT),
        "meta": np.array(json.dumps({"trained_on": len(cases), "seed": SEED, "folds": FOLDS,
                                     "max_false_link": MAX_FALSE_LINK, "min_precision": MIN_LINK_PRECISION,
                                     "hotlines": report}, sort_keys=True)),
    }


def save_category(arrays: dict[str, Any], path: Path) -> None:
    import numpy as np

    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)


def same_category(arrays: dict[str, Any], path: Path) -> bool:
    import numpy as np

    if not path.exists():
        return False
    with np.load(path, allow_pickle=False) as z:
        return set(z.files) == set(arrays) and all(np.array_equal(z[k], arrays[k]) for k in arrays)


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=0, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m routing.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="re-train and compare with the committed model")
    p.add_argument("--out", type=Path, default=MODEL_FILE)
    p.add_argument("--category-out", type=Path, default=CATEGORY_FILE)
    p.add_argument("--linkage-out", type=Path, default=LINKAGE_FILE)
    args = p.parse_args(argv)
    linkage = train_linkage()
    for row in json.loads(str(linkage["meta"]))["hotlines"]:
        print(f"linkage {row['hotline']}: {row['cases']} cases, C={row['C']}, threshold {row['threshold']}; "
              f"cross-validated recall rules alone {row['rules_alone_recall']:.1%}, rules or model "
              f"{row['rules_or_model_recall']:.1%}, named without need {row['false_link']:.1%}")
    category = train_category()
    meta = json.loads(str(category["meta"]))["cross_validation"]
    print(f"category model: {len(category['classes'])} codes x {len(category['vocab'])} features, C="
          f"{meta['chosen']['C']}, rules weight {meta['chosen']['rules_weight']}; cross-validated category "
          f"accuracy on the corpus's dev cases: rules alone {meta['rules_alone_accuracy']:.1%}, blended "
          f"{meta['chosen']['accuracy']:.1%}")
    doc = train()
    text = dump(doc)
    cv = doc["cross_validation"]
    print(f"trained on {doc['trained_on']['cases']} cases ({doc['trained_on']['dangers']} dangers): "
          f"C={cv['C']}, threshold {doc['threshold']}, {len(doc['weights'])} weights; cross-validated "
          f"recall rules alone {cv['rules_alone_recall']:.1%}, "
          f"rules or model {cv['rules_or_model_recall']:.1%}, "
          f"false escalation {cv['false_escalation']:.1%}")
    if args.check:
        committed = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if committed != text or not same_category(category, args.category_out) \
                or not same_category(linkage, args.linkage_out):
            print(f"{args.out}, {args.category_out} or {args.linkage_out} is not what training gives now: "
                  "run python -m routing.train", file=sys.stderr)
            return 1
        print(f"{args.out}, {args.category_out}, {args.linkage_out}: up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    save_category(category, args.category_out)
    save_category(linkage, args.linkage_out)
    print(f"wrote {args.out} ({len(text) // 1024} KB), {args.linkage_out} and {args.category_out} "
          f"({args.category_out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

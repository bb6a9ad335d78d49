"""The learned danger detector: a linear model over character and pinyin n-grams.

Why both: callers tell a danger in words no phrase list foresees ("人躺地上不动", "三天没见着他，门缝里
一股味"), and a speech recognizer writes homophones ("着伙", "跳搂"): character n-grams generalise
over wordings, pinyin n-grams (toneless syllables from ``pypinyin``) make a homophone look like the
word meant. The model gives P(danger); the rules stay, as overrides (a rule's danger is danger
whatever the model says) and as the explanation of everything else. The model's own answer is
explained in ``reasons`` by the n-grams that weighed most.

The weights are trained by :mod:`routing.train` from the corpus's dev split and the engine's case
files (never from the frozen test split), with a fixed seed, into ``routing/data/danger_model.json``
(committed; a test re-trains and compares). Scoring needs only this module and ``pypinyin``: the
features are computed here, the same way at training and at run time, and scored as a sparse dot
product (no scikit-learn at run time).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pypinyin import Style, lazy_pinyin

MODEL_FILE = Path(__file__).resolve().parent / "data" / "danger_model.json"
FORMAT = "hotline-danger-model/1"
CATEGORY_FILE = Path(__file__).resolve().parent / "data" / "category_model.npz"
CATEGORY_FORMAT = "hotline-category-model/1"
LINKAGE_FILE = Path(__file__).resolve().parent / "data" / "linkage_model.npz"
LINKAGE_FORMAT = "hotline-linkage-model/1"
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def features(text: str) -> dict[str, float]:
    """Sublinear tf of character 1-3-grams (per run of Chinese characters) and toneless pinyin
    1-3-grams, L2-normalised. Keys: ``c:<chars>`` and ``p:<syllables joined by _>``."""
    counts: dict[str, int] = {}
    get = counts.get
    for run in _CJK_RUN.findall(text):
        syl = [_syllable(ch) for ch in run]
        n = len(run)
        for i in range(n):
            s1 = syl[i]
            for key in ("c:" + run[i], "p:" + s1):
                counts[key] = get(key, 0) + 1
            if i + 1 < n:
                s2 = s1 + "_" + syl[i + 1]
                for key in ("c:" + run[i:i + 2], "p:" + s2):
                    counts[key] = get(key, 0) + 1
                if i + 2 < n:
                    for key in ("c:" + run[i:i + 3], "p:" + s2 + "_" + syl[i + 2]):
                        counts[key] = get(key, 0) + 1
    table = _SUBLINEAR
    weighted = {k: table[v] if v < 64 else 1.0 + math.log(v) for k, v in counts.items()}
    norm = math.sqrt(sum(v * v for v in weighted.values())) or 1.0
    inv = 1.0 / norm
    return {k: v * inv for k, v in weighted.items()}


_SUBLINEAR = [0.0] + [1.0 + math.log(v) for v in range(1, 64)]


@lru_cache(maxsize=65536)
def _syllable(ch: str) -> str:
    """One character's most common reading, without tone (a homophone a recognizer writes reads
    the same). Per character, not per phrase: the same at training and at run time, and fast."""
    out = lazy_pinyin(ch, style=Style.NORMAL, errors="ignore")
    return out[0] if out else ch


@dataclass(frozen=True)
class DangerVerdict:
    probability: float
    danger: bool
    evidence: tuple[str, ...]  # the features that pushed most towards danger

    def reason(self) -> str:
        shown = ", ".join(f"'{e}'" for e in self.evidence) or "-"
        verdict = "danger" if self.danger else "no danger"
        return f"model: {verdict} (p={self.probability:.2f}; words that weighed most: {shown})"


class DangerModel:
    def __init__(self, weights: dict[str, float], bias: float, threshold: float,
                 meta: dict[str, Any] | None = None) -> None:
        self.weights = weights
        self.bias = bias
        self.threshold = threshold
        self.meta = meta or {}

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> DangerModel:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        meta = {k: v for k, v in doc.items() if k not in ("weights", "bias", "threshold")}
        return cls({str(k): float(v) for k, v in doc["weights"].items()}, float(doc["bias"]),
                   float(doc["threshold"]), meta)

    def judge(self, text: str, *, feats: dict[str, float] | None = None) -> DangerVerdict:
        """This model alone (the engine scores both models at once: :class:`JointScorer`)."""
        verdict, _ = _alone(self, lambda: JointScorer(self, None)).score(
            features(text) if feats is None else feats)
        assert verdict is not None
        return verdict


def _alone(model: Any, build: Any) -> JointScorer:
    """The model's own scorer, built once."""
    scorer = getattr(model, "_scorer", None)
    if scorer is None:
        scorer = build()
        model._scorer = scorer
    return scorer


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def _readable(key: str) -> str:
    kind, _, body = key.partition(":")
    return body if kind == "c" else body.replace("_", " ")


class CategoryModel:
    """P(annex category | words): a multinomial logistic regression over the same features, whose
    probabilities the engine adds to the rules' shares (times ``rules_weight``) to rank categories.
    Stored as arrays (``numpy.savez_compressed``, no pickle): the feature names, the codes, the
    weights (float16) and the intercepts."""

    def __init__(self, vocab: list[str], classes: list[str], coef: Any, intercept: Any,
                 rules_weight: float, meta: dict[str, Any] | None = None) -> None:
        import numpy as np

        self._np = np
        self.index = {f: i for i, f in enumerate(vocab)}
        self.classes = list(classes)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.rules_weight = float(rules_weight)
        self.meta = meta or {}

    @classmethod
    def load(cls, path: Path = CATEGORY_FILE) -> CategoryModel:
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != CATEGORY_FORMAT:
                raise ValueError(f"{path}: not a {CATEGORY_FORMAT} file")
            return cls([str(v) for v in z["vocab"]], [str(c) for c in z["classes"]], z["coef"],
                       z["intercept"], float(z["rules_weight"]), json.loads(str(z["meta"])))

    def probabilities(self, feats: dict[str, float]) -> dict[str, float]:
        """This model alone (the engine scores both models at once: :class:`JointScorer`)."""
        return _alone(self, lambda: JointScorer(None, self)).score(feats)[1]


class LinkageModel:
    """P(hotline needed | words) for each linkage hotline (119 fire, 120 injury or illness, 122 traffic
    accident, the utilities): one logistic regression per hotline over the same features, each with
    its own threshold. The engine names a hotline the rules did not when its probability reaches the
    threshold. Stored as arrays (no pickle): feature names, hotlines, weights (float16), intercepts,
    thresholds."""

    def __init__(self, vocab: list[str], hotlines: list[str], coef: Any, intercept: Any, thresholds: Any,
                 meta: dict[str, Any] | None = None) -> None:
        import numpy as np

        self.index = {f: i for i, f in enumerate(vocab)}
        self.hotlines = list(hotlines)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.thresholds = {h: float(t) for h, t in zip(self.hotlines, thresholds, strict=True)}
        self.meta = meta or {}

    @classmethod
    def load(cls, path: Path = LINKAGE_FILE) -> LinkageModel:
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != LINKAGE_FORMAT:
                raise ValueError(f"{path}: not a {LINKAGE_FORMAT} file")
            return cls([str(v) for v in z["vocab"]], [str(h) for h in z["hotlines"]], z["coef"],
                       z["intercept"], z["thresholds"], json.loads(str(z["meta"])))

    def probabilities(self, feats: dict[str, float]) -> dict[str, float]:
        """This model alone (the engine scores every model at once: :class:`JointScorer`)."""
        return _alone(self, lambda: JointScorer(None, None, self)).score_all(feats)[2]

    def needed(self, probs: dict[str, float]) -> list[str]:
        return [h for h in self.hotlines if probs.get(h, 0.0) >= self.thresholds[h]]


class JointScorer:
    """Both models in one matrix: a row per feature (the union of their vocabularies), a column per
    category and one for danger, so that a route gathers its features' rows once and does one small
    matrix product for both answers."""

    def __init__(self, danger: DangerModel | None, category: CategoryModel | None,
                 linkage: LinkageModel | None = None) -> None:
        import numpy as np

        self._np = np
        self.danger = danger
        self.category = category
        self.linkage = linkage
        vocab: dict[str, int] = {}
        for name in (category.index if category else {}):
            vocab.setdefault(name, len(vocab))
        for name in (danger.weights if danger else {}):
            vocab.setdefault(name, len(vocab))
        for name in (linkage.index if linkage else {}):
            vocab.setdefault(name, len(vocab))
        self.index = vocab
        self.classes = category.classes if category else []
        self.hotlines = linkage.hotlines if linkage else []
        n_cat = len(self.classes)
        self._danger_col = n_cat  # columns: the categories, danger, then the hotlines
        width = n_cat + 1 + len(self.hotlines)
        self.rows = np.zeros((len(vocab), width), dtype=np.float32)
        for model, first in ((category, 0), (linkage, n_cat + 1)):
            if model is not None:
                order = np.fromiter((vocab[n] for n in model.index), dtype=np.int64, count=len(model.index))
                cols = np.fromiter(model.index.values(), dtype=np.int64, count=len(model.index))
                self.rows[order, first:first + model.coef.shape[0]] = model.coef.T[cols]
        if danger is not None:
            for name, w in danger.weights.items():
                self.rows[vocab[name], n_cat] = w
        self.bias = np.zeros(width, dtype=np.float32)
        if category is not None:
            self.bias[:n_cat] = category.intercept
        if danger is not None:
            self.bias[n_cat] = danger.bias
        if linkage is not None:
            self.bias[n_cat + 1:] = linkage.intercept
        self._names = list(vocab)

    def score(self, feats: dict[str, float], *,
              evidence: int = 4) -> tuple[DangerVerdict | None, dict[str, float]]:
        verdict, probs, _ = self.score_all(feats, evidence=evidence)
        return verdict, probs

    def score_all(self, feats: dict[str, float], *, evidence: int = 4
                  ) -> tuple[DangerVerdict | None, dict[str, float], dict[str, float]]:
        """The danger verdict, the category probabilities and each hotline's probability."""
        np = self._np
        index = self.index
        idx: list[int] = []
        vals: list[float] = []
        for key, value in feats.items():
            i = index.get(key)
            if i is not None:
                idx.append(i)
                vals.append(value)
        dc = self._danger_col
        if not idx:
            verdict = None
            if self.danger is not None:
                p0 = _sigmoid(float(self.bias[dc]))
                verdict = DangerVerdict(p0, p0 >= self.danger.threshold, ())
            links = {h: _sigmoid(float(b)) for h, b in zip(self.hotlines, self.bias[dc + 1:], strict=True)}
            return verdict, {}, links
        v = np.asarray(vals, dtype=np.float32)
        rows = self.rows[idx]
        z = v @ rows + self.bias
        probs: dict[str, float] = {}
        if self.category is not None:
            zc = z[:dc]
            e = np.exp(zc - zc.max())
            probs = dict(zip(self.classes, (e / e.sum()).tolist(), strict=True))
        links = {h: _sigmoid(float(zh)) for h, zh in zip(self.hotlines, z[dc + 1:].tolist(), strict=True)}
        verdict = None
        if self.danger is not None:
            p = _sigmoid(float(z[dc]))
            shown: list[str] = []
            if p >= self.danger.threshold:  # the evidence is only shown for a danger: spare the sort
                contrib = v * rows[:, dc]
                for j in np.argsort(-contrib).tolist():
                    if contrib[j] <= 0:
                        break
                    word = _readable(self._names[idx[j]])
                    if word not in shown and not any(word in s or s in word for s in shown):
                        shown.append(word)
                    if len(shown) >= evidence:
                        break
            verdict = DangerVerdict(p, p >= self.danger.threshold, tuple(shown))
        return verdict, probs, links

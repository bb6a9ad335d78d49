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
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pypinyin import Style, lazy_pinyin

MODEL_FILE = Path(__file__).resolve().parent / "data" / "danger_model.json"
FORMAT = "hotline-danger-model/1"
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def features(text: str) -> dict[str, float]:
    """Sublinear tf of character 1-3-grams (per run of Chinese characters) and toneless pinyin
    1-3-grams, L2-normalised. Keys: ``c:<chars>`` and ``p:<syllables joined by _>``."""
    grams: list[str] = []
    add = grams.append
    for run in _CJK_RUN.findall(text):
        syl = [_syllable(ch) for ch in run]
        n = len(run)
        for i in range(n):
            add("c:" + run[i])
            add("p:" + syl[i])
            if i + 1 < n:
                add("c:" + run[i:i + 2])
                add(f"p:{syl[i]}_{syl[i + 1]}")
                if i + 2 < n:
                    add("c:" + run[i:i + 3])
                    add(f"p:{syl[i]}_{syl[i + 1]}_{syl[i + 2]}")
    counts = Counter(grams)
    weighted = {k: _SUBLINEAR[v] if v < len(_SUBLINEAR) else 1.0 + math.log(v) for k, v in counts.items()}
    norm = math.sqrt(sum(v * v for v in weighted.values())) or 1.0
    return {k: v / norm for k, v in weighted.items()}


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

    def judge(self, text: str, *, evidence: int = 4) -> DangerVerdict:
        feats = features(text)
        contributions = {k: v * self.weights[k] for k, v in feats.items() if k in self.weights}
        z = self.bias + sum(contributions.values())
        p = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
        if p < self.threshold:  # the evidence is only shown for a danger: spare the sort
            return DangerVerdict(p, False, ())
        top = sorted((k for k, c in contributions.items() if c > 0), key=lambda k: -contributions[k])
        shown: list[str] = []
        for key in top:
            word = _readable(key)
            if word not in shown and not any(word in s or s in word for s in shown):
                shown.append(word)
            if len(shown) >= evidence:
                break
        return DangerVerdict(p, p >= self.threshold, tuple(shown))


def _readable(key: str) -> str:
    kind, _, body = key.partition(":")
    return body if kind == "c" else body.replace("_", " ")

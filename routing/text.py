"""Text preparation: normalisation, ASR variants, segmentation and negation scope.

Segmentation uses a private ``jieba.Tokenizer`` per rule set (never jieba's global one), with the
user dictionary of ``routing/data/userdict.txt``. Tokens decide where negation cues really are:
"没有人受伤" has the cue 没有, "未成年人" does not have the cue 未.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
from dataclasses import dataclass

from .rules import RuleSet

with warnings.catch_warnings():
    # jieba 0.42 imports pkg_resources, which warns on recent setuptools; nothing we can fix here.
    warnings.simplefilter("ignore")
    import jieba

CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CLAUSE_BREAK_RE = re.compile(r"[,.!?;:，。！？；：、\n…~～]+")
_SPACE_RE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), control and format characters to spaces, squeeze spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return _SPACE_RE.sub(" ", text).strip()


def apply_homophones(text: str, rules: RuleSet) -> tuple[str, list[str]]:
    """Replace known speech-recognition garbles; returns the text and a reason per replacement."""
    reasons = []
    for garble, meant in rules.homophones:
        if garble in text:
            text = text.replace(garble, meant)
            reasons.append(f"ASR variant '{garble}' read as '{meant}'")
    return text, reasons


def has_chinese(text: str) -> bool:
    return CJK_RE.search(text) is not None


def make_tokenizer(rules: RuleSet) -> jieba.Tokenizer:
    logging.getLogger("jieba").setLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    for word, freq, tag in rules.userdict_words:  # parsed and validated by rules.load_rules
        tk.add_word(word, freq, tag)
    return tk


@dataclass(frozen=True)
class Segmented:
    text: str
    tokens: tuple[str, ...]
    cue_spans: tuple[tuple[int, int, str], ...]  # negation cues as (start, end, cue)
    clause_starts: tuple[int, ...]

    def clause_start(self, pos: int) -> int:
        start = 0
        for s in self.clause_starts:
            if s > pos:
                break
            start = s
        return start


def segment(text: str, tk: jieba.Tokenizer, rules: RuleSet) -> Segmented:
    neg = rules.negation
    tokens: list[str] = []
    cues = []
    clause_starts = [0] + [m.end() for m in CLAUSE_BREAK_RE.finditer(text)]
    # Segmenting is only for finding negation cues as words: a text in which no cue occurs even as a
    # substring has none, and needs no segmenting (a third of the engine's time on the corpus).
    if not any(cue in text for cue in neg.cues):
        return Segmented(text, (), (), tuple(clause_starts))
    for word, start, end in tk.tokenize(text):
        tokens.append(word)
        if word in neg.cues and not _in_question_form(text, start, end, neg.not_negation):
            cues.append((start, end, word))
    return Segmented(text, tuple(tokens), tuple(cues), tuple(clause_starts))


def _in_question_form(text: str, start: int, end: int, forms: tuple[str, ...]) -> bool:
    for form in forms:
        lo = max(0, start - len(form) + 1)
        idx = text.find(form, lo, end + len(form) - 1)
        while idx != -1 and idx < end:
            if idx < end and idx + len(form) > start:
                return True
            idx = text.find(form, idx + 1, end + len(form) - 1)
    return False


def negated_by(seg: Segmented, start: int, rules: RuleSet) -> str | None:
    """The negation cue that cancels a phrase starting at ``start``, if any."""
    neg = rules.negation
    floor = max(seg.clause_start(start), start - neg.window)
    for c_start, c_end, cue in reversed(seg.cue_spans):
        if c_end > start:
            continue
        if c_start < floor:
            break
        between = seg.text[c_end:start]
        if any(b in between for b in neg.breaks):
            return None
        return cue
    return None

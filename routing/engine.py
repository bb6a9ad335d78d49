"""The routing engine: text + receiving platform -> action, category, danger, linkage, reasons.

The notice's rules, in the order they are applied to each matter:

1. danger to life, property or public order -> 110 acts first
   (at 12345: ``handover_110`` for part C, ``transfer_110`` otherwise; at 110: ``accept``, or
   ``handle_then_transfer`` for part D);
2. clearly the other side's -> the category's action at that platform (transfer);
3. unclear or shared between 12345 and 110 (close scores for a 12345 and a 110 category)
   -> ``three_way``; nothing matched -> the platform that took the call keeps it (``accept``);
4. outside both (X) -> ``guide``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotline.contracts import Service

from .errors import RoutingDataError, RoutingInputError
from .model import (
    CATEGORY_FILE,
    LINKAGE_FILE,
    MODEL_FILE,
    CategoryModel,
    DangerModel,
    DangerVerdict,
    JointScorer,
    LinkageModel,
    features,
)
from .result import Matter, RouteResult
from .rules import DANGER, Category, Phrase, RuleSet, load_rules
from .text import Segmented, apply_homophones, has_chinese, make_tokenizer, negated_by, normalise, segment

MAX_TEXT_CHARS = 20_000
NO_CHINESE_REASON = "no Chinese text to route: explain and guide the caller (interpreter or written channel)"
PLATFORMS = (Service.HOTLINE_12345.value, Service.POLICE_110.value)
TO_110 = frozenset({"transfer_110", "handover_110"})
THREE_WAY_RATIO = 0.8  # a rival from the other side this close to the leader makes the case shared
MAX_ALTERNATIVES = 5
MAX_SLOT_VALUES = 5
_OWNER = {"A": "12345", "B": "110", "C": "110"}  # D is shared by design, X belongs to neither


@dataclass(frozen=True)
class _State:
    rules: RuleSet
    tokenizer: Any
    danger: DangerModel | None  # the learned danger detector (routing/model.py), when the data has one
    category: CategoryModel | None  # the learned category ranking, when the data has one
    scorer: JointScorer | None = None  # every model in one matrix (what a route uses)
    linkage: LinkageModel | None = None  # the learned linkage hotlines, when the data has one


@dataclass(frozen=True)
class _Categories:
    """The category model's view of one text: its probabilities and how much the rules weigh."""

    probs: dict[str, float]
    rules_weight: float


MODEL_CATEGORY_MIN_P = 0.35  # no rule matched: the model's category counts from this probability on


@dataclass(frozen=True)
class _Hit:
    phrase: Phrase
    matched: str


@dataclass
class _Scored:
    text: str
    scores: dict[str, float] = field(default_factory=dict)
    hits: list[_Hit] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)


class Router:
    """Load the rules once, route many texts. ``reload()`` swaps in new rules atomically."""

    def __init__(self, data_dir: Path | str | None = None, *, model: bool = True) -> None:
        """``model=False``: the rules alone (the baseline the danger model is measured against)."""
        self._data_dir = data_dir
        self._use_model = model
        self._state = self._build()

    def _build(self) -> _State:
        rules = load_rules(self._data_dir)
        base = Path(self._data_dir) if self._data_dir is not None else MODEL_FILE.parent
        danger = category = None
        path = base / MODEL_FILE.name
        if self._use_model and path.exists():
            try:
                danger = DangerModel.load(path)
            except (ValueError, KeyError, TypeError) as exc:
                raise RoutingDataError(path.name, "<file>", f"not a danger model: {exc}") from None
        path = base / CATEGORY_FILE.name
        if self._use_model and path.exists():
            try:
                category = CategoryModel.load(path)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise RoutingDataError(path.name, "<file>", f"not a category model: {exc}") from None
        linkage = None
        path = base / LINKAGE_FILE.name
        if self._use_model and path.exists():
            try:
                linkage = LinkageModel.load(path)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise RoutingDataError(path.name, "<file>", f"not a linkage model: {exc}") from None
        scorer = (JointScorer(danger, category, linkage)
                  if danger is not None or category is not None or linkage is not None else None)
        return _State(rules, make_tokenizer(rules), danger, category, scorer, linkage)

    @property
    def danger_model(self) -> DangerModel | None:
        return self._state.danger

    def reload(self) -> str:
        """Re-read the data files. On error the old rules stay in service and the error is raised."""
        state = self._build()
        self._state = state  # one reference assignment: a route in progress keeps the old state
        return state.rules.version

    @property
    def rules(self) -> RuleSet:
        return self._state.rules

    @property
    def version(self) -> str:
        return self._state.rules.version

    # ------------------------------------------------------------------ public API
    def route(self, text: str, at: str = "12345") -> RouteResult:
        state = self._state
        rules = state.rules
        at = _check_platform(at)
        clean = _check_text(text)
        if not has_chinese(clean):
            return RouteResult(
                at=at, action="guide", category=None, alternatives=[], life_threat=False, linkage=[],
                slots={name: [] for name in rules.slots},
                reasons=[NO_CHINESE_REASON],
                matters=[], rules_version=rules.version,
            )
        clean, variant_reasons = apply_homophones(clean, rules)
        whole = self._score(clean, state)
        verdict: DangerVerdict | None = None
        categories = None
        links: dict[str, float] = {}
        if state.scorer is not None:
            verdict, probs, links = state.scorer.score_all(features(clean))
            if state.category is not None:
                categories = _Categories(probs, state.category.rules_weight)
        matters = self._matters(clean, whole, at, state, categories)
        if verdict is not None:
            if verdict.danger and not any(m.life_threat for m in matters):
                # The rules heard no danger; the model does: the most urgent matter goes the 110 way
                # (when unsure whether a life is at risk, 110 acts first).
                lead = matters[0]
                one = len(matters) == 1
                scored = whole if one else self._score(lead.text, state)
                matters = sorted([_decide(scored, at, rules, verdict, categories if one else None),
                                  *matters[1:]], key=_urgency)
            elif verdict.danger or any(m.life_threat for m in matters):
                variant_reasons = [*variant_reasons, verdict.reason()]
        main = matters[0]
        linkage = _unique(h for m in matters for h in m.linkage)
        if state.linkage is not None:
            for h in state.linkage.needed(links):
                if h not in linkage:
                    linkage.append(h)
                    variant_reasons = [*variant_reasons, f"model: linkage {h} (p={links[h]:.2f})"]
        return RouteResult(
            at=at,
            action=main.action,
            category=main.category,
            alternatives=_alternatives(whole, rules),
            life_threat=any(m.life_threat for m in matters),
            linkage=linkage,
            slots=_slots(clean, rules),
            reasons=variant_reasons + [r for m in matters for r in m.reasons],
            matters=matters,
            rules_version=rules.version,
        )

    # ------------------------------------------------------------------ scoring
    def _score(self, text: str, state: _State) -> _Scored:
        rules = state.rules
        seg: Segmented | None = None
        out = _Scored(text)
        for phrase in rules.phrases:
            for m in phrase.pattern.finditer(text):
                if phrase.negatable:
                    if seg is None:  # segment lazily: most texts need it, short ones may not
                        seg = segment(text, state.tokenizer, rules)
                    cue = negated_by(seg, m.start(), rules)
                    if cue is not None:
                        out.negated.append(f"'{m.group()}' ignored: negated by '{cue}'")
                        continue
                out.hits.append(_Hit(phrase, m.group()))
                if phrase.code != DANGER:
                    out.scores[phrase.code] = out.scores.get(phrase.code, 0.0) + phrase.weight
                break  # one hit per phrase
        supported = {h.phrase.code for h in out.hits if not h.phrase.support}
        alone = [h for h in out.hits if h.phrase.support and h.phrase.code not in supported]
        for h in alone:  # supporting evidence with nothing to support: it decides nothing
            out.scores.pop(h.phrase.code, None)
            out.negated.append(
                f"'{h.matched}' ignored: supports {h.phrase.code} only beside another sign of it")
        if alone:
            out.hits = [h for h in out.hits if h not in alone]
        return out

    def _matters(self, text: str, whole: _Scored, at: str, state: _State,
                 categories: _Categories | None = None) -> list[Matter]:
        rules = state.rules
        pieces = [p for p in _split(text, rules) if p.strip()]
        if len(pieces) > 1:
            parts = [self._score(p, state) for p in pieces]
            matters = [_decide(s, at, rules) for s in parts if s.scores]
            if len({m.category["code"] for m in matters if m.category}) > 1:
                return sorted(matters, key=_urgency)
        return [_decide(whole, at, rules, categories=categories)]


# ---------------------------------------------------------------------- decisions
def _decide(scored: _Scored, at: str, rules: RuleSet, model_danger: DangerVerdict | None = None,
            categories: _Categories | None = None) -> Matter:
    cats = rules.categories
    generic_danger = [h for h in scored.hits if h.phrase.code == DANGER]
    blended = _blend(scored, categories, cats)
    if not scored.scores and not generic_danger and model_danger is None and not blended:
        return Matter(
            text=scored.text, action="accept", category=None, score=0.0, life_threat=False, linkage=[],
            reasons=scored.negated + ["no rule matched: the platform that took the call keeps it (首接负责)"],
        )
    ranked = sorted(scored.scores.items(), key=lambda kv: (-kv[1], cats[kv[0]].order))
    # The ranking that decides: the rules' scores, or with the category model its probabilities
    # plus the rules' shares (routing/model.py, CategoryModel).
    order = ([c for c, _ in sorted(blended.items(), key=lambda kv: (-kv[1], cats[kv[0]].order))]
             if blended else [c for c, _ in ranked])
    life_codes = {h.phrase.code for h in scored.hits if h.phrase.life and h.phrase.code != DANGER}
    danger = bool(life_codes or generic_danger or model_danger)
    rules_top = ranked[0][0] if ranked else None
    if life_codes:
        code = min(life_codes, key=lambda c: (-scored.scores[c], cats[c].order))
    elif generic_danger or model_danger:
        # danger without a category of its own: the best 110-side category leads, else rescue (B5)
        police = [c for c in order if cats[c].part in "BCD"]
        code = police[0] if police else (order[0] if order and cats[order[0]].part != "X" else "B5")
    else:
        code = order[0]
        if rules_top is not None and code != rules_top:
            rules_rival = _rival(cats[rules_top], scored.scores[rules_top], ranked, cats)
            if _OWNER.get(cats[rules_top].part) == "110" and _OWNER.get(cats[code].part) != "110":
                # The model never pulls back to 12345 a matter the rules gave the police (110 first).
                code = rules_top
            elif rules_rival is not None and code == rules_rival.code:
                # The rules found it shared between the two sides; the model leaning to one of
                # them does not make it clear: still a three-way call.
                code = rules_top
    cat = cats[code]
    score = scored.scores.get(code, 0.0)
    reasons = [_hit_reason(h, cats) for h in scored.hits] + scored.negated
    if categories is not None and blended and code != rules_top and code in categories.probs:
        reasons.append(f"model: category {code} {cat.name_zh} (p={categories.probs[code]:.2f}"
                       + (f"; the rules said {rules_top})" if rules_top else "; no rule matched)"))
    if model_danger is not None:
        reasons.append(model_danger.reason())
    action = cat.actions[at]
    if danger:
        if at == "12345":
            action = "handover_110" if cat.part == "C" else "transfer_110"
            reasons.append(f"rule: danger to life, property or public order -> 110 first ({action})")
        else:
            action = action if action in ("accept", "handle_then_transfer") else "accept"
            reasons.append(f"rule: danger to life, property or public order -> 110 acts at once ({action})")
    else:
        rival = _rival(cat, score, ranked, cats) if code == rules_top else None
        if rival is not None:
            action = "three_way"
            reasons.append(
                f"rule: shared or unclear ({code} {scored.scores[code]:g} vs {rival.code} "
                f"{scored.scores[rival.code]:g}) -> three-way call; if still undecided, {at} keeps it"
            )
        elif cat.part == "X":
            reasons.append("rule: outside both 12345 and 110 -> explain and guide")
        else:
            reasons.append(f"rule: {code} {cat.name_zh} at {at} -> {action}")
    linkage = _unique(
        [h for hit in scored.hits if hit.phrase.code == code or hit.phrase.life for h in hit.phrase.linkage]
        + list(cat.linkage)
    )
    return Matter(
        text=scored.text, action=action, category=cat.ref(), score=score,
        life_threat=danger, linkage=linkage, reasons=reasons,
    )


def _blend(scored: _Scored, categories: _Categories | None, cats: dict[str, Category]) -> dict[str, float]:
    """Model probability + rules_weight x the rules' share, per code; {} without a model. With no
    rule matched, the model alone counts only from MODEL_CATEGORY_MIN_P (a greeting has no category)."""
    if categories is None or not categories.probs:
        return {}
    probs = {c: p for c, p in categories.probs.items() if c in cats}
    if not scored.scores and max(probs.values(), default=0.0) < MODEL_CATEGORY_MIN_P:
        return {}
    total = sum(scored.scores.values()) or 1.0
    out = dict(probs)
    for code, s in scored.scores.items():
        out[code] = out.get(code, 0.0) + categories.rules_weight * s / total
    return out


def _hit_reason(h: _Hit, cats: dict[str, Category]) -> str:
    if h.phrase.code == DANGER:
        return f"'{h.matched}' -> danger marker"
    return (
        f"'{h.matched}' -> {h.phrase.code} {cats[h.phrase.code].name_zh} (+{h.phrase.weight:g}"
        f"{', danger' if h.phrase.life else ''})"
    )


def _rival(
    cat: Category, score: float, ranked: list[tuple[str, float]], cats: dict[str, Category]
) -> Category | None:
    owner = _OWNER.get(cat.part)
    if owner is None:
        return None
    for code, s in ranked:
        other = _OWNER.get(cats[code].part)
        if other is not None and other != owner:
            return cats[code] if s >= THREE_WAY_RATIO * score else None
    return None


_ACTION_URGENCY = {"handover_110": 0, "transfer_110": 1, "accept": 2, "handle_then_transfer": 2,
                   "three_way": 3, "transfer_12345": 4, "guide": 5}


def _urgency(m: Matter) -> tuple[int, int, float]:
    return (0 if m.life_threat else 1, _ACTION_URGENCY.get(m.action, 9), -m.score)


# ---------------------------------------------------------------------- helpers
def _check_platform(at: Any) -> str:
    at = str(at.value if isinstance(at, Service) else at)
    if at not in PLATFORMS:
        raise RoutingInputError("route.invalid_at", f"'at' must be one of {', '.join(PLATFORMS)}")
    return at


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise RoutingInputError("route.invalid_text", "'text' must be a string")
    if len(text) > MAX_TEXT_CHARS:
        raise RoutingInputError(
            "route.text_too_long", f"text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}", 413
        )
    clean = normalise(text)
    if not clean:
        raise RoutingInputError("route.empty_text", "text is empty (or only spaces and control characters)")
    return clean


def _split(text: str, rules: RuleSet) -> list[str]:
    pieces, last = [], 0
    for m in rules.matter_markers.finditer(text):
        pieces.append(text[last:m.start()])
        last = m.end()
    pieces.append(text[last:])
    return pieces


def _alternatives(scored: _Scored, rules: RuleSet) -> list[dict[str, Any]]:
    total = sum(scored.scores.values()) or 1.0
    ranked = sorted(scored.scores.items(), key=lambda kv: (-kv[1], rules.categories[kv[0]].order))
    return [
        {**rules.categories[code].ref(), "score": round(s, 2), "share": round(s / total, 3)}
        for code, s in ranked[:MAX_ALTERNATIVES]
    ]


def _slots(text: str, rules: RuleSet) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, patterns in rules.slots.items():
        found: list[str] = []
        for pattern in patterns:
            for m in pattern.finditer(text):
                value = m.group().strip()
                if value and value not in found and not any(value in f for f in found):
                    found.append(value)
        out[name] = found[:MAX_SLOT_VALUES]
    return out


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))

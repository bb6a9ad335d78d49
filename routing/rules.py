"""Load and validate the routing data files into an immutable, compiled rule set.

Files (under ``routing/data/`` unless another folder is given):
``categories.yaml`` (the annex as categories with phrases), ``lexicon.yaml`` (homophones, negation,
matter markers, slot patterns) and ``userdict.txt`` (jieba user dictionary).
Every problem raises :class:`RoutingDataError` naming the file, the key and the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hotline.contracts import LINKAGE_HOTLINES, Service

from .errors import RoutingDataError

DATA_DIR = Path(__file__).parent / "data"
CATEGORIES_FILE = "categories.yaml"
LEXICON_FILE = "lexicon.yaml"
USERDICT_FILE = "userdict.txt"

ACTIONS: dict[str, frozenset[str]] = {
    Service.HOTLINE_12345.value: frozenset({"accept", "transfer_110", "handover_110", "three_way", "guide"}),
    Service.POLICE_110.value: frozenset(
        {"accept", "transfer_12345", "handle_then_transfer", "three_way", "guide"}
    ),
}
REQUIRED_CODES: tuple[str, ...] = (
    tuple(f"A{i:02d}" for i in range(1, 17))
    + tuple(f"B{i}" for i in range(1, 8))
    + tuple(f"C{i}" for i in range(1, 5))
    + tuple(f"D{i}" for i in range(1, 8))
    + ("X",)
)
DANGER = "*"  # code of the danger markers that belong to no category
SLOT_NAMES = ("place", "time", "people", "weapons", "injuries")
_CATEGORY_KEYS = {"code", "name_zh", "name_en", "items", "actions", "linkage", "phrases"}
_PHRASE_KEYS = {"p", "re", "w", "life", "linkage", "neg", "support"}


@dataclass(frozen=True)
class Phrase:
    code: str
    source: str  # the literal or the pattern, as written in the file
    pattern: re.Pattern[str]
    weight: float
    life: bool
    linkage: tuple[str, ...]
    negatable: bool
    # supporting evidence only: counts for its category when another of its phrases matched too
    # (a caller who says 政府 is not, by that word, threatening the government)
    support: bool = False


@dataclass(frozen=True)
class Category:
    code: str
    part: str  # "A" | "B" | "C" | "D" | "X"
    name_zh: str
    name_en: str
    items: tuple[str, ...]
    actions: dict[str, str]
    linkage: tuple[str, ...]
    order: int

    def ref(self) -> dict[str, str]:
        return {"code": self.code, "name_zh": self.name_zh, "name_en": self.name_en}


@dataclass(frozen=True)
class Negation:
    window: int
    cues: frozenset[str]
    not_negation: tuple[str, ...]
    breaks: tuple[str, ...]


@dataclass(frozen=True)
class RuleSet:
    version: str
    lexicon_version: str
    categories: dict[str, Category]
    phrases: tuple[Phrase, ...]
    homophones: tuple[tuple[str, str], ...]
    negation: Negation
    matter_markers: re.Pattern[str]
    slots: dict[str, tuple[re.Pattern[str], ...]]
    userdict: Path
    userdict_words: tuple[tuple[str, int | None, str | None], ...]


def _read_yaml(path: Path) -> dict[str, Any]:
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RoutingDataError(name, "<file>", f"not found at {path}") from None
    except UnicodeDecodeError as exc:
        raise RoutingDataError(name, "<file>", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<yaml>"
        raise RoutingDataError(name, where, f"YAML syntax error: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise RoutingDataError(name, "<top>", "must be a mapping")
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise RoutingDataError(name, "version", "missing or not a non-empty string")
    return doc


def _str(file: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RoutingDataError(file, key, "must be a non-empty string")
    return value


def _compile(file: str, key: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RoutingDataError(file, key, f"bad regular expression: {exc}") from None


def _linkage(file: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RoutingDataError(file, key, "must be a list")
    out = []
    for v in value:
        name = str(v)  # YAML reads 119 as a number; accept it
        if name not in LINKAGE_HOTLINES:
            raise RoutingDataError(file, key, f"unknown hotline {v!r} (known: {', '.join(LINKAGE_HOTLINES)})")
        out.append(name)
    return tuple(out)


def _phrase(file: str, key: str, code: str, raw: Any) -> Phrase:
    if isinstance(raw, str):
        raw = {"p": raw}
    if not isinstance(raw, dict):
        raise RoutingDataError(file, key, "a phrase is a string or a mapping")
    unknown = set(raw) - _PHRASE_KEYS
    if unknown:
        raise RoutingDataError(file, key, f"unknown keys {sorted(unknown)}")
    if ("p" in raw) == ("re" in raw):
        raise RoutingDataError(file, key, "give exactly one of 'p' (literal) or 're' (pattern)")
    if "p" in raw:
        source = _str(file, f"{key}.p", raw["p"])
        pattern = re.compile(re.escape(source))
    else:
        source = _str(file, f"{key}.re", raw["re"])
        pattern = _compile(file, f"{key}.re", source)
        if pattern.search(""):
            raise RoutingDataError(file, f"{key}.re", "pattern matches the empty string")
    weight = raw.get("w", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 10:
        raise RoutingDataError(file, f"{key}.w", "weight must be a number in (0, 10]")
    for flag in ("life", "neg", "support"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise RoutingDataError(file, f"{key}.{flag}", "must be true or false")
    return Phrase(
        code=code,
        source=source,
        pattern=pattern,
        weight=float(weight),
        life=bool(raw.get("life", False)),
        linkage=_linkage(file, f"{key}.linkage", raw.get("linkage")),
        negatable=bool(raw.get("neg", True)),
        support=bool(raw.get("support", False)),
    )


def _categories(doc: dict[str, Any]) -> tuple[dict[str, Category], tuple[Phrase, ...]]:
    file = CATEGORIES_FILE
    raw_list = doc.get("categories")
    if not isinstance(raw_list, list) or not raw_list:
        raise RoutingDataError(file, "categories", "missing or not a non-empty list")
    cats: dict[str, Category] = {}
    phrases: list[Phrase] = []
    for i, raw in enumerate(raw_list):
        key = f"categories[{i}]"
        if not isinstance(raw, dict):
            raise RoutingDataError(file, key, "must be a mapping")
        code = _str(file, f"{key}.code", raw.get("code"))
        key = f"categories[{code}]"
        if code not in REQUIRED_CODES:
            raise RoutingDataError(file, key, "unknown code (known: A01-A16, B1-B7, C1-C4, D1-D7, X)")
        if code in cats:
            raise RoutingDataError(file, key, "duplicate category code")
        unknown = set(raw) - _CATEGORY_KEYS
        if unknown:
            raise RoutingDataError(file, key, f"unknown keys {sorted(unknown)}")
        items = raw.get("items")
        if not isinstance(items, list) or not items or not all(isinstance(x, str) and x for x in items):
            raise RoutingDataError(file, f"{key}.items", "must be a non-empty list of strings")
        actions = raw.get("actions")
        if not isinstance(actions, dict) or set(map(str, actions)) != set(ACTIONS):
            raise RoutingDataError(file, f"{key}.actions", "must map both '12345' and '110' to an action")
        acts = {str(k): v for k, v in actions.items()}
        for platform, action in acts.items():
            if action not in ACTIONS[platform]:
                raise RoutingDataError(
                    file, f"{key}.actions.{platform}",
                    f"{action!r} is not an action at {platform} ({'|'.join(sorted(ACTIONS[platform]))})",
                )
        raw_phrases = raw.get("phrases")
        if not isinstance(raw_phrases, list) or not raw_phrases:
            raise RoutingDataError(file, f"{key}.phrases", "must be a non-empty list")
        phrases.extend(_phrase(file, f"{key}.phrases[{j}]", code, p) for j, p in enumerate(raw_phrases))
        cats[code] = Category(
            code=code,
            part=code[0],
            name_zh=_str(file, f"{key}.name_zh", raw.get("name_zh")),
            name_en=_str(file, f"{key}.name_en", raw.get("name_en")),
            items=tuple(items),
            actions=acts,
            linkage=_linkage(file, f"{key}.linkage", raw.get("linkage")),
            order=i,
        )
    raw_danger = doc.get("danger", [])
    if not isinstance(raw_danger, list):
        raise RoutingDataError(file, "danger", "must be a list of phrases")
    for j, raw in enumerate(raw_danger):
        ph = _phrase(file, f"danger[{j}]", DANGER, raw)
        phrases.append(Phrase(ph.code, ph.source, ph.pattern, ph.weight, True, ph.linkage, ph.negatable))
    missing = [c for c in REQUIRED_CODES if c not in cats]
    if missing:
        raise RoutingDataError(file, "categories", f"missing categories: {', '.join(missing)}")
    return cats, tuple(phrases)


def _str_list(file: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise RoutingDataError(file, key, "must be a list of non-empty strings")
    return tuple(value)


def _lexicon(doc: dict[str, Any]) -> tuple[Any, ...]:
    file = LEXICON_FILE
    homo = doc.get("homophones") or {}
    if not isinstance(homo, dict):
        raise RoutingDataError(file, "homophones", "must be a mapping of garble: meant")
    pairs = []
    for k, v in homo.items():
        if not isinstance(k, str) or not k or not isinstance(v, str) or not v:
            raise RoutingDataError(file, f"homophones.{k}", "garble and meaning must be non-empty strings")
        if k == v:
            raise RoutingDataError(file, f"homophones.{k}", "maps a word to itself")
        pairs.append((k, v))
    pairs.sort(key=lambda kv: -len(kv[0]))  # longest garble first
    neg = doc.get("negation")
    if not isinstance(neg, dict):
        raise RoutingDataError(file, "negation", "missing or not a mapping")
    window = neg.get("window")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 20:
        raise RoutingDataError(file, "negation.window", "must be an integer from 1 to 20")
    negation = Negation(
        window=window,
        cues=frozenset(_str_list(file, "negation.cues", neg.get("cues"))),
        not_negation=_str_list(file, "negation.not_negation", neg.get("not_negation", [])),
        breaks=_str_list(file, "negation.breaks", neg.get("breaks", [])),
    )
    markers = _compile(file, "matter_markers", _str(file, "matter_markers", doc.get("matter_markers")))
    raw_slots = doc.get("slots")
    if not isinstance(raw_slots, dict):
        raise RoutingDataError(file, "slots", "missing or not a mapping")
    unknown = set(raw_slots) - set(SLOT_NAMES)
    if unknown:
        known = ", ".join(SLOT_NAMES)
        raise RoutingDataError(file, "slots", f"unknown slots {sorted(unknown)} (known: {known})")
    slots = {
        name: tuple(
            _compile(file, f"slots.{name}[{i}]", p)
            for i, p in enumerate(_str_list(file, f"slots.{name}", raw_slots.get(name, [])))
        )
        for name in SLOT_NAMES
    }
    return tuple(pairs), negation, markers, slots


def _userdict(path: Path) -> tuple[tuple[str, int | None, str | None], ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RoutingDataError(path.name, "<file>", f"not found at {path}") from None
    except UnicodeDecodeError as exc:
        raise RoutingDataError(path.name, "<file>", f"not UTF-8 ({exc.reason})") from None
    words = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 3 or (len(parts) >= 2 and not parts[1].isdigit()):
            raise RoutingDataError(path.name, f"line {n}", "expected 'word [frequency] [tag]'")
        freq = int(parts[1]) if len(parts) >= 2 else None
        tag = parts[2] if len(parts) == 3 else None
        words.append((parts[0], freq, tag))
    return tuple(words)


def load_rules(data_dir: Path | str | None = None) -> RuleSet:
    """Read, validate and compile the data files. Raises RoutingDataError on any problem."""
    base = Path(data_dir) if data_dir is not None else DATA_DIR
    cat_doc = _read_yaml(base / CATEGORIES_FILE)
    lex_doc = _read_yaml(base / LEXICON_FILE)
    categories, phrases = _categories(cat_doc)
    homophones, negation, markers, slots = _lexicon(lex_doc)
    userdict = base / USERDICT_FILE
    return RuleSet(
        version=str(cat_doc["version"]),
        lexicon_version=str(lex_doc["version"]),
        categories=categories,
        phrases=phrases,
        homophones=homophones,
        negation=negation,
        matter_markers=markers,
        slots=slots,
        userdict=userdict,
        userdict_words=_userdict(userdict),
    )
